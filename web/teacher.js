// The teacher console: courses, streams by status, the stream form, and per stream
// its controls, the encoder panel and preview, the live dashboard, and after the class
// the final stats, the recording (its state, deleting it) and the attendance report.

import * as api from './api.js';
import { Room } from './room.js';
import { EncoderPanel } from './encoder.js';
import { ClassVideo } from './video.js';
import { h, fill, field, notify, showErrors, clearErrors, formatTime, formatDuration, toRfc3339, toLocalInput } from './ui.js';
import { statsChart, timelineChart } from './chart.js';

const STATUSES = [
  ['live', 'Live'],
  ['scheduled', 'Scheduled'],
  ['ended', 'Ended'],
  ['cancelled', 'Cancelled'],
];

function statusBadge(status) {
  return h('span', { class: `badge status-${status}`, id: 'stream-status' }, status);
}

/** `#/console`: courses, a new stream, my streams by status. */
export async function consoleView(ctx) {
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const courseList = h('ul', { id: 'course-list', class: 'plain' });
  const streamLists = h('div', { id: 'my-streams' });
  const newStream = h('div');
  fill(
    ctx.main,
    h('h2', {}, 'Teacher console'),
    status,
    h(
      'div',
      { class: 'grid two' },
      h('section', { class: 'card', 'aria-labelledby': 'courses-title' }, h('h3', { id: 'courses-title' }, 'My courses'), courseList, courseForm()),
      h('section', { class: 'card', 'aria-labelledby': 'new-stream-title' }, h('h3', { id: 'new-stream-title' }, 'New stream'), newStream),
    ),
    h('section', { class: 'card', 'aria-labelledby': 'streams-title' }, h('h3', { id: 'streams-title' }, 'My streams'), streamLists),
  );

  let courses = [];
  async function loadCourses() {
    courses = (await api.courses.mine()).filter((c) => c.teacher_id === ctx.session.user_id || ctx.session.role === 'admin');
    fill(courseList, courses.length ? courses.map(courseItem) : h('li', { class: 'hint' }, 'No courses yet: create one below.'));
    fill(newStream, streamForm({ courses, onSaved: (s) => (location.hash = `#/streams/${s.id}`) }));
  }

  async function loadStreams() {
    const streams = await api.streams.mine();
    fill(
      streamLists,
      STATUSES.map(([key, label]) => {
        const group = streams.filter((s) => s.status === key);
        return h(
          'section',
          { class: 'stream-group', 'aria-label': label },
          h('h4', {}, `${label} (${group.length})`),
          group.length
            ? h('ul', { class: 'plain', id: `streams-${key}` }, group.map(streamItem))
            : h('p', { class: 'hint' }, 'None.'),
        );
      }),
    );
  }

  function streamItem(s) {
    const when = s.status === 'scheduled' ? (s.scheduled_at ? `scheduled for ${formatTime(s.scheduled_at)}` : 'not scheduled') : s.started_at ? `started ${formatTime(s.started_at)}` : '';
    return h('li', { dataset: { id: s.id } }, h('a', { href: `#/streams/${s.id}` }, s.title), ' ', h('span', { class: 'hint' }, when));
  }

  function courseItem(c) {
    const user = h('input', { required: true, placeholder: 'student-1', autocomplete: 'off' });
    const msg = h('p', { class: 'status', role: 'status', hidden: true });
    const form = h(
      'form',
      {
        class: 'row enroll-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          try {
            const r = await api.courses.enroll(c.id, user.value.trim());
            notify(msg, `${r.user_id} is enrolled.`, 'ok');
            user.value = '';
          } catch (err) {
            showErrors(form, err, msg);
          }
        },
      },
      field('Enroll student (user id)', user, { name: 'user_id' }),
      h('button', { type: 'submit' }, 'Enroll'),
    );
    return h('li', { class: 'course', dataset: { id: c.id } }, h('strong', {}, c.title), ' ', h('code', { class: 'hint' }, c.id), form, msg);
  }

  function courseForm() {
    const title = h('input', { required: true, maxlength: 200 });
    const description = h('textarea', { rows: 2, maxlength: 5000 });
    const form = h(
      'form',
      {
        id: 'course-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          try {
            await api.courses.create({ title: title.value, description: description.value || undefined });
            title.value = '';
            description.value = '';
            notify(status, 'Course created.', 'ok');
            await loadCourses();
          } catch (err) {
            showErrors(form, err, status);
          }
        },
      },
      h('h4', {}, 'New course'),
      field('Course title', title, { name: 'title' }),
      field('Course description', description, { name: 'description' }),
      h('button', { type: 'submit' }, 'Create course'),
    );
    return form;
  }

  try {
    await Promise.all([loadCourses(), loadStreams()]);
  } catch (err) {
    notify(status, err.message, 'error');
  }
  return null;
}

/** The create / edit form with every setting; the API's field errors show by their fields. */
export function streamForm({ courses = [], stream = null, onSaved }) {
  const editing = Boolean(stream);
  const q = (stream && stream.quality_settings) || { resolution: '720p', frame_rate: 30, bitrate_kbps: 2500 };
  const title = h('input', { required: true, maxlength: 200, value: stream ? stream.title : '' });
  const description = h('textarea', { rows: 3 });
  description.value = stream ? stream.description : '';
  const course = editing ? null : h('select', { required: true }, courses.map((c) => h('option', { value: c.id }, c.title)));
  const scheduled = h('input', { type: 'datetime-local', value: stream ? toLocalInput(stream.scheduled_at) : '' });
  const canSchedule = !editing || stream.status === 'scheduled';
  scheduled.disabled = !canSchedule;
  const resolution = h('select', {}, ['480p', '720p', '1080p', '4K'].map((r) => h('option', { value: r, selected: r === q.resolution }, r)));
  const fps = h('select', {}, [24, 30, 60].map((f) => h('option', { value: String(f), selected: f === q.frame_rate }, `${f} fps`)));
  const bitrate = h('input', { type: 'number', min: 500, max: 15000, step: 100, value: String(q.bitrate_kbps), inputmode: 'numeric' });
  const isPublic = h('input', { type: 'checkbox', checked: stream ? stream.is_public : true });
  const recording = h('input', { type: 'checkbox', checked: stream ? stream.is_recording : false });
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const initialSchedule = scheduled.value;

  const form = h(
    'form',
    {
      id: editing ? 'edit-stream-form' : 'stream-form',
      // The API's validation is the one shown, so the browser's is off.
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        const body = {
          title: title.value,
          description: description.value,
          quality_settings: {
            resolution: resolution.value,
            frame_rate: Number(fps.value),
            bitrate_kbps: bitrate.value === '' ? null : Number(bitrate.value),
          },
          is_public: isPublic.checked,
          is_recording: recording.checked,
        };
        if (body.quality_settings.bitrate_kbps === null) delete body.quality_settings.bitrate_kbps;
        if (!editing) body.course_id = course.value;
        if (canSchedule && (!editing || scheduled.value !== initialSchedule) && scheduled.value) body.scheduled_at = toRfc3339(scheduled.value);
        try {
          const saved = editing ? await api.streams.update(stream.id, body) : await api.streams.create(body);
          notify(status, editing ? 'Saved.' : 'Stream created.', 'ok');
          if (onSaved) onSaved(saved);
        } catch (err) {
          showErrors(form, err, status);
        }
      },
    },
    field('Title', title, { name: 'title' }),
    field('Description', description, { name: 'description' }),
    course ? field('Course', course, { name: 'course_id', hint: courses.length ? null : 'Create a course first.' }) : null,
    field('Scheduled time', scheduled, { name: 'scheduled_at', hint: canSchedule ? 'Your local time; leave empty to start whenever you like.' : 'Only while scheduled.' }),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Quality'),
      h(
        'div',
        { class: 'row' },
        field('Resolution', resolution, { name: 'quality_settings.resolution' }),
        field('Frame rate', fps, { name: 'quality_settings.frame_rate' }),
        field('Bitrate (kbps)', bitrate, { name: 'quality_settings.bitrate_kbps', hint: '500 to 15000' }),
      ),
    ),
    field('Public (anyone signed in may watch; otherwise enrolled students only)', isPublic, { name: 'is_public' }),
    field('Record this stream', recording, { name: 'is_recording' }),
    h('button', { type: 'submit', id: editing ? 'save-stream' : 'create-stream' }, editing ? 'Save changes' : 'Create stream'),
    status,
  );
  return form;
}

/** `#/streams/<id>`: one stream for its instructor. Re-renders itself when the status changes. */
export async function streamView(ctx, id) {
  let parts = [];
  let closed = false;
  let renders = 0;
  const dispose = () => {
    for (const part of parts) part.close();
    parts = [];
  };

  async function render() {
    dispose();
    // A click and an event may both re-render: only the latest one draws.
    const current = ++renders;
    const status = h('p', { class: 'status', role: 'status', hidden: true });
    let stream;
    try {
      stream = await api.streams.get(id);
    } catch (err) {
      fill(ctx.main, h('h2', {}, 'Stream'), h('p', { class: 'status', 'data-kind': 'error' }, err.message));
      return;
    }
    if (closed || current !== renders) return;
    if (stream.stream_key == null) {
      fill(ctx.main, h('h2', {}, stream.title), h('p', {}, 'Only the instructor manages this stream. ', h('a', { href: `#/watch/${id}` }, 'Watch it')));
      return;
    }
    const act = (fn, label) =>
      h(
        'button',
        {
          id: `${label.toLowerCase()}-stream`,
          class: label === 'Stop' || label === 'Cancel' ? 'danger' : 'primary',
          onclick: async () => {
            try {
              await fn(id);
              await render();
            } catch (err) {
              notify(status, err.message, 'error');
            }
          },
        },
        label,
      );
    const actions = h(
      'div',
      { class: 'row actions' },
      stream.status === 'scheduled' ? [act(api.streams.start, 'Start'), act(api.streams.cancel, 'Cancel')] : null,
      stream.status === 'live' ? act(api.streams.stop, 'Stop') : null,
    );
    const header = [
      h('p', {}, h('a', { href: '#/console' }, '← Teacher console')),
      h('h2', {}, stream.title, ' ', statusBadge(stream.status)),
      h('p', { class: 'hint' }, stream.description),
      actions,
      status,
    ];
    const edit = h(
      'details',
      { class: 'card', open: stream.status === 'scheduled' },
      h('summary', {}, 'Details and quality'),
      streamForm({ stream, onSaved: () => render() }),
    );
    if (stream.status === 'scheduled' || stream.status === 'live') {
      const encoder = new EncoderPanel(stream);
      const preview = new ClassVideo(stream, {
        waiting: 'Waiting for your encoder: start streaming with the settings beside.',
        dropped: 'Your encoder’s push dropped: waiting for it to come back…',
      });
      // The status changes by itself when the encoder starts pushing: follow the events.
      const shown = stream.status;
      const room = new Room(ctx, stream, {
        onStatus: (s) => s !== shown && render(),
        onIngest: (ingest) => {
          encoder.setIngest(ingest);
          preview.update({ ingest });
        },
      });
      parts = [room, encoder, preview];
      const video = h(
        'div',
        { class: 'grid two' },
        h('section', { class: 'card video-card', 'aria-labelledby': 'preview-title' }, h('h3', { id: 'preview-title' }, 'Preview'), preview.el),
        encoder.el,
      );
      if (stream.status === 'scheduled') {
        const when = stream.scheduled_at ? `Scheduled for ${formatTime(stream.scheduled_at)}.` : 'Not scheduled; start it when you are ready.';
        const how = 'The class goes live by itself when your encoder starts pushing, or with Start.';
        fill(ctx.main, header, h('section', { class: 'card' }, h('p', { class: 'hint' }, when, ' ', how)), video, edit);
      } else {
        const dashboard = h(
          'div',
          { class: 'dashboard' },
          video,
          h('section', { class: 'card', 'aria-labelledby': 'viewers-title' }, h('h3', { id: 'viewers-title' }, 'Viewers'), room.viewersPanel(), h('p', { class: 'hint', id: 'connection', role: 'status' })),
          room.banners(),
          h('div', { class: 'grid two' }, room.chatPanel(), room.questionsPanel({ canAsk: false })),
          h('div', { class: 'grid two' }, settingsForm(stream, room), participantsPanel(stream, room)),
        );
        room.el.connection = dashboard.querySelector('#connection');
        fill(ctx.main, header, dashboard, edit);
      }
      room.el.status = status;
      await room.open();
    } else if (stream.status === 'ended') {
      const stats = await statsSection(stream);
      if (closed || current !== renders) return;
      const recording = new RecordingPanel(stream);
      parts = [recording];
      fill(ctx.main, header, stats, recording.el, attendanceSection(stream));
    } else {
      fill(ctx.main, header, h('p', {}, 'This stream was cancelled.'));
    }
  }

  await render();
  return () => {
    closed = true;
    dispose();
  };
}

function settingsForm(stream, room) {
  const slow = h('input', { type: 'number', min: 0, max: 300, value: String(stream.chat_slow_mode_seconds || 0), inputmode: 'numeric' });
  const words = h('textarea', { rows: 2, placeholder: 'one per line or comma separated' });
  words.value = (stream.blocked_words || []).join(', ');
  const approval = h('input', { type: 'checkbox', checked: Boolean(stream.questions_require_approval) });
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const form = h(
    'form',
    {
      id: 'settings-form',
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        try {
          const saved = await api.streams.settings(stream.id, {
            chat_slow_mode_seconds: slow.value === '' ? 0 : Number(slow.value),
            blocked_words: words.value
              .split(/[,\n]/)
              .map((w) => w.trim())
              .filter(Boolean),
            questions_require_approval: approval.checked,
          });
          room.mergeStream(saved);
          notify(status, 'Settings saved.', 'ok');
        } catch (err) {
          showErrors(form, err, status);
        }
      },
    },
    h('h3', { id: 'settings-title' }, 'Interaction settings'),
    field('Slow mode (seconds between messages per student, 0 = off)', slow, { name: 'chat_slow_mode_seconds' }),
    field('Blocked words', words, { name: 'blocked_words' }),
    field('Questions wait for approval', approval, { name: 'questions_require_approval' }),
    h('button', { type: 'submit' }, 'Save settings'),
    status,
  );
  return h('section', { class: 'card', 'aria-labelledby': 'settings-title' }, form);
}

function participantsPanel(stream, room) {
  const body = h('tbody', { id: 'participants' });
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  let pending = null;
  async function load() {
    try {
      const people = await api.streams.participants(stream.id);
      fill(body, people.length ? people.map(row) : h('tr', {}, h('td', { colspan: 5, class: 'hint' }, 'Nobody has joined yet.')));
    } catch (err) {
      notify(status, err.message, 'error');
    }
  }
  function toggle(p, key, label) {
    const box = h('input', {
      type: 'checkbox',
      checked: Boolean(p[key]),
      'aria-label': `${label}: ${p.display_name}`,
      onchange: async () => {
        try {
          await api.streams.updateParticipant(stream.id, p.user_id, { [key]: box.checked });
        } catch (err) {
          box.checked = !box.checked;
          notify(status, err.message, 'error');
        }
      },
    });
    return h('td', {}, box);
  }
  function row(p) {
    return h(
      'tr',
      { dataset: { user: p.user_id } },
      h('th', { scope: 'row' }, p.display_name, h('span', { class: 'hint' }, ` ${p.user_id}`)),
      h('td', {}, p.is_watching ? 'watching' : 'left'),
      toggle(p, 'is_moderator', 'Moderator'),
      toggle(p, 'can_chat', 'May chat'),
      toggle(p, 'can_ask_questions', 'May ask'),
    );
  }
  // Who is watching changes with the viewer count: re-read the list then, at most once at a time.
  const handle = room.handle.bind(room);
  room.handle = (event) => {
    handle(event);
    if (event.type === 'viewers.updated' && !pending) pending = load().finally(() => (pending = null));
  };
  load();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'participants-title' },
    h('h3', { id: 'participants-title' }, 'Participants'),
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Now'), h('th', { scope: 'col' }, 'Moderator'), h('th', { scope: 'col' }, 'Chat'), h('th', { scope: 'col' }, 'Questions'))),
      body,
    ),
    h('button', { type: 'button', class: 'small', onclick: load }, 'Refresh'),
    status,
  );
}

async function statsSection(stream) {
  const [stats, history, questions] = await Promise.all([
    api.streams.stats(stream.id),
    api.chat.since(stream.id, 0).catch(() => ({ items: [] })),
    api.questions.list(stream.id, { sort: 'recent' }).catch(() => []),
  ]);
  const item = (label, value, id) => h('div', { class: 'stat' }, h('dt', {}, label), h('dd', { id }, String(value)));
  return h(
    'section',
    { class: 'card', id: 'final-stats', 'aria-labelledby': 'stats-title' },
    h('h3', { id: 'stats-title' }, stats.is_final ? 'Final stats' : 'Stats'),
    h(
      'dl',
      { class: 'stats-row' },
      item('Duration', formatDuration(stats.duration), 'stat-duration'),
      item('Peak viewers', stats.peak_viewers, 'stat-peak'),
      item('Unique viewers', stats.total_unique_viewers, 'stat-unique'),
      item('Average watch time', formatDuration(stats.average_watch_time), 'stat-avg-watch'),
      item('Chat messages', stats.chat_messages_count, 'stat-messages'),
      item('Questions', stats.questions_count, 'stat-questions'),
      item('Answered', stats.questions_answered_count, 'stat-answered'),
      item('Upvotes', stats.upvotes_count, 'stat-upvotes'),
      item('Engagement', `${stats.engagement_score} / 100`, 'stat-engagement'),
    ),
    h('div', { class: 'grid two' }, statsChart(stats), timelineChart(stream, history.items, questions)),
  );
}

/** How often a recording being prepared is asked about again. */
const RECORDING_POLL_MS = 3_000;
/** Rows of the attendance shown on the page; the CSV has them all. */
const ATTENDANCE_ROWS_SHOWN = 25;

/** The recording of an ended class: its state, a link to watch it, and deleting it. */
class RecordingPanel {
  constructor(stream) {
    this.stream = stream;
    this.timer = null;
    this.closed = false;
    this.body = h('div', { id: 'recording-panel-body' }, h('p', { class: 'hint' }, 'Loading…'));
    this.status = h('p', { class: 'status', role: 'status', hidden: true });
    this.el = h(
      'section',
      { class: 'card', id: 'recording-panel', 'aria-labelledby': 'recording-title' },
      h('h3', { id: 'recording-title' }, 'Recording'),
      this.body,
      this.status,
    );
    this.load();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }

  async load() {
    clearTimeout(this.timer);
    let recording;
    try {
      recording = await api.recordings.get(this.stream.id);
    } catch (err) {
      notify(this.status, err.message, 'error');
      return;
    }
    if (this.closed) return;
    // The video service closes a recording after its reconnect window: ask until it has.
    if (recording.state === 'recording' || recording.state === 'processing') this.timer = setTimeout(() => this.load(), RECORDING_POLL_MS);
    this.render(recording);
  }

  render(recording) {
    const state = recording.state;
    const text = {
      recording: 'Still being written.',
      processing: 'Being prepared: it can be watched in a moment.',
      ready: `Ready: ${formatDuration((recording.duration_ms || 0) / 1000)}. Students can watch it with the class’s chat and questions.`,
      failed: `The recording failed${recording.failure_reason ? `: ${recording.failure_reason}` : ''}.`,
      none: this.stream.is_recording ? 'No recording: nothing was recorded, or it was deleted.' : 'This class was not recorded.',
    }[state];
    const canDelete = state === 'ready' || state === 'failed';
    fill(
      this.body,
      h('p', {}, h('span', { class: `badge recording-${state}`, id: 'recording-state' }, state), ' ', text),
      recording.thumbnail_url ? h('img', { class: 'thumbnail', src: recording.thumbnail_url, alt: 'A still of the recording', width: 320, height: 180 }) : null,
      state === 'ready' ? h('p', {}, h('a', { href: `#/watch/${this.stream.id}`, id: 'watch-recording' }, 'Watch it with the chat and questions')) : null,
      canDelete ? this.deleteControls() : null,
    );
  }

  /** Delete, then a confirmation in the page (no browser dialog: it stays in the flow of the page and readers announce it). */
  deleteControls() {
    const confirmBox = h(
      'div',
      { class: 'confirm', id: 'delete-recording-confirm', role: 'alertdialog', 'aria-labelledby': 'delete-recording-question', hidden: true },
      h('p', { id: 'delete-recording-question' }, 'Delete the recording for everyone? Students will no longer be able to watch it. This cannot be undone.'),
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'button', class: 'danger', id: 'confirm-delete-recording', onclick: () => this.remove() }, 'Delete for good'),
        h(
          'button',
          {
            type: 'button',
            id: 'keep-recording',
            onclick: () => {
              confirmBox.hidden = true;
              ask.hidden = false;
              ask.focus();
            },
          },
          'Keep it',
        ),
      ),
    );
    const ask = h(
      'button',
      {
        type: 'button',
        class: 'danger',
        id: 'delete-recording',
        onclick: () => {
          ask.hidden = true;
          confirmBox.hidden = false;
          confirmBox.querySelector('#keep-recording').focus();
        },
      },
      'Delete recording',
    );
    return h('div', {}, ask, confirmBox);
  }

  async remove() {
    try {
      await api.recordings.remove(this.stream.id);
      notify(this.status, 'The recording is deleted.', 'ok');
    } catch (err) {
      notify(this.status, err.message, 'error');
    }
    await this.load();
  }
}

/** Who came and for how long (GET .../attendance): a summary table, and the CSV to download. */
function attendanceSection(stream) {
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const summary = h('p', { id: 'attendance-summary' }, 'Loading…');
  const body = h('tbody', { id: 'attendance-rows' });
  const more = h('p', { class: 'hint', hidden: true });
  const download = h(
    'button',
    {
      type: 'button',
      class: 'primary',
      id: 'download-attendance',
      onclick: async () => {
        download.disabled = true;
        try {
          const { blob, filename } = await api.attendance.csv(stream.id);
          const url = URL.createObjectURL(blob);
          const link = h('a', { href: url, download: filename, class: 'offscreen' }, filename);
          document.body.append(link);
          link.click();
          link.remove();
          // The download has its own copy once started.
          setTimeout(() => URL.revokeObjectURL(url), 60_000);
          notify(status, `Downloaded ${filename}.`, 'ok');
        } catch (err) {
          notify(status, err.message, 'error');
        }
        download.disabled = false;
      },
    },
    'Download attendance (CSV)',
  );
  const percent = (share) => `${Math.round((share || 0) * 100)} %`;
  const count = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;
  (async () => {
    try {
      const report = await api.attendance.get(stream.id);
      const t = report.totals;
      summary.textContent =
        `${t.attended} attended · ${t.enrolled - t.enrolled_absent} of ${t.enrolled} enrolled students came · ` +
        `${formatDuration(t.total_watch_time)} watched in all · ${count(t.chat_messages_count, 'message')}, ${count(t.questions_count, 'question')}, ${count(t.upvotes_count, 'upvote')}`;
      const rows = report.rows.slice(0, ATTENDANCE_ROWS_SHOWN);
      fill(
        body,
        rows.length
          ? rows.map((r) =>
              h(
                'tr',
                { dataset: { user: r.user_id } },
                h('th', { scope: 'row' }, r.display_name || r.user_id, r.display_name ? h('span', { class: 'hint' }, ` ${r.user_id}`) : null),
                h('td', {}, r.joined_at ? formatTime(r.joined_at) : r.enrolled ? 'never came' : '—'),
                h('td', {}, formatDuration(r.watch_time)),
                h('td', {}, percent(r.watched_share)),
                h('td', {}, String(r.chat_messages_count)),
                h('td', {}, String(r.questions_count)),
                h('td', {}, String(r.upvotes_count)),
              ),
            )
          : h('tr', {}, h('td', { colspan: 7, class: 'hint' }, 'Nobody took part.')),
      );
      more.hidden = report.rows.length <= rows.length;
      more.textContent = `And ${report.rows.length - rows.length} more: the CSV has everyone.`;
    } catch (err) {
      summary.textContent = '';
      notify(status, err.message, 'error');
    }
  })();
  const col = (text) => h('th', { scope: 'col' }, text);
  return h(
    'section',
    { class: 'card', id: 'attendance', 'aria-labelledby': 'attendance-title' },
    h('h3', { id: 'attendance-title' }, 'Attendance'),
    summary,
    h('div', { class: 'table-scroll' }, h('table', {}, h('thead', {}, h('tr', {}, col('Name'), col('Joined'), col('Watched'), col('Share'), col('Messages'), col('Questions'), col('Upvotes'))), body)),
    more,
    h('div', { class: 'row' }, download),
    status,
  );
}
