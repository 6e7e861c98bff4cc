// AMonitor dashboard: small DOM helpers, the sparkline and formatting.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c != null) e.append(c);
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';

// a polyline of the last values, scaled to the box; the points are
// readable by tests in data-points
export function sparkline(svg, values) {
  const w = 120, h = 28;
  let line = svg.querySelector('polyline');
  if (!line) {
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('class', 'spark');
    svg.setAttribute('role', 'img');
    line = document.createElementNS(SVG, 'polyline');
    svg.append(line);
  }
  if (values.length === 0) {
    line.setAttribute('points', '');
    svg.setAttribute('data-points', '0');
    return;
  }
  const last = values[values.length - 1];
  // values so far apart that their difference is not a number (±1e308)
  // are scaled down first
  let min = Math.min(...values), max = Math.max(...values);
  if (!isFinite(max - min)) {
    const k = Math.max(Math.abs(min), Math.abs(max));
    values = values.map((v) => v / k);
    min /= k;
    max /= k;
  }
  const span = max - min || 1;
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  const pts = values.map((v, i) =>
    `${(i * step).toFixed(1)},${(h - 2 - ((v - min) / span) * (h - 4)).toFixed(1)}`);
  line.setAttribute('points', pts.join(' '));
  svg.setAttribute('data-points', String(values.length));
  svg.setAttribute('aria-label',
    `${values.length} samples, last ${last}`);
}

export function newSvg() {
  return document.createElementNS(SVG, 'svg');
}

export function age(ms) {
  if (ms == null || !isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}

export function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

// a v4 UUID, also where crypto.randomUUID is not offered (plain http)
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-` +
    `${h.slice(16, 20)}-${h.slice(20)}`;
}
