// sarm explore: the episode view (videos in sync with the plot, keyboard, seeking, dragging spans).
import { $, api, token } from "./api.js";
import { allNames, dragTo, setEdge, select, startEditor, state } from "./editor.js";
import { FrameClock, replaceIfUnplayable } from "./frames.js";
import { drawPlot, hitTest } from "./plot.js";

// frameViews: cameras the browser cannot play (MPEG-4 part 2), shown as frames decoded on the server;
// clock: the playback clock when no camera plays natively (else the first <video> leads)
let episode = null, layout = null, cursor = 0, drag = null, frameViews = [], clock = null;

function frameOf(video) { return Math.max(0, Math.min(episode.length - 1, Math.floor((video.currentTime - video.dataset.from) * episode.fps + 1e-6))); }
function seekFrame(f) {
  f = Math.max(0, Math.min(episode.length - 1, f));
  for (const v of document.querySelectorAll("#videos video")) v.currentTime = Number(v.dataset.from) + (f + 0.5) / episode.fps;
  clock ? clock.seek(f) : draw(f);
}

// the other videos follow the first: same position in the episode, same play / pause
function follow(lead, videos) {
  const at = lead.currentTime - Number(lead.dataset.from);
  for (const v of videos) {
    if (v === lead || v.readyState < 1) continue;
    const target = Number(v.dataset.from) + at;
    if (Math.abs(v.currentTime - target) > 1.5 / episode.fps) v.currentTime = target;
    if (lead.paused && !v.paused) v.pause(); else if (!lead.paused && v.paused) v.play().catch(() => {});
  }
}

function draw(at = cursor) {
  if (!episode) return;
  cursor = at;
  const probs = Object.fromEntries(Object.entries(episode.stage_probs || {}).filter(([, p]) => p && p.some((r) => r)));
  layout = drawPlot($("plot"), { ep: episode, edit: state.edit, labels: state.labels, selected: state.selected, cursor, names: allNames(), probs });
  $("frame").textContent = cursor; $("plot").dataset.cursor = cursor;
  for (const view of frameViews) view.show(cursor);
}

export async function showEpisode(index) {
  episode = null;
  const ep = await api(`api/episode/${index}`);
  episode = ep; frameViews = []; clock?.pause(); clock = null;
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
    replaceIfUnplayable(video, { episode: index, camera: v.camera }).then((view) => {
      if (!view || episode !== ep) return;
      frameViews.push(view); view.show(cursor);
      if (!document.querySelector("#videos video") && !clock) { clock = new FrameClock(ep.fps, ep.length, (f) => draw(f)); clock.frame = cursor; }
    });
  }
  startEditor(episode, () => draw(), () => showEpisode(index));
  draw(0);
  const tick = () => {
    const videos = [...document.querySelectorAll("#videos video")], video = videos[0];
    if (episode === ep && video && !drag) {
      if (video.currentTime >= Number(video.dataset.to) && !video.paused) video.pause();
      follow(video, videos);
      draw(frameOf(video));
    }
    if (episode === ep && !$("episode-view").hidden) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

export function hideEpisode() {
  $("episode-view").hidden = true; episode = null; clock?.pause(); clock = null; frameViews = [];
  document.querySelectorAll("#videos video").forEach((v) => v.pause());
}

// the plot: a click seeks; on a span or mistake it also selects it; dragging its edge or body moves it
const local = (e) => { const c = $("plot"), r = c.getBoundingClientRect(); return { x: e.clientX - r.left - c.clientLeft, y: e.clientY - r.top - c.clientTop }; };
$("plot").addEventListener("mousedown", (e) => {
  if (!episode || !layout) return;
  const p = local(e), hit = hitTest(layout, p.x, p.y, state.edit);
  const item = hit && (hit.kind === "span" ? state.edit.spans[hit.head][hit.i] : state.edit.mistakes[hit.i]);
  drag = { hit, x: p.x, f: layout.frameAt(p.x), from: item ? { ...item } : null, moved: false };
  if (hit) { e.preventDefault(); select({ kind: hit.kind, head: hit.head, i: hit.i }); }
});
window.addEventListener("mousemove", (e) => {
  if (!episode || !layout) return;
  const p = local(e);
  if (!drag) {
    const hit = hitTest(layout, p.x, p.y, state.edit);
    $("plot").style.cursor = !hit ? "crosshair" : hit.edge === "body" ? "grab" : "ew-resize";
    return;
  }
  if (!drag.hit || (!drag.moved && Math.abs(p.x - drag.x) < 3)) return;
  drag.moved = true;
  const f = layout.frameAt(p.x);
  dragTo(drag.hit, drag.from, f - drag.f, f, false);
});
window.addEventListener("mouseup", (e) => {
  if (!drag) return;
  const d = drag; drag = null;
  if (!d.moved) { if (e.target === $("plot")) seekFrame(layout.frameAt(local(e).x)); return; }
  const f = layout.frameAt(local(e).x);
  dragTo(d.hit, d.from, f - d.f, f, true);
});

document.addEventListener("keydown", (e) => {
  if (!episode || ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
  if (e.key === "[" || e.key === "]") { e.preventDefault(); setEdge(e.key === "[" ? "start" : "end", cursor); return; }
  const videos = [...document.querySelectorAll("#videos video")], video = videos[0];
  if (e.key === " " && video) { e.preventDefault(); videos.forEach((v) => (video.paused ? v.play() : v.pause())); }
  else if (e.key === " " && clock) { e.preventDefault(); clock.paused ? clock.play() : clock.pause(); }
  else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    e.preventDefault(); const step = (e.shiftKey ? Math.round(episode.fps) : 1) * (e.key === "ArrowLeft" ? -1 : 1);
    videos.forEach((v) => v.pause()); clock?.pause(); seekFrame((video ? frameOf(video) : cursor) + step);
  }
});
