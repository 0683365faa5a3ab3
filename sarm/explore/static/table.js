// sarm explore: the episode table (sort, filter, search).
import { $, api, fmt } from "./api.js";

let rows = [], sortKey = "episode_index", sortDir = 1;

function renderTable() {
  const task = $("task-filter").value, q = $("search").value.toLowerCase();
  const cols = rows.length ? Object.keys(rows[0]) : [];
  $("episodes").tHead.innerHTML = "<tr>" + cols.map((c) =>
    `<th data-key="${c}">${c}${c === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""}</th>`).join("") + "</tr>";
  const shown = rows.filter((r) => (!task || r.task === task) &&
    (!q || String(r.episode_index) === q || r.task.toLowerCase().includes(q)));
  shown.sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  const body = document.createElement("tbody");
  for (const r of shown) {
    const tr = body.insertRow(); tr.className = "row"; tr.dataset.episode = r.episode_index;
    for (const c of cols) { const td = tr.insertCell(); td.textContent = fmt(r[c]); if (c === "task") td.className = "task"; }
  }
  $("episodes").replaceChild(body, $("episodes").tBodies[0]);
  $("summary").textContent = `${shown.length} of ${rows.length} episodes`;
}

export async function loadTable() {
  const data = await api("api/episodes");
  rows = data.episodes;
  for (const t of [...new Set(rows.map((r) => r.task))]) $("task-filter").add(new Option(t, t));
  renderTable();
}

$("episodes").addEventListener("click", (e) => {
  const th = e.target.closest("th");
  if (th) { sortDir = sortKey === th.dataset.key ? -sortDir : 1; sortKey = th.dataset.key; renderTable(); return; }
  const tr = e.target.closest("tr.row"); if (tr) location.hash = `episode/${tr.dataset.episode}`;
});
$("task-filter").addEventListener("change", renderTable);
$("search").addEventListener("input", renderTable);
