// sarm explore: frames decoded on the server (GET api/frame/N?camera=&frame=) for a video the browser
// cannot play (MPEG-4 part 2). For the episode view:
//   const view = await replaceIfUnplayable(video, { episode: 3, camera: "observation.images.top" });
//   view?.show(frame)      // on every cursor move (null when the video plays natively)
//   const clock = new FrameClock(fps, length, (f) => drawPlot(f)); clock.play(); clock.pause(); clock.seek(f);
import { withToken } from "./api.js";

// Resolves true when `video` cannot play its source (an error, an unknown type, or no picture once the
// metadata is in), false once a frame of it can be shown.
export function cannotPlay(video) {
  return new Promise((resolve) => {
    if (video.error) return resolve(true);
    if (video.readyState >= 2) return resolve(video.videoWidth === 0);
    const done = (verdict) => { video.removeEventListener("error", onError, true); video.removeEventListener("loadeddata", onData); video.removeEventListener("loadedmetadata", onMeta); resolve(verdict); };
    const onError = () => done(true), onData = () => done(video.videoWidth === 0);
    const onMeta = () => { if (video.videoWidth === 0) done(true); };
    video.addEventListener("error", onError, true);  // capture: a <source> child's error does not bubble
    video.addEventListener("loadeddata", onData);
    video.addEventListener("loadedmetadata", onMeta);
  });
}

// An <img> that shows frame F of (episode, camera) from the server; `show` skips frames asked for while
// one is loading, so stepping or playing never queues more than one request.
export class FrameView {
  constructor({ episode, camera }) {
    this.episode = episode; this.camera = camera; this.frame = null; this.wanted = null; this.loading = false;
    this.element = Object.assign(document.createElement("img"), { className: "server-frames", alt: `${camera} (frames decoded on the server)` });
    this.element.dataset.camera = camera;
    this.element.addEventListener("load", () => this.#next());
    this.element.addEventListener("error", () => this.#next());
  }
  url(frame) { return withToken(`api/frame/${this.episode}?camera=${encodeURIComponent(this.camera)}&frame=${frame}`); }
  show(frame) { this.wanted = frame; if (!this.loading) this.#next(); }
  #next() {
    this.loading = false;
    if (this.wanted === null || this.wanted === this.frame) return;
    this.frame = this.wanted; this.loading = true;
    this.element.dataset.frame = this.frame;
    this.element.src = this.url(this.frame);
  }
}

// Replaces `video` in the page by a FrameView when it cannot play; resolves to the view, or null.
export async function replaceIfUnplayable(video, { episode, camera }) {
  if (!(await cannotPlay(video))) return null;
  const view = new FrameView({ episode, camera });
  view.element.style.width = getComputedStyle(video).width;
  video.pause?.(); video.removeAttribute("src"); video.load?.();
  video.replaceWith(view.element);
  view.show(0);
  return view;
}

// A playback clock in frames for an episode with no playable video: calls onFrame(f) as it advances.
export class FrameClock {
  constructor(fps, length, onFrame) { Object.assign(this, { fps, length, onFrame, frame: 0, paused: true }); }
  play() {
    if (!this.paused) return;
    this.paused = false; this.t0 = performance.now(); this.f0 = this.frame >= this.length - 1 ? 0 : this.frame;
    const tick = (now) => {
      if (this.paused) return;
      const f = Math.min(this.length - 1, this.f0 + Math.floor(Math.max(0, now - this.t0) / 1000 * this.fps));
      if (f !== this.frame) { this.frame = f; this.onFrame(f); }
      if (f >= this.length - 1) this.paused = true; else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }
  pause() { this.paused = true; }
  seek(f) {
    this.frame = this.f0 = Math.max(0, Math.min(this.length - 1, f)); this.t0 = performance.now();
    this.onFrame(this.frame);
  }
}
