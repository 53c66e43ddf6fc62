// The HTTP API of the livestream backend, one function per route, plus the two
// endpoints only the local stack has (/local/token, /local/config).

/** An API error: HTTP status, stable `code`, `details` per field, `retryAfter` (s) on 429. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || (body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.details = error.details || [];
    this.retryAfter = retryAfter;
  }
}

let token = null;

/** Sets the bearer token every later call carries. */
export function setToken(value) {
  token = value;
}

async function call(method, path, body) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const retry = Number(response.headers.get('retry-after'));
    throw new ApiError(response.status, json, Number.isFinite(retry) && retry > 0 ? retry : null);
  }
  return json;
}

const enc = encodeURIComponent;
const S = (id) => `/api/livestream/${enc(id)}`;
const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
};

/** Every page of a list endpoint. */
async function all(path, params = {}) {
  const items = [];
  let cursor;
  do {
    const page = await call('GET', path + query({ ...params, limit: 100, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export const local = {
  token: (user_id, role, display_name) => call('POST', '/local/token', { user_id, role, display_name }),
  config: () => call('GET', '/local/config'),
};

export const courses = {
  mine: () => all('/api/courses/mine'),
  create: (body) => call('POST', '/api/courses', body),
  enroll: (courseId, user_id) => call('POST', `/api/courses/${enc(courseId)}/enrollments`, { user_id }),
};

export const streams = {
  create: (body) => call('POST', '/api/livestream/', body),
  live: () => all('/api/livestream/active'),
  mine: () => all('/api/livestream/mine'),
  get: (id) => call('GET', S(id)),
  update: (id, body) => call('PUT', S(id), body),
  start: (id) => call('POST', `${S(id)}/start`),
  stop: (id) => call('POST', `${S(id)}/stop`),
  cancel: (id) => call('POST', `${S(id)}/cancel`),
  settings: (id, body) => call('PUT', `${S(id)}/settings`, body),
  stats: (id) => call('GET', `${S(id)}/stats`),
  join: (id) => call('POST', `${S(id)}/join`),
  leave: (id) => call('POST', `${S(id)}/leave`),
  participants: (id) => all(`${S(id)}/participants`),
  updateParticipant: (id, userId, body) => call('PUT', `${S(id)}/participants/${enc(userId)}`, body),
  /** The instructor's ingest URL, stream key, encoder settings, state and health. */
  ingest: (id) => call('GET', `${S(id)}/ingest`),
  /** A new stream key: the old one stops working at once. */
  rotateKey: (id) => call('POST', `${S(id)}/stream-key`),
  /** The playlist to play; a private stream's carries a token that expires. */
  playback: (id) => call('GET', `${S(id)}/playback`),
};

export const recordings = {
  /** The recording's `state` and, when there is something to play, its `playback_url` (with a token that expires). */
  get: (id) => call('GET', `${S(id)}/recording`),
  /** Deletes the recording for everyone (the instructor, once it is ready or failed). */
  remove: (id) => call('DELETE', `${S(id)}/recording`),
};

export const replay = {
  /** One page of the class's events between two offsets (ms) into its recording, both included. */
  page: (id, { from_ms, to_ms, cursor, limit = 500 }) => call('GET', `${S(id)}/replay${query({ from_ms, to_ms, cursor, limit })}`),
  /** Every event between two offsets, through all pages. */
  async between(id, from_ms, to_ms) {
    const items = [];
    let cursor;
    do {
      const page = await replay.page(id, { from_ms, to_ms, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  },
};

export const attendance = {
  get: (id) => call('GET', `${S(id)}/attendance`),
  /** The report as a CSV file: `{ blob, filename }` (the name the API gives it). */
  async csv(id) {
    const response = await fetch(`${S(id)}/attendance`, { headers: { accept: 'text/csv', authorization: `Bearer ${token}` } });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, body, null);
    }
    const disposition = response.headers.get('content-disposition') || '';
    const named = /filename="?([^";]+)"?/.exec(disposition);
    return { blob: await response.blob(), filename: named ? named[1] : `attendance-${id}.csv` };
  },
};

export const chat = {
  /** Every message after `since` that the caller may see, and the `last_seq` to resume from. */
  async since(id, since = 0) {
    const items = [];
    let cursor;
    let last = since;
    do {
      const page = await call('GET', `${S(id)}/chat${query({ since, limit: 100, cursor })}`);
      items.push(...page.items);
      last = Math.max(last, page.last_seq);
      cursor = page.next_cursor;
    } while (cursor);
    return { items, last_seq: last };
  },
  send: (id, message, message_type) => call('POST', `${S(id)}/chat`, { message, message_type }),
  hide: (id, seq) => call('POST', `${S(id)}/chat/${seq}/hide`),
  pin: (id, seq) => call('POST', `${S(id)}/chat/${seq}/pin`),
  unpin: (id) => call('DELETE', `${S(id)}/chat/pin`),
};

export const questions = {
  list: (id, { sort = 'top', filter = 'all', status } = {}) => all(`${S(id)}/questions`, { sort, filter, status }),
  ask: (id, text, anonymous) => call('POST', `${S(id)}/questions`, { text, anonymous }),
  upvote: (id, qid) => call('POST', `${S(id)}/questions/${enc(qid)}/upvote`),
  unvote: (id, qid) => call('DELETE', `${S(id)}/questions/${enc(qid)}/upvote`),
  answer: (id, qid, answer) => call('PUT', `${S(id)}/questions/${enc(qid)}/answer`, { answer }),
  act: (id, qid, action) => call('POST', `${S(id)}/questions/${enc(qid)}/${action}`),
  clearHighlight: (id) => call('DELETE', `${S(id)}/questions/highlight`),
};
