// sarm explore: the episode table (sort, filter, search, selection, keep / drop, export).
// Rows are windowed: only those in view (plus a margin) are in the DOM, so 10^4 episodes stay fast.
import { $, api, fmt, token, withToken } from "./api.js";

const ROW_H = 26, MARGIN = 15;  // row height in px (style.css: #episodes tr.row), rows drawn beyond the view
const COLUMNS = [  // [key, header]; a column shows when some row has its key (_mark always)
  ["episode_index", "episode"], ["_mark", "mark"], ["task", "task"], ["length", "length"],
  ["length_percentile", "length pct"],
  ["outcome", "outcome"], ["score", "score"], ["final_progress", "final"], ["max_drop", "max drop"],
  ["stalled_fraction", "stalled"], ["rank", "rank"], ["percentile", "percentile"],
  ["mean_weight", "mean weight"], ["zero_weight_fraction", "zero weight"],
  ["final_sparse", "final sparse"], ["final_dense", "final dense"], ["annotations", "annotations"],
];

let rows = [], shown = [], cols = [], sortKey = "episode_index", sortDir = 1, painted = false;
const selected = new Set(), dropped = new Map();  // dropped: episode -> why (the export's reason)

const value = (r, key) => key === "_mark" ? (dropped.has(r.episode_index) ? "drop" : "keep")
  : key === "annotations" ? r.annotations.join(", ") : r[key];
const number = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };

function filters() {
  return { task: $("task-filter").value, outcome: $("outcome-filter").value, min: number("score-min"),
    max: number("score-max"), annotated: $("annotated-filter").value, mark: $("mark-filter").value,
    q: $("search").value.trim().toLowerCase() };
}

function describe(f) {  // the reason recorded for "drop all shown"
  const parts = [];
  if (f.task) parts.push(`task "${f.task}"`);
  if (f.outcome) parts.push(`outcome ${f.outcome === "none" ? "unknown" : f.outcome}`);
  if (f.min !== null) parts.push(`score >= ${f.min}`);
  if (f.max !== null) parts.push(`score <= ${f.max}`);
  if (f.annotated) parts.push(f.annotated === "yes" ? "annotated" : "not annotated");
  if (f.mark) parts.push(`marked ${f.mark}`);
  if (f.q) parts.push(`search "${f.q}"`);
  return parts.length ? `filter: ${parts.join(", ")}` : "all episodes shown";
}

function passes(r, f) {
  if (f.task && r.task !== f.task) return false;
  if (f.outcome && (f.outcome === "none" ? r.outcome !== null : r.outcome !== f.outcome)) return false;
  if ((f.min !== null || f.max !== null) && (r.score === null || r.score === undefined)) return false;
  if (f.min !== null && r.score < f.min) return false;
  if (f.max !== null && r.score > f.max) return false;
  if (f.annotated && (r.annotations.length > 0) !== (f.annotated === "yes")) return false;
  if (f.mark && value(r, "_mark") !== f.mark) return false;
  return !f.q || String(r.episode_index) === f.q || r.task.toLowerCase().includes(f.q);
}

function header() {
  const text = new Set(["task", "outcome", "annotations"]);
  $("episodes").tHead.innerHTML = "<tr>" + cols.map(([k, label]) => `<th data-key="${k}"${text.has(k) ? ' class="text"' : ""}>` +
    (k === "episode_index" ? '<input type="checkbox" id="select-all" title="select all shown"> ' : "") +
    `${label}${k === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""}</th>`).join("") + "</tr>";
}

function cell(tr, r, key) {
  const td = tr.insertCell();
  if (key === "episode_index") {
    const box = Object.assign(document.createElement("input"), { type: "checkbox", className: "pick" });
    box.checked = selected.has(r.episode_index);
    td.append(box, String(r.episode_index));
  } else if (key === "_mark") {
    const drop = dropped.has(r.episode_index);
    td.append(Object.assign(document.createElement("button"), { className: "mark", textContent: drop ? "drop" : "keep",
      title: drop ? `dropped (${dropped.get(r.episode_index)}); click to keep` : "kept; click to drop" }));
  } else if (key === "outcome") {
    td.textContent = r.outcome === null ? "–" : r.outcome_source === "predicted" ? `${r.outcome} (predicted)` : r.outcome;
    td.className = r.outcome_source === "predicted" ? "text predicted" : "text";
  } else {
    td.textContent = fmt(r[key]);
    if (key === "task" || key === "annotations") td.className = "text";
  }
}

function spacer(height) {
  const tr = document.createElement("tr"); tr.className = "spacer";
  const td = tr.insertCell(); td.colSpan = cols.length; td.style.height = `${height}px`;
  return tr;
}

function paint() {  // the rows in view of #table-scroll, spacers for the rest
  const box = $("table-scroll"), head = $("episodes").tHead.offsetHeight;
  const first = Math.max(0, Math.floor((box.scrollTop - head) / ROW_H) - MARGIN);
  const last = Math.min(shown.length, first + Math.ceil(box.clientHeight / ROW_H) + 2 * MARGIN);
  const body = document.createElement("tbody");
  if (first > 0) body.append(spacer(first * ROW_H));
  for (let i = first; i < last; i++) {
    const r = shown[i], tr = body.insertRow();
    tr.className = `row${dropped.has(r.episode_index) ? " dropped" : ""}${selected.has(r.episode_index) ? " picked" : ""}`;
    tr.dataset.episode = r.episode_index;
    for (const [k] of cols) cell(tr, r, k);
  }
  if (last < shown.length) body.append(spacer((shown.length - last) * ROW_H));
  $("episodes").replaceChild(body, $("episodes").tBodies[0]);
  const all = $("select-all");
  all.checked = shown.length > 0 && shown.every((r) => selected.has(r.episode_index));
  all.indeterminate = !all.checked && shown.some((r) => selected.has(r.episode_index));
  $("selected-count").textContent = `${selected.size} selected`;
  $("drop-count").textContent = `${dropped.size} of ${rows.length} marked drop`;
  if (!painted) {  // for benchmarks/bench_explore.py: rows in the DOM, then (a frame later) painted
    painted = true; performance.mark("sarm:rows-in-dom");
    requestAnimationFrame(() => setTimeout(() => performance.mark("sarm:first-rows")));
  }
}

function renderTable() {
  const f = filters();
  shown = rows.filter((r) => passes(r, f));
  shown.sort((a, b) => {
    const x = value(a, sortKey), y = value(b, sortKey);
    if (x === y) return a.episode_index - b.episode_index;
    if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  header();
  paint();
  $("summary").textContent = `${shown.length} of ${rows.length} episodes`;
}

export async function loadTable() {
  const { columns } = await api("api/episodes?format=columns");  // by column: a third of the bytes
  performance.mark("sarm:episodes-parsed");
  // a row reads its columns through getters: no 10^4 x 20 copies
  class Row { constructor(i) { this.i = i; } }
  for (const k of Object.keys(columns)) Object.defineProperty(Row.prototype, k, { get() { return columns[k][this.i]; } });
  rows = Array.from({ length: columns.episode_index.length }, (_, i) => new Row(i));
  cols = COLUMNS.filter(([k]) => k === "_mark" || rows.some((r) => r[k] !== undefined));
  if (cols.some(([k]) => k === "final_progress")) cols = cols.filter(([k]) => !k.startsWith("final_s") && !k.startsWith("final_d"));
  for (const t of [...new Set(rows.map((r) => r.task))]) $("task-filter").add(new Option(t, t));
  if (!cols.some(([k]) => k === "score")) $("score-filter").title = "scores need --chunk-size (or a weights file)";
  renderTable();
}

function mark(episodes, why) {  // why: null keeps them
  for (const e of episodes) why === null ? dropped.delete(e) : dropped.set(e, why);
  renderTable();
}

async function curation(path) {
  const reply = await fetch(withToken(path), { method: "POST", headers: { "Content-Type": "application/json", "X-Sarm-Token": token },
    body: JSON.stringify({ drop: Object.fromEntries(dropped), name: $("export-name").value.trim() }) });
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || `HTTP ${reply.status}`);
  return body;
}

function report(text, bad) { const s = $("export-status"); s.textContent = text; s.className = bad ? "bad" : ""; }

$("episodes").addEventListener("click", (e) => {
  const th = e.target.closest("th");
  if (th && e.target.id === "select-all") {
    for (const r of shown) e.target.checked ? selected.add(r.episode_index) : selected.delete(r.episode_index);
    return paint();
  }
  if (th) { sortDir = sortKey === th.dataset.key ? -sortDir : 1; sortKey = th.dataset.key; renderTable(); return; }
  const tr = e.target.closest("tr.row"); if (!tr) return;
  const ep = Number(tr.dataset.episode);
  if (e.target.classList.contains("pick")) { e.target.checked ? selected.add(ep) : selected.delete(ep); return paint(); }
  if (e.target.classList.contains("mark")) return mark([ep], dropped.has(ep) ? null : "picked");
  location.hash = `episode/${ep}`;
});
$("table-scroll").addEventListener("scroll", () => requestAnimationFrame(paint), { passive: true });
for (const id of ["task-filter", "outcome-filter", "annotated-filter", "mark-filter"]) $(id).addEventListener("change", renderTable);
for (const id of ["search", "score-min", "score-max"]) $(id).addEventListener("input", renderTable);
$("drop-selected").addEventListener("click", () => mark(selected, "picked"));
$("keep-selected").addEventListener("click", () => mark(selected, null));
$("drop-shown").addEventListener("click", () => mark(shown.map((r) => r.episode_index), describe(filters())));
$("keep-shown").addEventListener("click", () => mark(shown.map((r) => r.episode_index), null));
$("curation-export").addEventListener("click", () => curation("api/curation")
  .then((b) => report(`wrote ${b.path}: drop ${b.result.drop.length} of ${b.result.num_episodes}`))
  .catch((err) => report(`export failed: ${err.message}`, true)));
$("curation-download").addEventListener("click", () => curation("api/curation/download").then((result) => {
  const a = Object.assign(document.createElement("a"), { download: $("export-name").value.trim() || "drop.json",
    href: URL.createObjectURL(new Blob([JSON.stringify(result, null, 1)], { type: "application/json" })) });
  document.body.append(a); a.click(); a.remove(); report(`downloaded: drop ${result.drop.length} of ${result.num_episodes}`);
}).catch((err) => report(`download failed: ${err.message}`, true)));
