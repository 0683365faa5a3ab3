// sarm explore: the episode plot on one canvas. Progress per head (solid) and the label progress the spans
// give (dashed), the stage spans as coloured bands, one lane of named spans per head and one of mistakes
// (red, hatched), stacked stage probabilities, the RA-BC weights, a frame axis, a legend and the cursor.
// `drawPlot` returns the layout that `hitTest` and `frameAt` read (all in CSS pixels).
export const PAD = 30; // left and right margin: frame f sits at PAD + (W - 2 PAD) f / (n - 1)
const PALETTE = ["#4363d8", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990", "#808000", "#000075"];
const HEAD_COLOURS = { sparse: "#1f77b4", dense: "#d62728" };
const MISTAKE = "#c0392b", WEIGHT = "#2ca02c", FONT = "11px system-ui, sans-serif";

export function stageColour(names, name) {
  let i = names.indexOf(name);
  if (i < 0) i = [...name].reduce((a, ch) => (a * 31 + ch.charCodeAt(0)) >>> 0, 7);
  return PALETTE[i % PALETTE.length];
}

let hatch = null;
function hatchPattern(g) {
  if (!hatch) {
    hatch = document.createElement("canvas"); hatch.width = hatch.height = 8;
    const h = hatch.getContext("2d"); h.strokeStyle = MISTAKE; h.lineWidth = 1.5;
    h.beginPath(); h.moveTo(0, 8); h.lineTo(8, 0); h.moveTo(-2, 2); h.lineTo(2, -2); h.moveTo(6, 10); h.lineTo(10, 6); h.stroke();
  }
  return g.createPattern(hatch, "repeat");
}

function niceStep(n) {
  const raw = Math.max(1, n / 8), p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

function rows(v) {
  const out = {}; let y = 0;
  const take = (key, h, gap = 0) => { y += gap; out[key] = { y0: y, y1: y + h }; y += h; };
  take("legend", 20); take("progress", 170);
  for (const h of Object.keys(v.edit.spans)) take(`lane:${h}`, 30, 4);
  take("lane:mistakes", 30, 4);
  for (const h of Object.keys(v.probs)) take(`probs:${h}`, 52, 6);
  if (v.ep.weights) take("weights", 52, 6);
  take("axis", 26, 2);
  return [out, y];
}

export function drawPlot(c, v) {
  const ep = v.ep, n = ep.length, W = c.clientWidth || 960;
  const [R, H] = rows(v), dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
    c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); c.style.height = `${H}px`;
  }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, W, H); g.font = FONT; g.textBaseline = "middle";
  const x = (f) => PAD + (W - 2 * PAD) * (n > 1 ? f / (n - 1) : 0), fw = (W - 2 * PAD) / Math.max(n - 1, 1);
  const x0 = (s) => Math.max(PAD, x(s.start) - fw / 2), x1 = (s) => Math.min(W - PAD, x(s.end) + fw / 2);
  const P = R.progress, top = P.y0 + 8, bottom = P.y1, py = (p) => bottom - (bottom - top) * p;
  const names = v.names, heads = Object.keys(v.edit.spans), selected = v.selected;
  const item = (sel) => sel && (sel.kind === "span" ? v.edit.spans[sel.head]?.[sel.i] : v.edit.mistakes[sel.i]);

  // progress panel: bands of the first head with spans (or the selected span's head), mistakes, grid, lines
  const bandHead = selected?.kind === "span" ? selected.head : heads.find((h) => v.edit.spans[h].length);
  for (const s of bandHead ? v.edit.spans[bandHead] : []) {
    g.globalAlpha = 0.14; g.fillStyle = stageColour(names, s.name); g.fillRect(x0(s), top, x1(s) - x0(s), bottom - top);
  }
  g.globalAlpha = 0.5; g.fillStyle = hatchPattern(g);
  for (const m of v.edit.mistakes) g.fillRect(x0(m), top, x1(m) - x0(m), bottom - top);
  g.globalAlpha = 1;
  const step = niceStep(n);
  g.strokeStyle = "#e4e4e4"; g.lineWidth = 1; g.fillStyle = "#555"; g.textAlign = "right";
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath(); g.moveTo(PAD, py(p)); g.lineTo(W - PAD, py(p)); g.stroke();
    g.fillText(String(p).replace(/^0\./, "."), PAD - 4, py(p));
  }
  for (let f = 0; f < n; f += step) { g.beginPath(); g.moveTo(x(f), top); g.lineTo(x(f), bottom); g.stroke(); }
  g.strokeStyle = "#999"; g.strokeRect(PAD, top, W - 2 * PAD, bottom - top);
  const line = (values, colour, dash, width, yOf) => {
    if (!values) return;
    g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash); g.beginPath(); let on = false;
    values.forEach((val, f) => { if (val === null) { on = false; return; } on ? g.lineTo(x(f), yOf(val)) : g.moveTo(x(f), yOf(val)); on = true; });
    g.stroke(); g.setLineDash([]); g.lineWidth = 1;
  };
  for (const [h, values] of Object.entries(v.labels || {})) line(values, HEAD_COLOURS[h] || "#333", [6, 4], 1.5, py);
  for (const [h, values] of Object.entries(ep.progress)) line(values, HEAD_COLOURS[h] || "#333", [], 2, py);
  const sel = item(selected);
  if (sel) { g.strokeStyle = "#222"; g.lineWidth = 1.5; g.strokeRect(x0(sel), top, x1(sel) - x0(sel), bottom - top); g.lineWidth = 1; }

  // lanes: named spans per head, then mistakes
  const lanes = [];
  const lane = (key, title, items, kind, head) => {
    const L = R[key], b0 = L.y0 + 12, b1 = L.y1;
    g.fillStyle = "#666"; g.textAlign = "left"; g.fillText(title, PAD, L.y0 + 5);
    g.fillStyle = "#f4f4f4"; g.fillRect(PAD, b0, W - 2 * PAD, b1 - b0);
    items.forEach((s, i) => {
      const a = x0(s), w = Math.max(x1(s) - a, 2), label = kind === "span" ? s.name : s.kind;
      if (kind === "span") { g.fillStyle = stageColour(names, s.name); g.globalAlpha = 0.85; g.fillRect(a, b0, w, b1 - b0); }
      else { g.fillStyle = "#fbe3e0"; g.fillRect(a, b0, w, b1 - b0); g.fillStyle = hatchPattern(g); g.fillRect(a, b0, w, b1 - b0); g.strokeStyle = MISTAKE; g.strokeRect(a, b0, w, b1 - b0); }
      g.globalAlpha = 1;
      const isSel = selected && selected.kind === kind && (kind === "mistake" || selected.head === head) && selected.i === i;
      if (isSel) { g.strokeStyle = "#111"; g.lineWidth = 2.5; g.strokeRect(a + 1, b0 + 1, w - 2, b1 - b0 - 2); g.lineWidth = 1; }
      g.save(); g.beginPath(); g.rect(a, b0, w, b1 - b0); g.clip();
      g.fillStyle = kind === "span" ? "#fff" : "#7b1d12"; g.font = "bold 11px system-ui, sans-serif";
      g.fillText(label || "?", a + 4, (b0 + b1) / 2); g.restore();
    });
    lanes.push({ kind, head, y0: b0, y1: b1 });
  };
  for (const h of heads) lane(`lane:${h}`, `${h} stages`, v.edit.spans[h], "span", h);
  lane("lane:mistakes", "mistakes", v.edit.mistakes, "mistake", null);

  // stacked stage probabilities per head
  for (const [h, probs] of Object.entries(v.probs)) {
    const S = R[`probs:${h}`], b0 = S.y0 + 12, b1 = S.y1, k = probs.find((r) => r)?.length || 0;
    const own = v.ep.stage_names?.[h] || [], label = own.length === k ? own : [...Array(k).keys()].map((i) => `stage ${i}`);
    g.fillStyle = "#666"; g.textAlign = "left"; g.fillText(`${h} stage probabilities`, PAD, S.y0 + 5);
    let at = PAD + g.measureText(`${h} stage probabilities`).width + 10;
    const cum = probs.map(() => 0);
    for (let j = 0; j < k; j++) {
      const colour = own.length === k ? stageColour(names, own[j]) : PALETTE[j % PALETTE.length];
      const lo = cum.slice(); probs.forEach((r, f) => { cum[f] += r && r[j] !== null ? r[j] : 0; });
      g.fillStyle = colour; g.globalAlpha = 0.75; g.beginPath();
      probs.forEach((_, f) => (f ? g.lineTo(x(f), b1 - (b1 - b0) * cum[f]) : g.moveTo(x(f), b1 - (b1 - b0) * cum[f])));
      for (let f = probs.length - 1; f >= 0; f--) g.lineTo(x(f), b1 - (b1 - b0) * lo[f]);
      g.closePath(); g.fill(); g.globalAlpha = 1;
      g.fillStyle = colour; g.fillText(`■ ${label[j]}`, at, S.y0 + 5); at += g.measureText(`■ ${label[j]}`).width + 8;
    }
    g.strokeStyle = "#999"; g.strokeRect(PAD, b0, W - 2 * PAD, b1 - b0);
  }

  // RA-BC weights
  if (ep.weights) {
    const S = R.weights, b0 = S.y0 + 12, b1 = S.y1;
    const top = Math.max(1, ...ep.weights.filter((w) => w !== null)), wy = (w) => b1 - (b1 - b0) * (w / top);
    g.fillStyle = "#666"; g.textAlign = "left"; g.fillText("RA-BC weight", PAD, S.y0 + 5);
    g.textAlign = "right"; g.fillText("0", PAD - 4, b1); g.fillText(String(+top.toFixed(2)), PAD - 4, b0);
    g.strokeStyle = "#999"; g.strokeRect(PAD, b0, W - 2 * PAD, b1 - b0);
    line(ep.weights, WEIGHT, [], 1.5, wy);
  }

  // frame axis
  const A = R.axis;
  g.strokeStyle = "#555"; g.fillStyle = "#333"; g.textAlign = "center";
  for (let f = 0; f < n; f += step) { g.beginPath(); g.moveTo(x(f), A.y0); g.lineTo(x(f), A.y0 + 5); g.stroke(); g.fillText(String(f), x(f), A.y0 + 13); }
  g.textAlign = "right"; g.fillText(`frame (${ep.fps} fps)`, W - PAD, A.y0 + 22);

  // legend
  let lx = PAD; const ly = R.legend.y0 + 10;
  const entry = (text, draw) => { draw(lx); lx += 26; g.fillStyle = "#333"; g.textAlign = "left"; g.fillText(text, lx, ly); lx += g.measureText(text).width + 16; };
  const stroke = (colour, dash, width) => (at) => { g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash); g.beginPath(); g.moveTo(at, ly); g.lineTo(at + 22, ly); g.stroke(); g.setLineDash([]); g.lineWidth = 1; };
  for (const h of Object.keys(ep.progress)) entry(`progress (${h})`, stroke(HEAD_COLOURS[h] || "#333", [], 2));
  for (const h of Object.keys(v.labels || {})) if (v.labels[h]) entry(`labels (${h})`, stroke(HEAD_COLOURS[h] || "#333", [6, 4], 1.5));
  if (ep.weights) entry("RA-BC weight", stroke(WEIGHT, [], 1.5));
  entry("mistake", (at) => { g.fillStyle = hatchPattern(g); g.fillRect(at, ly - 6, 22, 12); g.strokeStyle = MISTAKE; g.strokeRect(at, ly - 6, 22, 12); });
  entry("cursor", stroke("#000", [], 1));

  // cursor
  g.strokeStyle = "#000"; g.beginPath(); g.moveTo(x(v.cursor), top - 4); g.lineTo(x(v.cursor), A.y0); g.stroke();
  return { lanes, x0, x1, frameAt: (px) => Math.max(0, Math.min(n - 1, Math.round(((px - PAD) / (W - 2 * PAD)) * (n - 1)))) };
}

// the span or mistake under (px, py): {kind, head, i, edge: "start" | "end" | "body"}, or null
export function hitTest(layout, px, py, edit) {
  for (const lane of layout.lanes) {
    if (py < lane.y0 || py > lane.y1) continue;
    const items = lane.kind === "span" ? edit.spans[lane.head] : edit.mistakes;
    for (let i = items.length - 1; i >= 0; i--) {
      const a = layout.x0(items[i]), b = layout.x1(items[i]);
      if (px < a - 4 || px > b + 4) continue;
      const edge = px - a < 6 ? "start" : b - px < 6 ? "end" : "body";
      return { kind: lane.kind, head: lane.head, i, edge };
    }
  }
  return null;
}
