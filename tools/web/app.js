// shmbus monitor page. No libraries, nothing fetched from elsewhere: the monitor pushes one
// JSON snapshot per interval over server-sent events (/events) and this file draws it.
// The snapshot's fields are described in tools/monitor_render.c (same as /api/bus).
'use strict';

const HISTORY = 60;        // samples kept for the rate chart
const LAT_WINDOW = 10;     // samples over which the latency histogram is "recent"
const SVG = 'http://www.w3.org/2000/svg';

const rateHistory = [];    // [{sent, recv}] per sample, oldest first
const histHistory = [];    // cumulative bus latency histograms, oldest first

const $ = (id) => document.getElementById(id);

// ---- formatting ----------------------------------------------------------------------------

function fmtCount(n) {
  return Number(n).toLocaleString('en-US');
}

function fmtRate(r) {
  if (r >= 1e6) return (r / 1e6).toFixed(r >= 1e7 ? 0 : 1) + 'M';
  if (r >= 1e3) return (r / 1e3).toFixed(r >= 1e4 ? 0 : 1) + 'k';
  return r.toFixed(r > 0 && r < 10 ? 1 : 0);
}

// A rate that is not known yet (null: the first sample) is shown as '-', not as 0.
function fmtRateOrNone(r) {
  return r === null || r === undefined ? '-' : fmtRate(r);
}

function fmtNs(ns) {
  if (!ns) return '-';
  if (ns < 1e3) return ns.toFixed(0) + ' ns';
  if (ns < 1e6) return (ns / 1e3).toPrecision(3) + ' us';
  if (ns < 1e9) return (ns / 1e6).toPrecision(3) + ' ms';
  return (ns / 1e9).toPrecision(3) + ' s';
}

function fmtBytes(b) {
  if (b >= 1 << 20) return (b / (1 << 20)).toFixed(1) + ' MiB';
  if (b >= 1 << 10) return (b / (1 << 10)).toFixed(1) + ' KiB';
  return b + ' B';
}

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- the graph: clients on a circle, the flows of the last interval as arrows ------------

function drawGraph(snap) {
  const svg = $('graph');
  svg.replaceChildren();
  const clients = snap.clients, n = clients.length;
  // Big buses get smaller nodes and fewer words, so the picture stays readable.
  const W = 420, H = 360, cx = W / 2, cy = H / 2, R = 130;
  const NODE = n <= 8 ? 28 : n <= 24 ? 15 : 8, detail = n <= 12;
  const pos = new Map(), above = new Set();
  clients.forEach((c, i) => {
    // Start at the top and go clockwise, so 1, 2, 3 read like a clock face.
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(clients.length, 1);
    pos.set(c.id, clients.length === 1 ? [cx, cy] : [cx + R * Math.cos(a), cy + R * Math.sin(a)]);
    if (clients.length > 1 && Math.sin(a) < -0.1) above.add(c.id); // label outside the circle
  });

  // One arrowhead; it scales with the stroke width of the line that uses it.
  const defs = el('defs', {});
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 8, refY: 5,
    markerWidth: 2.6, markerHeight: 2.6, orient: 'auto-start-reverse' });
  marker.appendChild(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#2f6fdf' }));
  defs.appendChild(marker);
  svg.appendChild(defs);

  // Only flows that carried messages in the last interval (edges are exact per-pair counts;
  // rate is null on the first sample). Strongest last, so they are drawn on top; at most
  // MAX_EDGES of them, fewer on a big bus so that the picture stays readable.
  const MAX_EDGES = n <= 16 ? 300 : 96;
  const active = snap.edges.filter((e) => e.rate > 0);
  const edges = active.slice().sort((a, b) => a.rate - b.rate).slice(-MAX_EDGES);
  $('graph-note').textContent = active.length > edges.length
    ? `${edges.length} strongest of ${active.length} flows shown.` : '';
  const maxRate = Math.max(1, ...edges.map((e) => e.rate));
  // Many edges share the picture: thinner lines, or the circle fills with ink.
  const maxWidth = edges.length <= 6 ? 8 : Math.max(0.7, 8 * Math.sqrt(6 / edges.length));
  for (const e of edges) {
    const p = pos.get(e.from), q = pos.get(e.to);
    if (!p || !q) continue;
    // Bend each arrow to its right, so a->b and b->a are two separate curves.
    const dx = q[0] - p[0], dy = q[1] - p[1], len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len, nx = -uy, ny = ux, bend = 22;
    const sx = p[0] + ux * NODE + nx * 8, sy = p[1] + uy * NODE + ny * 8;
    const tx = q[0] - ux * (NODE + 4) + nx * 8, ty = q[1] - uy * (NODE + 4) + ny * 8;
    const mx = (sx + tx) / 2 + nx * bend, my = (sy + ty) / 2 + ny * bend;
    const width = 0.5 + maxWidth * Math.sqrt(e.rate / maxRate);
    svg.appendChild(el('path', { class: edges.length > 30 ? 'edge many' : 'edge', d: `M${sx},${sy} Q${mx},${my} ${tx},${ty}`,
      'stroke-width': width.toFixed(1), 'marker-end': 'url(#arrow)',
      'data-from': e.from, 'data-to': e.to }));
    if (edges.length <= 12)
      svg.appendChild(el('text', { class: 'edge-label', x: mx + nx * 10, y: my + ny * 10 + 4 },
        fmtRate(e.rate) + '/s'));
  }

  for (const c of clients) {
    const [x, y] = pos.get(c.id);
    const g = el('g', { class: 'node' + (c.state === 'live' ? '' : ' dead'), 'data-id': c.id });
    g.appendChild(el('circle', { class: 'body', cx: x, cy: y, r: NODE }));
    // Mailbox fill: an arc around the node, full circle = full mailbox.
    const circ = 2 * Math.PI * (NODE + 5);
    const frac = c.capacity ? Math.min(1, c.depth / c.capacity) : 0;
    if (frac > 0)
      g.appendChild(el('circle', { class: 'fill', cx: x, cy: y, r: NODE + 5,
        'stroke-dasharray': `${(frac * circ).toFixed(1)} ${circ.toFixed(1)}`,
        transform: `rotate(-90 ${x} ${y})` }));
    if (n <= 24)
      g.appendChild(el('text', { class: detail ? 'id' : 'id small', x: x, y: y + (detail ? 6 : 4) },
        String(c.id)));
    if (detail) {
      const below = (c.name ? c.name + ' \u00b7 ' : '') + fmtRate(c.recv_rate) + '/s in';
      g.appendChild(el('text', { x: x, y: above.has(c.id) ? y - NODE - 10 : y + NODE + 20 },
        below));
    }
    const title = el('title', {}, `client ${c.id}${c.name ? ' (' + c.name + ')' : ''}, pid ` +
      `${c.pid}, ${c.state}; mailbox ${c.depth}/${c.capacity}`);
    g.appendChild(title);
    svg.appendChild(g);
  }
  if (!clients.length)
    svg.appendChild(el('text', { class: 'edge-label', x: cx, y: cy }, 'no clients on the bus'));
}

// ---- canvas charts -------------------------------------------------------------------------

// A canvas sized for the screen's pixel density; returns its 2D context in CSS pixels.
function canvasCtx(id) {
  const c = $(id), dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || c.width, h = Math.round(w * c.height / c.width);
  if (c.dataset.w !== String(w * dpr)) {
    c.dataset.w = String(w * dpr);
    c.style.height = h + 'px';
  }
  c.width = w * dpr;
  c.height = h * dpr;
  const ctx = c.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.font = '12px system-ui, sans-serif';
  return [ctx, w, h];
}

// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawRates() {
  const [ctx, w, h] = canvasCtx('rate-chart');
  const L = 48, B = 20, T = 8, pw = w - L - 8, ph = h - B - T;
  const top = niceMax(Math.max(...rateHistory.map((r) => Math.max(r.sent, r.recv)), 0));
  ctx.strokeStyle = '#dde1e8';
  ctx.fillStyle = '#687083';
  ctx.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - (ph * i) / 4;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + pw, y); ctx.stroke();
    ctx.fillText(fmtRate((top * i) / 4), L - 6, y + 4);
  }
  ctx.textAlign = 'center';
  ctx.fillText('last ' + HISTORY + ' samples \u2192 now', L + pw / 2, h - 4);
  const line = (key, color, dash) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(dash);
    ctx.beginPath();
    rateHistory.forEach((r, i) => {
      const x = L + pw - ((rateHistory.length - 1 - i) * pw) / (HISTORY - 1);
      const y = T + ph - (ph * r[key]) / top;
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
    ctx.lineWidth = 1;
  };
  // Sent is dashed and on top: on a steady bus both lines coincide and both stay visible.
  line('recv', '#e0782b', []);
  line('sent', '#2f6fdf', [6, 5]);
  ctx.setLineDash([]);
}

// p-th percentile of [[lower_ns, count], ...]: the lower bound of the bucket it falls in.
function percentile(hist, p) {
  const total = hist.reduce((s, b) => s + b[1], 0);
  let seen = 0;
  for (const [lo, n] of hist) {
    seen += n;
    if (n && seen >= (total * p) / 100) return lo;
  }
  return 0;
}

function drawLatency(snap) {
  // Recent = newest cumulative histogram minus the one LAT_WINDOW samples ago.
  const cur = snap.latency_hist, old = histHistory.length ? histHistory[0] : [];
  let hist = cur.map((b, i) => [b[0], b[1] - (old[i] ? old[i][1] : 0)]);
  let what = 'last ' + histHistory.length + ' samples';
  if (!hist.some((b) => b[1] > 0)) { hist = cur; what = 'since the bus started'; }
  const first = hist.findIndex((b) => b[1] > 0);
  const shown = first < 0 ? [] : hist.slice(first);
  const total = shown.reduce((s, b) => s + b[1], 0);

  const [ctx, w, h] = canvasCtx('lat-chart');
  const L = 8, B = 20, T = 8, pw = w - 2 * L, ph = h - B - T;
  ctx.fillStyle = '#687083';
  ctx.textAlign = 'center';
  if (!total) {
    ctx.fillText('no latency samples yet', w / 2, h / 2);
    $('lat-now').textContent = '';
    $('lat-note').textContent = 'Send-to-receive latency of sampled messages.';
    return;
  }
  const maxN = Math.max(...shown.map((b) => b[1]));
  const bw = pw / Math.max(shown.length, 8);
  shown.forEach(([lo, n], i) => {
    const bh = (ph * n) / maxN;
    ctx.fillStyle = '#2f6fdf';
    ctx.fillRect(L + i * bw + 1, T + ph - bh, Math.max(bw - 2, 1), bh);
    // A label every few buckets, starting at its bar's left edge, none cut off at the right.
    if (i % Math.ceil(shown.length / 6) === 0 && L + i * bw < w - 56) {
      ctx.fillStyle = '#687083';
      ctx.textAlign = 'left';
      ctx.fillText(fmtNs(lo), L + i * bw, h - 4);
    }
  });
  const p50 = percentile(shown, 50), p99 = percentile(shown, 99);
  $('lat-now').textContent = `p50 ${fmtNs(p50)} \u00b7 p99 ${fmtNs(p99)}`;
  $('lat-note').textContent = `Send-to-receive latency of ${fmtCount(total)} sampled ` +
    `messages, ${what}; each bar is one bucket (4 per doubling), log scale.`;
}

// ---- the table -----------------------------------------------------------------------------

function cell(text, cls, field) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (field) td.dataset.field = field;
  td.textContent = text;
  return td;
}

function drawTable(snap) {
  const body = document.querySelector('#clients tbody');
  const rows = snap.clients.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.id = c.id;
    if (c.state !== 'live') tr.className = 'dead';
    tr.append(cell(c.id, '', 'id'), cell(c.name || '-', '', 'name'), cell(c.pid, '', 'pid'),
      cell(c.state, '', 'state'), cell(fmtCount(c.sent), 'num', 'sent'),
      cell(fmtCount(c.received), 'num', 'received'), cell(fmtRateOrNone(c.sent_rate), 'num'),
      cell(fmtRateOrNone(c.recv_rate), 'num'));
    const mb = cell('', '', 'depth');
    const bar = document.createElement('span');
    bar.className = 'depth';
    const fill = document.createElement('i');
    fill.style.width = (c.capacity ? (100 * c.depth) / c.capacity : 0) + '%';
    bar.appendChild(fill);
    mb.append(bar, `${c.depth}/${c.capacity}`);
    tr.append(mb, cell(fmtNs(c.latency_ns.p50), 'num'), cell(fmtNs(c.latency_ns.p99), 'num'));
    return tr;
  });
  body.replaceChildren(...rows);
  const t = snap.totals;
  $('total-sent').textContent = fmtCount(t.sent);
  $('total-received').textContent = fmtCount(t.received);
  $('total-sent-rate').textContent = fmtRateOrNone(t.sent_rate);
  $('total-recv-rate').textContent = fmtRateOrNone(t.recv_rate);
}

// Named groups: one row each, the card hidden while the bus has none.
function drawGroups(snap) {
  const groups = snap.groups || [];
  $('groups-card').hidden = groups.length === 0;
  const rows = groups.map((g) => {
    const tr = document.createElement('tr');
    tr.dataset.name = g.name;
    tr.append(cell(g.name, '', 'name'), cell(fmtCount(g.members), 'num', 'members'),
      cell(g.leader ? String(g.leader) : '-', '', 'leader'), cell(fmtCount(g.epoch), 'num', 'epoch'),
      cell(fmtCount(g.published), 'num', 'published'), cell(fmtCount(g.missed), 'num', 'missed'),
      cell(fmtCount(g.lost || 0), 'num', 'lost'),
      cell(fmtCount(g.queued), 'num', 'queued'), cell(fmtCount(g.redelivered), 'num', 'redelivered'),
      cell(fmtCount(g.elections), 'num', 'elections'), cell(fmtRate(g.rate), 'num', 'rate'));
    if (g.missed > 0) tr.querySelector('[data-field=missed]').className = 'num bad';
    return tr;
  });
  document.querySelector('#groups tbody').replaceChildren(...rows);
}

// NATS bridges (shmbus-bridge's state files): one row each, the card hidden while the bus
// has none.
function drawBridges(snap) {
  const bridges = snap.bridges || [];
  $('bridges-card').hidden = bridges.length === 0;
  const rows = bridges.map((br) => {
    const tr = document.createElement('tr');
    tr.dataset.name = br.name;
    const up = cell(br.up ? 'connected' : 'down', br.up ? 'ok' : 'bad', 'up');
    const traffic = `topics ${fmtCount(br.topic_out)}/${fmtCount(br.topic_in)} \u00b7 ` +
      `queues ${fmtCount(br.queue_out)}/${fmtCount(br.queue_in)} \u00b7 ` +
      `requests ${fmtCount(br.requests_out)}/${fmtCount(br.requests_in)}` +
      (br.jetstream ? ' \u00b7 JetStream' : '');
    tr.append(cell(br.name, '', 'name'), cell(br.node, '', 'node'), up,
      cell(fmtCount(br.out_msgs), 'num', 'out_msgs'), cell(fmtBytes(br.out_bytes), 'num', 'out_bytes'),
      cell(fmtCount(br.in_msgs), 'num', 'in_msgs'), cell(fmtBytes(br.in_bytes), 'num', 'in_bytes'),
      cell(fmtCount(br.queue), 'num', 'queue'), cell(fmtCount(br.lost), 'num', 'lost'),
      cell(fmtCount(br.undeliverable), 'num', 'undeliverable'),
      cell(fmtCount(br.errors), 'num', 'errors'), cell(traffic, '', 'traffic'),
      cell(br.last_error || '-', '', 'last_error'));
    for (const f of ['lost', 'undeliverable', 'errors'])
      if (br[f] > 0) tr.querySelector(`[data-field=${f}]`).className = 'num bad';
    return tr;
  });
  document.querySelector('#bridges tbody').replaceChildren(...rows);
}

// ---- one snapshot --------------------------------------------------------------------------

function update(snap) {
  const b = snap.bus;
  $('bus-name').textContent = b.name;
  document.title = 'shmbus monitor: ' + b.name;
  $('bus-info').textContent = `${b.live_clients} live clients of ${b.max_clients} \u00b7 ` +
    `${fmtBytes(b.ring_bytes)} per mailbox, messages up to ${fmtBytes(b.msg_size)} ` +
    `\u00b7 segment ` +
    `${fmtBytes(b.segment_size)}, ${b.attached} processes attached \u00b7 sampled every ` +
    `${snap.interval_ms} ms \u00b7 shmbus ${snap.version}`;
  const err = $('error');
  err.hidden = !snap.error;
  err.textContent = snap.error ? `The bus cannot be read: ${snap.error}. The monitor keeps ` +
    'trying to attach to it again.' : '';

  if (snap.totals.recv_rate !== null) {
    rateHistory.push({ sent: snap.totals.sent_rate, recv: snap.totals.recv_rate });
    if (rateHistory.length > HISTORY) rateHistory.shift();
  }
  $('rate-now').textContent = `now ${fmtRateOrNone(snap.totals.recv_rate)}/s`;

  drawGraph(snap);
  drawTable(snap);
  drawGroups(snap);
  drawBridges(snap);
  drawRates();
  drawLatency(snap);
  histHistory.push(snap.latency_hist);
  if (histHistory.length > LAT_WINDOW) histHistory.shift();
  document.body.dataset.seq = snap.seq; // for tests: which sample is on screen
}

function connect() {
  const status = $('status');
  const es = new EventSource('/events');
  es.onopen = () => { status.textContent = 'live'; status.className = 'status on'; };
  es.onerror = () => { status.textContent = 'disconnected, retrying'; status.className = 'status off'; };
  es.onmessage = (ev) => update(JSON.parse(ev.data));
}

document.addEventListener('DOMContentLoaded', connect);
