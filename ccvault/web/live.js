/**
 * A camera live. GET /api/cameras/{name}/live is fragmented MP4 — the recorder's own stream
 * copy, nothing transcoded — and its Content-Type names the codec; each piece is appended as it
 * arrives to a Media Source Extensions buffer. The playhead is kept near the newest frame (a tab
 * in the background falls behind, then jumps ahead) and what lies well behind it is dropped, so
 * an open page holds seconds of video, not hours. When the stream ends (the recorder restarted,
 * this viewer fell too far behind, the camera went away), it is asked for again after a pause.
 */
import * as api from './api.js';
import { h } from './dom.js';

const MAX_BEHIND_S = 1.0; // further behind the newest frame than this: jump to it
const LEAD_S = 0.2; // where a jump lands, before the newest frame
const KEEP_S = 10; // buffered video kept behind the playhead
const RETRY_MS = [1000, 2000, 5000, 10000]; // pauses before asking again, growing

/** A muted, self-playing <video> of `camera` live; `stop()` ends it (the view is left). The
 * element's data-state says where it is: connecting, playing, waiting, unsupported. */
export function livePlayer(camera, label) {
  const video = h('video', {
    class: 'live', muted: true, autoplay: true, playsinline: true, 'aria-label': label,
    dataset: { camera, state: 'connecting' },
  });
  video.muted = true; // the property, not only the attribute: autoplay needs it
  let stopped = false;
  let controller = null;
  let timer = null;
  let attempt = 0;
  const run = async () => {
    controller = new AbortController();
    try {
      const resp = await fetch(api.url(`/api/cameras/${encodeURIComponent(camera)}/live`),
        { credentials: 'same-origin', cache: 'no-store', signal: controller.signal });
      const type = resp.headers.get('content-type') ?? '';
      if (resp.ok && !window.MediaSource?.isTypeSupported(type)) {
        video.dataset.state = 'unsupported'; // e.g. H.265 where the browser has no decoder
        controller.abort();
        return;
      }
      if (resp.ok) {
        attempt = 0;
        await stream(video, resp.body.getReader(), type);
      }
    } catch {
      // ended, cut off or refused: asked for again below
    }
    if (stopped) return;
    video.dataset.state = 'waiting';
    timer = setTimeout(run, RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)]);
  };
  run();
  return {
    el: video,
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
      video.removeAttribute('src');
      video.load();
    },
  };
}

/** One response into a fresh MediaSource, until the response ends. */
async function stream(video, reader, type) {
  const source = new MediaSource();
  const opened = new Promise((ok) => source.addEventListener('sourceopen', ok, { once: true }));
  video.src = URL.createObjectURL(source);
  await opened;
  URL.revokeObjectURL(video.src);
  const buffer = source.addSourceBuffer(type);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    await append(buffer, value);
    followEdge(video, buffer);
  }
}

async function append(buffer, bytes) {
  while (buffer.updating) { // a removal of old video still running
    await new Promise((ok) => buffer.addEventListener('updateend', ok, { once: true }));
  }
  await new Promise((ok, fail) => {
    buffer.addEventListener('updateend', ok, { once: true });
    buffer.addEventListener('error', fail, { once: true });
    buffer.appendBuffer(bytes);
  });
}

/** Keep the playhead just behind the newest frame, and drop what lies long behind it. */
function followEdge(video, buffer) {
  const ranges = buffer.buffered;
  if (!ranges.length) return;
  const end = ranges.end(ranges.length - 1);
  if (end - video.currentTime > MAX_BEHIND_S || video.currentTime < ranges.start(0)) {
    video.currentTime = Math.max(ranges.start(ranges.length - 1), end - LEAD_S);
  }
  video.dataset.behind = (end - video.currentTime).toFixed(2);
  if (video.paused) video.play().catch(() => {});
  video.dataset.state = 'playing';
  const start = ranges.start(0);
  if (video.currentTime - start > 2 * KEEP_S && !buffer.updating) {
    buffer.remove(start, video.currentTime - KEEP_S);
  }
}
