// The class's video as a page shows it: the live player on the stream's playback URL
// while the teacher's encoder pushes, and what to say instead while it does not
// (before the push, while it has dropped, after the class). The student view and the
// teacher's preview both use it. After the class, RecordingVideo plays its recording.

import * as api from './api.js';
import { LivePlayer, RecordingPlayer } from './player.js';
import { h } from './ui.js';

/** A private stream's playback token is renewed this long before it expires. */
const RENEW_BEFORE_MS = 60_000;
/** A refused or failed playback request is tried again after this long. */
const RETRY_MS = 10_000;

export class ClassVideo {
  /**
   * @param {object} stream the stream as the API gives it (`id`, `status`, `ingest`)
   * @param {object} o
   * @param {string} o.waiting what to say before the encoder pushes
   * @param {string} o.dropped what to say while the push has dropped
   */
  constructor(stream, { waiting = 'Waiting for the teacher to start the video', dropped = "The teacher's video dropped, reconnecting…" } = {}) {
    this.id = stream.id;
    this.status = stream.status;
    this.ingest = (stream.ingest && stream.ingest.state) || 'idle';
    this.waiting = waiting;
    this.dropped = dropped;
    this.muted = true;
    this.player = null;
    this.video = h('video', { id: 'class-video', playsinline: true, muted: true, 'aria-label': 'Class video' });
    this.message = h('p', { id: 'video-message', role: 'status' });
    this.playButton = h('button', { type: 'button', class: 'primary', id: 'video-play', hidden: true, onclick: () => this.video.play() }, 'Play');
    this.overlay = h('div', { class: 'video-overlay' }, this.message, this.playButton);
    this.sound = h('button', { type: 'button', id: 'video-sound', 'aria-pressed': 'false', onclick: () => this.toggleSound() }, 'Unmute');
    this.el = h('div', { class: 'class-video' }, h('div', { class: 'video-frame' }, this.video, this.overlay), h('div', { class: 'row video-controls' }, this.sound));
    this.render();
  }

  /** Follows the stream: `status` (scheduled, live, ended...) and `ingest` ({ state }). */
  update({ status, ingest }) {
    if (status) this.status = status;
    if (ingest) this.ingest = ingest.state;
    this.render();
  }

  close() {
    this.stopPlayer();
  }

  get finished() {
    return this.status === 'ended' || this.status === 'cancelled';
  }

  render() {
    if (!this.finished && this.ingest !== 'idle') this.startPlayer();
    else this.stopPlayer();
    const state = this.player ? this.playerState : null;
    let text = '';
    if (this.status === 'ended') text = 'The class has ended.';
    else if (this.status === 'cancelled') text = 'The class was cancelled.';
    else if (this.ingest === 'idle') text = this.waiting;
    else if (this.ingest === 'reconnecting') text = this.dropped;
    else if (state === 'blocked') text = 'Your browser did not start the video.';
    else if (state === 'error') text = `The video does not play: ${this.detail}. Trying again…`;
    else if (state === 'stalled') text = 'Buffering…';
    else if (state !== 'playing') text = 'Starting the video…';
    this.message.textContent = text;
    this.overlay.hidden = !text;
    this.playButton.hidden = state !== 'blocked';
    this.sound.hidden = !this.player;
  }

  startPlayer() {
    if (this.player) return;
    this.playerState = 'waiting';
    this.player = new LivePlayer(this.video, {
      onState: (state, detail) => {
        this.playerState = state;
        this.detail = detail;
        // The token expired (a tab asleep past its renewal): ask again, not at every poll.
        if (state === 'error' && detail === 'unauthorized' && Date.now() - this.renewedAt > RETRY_MS) this.renew();
        this.render();
      },
    });
    this.video.muted = this.muted;
    this.renew();
  }

  stopPlayer() {
    if (!this.player) return;
    this.player.stop();
    this.player = null;
    clearTimeout(this.timer);
  }

  /** Asks for the playback URL (a private stream's token lasts minutes) and plays it. */
  async renew() {
    const player = this.player;
    if (!player) return;
    this.renewedAt = Date.now();
    clearTimeout(this.timer);
    let next = RETRY_MS;
    try {
      const playback = await api.streams.playback(this.id);
      if (player !== this.player) return;
      player.play(playback.playback_url);
      if (playback.expires_at) next = Math.max(RETRY_MS, Date.parse(playback.expires_at) - Date.now() - RENEW_BEFORE_MS);
      else next = null;
    } catch (err) {
      if (player !== this.player) return;
      this.playerState = 'error';
      this.detail = err.message;
      this.render();
    }
    if (next !== null) this.timer = setTimeout(() => this.renew(), next);
  }

  toggleSound() {
    this.muted = !this.video.muted;
    this.video.muted = this.muted;
    this.sound.textContent = this.muted ? 'Unmute' : 'Mute';
    this.sound.setAttribute('aria-pressed', String(!this.muted));
    if (this.video.paused) this.video.play().catch(() => null);
  }
}

/**
 * A class's recording with the browser's own controls (play, seek bar, sound, full
 * screen): `currentTime` is the offset into the recording, the replay's clock. Its
 * playback URL carries a token that expires: asked for again before it does.
 */
export class RecordingVideo {
  /** `onError(detail)`: the video stopped playing (it tries again by itself). */
  constructor(streamId, { onError = () => {} } = {}) {
    this.id = streamId;
    this.onError = onError;
    this.player = null;
    this.started = false;
    this.video = h('video', { id: 'class-video', controls: true, playsinline: true, preload: 'auto', 'aria-label': 'Recording of the class' });
    this.message = h('p', { id: 'video-message', role: 'status' });
    this.playButton = h('button', { type: 'button', class: 'primary', id: 'video-play', hidden: true, onclick: () => this.video.play() }, 'Play');
    this.overlay = h('div', { class: 'video-overlay' }, this.message, this.playButton);
    this.problem = h('p', { id: 'video-problem', class: 'hint warn', role: 'alert', hidden: true });
    this.el = h('div', { class: 'class-video' }, h('div', { class: 'video-frame' }, this.video, this.overlay), this.problem);
    this.render();
  }

  /** Plays the recording `{ playback_url, expires_at }` (GET .../recording). */
  play(recording) {
    if (!this.player) {
      this.player = new RecordingPlayer(this.video, {
        onState: (state, detail) => {
          this.state = state;
          this.detail = detail;
          if (state === 'playing') this.started = true;
          // The token expired (a tab asleep past its renewal): ask again, not at every retry.
          if (state === 'error' && detail === 'unauthorized' && Date.now() - this.renewedAt > RETRY_MS) this.renew();
          else if (state === 'error') this.onError(detail);
          this.render();
        },
      });
    }
    this.renewedAt = Date.now();
    this.player.play(recording.playback_url);
    clearTimeout(this.timer);
    if (recording.expires_at) {
      const next = Math.max(RETRY_MS, Date.parse(recording.expires_at) - Date.now() - RENEW_BEFORE_MS);
      this.timer = setTimeout(() => this.renew(), next);
    }
    this.render();
  }

  async renew() {
    this.renewedAt = Date.now();
    try {
      const recording = await api.recordings.get(this.id);
      if (this.player && recording.playback_url) this.play(recording);
    } catch (err) {
      this.state = 'error';
      this.detail = err.message;
      this.render();
      this.timer = setTimeout(() => this.renew(), RETRY_MS);
    }
  }

  close() {
    clearTimeout(this.timer);
    if (this.player) this.player.stop();
    this.player = null;
  }

  render() {
    const state = this.state;
    // Before the first frame the picture is black: say why. Later the browser's own
    // controls show buffering, and an overlay would cover them.
    let text = '';
    if (state === 'blocked') text = 'Your browser did not start the video.';
    else if (!this.started && state !== 'error') text = 'Loading the recording…';
    this.message.textContent = text;
    this.overlay.hidden = !text;
    this.playButton.hidden = state !== 'blocked';
    const problem = state === 'error' ? `The video does not play: ${this.detail}. Trying again…` : '';
    this.problem.textContent = problem;
    this.problem.hidden = !problem;
  }
}
