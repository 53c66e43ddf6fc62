// Small DOM helpers shared by the views.

/** Builds an element: h('button', { class: 'x', onclick }, 'text', child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldIds = 0;

/** A labelled form control with a slot for the API's error on that field. */
export function field(label, control, { hint, name } = {}) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  if (name) control.name = name;
  const error = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, error.id].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field', dataset: { field: control.name || '' } });
  if (control.type === 'checkbox') {
    wrap.classList.add('check');
    wrap.append(control, h('label', { for: id }, label), hintEl || '', error);
  } else {
    wrap.append(h('label', { for: id }, label), control, hintEl || '', error);
  }
  return wrap;
}

/** Shows an API error: per-field messages next to their fields, the rest in `status`. */
export function showErrors(form, err, status) {
  clearErrors(form);
  const unplaced = [];
  for (const detail of err.details || []) {
    const wrap = form.querySelector(`.field[data-field="${CSS.escape(detail.field)}"]`);
    if (!wrap) {
      unplaced.push(`${detail.field}: ${detail.message}`);
      continue;
    }
    const msg = wrap.querySelector('.field-error');
    msg.textContent = detail.message;
    msg.hidden = false;
    const control = wrap.querySelector('input, select, textarea');
    control.setAttribute('aria-invalid', 'true');
  }
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
  if (status) {
    const text = (err.details || []).length && !unplaced.length ? 'Please correct the fields marked.' : [err.message, ...unplaced].join(' ');
    notify(status, text, 'error');
  }
}

export function clearErrors(form) {
  for (const msg of form.querySelectorAll('.field-error')) {
    msg.hidden = true;
    msg.textContent = '';
  }
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

/** Writes a message into a live region. */
export function notify(el, text, kind = 'info') {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

export function formatTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString();
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const m = Math.floor(s / 60);
  const hh = Math.floor(m / 60);
  return hh ? `${hh} h ${m % 60} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

/** A local datetime-local input value as an RFC 3339 UTC time. */
export function toRfc3339(localValue) {
  if (!localValue) return undefined;
  const d = new Date(localValue);
  return Number.isNaN(d.getTime()) ? localValue : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An RFC 3339 time as a datetime-local input value. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
