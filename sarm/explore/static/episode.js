// sarm explore: the episode view (videos in sync with the progress plot, keyboard, seeking).
import { $, api, token } from "./api.js";

const COLOURS = ["#e6194b33", "#3cb44b33", "#4363d833", "#f5823133", "#911eb433", "#42d4f433"];
const HEAD_COLOURS = { sparse: "#1f77b4", dense: "#d62728" };

let episode = null;

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

export async function showEpisode(index) {
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

export function hideEpisode() { $("episode-view").hidden = true; episode = null; document.querySelectorAll("#videos video").forEach((v) => v.pause()); }

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
