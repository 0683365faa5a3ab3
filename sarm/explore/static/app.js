// sarm explore: the episode table and the episode view (plain JS module, no dependency).
const token = new URLSearchParams(location.search).get("token") || "";
const api = (path) => fetch(`${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`)
  .then((r) => { if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`); return r.json(); });
const $ = (id) => document.getElementById(id);
const COLOURS = ["#e6194b33", "#3cb44b33", "#4363d833", "#f5823133", "#911eb433", "#42d4f433"];
const HEAD_COLOURS = { sparse: "#1f77b4", dense: "#d62728" };

let rows = [], sortKey = "episode_index", sortDir = 1, episode = null;

function fmt(v) { return v === null || v === undefined ? "–" : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : Array.isArray(v) ? v.join(", ") : String(v); }

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

async function loadTable() {
  const data = await api("api/episodes");
  rows = data.episodes;
  for (const t of [...new Set(rows.map((r) => r.task))]) $("task-filter").add(new Option(t, t));
  renderTable();
}

function frameOf(video) { return Math.max(0, Math.min(episode.length - 1, Math.floor((video.currentTime - video.dataset.from) * episode.fps + 1e-6))); }
function seekFrame(f) {
  f = Math.max(0, Math.min(episode.length - 1, f));
  for (const v of document.querySelectorAll("#videos video")) v.currentTime = Number(v.dataset.from) + (f + 0.5) / episode.fps;
  drawPlot(f);
}

function drawPlot(cursor) {
  const c = $("plot"), g = c.getContext("2d"), W = c.width, H = c.height, pad = 30, n = episode.length;
  const x = (f) => pad + (W - 2 * pad) * (n > 1 ? f / (n - 1) : 0), y = (v) => H - pad - (H - 2 * pad) * v;
  g.clearRect(0, 0, W, H);
  let i = 0;
  for (const spans of Object.values(episode.spans)) {
    for (const s of spans) { g.fillStyle = COLOURS[i++ % COLOURS.length]; g.fillRect(x(s.start), pad, x(s.end) - x(s.start) || 1, H - 2 * pad); }
  }
  g.strokeStyle = "#999"; g.strokeRect(pad, pad, W - 2 * pad, H - 2 * pad);
  const line = (values, colour, dash) => {
    if (!values) return; g.strokeStyle = colour; g.setLineDash(dash); g.beginPath(); let on = false;
    values.forEach((v, f) => { if (v === null) { on = false; return; } on ? g.lineTo(x(f), y(v)) : g.moveTo(x(f), y(v)); on = true; });
    g.stroke(); g.setLineDash([]);
  };
  for (const [h, values] of Object.entries(episode.progress)) line(values, HEAD_COLOURS[h] || "#333", []);
  line(episode.weights, "#2ca02c", [4, 3]);
  g.strokeStyle = "#000"; g.beginPath(); g.moveTo(x(cursor), pad - 5); g.lineTo(x(cursor), H - pad + 5); g.stroke();
  $("frame").textContent = cursor; c.dataset.cursor = cursor;
}

async function showEpisode(index) {
  episode = await api(`api/episode/${index}`);
  $("table-view").hidden = true; $("episode-view").hidden = false;
  $("episode-title").textContent = `episode ${index} · ${episode.task} · ${episode.length} frames`;
  const box = $("videos"); box.innerHTML = "";
  for (const v of episode.videos) {
    if (!v.file) continue;
    const fig = document.createElement("figure"), video = document.createElement("video");
    video.muted = true; video.preload = "auto"; video.dataset.from = v.from_timestamp; video.dataset.to = v.to_timestamp;
    video.src = `files/${v.file.split("/").map(encodeURIComponent).join("/")}?token=${encodeURIComponent(token)}`;
    video.addEventListener("loadedmetadata", () => { video.currentTime = v.from_timestamp; });
    fig.append(video, Object.assign(document.createElement("figcaption"), { textContent: v.camera }));
    box.append(fig);
  }
  drawPlot(0);
  const tick = () => {
    const video = document.querySelector("#videos video");
    if (episode && video) {
      if (video.currentTime >= Number(video.dataset.to) && !video.paused) video.pause();
      drawPlot(frameOf(video));
    }
    if (!$("episode-view").hidden) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function showTable() { $("episode-view").hidden = true; $("table-view").hidden = false; episode = null; document.querySelectorAll("#videos video").forEach((v) => v.pause()); }

$("episodes").addEventListener("click", (e) => {
  const th = e.target.closest("th");
  if (th) { sortDir = sortKey === th.dataset.key ? -sortDir : 1; sortKey = th.dataset.key; renderTable(); return; }
  const tr = e.target.closest("tr.row"); if (tr) location.hash = `episode/${tr.dataset.episode}`;
});
$("task-filter").addEventListener("change", renderTable);
$("search").addEventListener("input", renderTable);
$("plot").addEventListener("click", (e) => {
  const c = $("plot"), r = c.getBoundingClientRect(), pad = 30, px = (e.clientX - r.left) * c.width / r.width;
  seekFrame(Math.round((px - pad) / (c.width - 2 * pad) * (episode.length - 1)));
});
document.addEventListener("keydown", (e) => {
  if (!episode || e.target.tagName === "INPUT") return;
  const videos = [...document.querySelectorAll("#videos video")], video = videos[0];
  if (!video) return;
  if (e.key === " ") { e.preventDefault(); videos.forEach((v) => (video.paused ? v.play() : v.pause())); }
  else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    e.preventDefault(); const step = (e.shiftKey ? Math.round(episode.fps) : 1) * (e.key === "ArrowLeft" ? -1 : 1);
    videos.forEach((v) => v.pause()); seekFrame(frameOf(video) + step);
  }
});
function route() { const m = location.hash.match(/^#episode\/(\d+)$/); m ? showEpisode(Number(m[1])) : showTable(); }
window.addEventListener("hashchange", route);
$("home").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; });
loadTable().then(route);
