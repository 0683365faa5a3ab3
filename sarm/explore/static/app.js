// sarm explore: the page's entry point; routes #episode/N to the episode view, anything else to the table.
import { $ } from "./api.js";
import { hideEpisode, showEpisode } from "./episode.js";
import { loadTable } from "./table.js";

function showTable() { hideEpisode(); $("table-view").hidden = false; }
function route() { const m = location.hash.match(/^#episode\/(\d+)$/); m ? showEpisode(Number(m[1])) : showTable(); }
window.addEventListener("hashchange", route);
$("home").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; });
loadTable().then(route);
