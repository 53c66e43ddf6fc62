// Players for the stack's own HLS playlists (fMP4/CMAF segments, one init segment per
// publish session) over Media Source Extensions.
// - LivePlayer polls a live media playlist, appends segments in order from near the
//   live edge, starts over on a new init segment after a reconnect, keeps the buffer
//   short and the delay low.
// - RecordingPlayer plays a recording's VOD playlist (EXT-X-ENDLIST) from start to end
//   with seeking: it knows every segment's place from the playlist's durations, fetches
//   the segments around the playhead (the one a seek lands in first) and ends the
//   stream after the last one.
// Browsers without MSE but with native HLS (Safari on iPhone) play the URL directly.

/** Segments to start with, counted back from the newest: a short delay, and a buffer. */
const EDGE_SEGMENTS = 2;
/** Seconds of played video kept behind the playhead. */
const BACK_BUFFER = 30;
/** Seconds of a recording fetched ahead of the playhead. */
const AHEAD = 20;

/** What both players share: the element, its states, fetches, the MediaSource. */
class MsePlayer {
  /** Calls `onState(state, detail)`: waiting, playing, stalled, blocked, ended, error. */
  constructor(video, { onState = () => {} } = {}) {
    this.video = video;
    this.onState = onState;
    this.state = null;
    this.gen = 0;
    this.listeners = {
      playing: () => this.setState('playing'),
      waiting: () => this.setState(this.state === 'playing' ? 'stalled' : 'waiting'),
    };
    for (const [type, fn] of Object.entries(this.listeners)) video.addEventListener(type, fn);
  }

  stop() {
    this.gen += 1;
    this.url = undefined;
    if (this.abort) this.abort.abort();
    for (const [type, fn] of Object.entries(this.listeners)) this.video.removeEventListener(type, fn);
    this.video.removeAttribute('src');
    this.video.load();
    this.ms = null;
  }

  setState(state, detail) {
    if (state === this.state && !detail) return;
    this.state = state;
    this.onState(state, detail);
  }

  /** Plays without sound when the browser refuses sound (autoplay rules); says so if it refuses even that. */
  start() {
    this.video.play().catch((err) => {
      if (err.name !== 'NotAllowedError') return;
      if (this.video.muted) {
        this.setState('blocked');
        return;
      }
      this.video.muted = true;
      this.video.play().catch(() => this.setState('blocked'));
    });
  }

  /** Plays natively when the browser has HLS but no MSE; false when it has MSE. */
  playNatively(url) {
    if (window.MediaSource) return false;
    if (!this.video.canPlayType('application/vnd.apple.mpegurl')) this.setState('error', 'this browser cannot play this video');
    else {
      this.video.src = url;
      this.start();
    }
    return true;
  }

  async get(url, kind) {
    this.abort = new AbortController();
    const response = await fetch(url, { cache: 'no-store', signal: this.abort.signal });
    if (response.status === 403) throw new Error('unauthorized');
    if (!response.ok) throw new Error(`HTTP ${response.status} for the ${kind}`);
    return kind === 'playlist' ? response.text() : new Uint8Array(await response.arrayBuffer());
  }

  async open() {
    const ms = new MediaSource();
    const url = URL.createObjectURL(ms);
    this.video.src = url;
    await new Promise((resolve) => ms.addEventListener('sourceopen', resolve, { once: true }));
    URL.revokeObjectURL(url);
    Object.assign(this, { ms, sb: null, mime: null, init: null });
    this.start();
  }

  /** Appends the init segment at `url` unless it is the one last appended: whether it did. */
  async appendInit(url) {
    const key = new URL(url).pathname;
    if (key === this.init) return false;
    const bytes = await this.get(url, 'init segment');
    const { mime, timescales } = parseInit(bytes);
    if (!MediaSource.isTypeSupported(mime)) throw new Error(`this browser cannot play ${mime}`);
    if (!this.sb) this.sb = this.ms.addSourceBuffer(mime);
    else if (mime !== this.mime) this.sb.changeType(mime);
    await this.update((sb) => sb.appendBuffer(bytes));
    Object.assign(this, { init: key, mime, timescales });
    return true;
  }

  /** Runs one SourceBuffer operation to its end. */
  update(operation) {
    const sb = this.sb;
    return new Promise((resolve, reject) => {
      const done = (event) => {
        sb.removeEventListener('updateend', done);
        sb.removeEventListener('error', done);
        if (event.type === 'error') reject(new Error('the browser could not decode the video'));
        else resolve();
      };
      sb.addEventListener('updateend', done);
      sb.addEventListener('error', done);
      try {
        operation(sb);
      } catch (err) {
        sb.removeEventListener('updateend', done);
        sb.removeEventListener('error', done);
        reject(err);
      }
    });
  }
}

/** Plays a live media playlist near its edge. */
export class LivePlayer extends MsePlayer {
  constructor(video, options) {
    super(video, options);
    // Browsers refuse to autoplay sound; muted, the video starts on its own.
    video.muted = true;
    video.playsInline = true;
  }

  /** Plays `url`; called again with a new URL (a fresh token), it carries on where it is. */
  play(url) {
    const running = this.url !== undefined;
    this.url = url;
    if (this.playNatively(url)) return;
    if (running) return;
    this.setState('waiting');
    this.run(++this.gen);
  }

  async run(gen) {
    while (gen === this.gen) {
      let wait = 1000;
      try {
        const list = await this.playlist();
        if (gen !== this.gen) return;
        if (list) {
          wait = list.targetDuration * 500;
          await this.feed(list, gen);
          this.keepLive(list.targetDuration);
          if (this.state === 'error') this.setState(this.video.paused ? 'waiting' : 'playing');
        }
      } catch (err) {
        if (gen !== this.gen) return;
        this.setState('error', err.message);
        // A decoding error closes the MediaSource: start over with a new one.
        if (!this.ms || this.ms.readyState !== 'open' || this.video.error) this.ms = null;
        wait = 3000;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** The media playlist, or null while the channel has nothing (404 before the push). */
  async playlist() {
    try {
      return parsePlaylist(await this.get(this.url, 'playlist'), this.url);
    } catch (err) {
      if (!/HTTP 404/.test(err.message)) throw err;
      this.setState('waiting');
      return null;
    }
  }

  async feed(list, gen) {
    const segments = list.segments;
    // Starting on a push's first segment would play at the very edge, and stall.
    if (segments.length < (this.next === undefined ? EDGE_SEGMENTS : 1)) return;
    const first = segments[0].seq;
    const last = segments[segments.length - 1].seq;
    // The numbering started over (the video service restarted): so did the clock.
    if (this.next > last + 1) this.init = null;
    // First time, out of the window, or started over: go to the live edge.
    if (this.next === undefined || this.next < first || this.next > last + 1) this.next = Math.max(first, last - EDGE_SEGMENTS + 1);
    if (!this.ms) await this.open();
    for (const segment of segments) {
      if (segment.seq < this.next) continue;
      await this.append(segment);
      if (gen !== this.gen) return;
      this.next = segment.seq + 1;
    }
  }

  async append(segment) {
    const restart = await this.appendInit(segment.map);
    const bytes = await this.get(segment.uri, 'segment');
    await this.trim();
    if (restart || segment.discontinuity) {
      // A new session's clock starts anew: place its first frame where the buffer ends.
      const b = this.sb.buffered;
      const at = b.length ? b.end(b.length - 1) : this.video.currentTime;
      this.sb.timestampOffset = at - startTime(bytes, this.timescales);
    }
    await this.update((sb) => sb.appendBuffer(bytes));
  }

  async trim() {
    const b = this.sb.buffered;
    const behind = this.video.currentTime - BACK_BUFFER;
    // Removing in larger steps: each removal costs a buffer update.
    if (b.length && behind - b.start(0) > 10) await this.update((sb) => sb.remove(0, behind));
  }

  /** Jumps over gaps, and to the live edge when the playhead is too far behind. */
  keepLive(targetDuration) {
    const b = this.sb && this.sb.buffered;
    if (!b || !b.length) return;
    const t = this.video.currentTime;
    const end = b.end(b.length - 1);
    const live = end - 2 * targetDuration;
    let inRange = false;
    let ahead = null;
    for (let i = 0; i < b.length; i += 1) {
      if (b.start(i) <= t + 0.1 && t < b.end(i) - 0.3) inRange = true;
      if (ahead === null && b.start(i) > t) ahead = b.start(i);
    }
    if (!inRange && ahead !== null) this.video.currentTime = Math.max(ahead, live);
    else if (end - t > 5 * targetDuration) this.video.currentTime = live;
  }
}

/**
 * Plays a recording (a VOD media playlist) on one timeline from 0 to its duration: a
 * segment plays at the sum of the durations before it, whatever its own timestamps,
 * so `currentTime` is the offset into the recording. Seeks fetch the segment the
 * playhead lands in.
 */
export class RecordingPlayer extends MsePlayer {
  constructor(video, options) {
    super(video, options);
    video.playsInline = true;
    this.listeners.seeking = () => this.wake();
    this.listeners.ended = () => this.setState('ended');
    video.addEventListener('seeking', this.listeners.seeking);
    video.addEventListener('ended', this.listeners.ended);
    this.appended = new Set();
    /** Each run's (segments sharing an init segment, no discontinuity) timestamp offset. */
    this.offsets = new Map();
  }

  /** Plays `url`; called again with a new URL (a fresh token), it goes on with the new one's segments. */
  play(url) {
    const running = this.url !== undefined;
    this.url = url;
    if (this.playNatively(url)) return;
    if (running) {
      this.reload = true;
      this.wake();
      return;
    }
    this.setState('waiting');
    this.run(++this.gen);
  }

  /** The recording's length in seconds, once its playlist is read. */
  get duration() {
    return this.list ? this.list.duration : NaN;
  }

  wake() {
    if (this.waker) this.waker();
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waker = done;
    });
  }

  async run(gen) {
    let failures = 0;
    while (gen === this.gen) {
      let wait = 250;
      try {
        if (!this.list || this.reload) {
          this.reload = false;
          const list = parsePlaylist(await this.get(this.url, 'playlist'), this.url);
          if (gen !== this.gen) return;
          if (!list.segments.length) throw new Error('the recording has no video');
          this.list = list;
        }
        if (!this.ms) {
          await this.open();
          if (gen !== this.gen) return;
        }
        const fed = await this.feed(gen);
        if (gen !== this.gen) return;
        // Everything to the end is in the buffer: the video ends where it does.
        if (fed === 'done' && this.ms.readyState === 'open' && !this.sb.updating) this.ms.endOfStream();
        if (fed === 'appended') wait = 0;
        if (this.state === 'error') this.setState(this.video.paused ? 'waiting' : 'playing');
        failures = 0;
      } catch (err) {
        if (gen !== this.gen) return;
        failures += 1;
        this.setState('error', err.message);
        // Presigned URLs expire with the token: the page asks for a new one.
        if (err.message === 'unauthorized') this.reload = true;
        // A decoding error closes the MediaSource: start over with a new one.
        if (!this.ms || this.ms.readyState === 'closed' || this.video.error) this.restart();
        wait = Math.min(10_000, 1000 * failures);
      }
      await this.sleep(wait);
    }
  }

  /** A new MediaSource at the same position. */
  restart() {
    const at = this.video.currentTime;
    this.ms = null;
    this.appended.clear();
    this.resumeAt = at;
  }

  /**
   * Appends the next segment the playhead needs: `appended`, `idle` (the buffer ahead
   * is full) or `done` (every segment up to the end is in the buffer).
   */
  async feed(gen) {
    const list = this.list;
    const segments = list.segments;
    const last = segments[segments.length - 1];
    if (!this.sb) {
      await this.appendInit(segments[0].map);
      this.ms.duration = list.duration;
    }
    if (this.resumeAt !== undefined) {
      this.video.currentTime = this.resumeAt;
      this.resumeAt = undefined;
    }
    const t = this.video.currentTime;
    await this.trim(t);
    if (gen !== this.gen) return 'idle';
    const wanted = (s) => s.start + s.duration > t && s.start < t + AHEAD;
    // At the very end (a seek there) the last segment is the one to show.
    const next = segments.find((s) => wanted(s) && !this.appended.has(s.seq)) || (t >= last.start && !this.appended.has(last.seq) ? last : null);
    if (next) {
      await this.append(next);
      return 'appended';
    }
    return this.appended.has(last.seq) ? 'done' : 'idle';
  }

  async append(segment) {
    await this.appendInit(segment.map);
    const bytes = await this.get(segment.uri, 'segment');
    // A run keeps its own timestamps (no gaps between its segments); the first segment
    // fetched of it places the run on the playlist's timeline.
    if (!this.offsets.has(segment.run)) this.offsets.set(segment.run, segment.start - startTime(bytes, this.timescales));
    this.sb.timestampOffset = this.offsets.get(segment.run);
    try {
      await this.update((sb) => sb.appendBuffer(bytes));
    } catch (err) {
      if (err.name !== 'QuotaExceededError') throw err;
      // The buffer is full: drop all but the playhead's neighbourhood, fetch it again later.
      await this.trim(this.video.currentTime, 0);
      return;
    }
    this.appended.add(segment.seq);
  }

  /** Drops what is far from the playhead `t` (behind it, and ahead after a seek back). */
  async trim(t, keepBehind = BACK_BUFFER) {
    const b = this.sb.buffered;
    if (!b.length) return;
    const from = Math.max(0, t - keepBehind);
    const to = t + AHEAD + 10;
    const ranges = [];
    // Removing in larger steps: each removal costs a buffer update.
    if (from - b.start(0) > 10 || (keepBehind === 0 && from > b.start(0))) ranges.push([0, from]);
    if (b.end(b.length - 1) > to + 10 && to < this.ms.duration) ranges.push([to, Infinity]);
    for (const [start, end] of ranges) {
      await this.update((sb) => sb.remove(start, end));
      for (const s of this.list.segments) {
        if (s.start + s.duration > start && s.start < end) this.appended.delete(s.seq);
      }
    }
  }
}

/**
 * A media playlist's target duration and segments, URIs resolved against `base`; each
 * segment with its `duration`, its `start` on the playlist's timeline, its `run` (a
 * new run at each new init segment or discontinuity) and its `date` (the wall-clock
 * time of its first frame in ms, from EXT-X-PROGRAM-DATE-TIME or carried on from the
 * segment before; null without one); the `duration` of them all, and whether the
 * playlist is `complete` (EXT-X-ENDLIST).
 */
export function parsePlaylist(text, base) {
  const list = { targetDuration: 2, segments: [], duration: 0, complete: false };
  let seq = 0;
  let map = null;
  let discontinuity = false;
  let duration = 0;
  let run = 0;
  let runMap = null;
  let date = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#EXT-X-TARGETDURATION:')) list.targetDuration = Number(line.split(':')[1]) || 2;
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) seq = Number(line.split(':')[1]);
    else if (line.startsWith('#EXT-X-MAP:')) map = new URL(/URI="([^"]+)"/.exec(line)[1], base).href;
    else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8)) || 0;
    else if (line === '#EXT-X-ENDLIST') list.complete = true;
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) date = Date.parse(line.slice(25)) || null;
    else if (line && !line.startsWith('#')) {
      if (list.segments.length && (discontinuity || map !== runMap)) run += 1;
      runMap = map;
      list.segments.push({ seq: seq++, uri: new URL(line, base).href, map, discontinuity, duration, start: list.duration, run, date });
      list.duration += duration;
      if (date !== null) date += duration * 1000;
      discontinuity = false;
      duration = 0;
    }
  }
  return list;
}

/** The ISO BMFF boxes between `start` and `end`, each with its payload's bounds. */
function* boxes(bytes, start = 0, end = bytes.length) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (start + 8 <= end) {
    let size = view.getUint32(start);
    let header = 8;
    if (size === 1) {
      size = Number(view.getBigUint64(start + 8));
      header = 16;
    } else if (size === 0) {
      size = end - start;
    }
    if (size < header) return;
    const type = String.fromCharCode(...bytes.subarray(start + 4, start + 8));
    yield { type, start: start + header, end: Math.min(start + size, end), view };
    start += size;
  }
}

/** The first box along `path` (e.g. 'mdia/mdhd') inside [start, end). */
function find(bytes, path, start = 0, end = bytes.length) {
  let box = null;
  for (const type of path.split('/')) {
    box = [...boxes(bytes, start, end)].find((b) => b.type === type);
    if (!box) return null;
    ({ start, end } = box);
  }
  return box;
}

const hex = (n) => n.toString(16).padStart(2, '0');

/** An init segment's MIME type with codecs (RFC 6381), and each track's timescale. */
export function parseInit(bytes) {
  const moov = find(bytes, 'moov');
  if (!moov) throw new Error('the init segment has no moov box');
  const codecs = [];
  const timescales = new Map();
  for (const trak of boxes(bytes, moov.start, moov.end)) {
    if (trak.type !== 'trak') continue;
    const tkhd = find(bytes, 'tkhd', trak.start, trak.end);
    const mdhd = find(bytes, 'mdia/mdhd', trak.start, trak.end);
    const stsd = find(bytes, 'mdia/minf/stbl/stsd', trak.start, trak.end);
    if (!tkhd || !mdhd || !stsd) continue;
    // Version 1 boxes have 64-bit times before the field read.
    const trackId = tkhd.view.getUint32(tkhd.start + (bytes[tkhd.start] === 1 ? 20 : 12));
    timescales.set(trackId, mdhd.view.getUint32(mdhd.start + (bytes[mdhd.start] === 1 ? 20 : 12)));
    // Sample entries follow stsd's version, flags and entry count.
    const [entry] = boxes(bytes, stsd.start + 8, stsd.end);
    if (entry && entry.type === 'avc1') {
      // avcC sits after the 78 bytes of the visual sample entry.
      const avcC = find(bytes, 'avcC', entry.start + 78, entry.end);
      codecs.push(avcC ? `avc1.${hex(bytes[avcC.start + 1])}${hex(bytes[avcC.start + 2])}${hex(bytes[avcC.start + 3])}` : 'avc1.42e01e');
    } else if (entry && entry.type === 'mp4a') {
      codecs.push('mp4a.40.2');
    }
  }
  return { mime: `video/mp4; codecs="${codecs.join(',')}"`, timescales };
}

/** A media segment's earliest decode time in seconds, from its tfdt boxes. */
export function startTime(bytes, timescales) {
  let earliest = Infinity;
  for (const moof of boxes(bytes)) {
    if (moof.type !== 'moof') continue;
    for (const traf of boxes(bytes, moof.start, moof.end)) {
      const tfhd = traf.type === 'traf' && find(bytes, 'tfhd', traf.start, traf.end);
      const tfdt = tfhd && find(bytes, 'tfdt', traf.start, traf.end);
      if (!tfdt) continue;
      const scale = timescales.get(tfhd.view.getUint32(tfhd.start + 4)) || 1;
      const ticks = bytes[tfdt.start] === 1 ? Number(tfdt.view.getBigUint64(tfdt.start + 4)) : tfdt.view.getUint32(tfdt.start + 4);
      earliest = Math.min(earliest, ticks / scale);
    }
  }
  return Number.isFinite(earliest) ? earliest : 0;
}
