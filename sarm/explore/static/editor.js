// sarm explore: the label editor of the episode view. Stage spans per head, mistake spans and the outcome;
// every change is checked by the server with sarm.labels' own rules (POST .../validate) and the message is
// shown beside the list; "save to dataset" writes the annotation columns with the token the episode came
// with (409: the files changed on disk, offer a reload); "save to spans JSON" exports and downloads.
import { $, withToken } from "./api.js";
import { stageColour } from "./plot.js";

export const state = { ep: null, edit: null, labels: {}, selected: null, error: null, token: null };
let redraw = () => {}, reload = () => {}, seq = 0, timer = null, dirty = false;
const NEW = ""; // the "new name…" option (stage names are never empty)

const post = (path, body) => fetch(withToken(path), {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
}).then(async (r) => ({ status: r.status, body: await r.json() }));
const esc = (s) => String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const payload = () => ({ ...state.edit });
export const allNames = () => [...new Set(Object.values(state.ep.stage_names || {}).flat())];

export function startEditor(ep, draw, again) {
  redraw = draw; reload = again; dirty = false;
  Object.assign(state, { ep, token: ep.token, labels: ep.labels || {}, selected: null, error: ep.label_error || null });
  state.edit = { spans: structuredClone(ep.spans), mistakes: structuredClone(ep.mistakes), outcome: ep.outcome, order: "error" };
  renderEditor();
  status(ep.read_only ? `read only: ${ep.read_only}` : ep.read_error ? `could not read all labels: ${ep.read_error}` : "", !!(ep.read_only || ep.read_error));
}

function status(text, bad = false, html = false) {
  const el = $("edit-status"); el[html ? "innerHTML" : "textContent"] = text; el.className = bad ? "bad" : "";
}
function showError() {
  $("edit-error").textContent = state.error || ""; $("edit-error").hidden = !state.error;
  $("save").disabled = !!state.error || !!state.ep.read_only; $("export").disabled = !!state.error;
}

function nameCell(head, s) {
  const names = [...new Set([...(state.ep.stage_names?.[head] || []), s.name].filter(Boolean))];
  const opts = names.map((n) => `<option value="${esc(n)}"${n === s.name ? " selected" : ""}>${esc(n)}</option>`).join("");
  return `<select data-field="name">${opts}<option value="${NEW}">new name…</option></select>`;
}
function row(kind, head, i, s) {
  const sel = state.selected, on = sel && sel.kind === kind && sel.i === i && (kind === "mistake" || sel.head === head);
  const colour = kind === "span" ? stageColour(allNames(), s.name) : "#c0392b", n = state.ep.length - 1;
  const label = kind === "span" ? nameCell(head, s) : `<input data-field="kind" list="mistake-kinds" value="${esc(s.kind)}" size="12">`;
  return `<tr class="item${on ? " selected" : ""}" data-kind="${kind}" data-head="${head || ""}" data-i="${i}">` +
    `<td><span class="swatch${kind === "mistake" ? " hatched" : ""}" style="background-color:${colour}"></span>${label}</td>` +
    `<td><input type="number" data-field="start" min="0" max="${n}" value="${s.start}"></td>` +
    `<td><input type="number" data-field="end" min="0" max="${n}" value="${s.end}"></td>` +
    `<td><button data-del title="delete">×</button></td></tr>`;
}

export function renderEditor() {
  const e = state.edit, rows = [];
  for (const [h, spans] of Object.entries(e.spans)) {
    rows.push(`<tr class="group"><th>${esc(h)} stages</th><th>start</th><th>end</th><th><button data-add="span" data-head="${esc(h)}">+ span</button></th></tr>`);
    spans.forEach((s, i) => rows.push(row("span", h, i, s)));
  }
  for (const h of ["sparse", "dense"].filter((h) => !(h in e.spans))) {
    rows.push(`<tr class="group"><th colspan="3">no ${h} spans</th><th><button data-add-head="${h}">+ ${h} head</button></th></tr>`);
  }
  rows.push(`<tr class="group"><th>mistakes</th><th>start</th><th>end</th><th><button data-add="mistake">+ mistake</button></th></tr>`);
  e.mistakes.forEach((m, i) => rows.push(row("mistake", null, i, m)));
  const kinds = [...new Set(["pause", "fumble", "drop_regrasp", ...(state.ep.mistake_kinds || [])])];
  $("editor").innerHTML =
    `<div class="edit-bar"><label>outcome <select id="outcome">${["success", "partial", "failure", "unknown"].map((o) =>
      `<option${(e.outcome || "unknown") === o ? " selected" : ""}>${o}</option>`).join("")}</select></label>` +
    `<label>stage order <select id="order">${["error", "monotone", "allow"].map((o) =>
      `<option${e.order === o ? " selected" : ""}>${o}</option>`).join("")}</select></label>` +
    `<button id="save">save to dataset</button><button id="export">save to spans JSON</button><span id="edit-status"></span></div>` +
    `<div class="edit-body"><table id="span-list">${rows.join("")}</table>` +
    `<div id="edit-error" class="edit-error" role="alert" hidden></div></div>` +
    `<datalist id="mistake-kinds">${kinds.map((k) => `<option value="${esc(k)}">`).join("")}</datalist>`;
  showError();
}

function changed() {
  dirty = true; redraw(); clearTimeout(timer);
  document.documentElement.dataset.validation = "pending";  // "done" once the server checked the last edit
  timer = setTimeout(validate, 120);
}
async function validate() {
  const mine = ++seq, index = state.ep.episode_index;
  const { body } = await post(`api/episode/${index}/validate`, payload());
  if (mine !== seq || !state.ep || state.ep.episode_index !== index) return;
  state.error = body.error || null;
  if (body.labels) state.labels = body.labels;
  showError(); redraw();
  document.documentElement.dataset.validation = "done";
}

export function select(sel) { state.selected = sel; renderEditor(); redraw(); }
const itemOf = (sel) => (sel.kind === "span" ? state.edit.spans[sel.head][sel.i] : state.edit.mistakes[sel.i]);

// `[` / `]`: the selected span's start / end at the cursor frame
export function setEdge(edge, frame) {
  if (!state.selected) { status("select a span first (click it in the plot or the list), then [ or ]", true); return; }
  itemOf(state.selected)[edge] = frame; renderEditor(); changed();
}

// dragging in the plot: an edge moves that end, the body moves the whole span by `df` frames
export function dragTo(sel, from, df, frame, done) {
  const it = itemOf(sel), last = state.ep.length - 1;
  if (sel.edge === "start") it.start = frame;
  else if (sel.edge === "end") it.end = frame;
  else { const d = Math.max(-from.start, Math.min(last - from.end, df)); it.start = from.start + d; it.end = from.end + d; }
  renderEditor(); done ? changed() : redraw();
}

function add(kind, head) {
  const f = Number($("plot").dataset.cursor || 0), last = state.ep.length - 1;
  const end = Math.min(last, f + Math.max(1, Math.round(state.ep.fps)));
  if (kind === "span") {
    const list = state.edit.spans[head], names = state.ep.stage_names?.[head] || [];
    const name = names.find((n) => !list.some((s) => s.name === n)) || names[0] || "stage";
    list.push({ name, start: f, end }); state.selected = { kind, head, i: list.length - 1 };
  } else {
    state.edit.mistakes.push({ kind: "pause", start: f, end }); state.selected = { kind, head: null, i: state.edit.mistakes.length - 1 };
  }
  renderEditor(); changed();
}

async function save() {
  const index = state.ep.episode_index;
  status("saving…");
  const { status: code, body } = await post(`api/episode/${index}/save`, { ...payload(), token: state.token });
  if (code === 200) {
    state.token = body.token; dirty = false; if (body.labels) state.labels = body.labels;
    status(`saved to ${body.files.join(", ") || "nothing to change"}${body.backup ? ` (old files in ${body.backup})` : ""}`);
    redraw();
  } else if (code === 409) {
    status(`not saved: ${esc(body.error)} <button id="reload">reload the episode</button>`, true, true);
  } else {
    state.error = body.error; showError(); status("not saved: the edit is invalid", true);
  }
}

async function exportJson() {
  const { status: code, body } = await post(`api/episode/${state.ep.episode_index}/export`, payload());
  if (code !== 200) { state.error = body.error; showError(); return; }
  for (const [name, content] of Object.entries(body.contents)) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([JSON.stringify(content, null, 2)], { type: "application/json" }));
    a.download = name; document.body.append(a); a.click(); a.remove();
  }
  status(`wrote ${body.files.join(", ")} and downloaded ${Object.keys(body.contents).join(", ")}`);
}

window.addEventListener("beforeunload", (e) => { if (dirty) e.preventDefault(); }); // unsaved edits: ask first

$("editor").addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b) b.blur();
  if (b?.id === "save") return save();
  if (b?.id === "export") return exportJson();
  if (b?.id === "reload") return reload();
  if (b?.dataset.add) return add(b.dataset.add, b.dataset.head);
  if (b?.dataset.addHead) { state.edit.spans[b.dataset.addHead] = []; renderEditor(); return redraw(); }
  const tr = e.target.closest("tr.item");
  if (!tr) return;
  const sel = { kind: tr.dataset.kind, head: tr.dataset.head || null, i: Number(tr.dataset.i) };
  if (b && "del" in b.dataset) {
    (sel.kind === "span" ? state.edit.spans[sel.head] : state.edit.mistakes).splice(sel.i, 1);
    state.selected = null; renderEditor(); changed();
  } else if (!state.selected || state.selected.kind !== sel.kind || state.selected.i !== sel.i || state.selected.head !== sel.head) {
    state.selected = sel; tr.parentElement.querySelectorAll("tr.item").forEach((r) => r.classList.toggle("selected", r === tr)); redraw();
  }
});
$("editor").addEventListener("change", (e) => {
  const t = e.target;
  if (t.id === "outcome") { state.edit.outcome = t.value === "unknown" ? null : t.value; return changed(); }
  if (t.id === "order") { state.edit.order = t.value; return changed(); }
  const tr = t.closest("tr.item");
  if (!tr || t.dataset.field !== "name" || t.value !== NEW) return;
  const input = Object.assign(document.createElement("input"), { size: 12, placeholder: "stage name" });
  input.dataset.field = "name"; t.replaceWith(input); input.focus();
});
$("editor").addEventListener("input", (e) => {
  const t = e.target, tr = t.closest("tr.item"), field = t.dataset.field;
  if (!tr || !field || (t.tagName === "SELECT" && t.value === NEW)) return;
  const it = itemOf({ kind: tr.dataset.kind, head: tr.dataset.head || null, i: Number(tr.dataset.i) });
  it[field] = field === "start" || field === "end" ? (t.value === "" ? null : Number(t.value)) : t.value;
  if (field === "name" && t.tagName === "INPUT" && t.value) {
    const names = state.ep.stage_names[tr.dataset.head] ||= [];
    t.onblur = () => { if (t.value && !names.includes(t.value)) names.push(t.value); }; // offered from now on
  }
  changed();
});
