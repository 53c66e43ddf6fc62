// Inline SVG charts of a finished class: its totals, and its chat and questions over time.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function figure(id, caption, chart) {
  const fig = document.createElement('figure');
  fig.id = id;
  fig.className = 'chart';
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(chart, cap);
  return fig;
}

/** Horizontal bars, one per total. */
export function statsChart(stats) {
  const rows = [
    ['Peak viewers', stats.peak_viewers],
    ['Unique viewers', stats.total_unique_viewers],
    ['Chat messages', stats.chat_messages_count],
    ['Questions', stats.questions_count],
    ['Answered', stats.questions_answered_count],
    ['Upvotes', stats.upvotes_count],
    ['Engagement (of 100)', stats.engagement_score],
  ];
  const max = Math.max(1, ...rows.map(([, v]) => v || 0));
  const rowH = 28;
  const labelW = 150;
  const barW = 260;
  const height = rows.length * rowH + 10;
  const chart = svg('svg', { viewBox: `0 0 ${labelW + barW + 50} ${height}`, role: 'img', 'aria-labelledby': 'stats-chart-title' });
  chart.append(svg('title', { id: 'stats-chart-title' }, rows.map(([l, v]) => `${l}: ${v}`).join(', ')));
  rows.forEach(([label, value], i) => {
    const y = 5 + i * rowH;
    const w = Math.max(2, ((value || 0) / max) * barW);
    chart.append(
      svg('text', { x: labelW - 8, y: y + 17, 'text-anchor': 'end', class: 'chart-label' }, label),
      svg('rect', { x: labelW, y: y + 4, width: w, height: rowH - 10, rx: 3, class: `bar bar-${i}` }),
      svg('text', { x: labelW + w + 6, y: y + 17, class: 'chart-value' }, String(value ?? 0)),
    );
  });
  return figure('stats-chart', 'The class in numbers', chart);
}

/** Chat messages and questions per slice of the class, from start to end. */
export function timelineChart(stream, messages, questions) {
  const start = Date.parse(stream.started_at);
  const end = Date.parse(stream.ended_at) || Date.now();
  const buckets = 12;
  const span = Math.max(1, end - start);
  const count = (items) => {
    const out = new Array(buckets).fill(0);
    for (const item of items) {
      const t = Date.parse(item.created_at);
      if (Number.isNaN(t)) continue;
      const i = Math.min(buckets - 1, Math.max(0, Math.floor(((t - start) / span) * buckets)));
      out[i] += 1;
    }
    return out;
  };
  const chat = count(messages);
  const asked = count(questions);
  const max = Math.max(1, ...chat, ...asked);
  const W = 420;
  const H = 180;
  const pad = 30;
  const slot = (W - pad * 2) / buckets;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H + 30}`, role: 'img', 'aria-labelledby': 'timeline-title' });
  chart.append(svg('title', { id: 'timeline-title' }, `Chat messages per slice: ${chat.join(', ')}; questions per slice: ${asked.join(', ')}`));
  chart.append(svg('line', { x1: pad, y1: H, x2: W - pad, y2: H, class: 'axis' }));
  for (let i = 0; i < buckets; i += 1) {
    const x = pad + i * slot;
    const hc = (chat[i] / max) * (H - 20);
    const hq = (asked[i] / max) * (H - 20);
    chart.append(
      svg('rect', { x: x + 2, y: H - hc, width: slot / 2 - 2, height: hc, class: 'bar bar-2' }),
      svg('rect', { x: x + slot / 2, y: H - hq, width: slot / 2 - 2, height: hq, class: 'bar bar-3' }),
    );
  }
  chart.append(
    svg('text', { x: pad, y: H + 16, class: 'chart-label' }, 'start'),
    svg('text', { x: W - pad, y: H + 16, 'text-anchor': 'end', class: 'chart-label' }, 'end'),
    svg('text', { x: pad, y: 12, class: 'chart-label' }, `max ${max}`),
    svg('rect', { x: W / 2 - 90, y: H + 8, width: 10, height: 10, class: 'bar bar-2' }),
    svg('text', { x: W / 2 - 76, y: H + 17, class: 'chart-label' }, 'chat'),
    svg('rect', { x: W / 2 - 20, y: H + 8, width: 10, height: 10, class: 'bar bar-3' }),
    svg('text', { x: W / 2 - 6, y: H + 17, class: 'chart-label' }, 'questions'),
  );
  return figure('timeline-chart', 'Chat and questions over the class', chart);
}
