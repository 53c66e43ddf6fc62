// The teacher's encoder panel: where OBS (or ffmpeg) pushes, the stream key, the OBS
// settings to copy, a new key when the old one leaked, and how the push is doing.

import * as api from './api.js';
import { h, fill, notify, formatTime } from './ui.js';

/** How often the push's health is read while the encoder is connected. */
const HEALTH_MS = 5_000;

const STATE_NOTE = {
  idle: 'No encoder is pushing.',
  connected: 'Your encoder is pushing.',
  reconnecting: 'The push dropped.',
};

/** Copies `text`, through a selection where the Clipboard API is refused. */
async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // The Clipboard API needs a secure context or a permission.
    const area = h('textarea', { readonly: true, class: 'offscreen' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

export class EncoderPanel {
  /** @param {object} stream the stream as its instructor reads it (with `stream_key`) */
  constructor(stream) {
    this.id = stream.id;
    this.info = null;
    this.status = h('p', { class: 'status', role: 'status', hidden: true });
    this.state = h('span', { id: 'ingest-state', class: 'badge' });
    this.note = h('span', { class: 'hint', id: 'ingest-note' });
    this.server = h('input', { readonly: true, id: 'ingest-url', value: stream.ingest_url || '', autocomplete: 'off' });
    this.key = h('input', { type: 'password', readonly: true, id: 'stream-key', value: stream.stream_key || '', autocomplete: 'off' });
    this.copied = h('span', { class: 'hint', role: 'status' });
    const show = h(
      'button',
      {
        type: 'button',
        'aria-pressed': 'false',
        onclick: () => {
          const shown = this.key.type === 'password';
          this.key.type = shown ? 'text' : 'password';
          show.setAttribute('aria-pressed', String(shown));
          show.textContent = shown ? 'Hide' : 'Show';
        },
      },
      'Show',
    );
    const copyButton = (label, input, what) =>
      h('button', { type: 'button', 'aria-label': label, onclick: () => copy(input.value).then(() => (this.copied.textContent = `${what} copied.`)) }, 'Copy');
    this.setup = h('pre', { id: 'obs-setup', class: 'setup' });
    this.health = h('dl', { id: 'ingest-health', class: 'stats-row health' });
    this.el = h(
      'section',
      { class: 'card encoder', id: 'encoder', 'aria-labelledby': 'encoder-title' },
      h('h3', { id: 'encoder-title' }, 'Encoder'),
      h('p', {}, this.state, ' ', this.note),
      h('div', { class: 'field key' }, h('label', { for: 'ingest-url' }, 'Server (ingest URL)'), h('div', { class: 'row' }, this.server, copyButton('Copy the server', this.server, 'Server'))),
      h('div', { class: 'field key' }, h('label', { for: 'stream-key' }, 'Stream key (keep it secret)'), h('div', { class: 'row' }, this.key, show, copyButton('Copy the stream key', this.key, 'Stream key'))),
      h('div', { class: 'row' }, h('button', { type: 'button', id: 'rotate-key', class: 'danger', onclick: () => this.rotate() }, 'New stream key'), this.copied),
      this.status,
      this.health,
      h(
        'details',
        {},
        h('summary', {}, 'OBS setup'),
        this.setup,
        h('button', { type: 'button', class: 'small', onclick: () => copy(this.setup.textContent).then(() => (this.copied.textContent = 'OBS setup copied.')) }, 'Copy the setup'),
      ),
    );
    this.setState((stream.ingest && stream.ingest.state) || 'idle', stream.ingest && stream.ingest.reconnect_deadline);
    this.load();
  }

  close() {
    this.closed = true;
    clearInterval(this.poll);
  }

  /** The ingest state from a `stream.ingest` event. */
  setIngest(ingest) {
    this.setState(ingest.state, ingest.reconnect_deadline);
    if (ingest.state === 'connected') this.load();
  }

  setState(state, deadline) {
    this.state.textContent = state;
    this.state.className = `badge ingest-${state}`;
    this.state.dataset.state = state;
    const end = state === 'reconnecting' && deadline ? ` The class ends at ${formatTime(deadline)} unless it comes back.` : '';
    this.note.textContent = (STATE_NOTE[state] || '') + end;
    // Health is measured only while a push arrives.
    clearInterval(this.poll);
    if (state === 'connected') this.poll = setInterval(() => this.load(), HEALTH_MS);
    else this.showHealth(null);
  }

  async load() {
    try {
      this.show(await api.streams.ingest(this.id));
    } catch (err) {
      if (!this.closed) notify(this.status, err.message, 'error');
    }
  }

  async rotate() {
    if (!confirm('Make a new stream key? The current key stops working at once, and an encoder using it is cut off.')) return;
    try {
      this.show(await api.streams.rotateKey(this.id));
      notify(this.status, 'New stream key made: paste it into your encoder.', 'ok');
    } catch (err) {
      notify(this.status, err.message, 'error');
    }
  }

  show(info) {
    if (this.closed) return;
    this.info = info;
    this.server.value = info.ingest_url;
    this.key.value = info.stream_key;
    if (this.state.dataset.state !== info.state) this.setState(info.state, info.reconnect_deadline);
    const e = info.encoder;
    this.setup.textContent = [
      'Settings > Stream',
      '  Service: Custom...',
      `  Server: ${info.ingest_url}`,
      '  Stream Key: the key above',
      'Settings > Output (Output Mode: Advanced) > Streaming',
      `  Video encoder: ${e.video_codec}`,
      `  Rate control: ${e.rate_control}`,
      `  Bitrate: ${e.bitrate_kbps} Kbps`,
      `  Keyframe interval: ${e.keyframe_interval_seconds} s`,
      'Settings > Output > Audio, Settings > Audio',
      `  Audio: ${e.audio_codec}`,
      'Settings > Video',
      `  Output (scaled) resolution: ${e.width}x${e.height}`,
      `  FPS: ${e.frame_rate}`,
    ].join('\n');
    this.showHealth(info.state === 'connected' ? info.health : null);
  }

  showHealth(health) {
    const e = this.info && this.info.encoder;
    if (!health || !e) {
      fill(this.health, this.state.dataset.state === 'connected' ? h('p', { class: 'hint' }, 'Measuring the push…') : null);
      return;
    }
    const n = (v, digits = 0, unit = '') => (v === null || v === undefined ? '–' : `${Number(v).toFixed(digits)}${unit}`);
    const item = (id, label, value, expected) =>
      h('div', { class: 'stat', dataset: { health: id } }, h('dt', {}, label), h('dd', {}, value), expected ? h('p', { class: 'hint warn' }, expected) : null);
    const bitrateHigh = health.bitrate_kbps > e.bitrate_kbps * 1.25;
    fill(
      this.health,
      item('resolution', 'Resolution', `${n(health.width)}×${n(health.height)}`, health.width && health.width !== e.width ? `set ${e.width}×${e.height}` : null),
      item('frame-rate', 'Frame rate', n(health.frame_rate, 1, ' fps'), health.frame_rate && Math.round(health.frame_rate) !== e.frame_rate ? `set ${e.frame_rate}` : null),
      item('bitrate', 'Bitrate', n(health.bitrate_kbps, 0, ' kbps'), bitrateHigh ? `above the ${e.bitrate_kbps} set` : null),
      item('keyframes', 'Keyframe interval', n(health.keyframe_interval_seconds, 1, ' s'), health.keyframe_interval_seconds && Math.abs(health.keyframe_interval_seconds - e.keyframe_interval_seconds) > 0.25 ? `set ${e.keyframe_interval_seconds} s` : null),
      item('codecs', 'Codecs', [health.video_codec, health.audio_codec].filter(Boolean).join(', ') || '–'),
    );
  }
}
