// The student view: live streams I may watch, and one class: its video, chat,
// questions, pinned message, highlighted question, viewer count; once it has ended, its
// recording with the chat and questions replayed in time (replay.js).

import * as api from './api.js';
import { Room } from './room.js';
import { ClassVideo } from './video.js';
import { replayView } from './replay.js';
import { h, fill, notify, formatTime } from './ui.js';

const LIST_REFRESH_MS = 15_000;

/** `#/watch`: the live streams this user may watch. */
export async function liveListView(ctx) {
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const list = h('ul', { id: 'live-streams', class: 'plain cards' });
  const refresh = h('button', { type: 'button', id: 'refresh-live', onclick: () => load() }, 'Refresh');
  fill(ctx.main, h('h2', {}, 'Live now'), h('div', { class: 'row' }, refresh), status, list);
  async function load() {
    try {
      const streams = await api.streams.live();
      const live = streams.filter((s) => s.status === 'live');
      fill(
        list,
        live.length
          ? live.map((s) =>
              h(
                'li',
                { class: 'card', dataset: { id: s.id } },
                h('h3', {}, s.title),
                h('p', { class: 'hint' }, s.description),
                h('p', {}, `${s.viewer_count} watching · started ${formatTime(s.started_at)}`, s.is_public ? '' : ' · private'),
                h('a', { class: 'button primary', href: `#/watch/${s.id}`, 'aria-label': `Join ${s.title}` }, 'Join'),
              ),
            )
          : h('li', { class: 'hint' }, 'No class is live right now.'),
      );
    } catch (err) {
      notify(status, err.message, 'error');
    }
  }
  await load();
  // No socket tells about streams going live (sockets belong to one stream): look again now and then.
  const timer = setInterval(load, LIST_REFRESH_MS);
  return () => clearInterval(timer);
}

/** `#/watch/<id>`: joins the class and follows it live: its video, chat and questions. */
export async function watchView(ctx, id) {
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  let stream;
  try {
    stream = await api.streams.get(id);
    if (stream.status === 'live') await api.streams.join(id);
  } catch (err) {
    fill(ctx.main, h('h2', {}, 'Class'), h('p', { class: 'status', 'data-kind': 'error' }, err.message), h('a', { href: '#/watch' }, '← Live now'));
    return null;
  }
  if (stream.status === 'ended') return replayView(ctx, stream);
  const badge = h('span', { class: `badge status-${stream.status}`, id: 'stream-status' }, stream.status);
  const ended = h('p', { id: 'ended-note', class: 'banner', role: 'status' });
  const note = (s) => {
    ended.hidden = s === 'live';
    fill(
      ended,
      {
        scheduled: 'The class has not started yet: it starts when the teacher does.',
        ended: 'The class has ended. Thank you for joining!',
      }[s] || `The class is ${s}.`,
      // The same address now shows the class again, recording and chat in step.
      s === 'ended' ? h('button', { type: 'button', class: 'link', id: 'watch-again', onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange')) }, 'Watch it again') : null,
    );
  };
  note(stream.status);
  const video = new ClassVideo(stream);
  const room = new Room(ctx, stream, {
    onStatus: (s) => {
      badge.textContent = s;
      badge.className = `badge status-${s}`;
      note(s);
      video.update({ status: s });
      if (s === 'live') {
        // Went live with the page open: join now, and count this page's socket.
        api.streams.join(id).catch((err) => notify(status, err.message, 'error'));
        room.reconnect();
      }
    },
    onIngest: (ingest) => video.update({ ingest }),
  });
  const leave = h(
    'button',
    {
      type: 'button',
      id: 'leave',
      onclick: async () => {
        room.close();
        video.close();
        await api.streams.leave(id).catch(() => null);
        location.hash = '#/watch';
      },
    },
    'Leave',
  );
  fill(
    ctx.main,
    h('p', {}, h('a', { href: '#/watch' }, '← Live now')),
    h('h2', {}, stream.title, ' ', badge),
    h('p', { class: 'hint' }, stream.description),
    h('section', { class: 'card video-card', 'aria-label': 'Video' }, video.el),
    h('div', { class: 'row' }, room.viewersPanel(), h('p', { class: 'hint', id: 'connection', role: 'status' }), leave),
    status,
    ended,
    room.banners(),
    h('div', { class: 'grid two' }, room.chatPanel(), room.questionsPanel({ canAsk: true })),
  );
  room.el.status = status;
  room.el.connection = ctx.main.querySelector('#connection');
  await room.open();
  return () => {
    room.close();
    video.close();
  };
}
