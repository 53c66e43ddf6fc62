// A live class as one person sees it: chat, questions, pinned message, highlighted
// question, viewer counts and the encoder's state, kept current by the WebSocket
// events. The teacher's pages and the student view build on it; moderators get the
// moderation buttons.

import * as api from './api.js';
import { LiveSocket } from './live.js';
import { h, fill, field, notify } from './ui.js';

/** Fields of question events that describe the receiver, who is unknown to the broadcaster. */
const PERSONAL = ['is_mine', 'has_upvoted'];

export class Room {
  constructor(ctx, stream, { onStatus, onIngest } = {}) {
    this.ctx = ctx;
    this.stream = stream;
    this.me = ctx.session.user_id;
    this.onStatus = onStatus || (() => {});
    this.onIngest = onIngest || (() => {});
    this.messages = new Map();
    this.questions = new Map();
    this.sort = 'top';
    this.filter = 'all';
    this.timers = [];
    this.drafts = new Map();
    this.el = {};
  }

  get finished() {
    return this.stream.status === 'ended' || this.stream.status === 'cancelled';
  }

  get moderator() {
    const s = this.stream;
    return s.instructor_id === this.me || this.ctx.session.role === 'admin' || (s.moderator_ids || []).includes(this.me);
  }

  /** Reads chat and questions, then opens the socket. */
  async open() {
    this.socket = new LiveSocket({
      wsUrl: this.ctx.config.ws_url,
      token: this.ctx.session.token,
      streamId: this.stream.id,
      onEvent: (e) => this.handle(e),
      onState: (state, detail) => this.connectionState(state, detail),
      onReconnect: () => this.reload(),
    });
    await this.reload();
    if (!this.finished) this.socket.start();
  }

  close() {
    if (this.socket) this.socket.stop();
    for (const t of this.timers) clearInterval(t);
  }

  /** A new socket: one opened before the class went live does not count its viewer. */
  reconnect() {
    if (!this.socket || this.finished) return;
    this.socket.stop();
    this.socket.start();
  }

  /** Re-reads what the events only update: the stream, new chat since the last seq, questions. */
  async reload() {
    try {
      const [stream, history] = await Promise.all([api.streams.get(this.stream.id), api.chat.since(this.stream.id, this.socket.lastSeq)]);
      this.mergeStream(stream);
      for (const m of history.items) this.addMessage(m);
      this.socket.lastSeq = Math.max(this.socket.lastSeq, history.last_seq);
      await this.reloadQuestions();
    } catch (err) {
      if (this.el.status) notify(this.el.status, err.message, 'error');
    }
  }

  async reloadQuestions() {
    const lists = [api.questions.list(this.stream.id, { sort: 'recent' })];
    if (this.moderator) lists.push(api.questions.list(this.stream.id, { sort: 'recent', status: 'pending' }));
    const [items, pending = []] = await Promise.all(lists);
    for (const q of [...items, ...pending]) this.questions.set(q.id, q);
    this.renderQuestions();
  }

  connectionState(state, detail) {
    if (!this.el.connection) return;
    const text = {
      connecting: 'Connecting…',
      open: 'Live updates on',
      reconnecting: 'Connection lost, reconnecting…',
      closed: 'Live updates off',
      refused: `Live updates refused (${detail})`,
    }[state];
    this.el.connection.textContent = text;
    this.el.connection.dataset.state = state;
  }

  handle(event) {
    const d = event.data || {};
    switch (event.type) {
      case 'stream.status':
        this.mergeStream(d);
        break;
      case 'stream.updated':
        this.mergeStream(d);
        break;
      case 'viewers.updated':
        this.mergeStream(d);
        break;
      case 'stream.ingest':
        this.mergeStream({
          ingest: { ...this.stream.ingest, state: d.state, reconnect_deadline: d.reconnect_deadline },
          live_from_encoder: d.live_from_encoder,
        });
        break;
      case 'chat.message':
        this.addMessage(d);
        break;
      case 'chat.hidden': {
        const m = this.messages.get(d.seq);
        if (this.moderator && m) m.hidden = true;
        else this.messages.delete(d.seq);
        this.renderChat();
        break;
      }
      case 'question.created':
      case 'question.updated': {
        const data = { ...d };
        for (const k of PERSONAL) delete data[k];
        this.questions.set(d.id, { ...(this.questions.get(d.id) || {}), ...data });
        this.renderQuestions();
        break;
      }
      case 'error':
        if (this.el.status) notify(this.el.status, d.message || d.code || 'error', 'error');
        break;
      default:
    }
  }

  mergeStream(data) {
    const before = this.moderator;
    const status = this.stream.status;
    const ingest = this.stream.ingest && this.stream.ingest.state;
    Object.assign(this.stream, data);
    if (this.stream.status !== status) {
      // A finished class closes its sockets and refuses new ones: stop reconnecting.
      if (this.finished && this.socket) this.socket.stop();
      this.onStatus(this.stream.status);
    }
    if (this.stream.ingest && this.stream.ingest.state !== ingest) this.onIngest(this.stream.ingest);
    this.renderViewers();
    this.renderBanners();
    this.renderSlowMode();
    if (before !== this.moderator) {
      this.renderChat();
      this.renderQuestions();
    }
  }

  addMessage(m) {
    this.socket.markSeen(m.seq);
    this.messages.set(m.seq, m);
    this.renderChat();
  }

  // ---- viewers

  viewersPanel() {
    const stat = (id, label) => h('div', { class: 'stat' }, h('dt', {}, label), h('dd', { id }, '0'));
    this.el.viewers = h(
      'dl',
      { class: 'stats-row', 'aria-label': 'Viewers', 'aria-live': 'polite' },
      stat('viewer-count', 'Watching now'),
      this.moderator ? stat('peak-viewers', 'Peak') : null,
      this.moderator ? stat('unique-viewers', 'Unique viewers') : null,
    );
    this.renderViewers();
    return this.el.viewers;
  }

  renderViewers() {
    const v = this.el.viewers;
    if (!v) return;
    const s = this.stream;
    const set = (id, n) => {
      const el = v.querySelector(`#${id}`);
      if (el) el.textContent = String(n ?? 0);
    };
    set('viewer-count', s.viewer_count);
    set('peak-viewers', Math.max(s.max_viewers || 0, s.viewer_count || 0));
    set('unique-viewers', s.unique_viewers);
  }

  // ---- pinned message, highlighted question

  banners() {
    this.el.pinned = h('div', { id: 'pinned', class: 'banner', role: 'status', hidden: true });
    this.el.highlighted = h('div', { id: 'highlighted', class: 'banner highlight', role: 'status', hidden: true });
    this.renderBanners();
    return [this.el.pinned, this.el.highlighted];
  }

  renderBanners() {
    const { pinned, highlighted } = this.el;
    if (!pinned) return;
    const seq = this.stream.pinned_message_seq;
    const m = seq ? this.messages.get(seq) : null;
    pinned.hidden = !m;
    if (m) {
      fill(
        pinned,
        h('strong', {}, 'Pinned:'),
        h('span', {}, h('span', { class: 'author' }, m.display_name), ': ', h('span', { class: 'text' }, m.message)),
        this.moderator ? h('button', { class: 'small', onclick: () => this.act(api.chat.unpin(this.stream.id)) }, 'Unpin') : null,
      );
    }
    const qid = this.stream.highlighted_question_id;
    const q = qid ? this.questions.get(qid) : null;
    highlighted.hidden = !q;
    if (q) {
      fill(
        highlighted,
        h('strong', {}, 'Now answering:'),
        h('span', { class: 'text' }, q.text),
        this.moderator ? h('button', { class: 'small', onclick: () => this.act(api.questions.clearHighlight(this.stream.id)) }, 'Clear') : null,
      );
    }
  }

  /** Runs an API call, showing its error in the room's status line. */
  async act(promise) {
    try {
      const result = await promise;
      if (result && result.instructor_id) this.mergeStream(result);
      return result;
    } catch (err) {
      if (this.el.status) notify(this.el.status, err.message, 'error');
      return null;
    }
  }

  // ---- chat

  chatPanel() {
    this.el.chat = h('ol', { id: 'chat-list', class: 'chat', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
    const input = h('input', { maxlength: 500, autocomplete: 'off', required: true });
    const announce = this.moderator ? h('input', { type: 'checkbox' }) : null;
    const send = h('button', { type: 'submit', id: 'chat-send' }, 'Send');
    this.el.slow = h('p', { id: 'slow-mode', class: 'hint', 'aria-live': 'polite' });
    const error = h('p', { class: 'field-error', role: 'alert', hidden: true, id: 'chat-error' });
    this.el.chatSend = send;
    const form = h(
      'form',
      {
        class: 'composer',
        id: 'chat-form',
        onsubmit: async (e) => {
          e.preventDefault();
          const text = input.value.trim();
          if (!text) return;
          notify(error, '');
          try {
            const m = await api.chat.send(this.stream.id, text, announce && announce.checked ? 'announcement' : undefined);
            input.value = '';
            if (announce) announce.checked = false;
            this.addMessage(m);
          } catch (err) {
            if (err.status === 429 && err.retryAfter) this.countdown(err.retryAfter);
            else notify(error, (err.details[0] && err.details[0].message) || err.message, 'error');
          }
          input.focus();
        },
      },
      field('Message', input, { name: 'message' }),
      announce ? field('Announcement', announce, { name: 'message_type' }) : null,
      send,
    );
    this.renderChat();
    this.renderSlowMode();
    return h('section', { class: 'card chat-card', 'aria-labelledby': 'chat-title' }, h('h3', { id: 'chat-title' }, 'Chat'), this.el.chat, form, error, this.el.slow);
  }

  /** Slow mode: the 429's Retry-After, counted down; sending is disabled meanwhile. */
  countdown(seconds) {
    let left = seconds;
    const tick = () => {
      if (left <= 0) {
        clearInterval(timer);
        this.el.chatSend.disabled = false;
        this.renderSlowMode();
        return;
      }
      this.el.slow.textContent = `Slow mode: you can send again in ${left} s`;
      this.el.slow.dataset.waiting = 'true';
      left -= 1;
    };
    this.el.chatSend.disabled = true;
    const timer = setInterval(tick, 1000);
    this.timers.push(timer);
    tick();
  }

  renderSlowMode() {
    const slow = this.el.slow;
    if (!slow || slow.dataset.waiting === 'true' && this.el.chatSend.disabled) return;
    delete slow.dataset.waiting;
    const secs = this.stream.chat_slow_mode_seconds || 0;
    slow.textContent = secs ? `Slow mode is on: one message every ${secs} s.` : '';
  }

  renderChat() {
    this.keepFocus(() => this.renderChatList());
  }

  renderChatList() {
    const list = this.el.chat;
    if (!list) return;
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    const seqs = [...this.messages.keys()].sort((a, b) => a - b);
    fill(
      list,
      seqs.map((seq) => {
        const m = this.messages.get(seq);
        return h(
          'li',
          { dataset: { seq: String(seq) }, class: [m.message_type === 'announcement' ? 'announcement' : '', m.hidden ? 'hidden-msg' : ''].join(' ').trim() },
          h('span', { class: 'author' }, m.display_name, m.role === 'teacher' ? ' (teacher)' : ''),
          ' ',
          h('span', { class: 'text' }, m.message),
          m.hidden ? h('span', { class: 'badge' }, 'hidden') : null,
          h('time', { datetime: m.created_at }, new Date(m.created_at).toLocaleTimeString()),
          this.moderator && !m.hidden
            ? h(
                'span',
                { class: 'actions' },
                h('button', { class: 'small', 'aria-label': `Hide message ${seq}`, onclick: () => this.act(api.chat.hide(this.stream.id, seq)) }, 'Hide'),
                h('button', { class: 'small', 'aria-label': `Pin message ${seq}`, onclick: () => this.act(api.chat.pin(this.stream.id, seq)) }, 'Pin'),
              )
            : null,
        );
      }),
    );
    if (atBottom) list.scrollTop = list.scrollHeight;
    this.renderBanners();
  }

  // ---- questions

  questionsPanel({ canAsk }) {
    this.el.questions = h('ol', { id: 'question-list', class: 'questions', 'aria-live': 'polite', 'aria-label': 'Questions' });
    const sort = h('select', { onchange: () => ((this.sort = sort.value), this.renderQuestions()) }, h('option', { value: 'top' }, 'Top'), h('option', { value: 'recent' }, 'Recent'));
    const filter = h(
      'select',
      { onchange: () => ((this.filter = filter.value), this.renderQuestions()) },
      h('option', { value: 'all' }, 'All'),
      h('option', { value: 'unanswered' }, 'Unanswered'),
      h('option', { value: 'answered' }, 'Answered'),
    );
    sort.id = 'question-sort';
    const tools = h('div', { class: 'row' }, field('Sort', sort), field('Show', filter));
    let ask = null;
    if (canAsk) {
      const text = h('textarea', { rows: 2, maxlength: 1000, required: true });
      const anonymous = h('input', { type: 'checkbox' });
      const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
      ask = h(
        'form',
        {
          id: 'ask-form',
          onsubmit: async (e) => {
            e.preventDefault();
            notify(error, '');
            try {
              const q = await api.questions.ask(this.stream.id, text.value.trim(), anonymous.checked);
              text.value = '';
              this.questions.set(q.id, { ...(this.questions.get(q.id) || {}), ...q });
              this.renderQuestions();
            } catch (err) {
              notify(error, (err.details[0] && err.details[0].message) || err.message, 'error');
            }
          },
        },
        field('Your question', text, { name: 'text' }),
        field('Ask anonymously', anonymous, { name: 'anonymous' }),
        h('button', { type: 'submit', id: 'ask-send' }, 'Ask'),
        error,
      );
    }
    this.el.pending = this.moderator ? h('ol', { id: 'pending-list', class: 'questions', 'aria-label': 'Waiting for approval' }) : null;
    this.renderQuestions();
    return h(
      'section',
      { class: 'card', 'aria-labelledby': 'qa-title' },
      h('h3', { id: 'qa-title' }, 'Questions'),
      ask,
      tools,
      this.el.questions,
      this.el.pending ? [h('h4', {}, 'Approval queue'), this.el.pending] : null,
    );
  }

  visibleQuestions() {
    // Moderators have the approval queue; a student sees their own question waiting there.
    const waiting = (q) => q.status === 'pending' && q.is_mine && !this.moderator;
    const all = [...this.questions.values()].filter((q) => !q.hidden && (q.status === 'open' || q.status === 'answered' || waiting(q)));
    const shown = all.filter((q) => this.filter === 'all' || (this.filter === 'answered') === (q.status === 'answered'));
    const byTime = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0);
    if (this.sort === 'top') shown.sort((a, b) => (b.upvotes || 0) - (a.upvotes || 0) || byTime(a, b));
    else shown.sort((a, b) => byTime(b, a));
    return shown;
  }

  /** Re-renders a list, keeping the focused control (by its data-key) focused. */
  keepFocus(render) {
    const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    render();
    if (key) {
      const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
  }

  renderQuestions() {
    this.keepFocus(() => this.renderQuestionLists());
  }

  renderQuestionLists() {
    if (this.el.questions) fill(this.el.questions, this.visibleQuestions().map((q) => this.questionItem(q)));
    if (this.el.pending) {
      const pending = [...this.questions.values()].filter((q) => q.status === 'pending' && !q.hidden);
      fill(this.el.pending, pending.length ? pending.map((q) => this.questionItem(q)) : h('li', { class: 'hint' }, 'Nothing waiting.'));
    }
    this.renderBanners();
  }

  questionItem(q) {
    const sid = this.stream.id;
    const asker = !q.display_name ? 'Anonymous' : q.anonymous ? `${q.display_name} (anonymous)` : q.display_name;
    const state = q.status === 'pending' ? 'waiting for approval' : q.status;
    const actions = [];
    if (!this.moderator && !q.is_mine && q.status !== 'pending') {
      actions.push(
        h(
          'button',
          {
            class: 'small upvote',
            'aria-pressed': q.has_upvoted ? 'true' : 'false',
            'aria-label': `${q.has_upvoted ? 'Remove upvote from' : 'Upvote'}: ${q.text}`,
            onclick: async () => {
              const updated = await this.act(q.has_upvoted ? api.questions.unvote(sid, q.id) : api.questions.upvote(sid, q.id));
              if (updated) {
                this.questions.set(q.id, { ...this.questions.get(q.id), ...updated });
                this.renderQuestions();
              }
            },
          },
          q.has_upvoted ? 'Upvoted' : 'Upvote',
        ),
      );
    }
    let answerForm = null;
    if (this.moderator) {
      const update = async (promise) => {
        const updated = await this.act(promise);
        if (updated && updated.id === q.id) {
          this.questions.set(q.id, { ...this.questions.get(q.id), ...updated });
          this.renderQuestions();
        }
      };
      if (q.status === 'pending') {
        actions.push(h('button', { class: 'small', 'aria-label': `Approve: ${q.text}`, onclick: () => update(api.questions.act(sid, q.id, 'approve')) }, 'Approve'));
      } else {
        actions.push(h('button', { class: 'small', 'aria-label': `Highlight: ${q.text}`, onclick: () => this.act(api.questions.act(sid, q.id, 'highlight')) }, 'Highlight'));
      }
      actions.push(h('button', { class: 'small', 'aria-label': `Dismiss: ${q.text}`, onclick: () => update(api.questions.act(sid, q.id, 'dismiss')) }, 'Dismiss'));
      actions.push(h('button', { class: 'small', 'aria-label': `Hide question: ${q.text}`, onclick: () => update(api.questions.act(sid, q.id, 'hide')) }, 'Hide'));
      if (q.status !== 'pending') {
        const answer = h('input', { required: true, maxlength: 5000, value: this.drafts.get(q.id) ?? q.answer ?? '', dataset: { key: `${q.id}:answer` } });
        answer.addEventListener('input', () => this.drafts.set(q.id, answer.value));
        answerForm = h(
          'form',
          {
            class: 'answer-form',
            onsubmit: (e) => {
              e.preventDefault();
              this.drafts.delete(q.id);
              update(api.questions.answer(sid, q.id, answer.value.trim()));
            },
          },
          field('Answer', answer, { name: 'answer' }),
          h('button', { type: 'submit', class: 'small' }, q.answer ? 'Update answer' : 'Answer'),
        );
      }
    }
    return h(
      'li',
      { dataset: { id: q.id, status: q.status }, class: q.id === this.stream.highlighted_question_id ? 'is-highlighted' : null },
      h('p', { class: 'q-text' }, q.text),
      h(
        'p',
        { class: 'meta' },
        h('span', { class: 'upvotes' }, `${q.upvotes || 0} upvote${q.upvotes === 1 ? '' : 's'}`),
        ` · ${asker}${q.is_mine ? ' (you)' : ''} · ${state}`,
      ),
      q.answer ? h('p', { class: 'answer' }, h('strong', {}, 'Answer: '), q.answer) : null,
      actions.length ? h('div', { class: 'actions' }, actions) : null,
      answerForm,
    );
  }
}

