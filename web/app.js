// The console's shell: sign-in, the session (per tab, so three windows can be three
// people), and hash routes to the teacher console and the student view.

import * as api from './api.js';
import { h, fill, field, notify } from './ui.js';
import { consoleView, streamView } from './teacher.js';
import { liveListView, watchView } from './student.js';

const SESSION_KEY = 'livestream.session';
const main = document.getElementById('app');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
let cleanup = null;
let config = null;

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

/** The claims of a JWT, unverified: the page only needs to know whom it shows. */
function claims(token) {
  const part = token.split('.')[1] || '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

function roleOf(c) {
  const groups = c['cognito:groups'] || [];
  return c.role || c['custom:role'] || ['admin', 'teacher', 'student'].find((r) => groups.includes(r)) || 'student';
}

function useToken(token) {
  const c = claims(token);
  const session = { token, user_id: c.sub, role: roleOf(c), name: c.name || c.sub };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
  location.hash = '#/';
  route();
}

function signInView() {
  const status = h('p', { class: 'status', role: 'status', hidden: true });
  const user = h('input', { required: true, autocomplete: 'username', list: 'known-users', value: 'teacher-1' });
  const role = h('select', {}, ['teacher', 'student', 'admin'].map((r) => h('option', { value: r }, r)));
  const name = h('input', { autocomplete: 'name', placeholder: 'shown in chat' });
  user.addEventListener('input', () => {
    if (/^student/.test(user.value)) role.value = 'student';
    if (/^teacher/.test(user.value)) role.value = 'teacher';
  });
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'signin-title',
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const { token } = await api.local.token(user.value.trim(), role.value, name.value.trim() || undefined);
          useToken(token);
          route();
        } catch (err) {
          notify(status, err.message, 'error');
        }
      },
    },
    h('h2', { id: 'signin-title' }, 'Sign in (local stack)'),
    h('p', { class: 'hint' }, 'Pick any user: the local stack signs a dev token for them.'),
    h('datalist', { id: 'known-users' }, ['teacher-1', 'student-1', 'student-2', 'admin-1'].map((u) => h('option', { value: u }))),
    field('User id', user, { name: 'user_id' }),
    field('Role', role, { name: 'role' }),
    field('Display name (optional)', name, { name: 'display_name' }),
    h('button', { type: 'submit', id: 'sign-in' }, 'Sign in'),
  );
  const jwt = h('textarea', { rows: 3, required: true, spellcheck: false });
  const paste = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'jwt-title',
      onsubmit: (e) => {
        e.preventDefault();
        try {
          useToken(jwt.value.trim());
          route();
        } catch {
          notify(status, 'That is not a JWT.', 'error');
        }
      },
    },
    h('h2', { id: 'jwt-title' }, 'Or use a token'),
    h('p', { class: 'hint' }, 'Paste a JWT from your identity provider (it must be one this API accepts).'),
    field('JWT', jwt, { name: 'jwt' }),
    h('button', { type: 'submit' }, 'Use token'),
  );
  fill(main, h('div', { class: 'grid two' }, form, paste), status);
  user.focus();
}

function navLink(href, text) {
  const current = location.hash === href || (href !== '#/' && location.hash.startsWith(href));
  return h('a', { href, 'aria-current': current ? 'page' : null }, text);
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const session = loadSession();
  if (!session) {
    api.setToken(null);
    fill(who);
    fill(nav);
    signInView();
    return;
  }
  api.setToken(session.token);
  if (!config) config = await api.local.config().catch(() => ({ ws_url: `ws://${location.hostname}:3001` }));
  fill(
    who,
    h('span', { id: 'signed-in-as' }, `${session.name} (${session.role})`),
    h('button', { class: 'link', onclick: signOut }, 'Sign out'),
  );
  const teaches = session.role === 'teacher' || session.role === 'admin';
  fill(nav, teaches ? navLink('#/console', 'Teacher console') : null, navLink('#/watch', 'Live now'));
  const ctx = { session, config, main };
  const [, page, id] = (location.hash || '#/').slice(1).split('/');
  if (page === 'streams' && id) cleanup = await streamView(ctx, decodeURIComponent(id));
  else if (page === 'watch' && id) cleanup = await watchView(ctx, decodeURIComponent(id));
  else if (page === 'watch' || !teaches) cleanup = await liveListView(ctx);
  else cleanup = await consoleView(ctx);
  const heading = main.querySelector('h2');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', route);
route();
