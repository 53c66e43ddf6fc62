// An ended class watched again: its recording, with the chat and questions shown in
// step with the video. The events come from GET .../replay by offset into the
// recording, read in windows ahead of the playhead; the panels show the class as it
// stood at the playhead: every message sent by then, the questions asked by then with
// the answers given by then. A seek redraws them for the new position.

import * as api from './api.js';
import { RecordingVideo } from './video.js';
import { h, fill, notify } from './ui.js';

/** Milliseconds of events read ahead of the playhead at a time. */
const WINDOW_MS = 60_000;
/** How often a recording being prepared is asked about again. */
const PREPARING_POLL_MS = 3_000;
/** How often the panels follow the playhead while the video plays (timeupdate is ~4 Hz). */
const TICK_MS = 200;
/** How long after a failed read of the replay the next one waits. */
const RETRY_MS = 3_000;

/** `m:ss` (or `h:mm:ss`) of a position in milliseconds. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/**
 * Milliseconds into the recording (the replay's offsets: wall-clock time since
 * `origin`, epoch ms) at video position `t` (s) of the playlist `list`. The video has
 * no gap where the encoder dropped and came back, the wall clock does: each segment's
 * date (EXT-X-PROGRAM-DATE-TIME) says where it stands. Without dates, the position itself.
 */
export function offsetAt(list, origin, t) {
  const segment = list && origin !== null ? segmentAt(list.segments, (s) => s.start <= t) : null;
  if (!segment || segment.date === null) return t * 1000;
  return segment.date + (t - segment.start) * 1000 - origin;
}

/** The video position (s) of offset `ms`: in a gap of the video, where it resumes. */
export function positionOf(list, origin, ms) {
  if (!list || origin === null || list.segments.some((s) => s.date === null)) return ms / 1000;
  const at = origin + ms;
  const segment = segmentAt(list.segments, (s) => s.date <= at);
  if (!segment) return 0;
  return segment.start + Math.min(segment.duration, (at - segment.date) / 1000);
}

/** The last of `segments` (in order) for which `before` holds, by bisection. */
function segmentAt(segments, before) {
  let lo = 0;
  let hi = segments.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(segments[mid])) lo = mid + 1;
    else hi = mid;
  }
  return lo ? segments[lo - 1] : null;
}

/**
 * The class's events read so far: everything with an offset up to `loadedTo`, in the
 * API's order (which is by offset), chat apart from question events.
 */
class ReplayEvents {
  constructor(streamId) {
    this.id = streamId;
    this.chat = [];
    this.questionEvents = [];
    this.loadedTo = -1;
    this.complete = false;
    this.loading = null;
  }

  /** Reads on until offset `ms` (Infinity: to the end) is covered; resolves when it is. */
  async ensure(ms) {
    while (!this.complete && this.loadedTo < ms) {
      if (!this.loading) this.loading = this.read(ms).finally(() => (this.loading = null));
      await this.loading;
    }
  }

  async read(ms) {
    const from = this.loadedTo + 1;
    // Offsets are whole milliseconds; the playhead's are not.
    const to = Number.isFinite(ms) ? Math.max(Math.ceil(ms), from) : undefined;
    const items = await api.replay.between(this.id, from, to);
    for (const event of items) (event.type === 'chat' ? this.chat : this.questionEvents).push(event);
    if (to === undefined) this.complete = true;
    else this.loadedTo = to;
  }
}

/** The chat and question panels of a replay, drawn for one position at a time. */
export class ReplayPanels {
  constructor(streamId, { onSeek = () => {} } = {}) {
    this.events = new ReplayEvents(streamId);
    this.onSeek = onSeek;
    this.position = -1;
    this.retryAt = 0;
    this.chatShown = 0;
    this.questionsShown = -1;
    this.chatList = h('ol', { id: 'chat-list', class: 'chat replay', role: 'log', 'aria-label': 'Chat messages up to this point of the video' });
    this.questionList = h('ol', { id: 'question-list', class: 'questions', 'aria-label': 'Questions up to this point of the video' });
    this.loadingNote = h('p', { class: 'hint', id: 'replay-loading', role: 'status', hidden: true }, 'Loading the chat…');
    this.error = h('p', { class: 'status', id: 'replay-error', role: 'alert', hidden: true });
    this.el = h(
      'div',
      { class: 'grid two replay-panels' },
      h('section', { class: 'card chat-card', 'aria-labelledby': 'chat-title' }, h('h3', { id: 'chat-title' }, 'Chat'), this.chatList, this.loadingNote, this.error),
      h('section', { class: 'card', 'aria-labelledby': 'qa-title' }, h('h3', { id: 'qa-title' }, 'Questions'), this.questionList),
    );
  }

  /**
   * Shows the class as it stood `ms` into the recording (Infinity: at its end). Going
   * forward adds what happened since; going back (a seek) redraws from nothing.
   */
  async show(ms) {
    const back = ms < this.position;
    this.position = ms;
    this.chatList.dataset.position = String(ms);
    if (back) {
      this.chatShown = 0;
      this.questionsShown = -1;
      fill(this.chatList);
    }
    this.draw();
    const behind = this.events.loadedTo < ms + WINDOW_MS / 2 && !this.events.complete;
    // After a failed read, the next try waits: the playhead asks five times a second.
    if (!behind || Date.now() < this.retryAt) return;
    this.loadingNote.hidden = this.events.loadedTo >= ms;
    try {
      // A window ahead of the playhead, so each message is there when its moment comes.
      await this.events.ensure(Number.isFinite(ms) ? ms + WINDOW_MS : Infinity);
      notify(this.error, '');
    } catch (err) {
      this.retryAt = Date.now() + RETRY_MS;
      notify(this.error, `The chat could not be read: ${err.message}. Trying again…`, 'error');
    }
    this.loadingNote.hidden = true;
    this.draw();
  }

  draw() {
    const ms = this.position;
    const list = this.chatList;
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    const chat = this.events.chat;
    let i = this.chatShown;
    const added = [];
    while (i < chat.length && chat[i].offset_ms <= ms) added.push(this.chatItem(chat[i++]));
    if (added.length) {
      list.append(...added);
      this.chatShown = i;
      if (atBottom || added.length === i) list.scrollTop = list.scrollHeight;
    }
    const due = this.events.questionEvents.filter((e) => e.offset_ms <= ms).length;
    if (due !== this.questionsShown) {
      this.questionsShown = due;
      this.drawQuestions(this.events.questionEvents.slice(0, due));
    }
  }

  chatItem(event) {
    const m = event.message;
    return h(
      'li',
      {
        dataset: { seq: String(m.seq), offset: String(event.offset_ms) },
        class: [m.message_type === 'announcement' ? 'announcement' : '', m.hidden ? 'hidden-msg' : ''].join(' ').trim() || null,
      },
      h('span', { class: 'author' }, m.display_name, m.role === 'teacher' ? ' (teacher)' : ''),
      ' ',
      h('span', { class: 'text' }, m.message),
      m.hidden ? h('span', { class: 'badge' }, 'hidden') : null,
      this.moment(event.offset_ms),
    );
  }

  /** The offset as a link that seeks there. */
  moment(ms) {
    return h('button', { type: 'button', class: 'link moment', 'aria-label': `Go to ${clock(ms)}`, onclick: () => this.onSeek(ms) }, h('time', {}, clock(ms)));
  }

  /** The questions as they stood after `events` (asked, answered, highlighted), oldest first. */
  drawQuestions(events) {
    const byId = new Map();
    let highlighted = null;
    for (const e of events) {
      const q = e.question;
      const entry = byId.get(q.id) || { q, asked: null, answered: null };
      if (e.type === 'question') entry.asked = e.offset_ms;
      if (e.type === 'answer') entry.answered = e.offset_ms;
      if (e.type === 'highlight') highlighted = q.id;
      byId.set(q.id, entry);
    }
    const shown = [...byId.values()].filter((entry) => entry.asked !== null);
    fill(
      this.questionList,
      shown.length
        ? shown.map((entry) => this.questionItem(entry, entry.q.id === highlighted))
        : h('li', { class: 'hint empty' }, 'No questions yet at this point.'),
    );
  }

  questionItem({ q, asked, answered }, highlighted) {
    const asker = !q.display_name ? 'Anonymous' : q.anonymous ? `${q.display_name} (anonymous)` : q.display_name;
    const state = answered !== null ? 'answered' : highlighted ? 'now answering' : 'open';
    return h(
      'li',
      { dataset: { id: q.id, offset: String(asked), status: answered !== null ? 'answered' : 'open' }, class: highlighted ? 'is-highlighted' : null },
      h('p', { class: 'q-text' }, q.text),
      h('p', { class: 'meta' }, `${asker} · asked at `, this.moment(asked), ` · ${state}`, q.hidden ? ' · hidden' : '', ` · ${q.upvotes || 0} upvote${q.upvotes === 1 ? '' : 's'} in all`),
      answered !== null && q.answer ? h('p', { class: 'answer' }, h('strong', {}, 'Answer: '), q.answer, ' ', this.moment(answered)) : null,
    );
  }
}

/**
 * The ended class `stream` in `ctx.main`: its recording and the replayed chat and
 * questions, or what there is instead (being prepared, failed, none). Returns the
 * page's cleanup.
 */
export async function replayView(ctx, stream, { back = h('a', { href: '#/watch' }, '← Live now') } = {}) {
  let video = null;
  let timer = null;
  let ticker = null;
  let closed = false;
  let origin = null;
  const playlist = () => video && video.player && video.player.list;
  const panels = new ReplayPanels(stream.id, {
    onSeek: (ms) => {
      if (!video) return;
      video.video.currentTime = positionOf(playlist(), origin, ms);
      video.video.play().catch(() => null);
    },
  });
  const state = h('p', { id: 'recording-state', class: 'banner', role: 'status' });
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const videoCard = h('section', { class: 'card video-card', 'aria-label': 'Recording', hidden: true });
  fill(
    ctx.main,
    h('p', {}, back),
    h('h2', {}, stream.title, ' ', h('span', { class: `badge status-${stream.status}`, id: 'stream-status' }, stream.status)),
    h('p', { class: 'hint' }, stream.description),
    state,
    status,
    videoCard,
    panels.el,
  );

  const follow = () => panels.show(offsetAt(playlist(), origin, video.video.currentTime));

  async function load() {
    timer = null;
    let recording;
    try {
      recording = await api.recordings.get(stream.id);
    } catch (err) {
      notify(status, err.message, 'error');
      timer = setTimeout(load, PREPARING_POLL_MS);
      return;
    }
    if (closed) return;
    notify(status, '');
    state.dataset.state = recording.state;
    if (recording.state === 'ready' && recording.playback_url) {
      origin = recording.started_at ? Date.parse(recording.started_at) : null;
      state.textContent = 'The class has ended. Watch it again: the chat and questions appear as they did in class.';
      if (!video) {
        // A video that stops playing may have lost its recording (deleted): look again.
        video = new RecordingVideo(stream.id, { onError: () => timer || (timer = setTimeout(load, PREPARING_POLL_MS)) });
        panels.show(0);
        fill(videoCard, video.el, h('p', { class: 'hint', id: 'replay-duration' }, `Recording: ${clock(recording.duration_ms || 0)}`));
        videoCard.hidden = false;
        const v = video.video;
        v.addEventListener('timeupdate', follow);
        v.addEventListener('seeking', follow);
        v.addEventListener('play', () => {
          clearInterval(ticker);
          ticker = setInterval(follow, TICK_MS);
        });
        v.addEventListener('pause', () => clearInterval(ticker));
        // What was said after the last frame (before the teacher pressed Stop) shows at the end.
        v.addEventListener('ended', () => {
          clearInterval(ticker);
          panels.show(Infinity);
        });
      }
      video.play(recording);
    } else if (recording.state === 'recording' || recording.state === 'processing') {
      state.textContent = 'The class has ended. Its recording is being prepared: it plays here as soon as it is ready.';
      timer = setTimeout(load, PREPARING_POLL_MS);
    } else {
      state.textContent =
        recording.state === 'failed'
          ? `The class has ended. Its recording failed${recording.failure_reason ? ` (${recording.failure_reason})` : ''}: here are its chat and questions.`
          : stream.is_recording
            ? 'The class has ended. There is no recording of it (nothing was recorded, or it was deleted): here are its chat and questions.'
            : 'The class has ended. It was not recorded: here are its chat and questions.';
      if (video) {
        video.close();
        video = null;
        videoCard.hidden = true;
        fill(videoCard);
      }
      panels.show(Infinity);
    }
  }

  await load();
  return () => {
    closed = true;
    clearTimeout(timer);
    clearInterval(ticker);
    if (video) video.close();
  };
}
