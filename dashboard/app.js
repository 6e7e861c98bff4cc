// AMonitor dashboard: one panel connection to the agent (same origin
// only: the token goes nowhere else), the targets it reports (all, or
// the ids and patterns chosen in the page: a subscribe), a live
// event stream, actions with their outcome, and the agent's counters.
// Plain ES modules, nothing fetched from elsewhere.
import { el, sparkline, newSvg, age, clock, uuid } from './view.js';

const q = new URLSearchParams(location.search);
const cfg = {
  panel: q.get('panel') || '/ws/panel',
  panelUrl: null,            // cfg.panel on this origin, or null: refused
  status: q.get('status') || '/amonitor/status',
  windowMs: 5 * 60 * 1000,   // sparkline: the last five minutes
  maxEvents: 500,
  maxMetrics: 50,            // metrics drawn per row; the rest are counted
  maxText: 200,              // characters of one value or event shown
  syncMs: 3000,              // after connecting: rows not told by then go
  pollMs: 2000,              // action_status of a pending action, again
  maxPolls: 60,
};
let token = q.get('token') || sessionStorage.getItem('amonitor-token') || '';
// the ids and patterns the panel subscribes to (?targets=, kept in the
// page's URL); null: every target
let shown = parseTargets(q.get('targets') || '');
let subscribing = null;       // { id, want } of a subscribe not yet answered

const targets = new Map();    // id -> { state, url, since, reason, hbAt, ... }
const outcomes = new Map();   // action msg_id -> { li, text }
let ws = null, attempt = 0, retryTimer = null, everOpen = false;
let failedBefore = false;     // the last attempt closed before it opened
let leaving = false;          // the page is hidden for good (pagehide)
let syncTimer = null;
const paused = [];            // events held while the list is scrolled
let dropped = 0;              // held ones let go: at most maxEvents are kept

const $ = (id) => document.getElementById(id);

/* --- connection ------------------------------------------------------- */

// The panel endpoint, only on this page's own origin: same host and
// port, ws: for an http: page, wss: for https:.  Anything else would get
// the token, so it is refused (null); the CSP refuses it as well.
function panelUrl(given) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let u;
  try {
    u = new URL(given, location.href);
  } catch (e) {
    return null;
  }
  if (u.protocol === location.protocol) u.protocol = scheme;
  if (u.protocol !== scheme || u.host !== location.host) return null;
  u.hash = '';
  return u;
}

function wsUrl(withSet) {
  const u = new URL(cfg.panelUrl.href);
  // %20, not "+": the agent decodes the query argument as a URI component
  if (token) {
    u.search += (u.search ? '&' : '?') + 'token=' + encodeURIComponent(token);
  }
  if (shown && withSet) {
    u.search += (u.search ? '&' : '?') + 'targets=' +
      encodeURIComponent(shown.join(','));
  }
  return u.href;
}

function setConn(text, cls) {
  const c = $('conn');
  c.textContent = text;
  c.className = `conn ${cls || ''}`;
}

function connect() {
  retryTimer = null;
  if (!cfg.panelUrl) {
    const own = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
    setConn(`not connecting: panel endpoint ${JSON.stringify(cfg.panel)} ` +
      `is not this page's origin (${own}), the token is sent only there`, 'bad');
    return;
  }
  setConn(attempt ? `reconnecting (attempt ${attempt})…` : 'connecting…');
  let opened = false;
  // After an attempt that failed, the set is not put in the URL: the
  // agent may have refused the handshake for it (a bad ?targets= in the
  // page's URL), which a page cannot tell from an agent that is down.
  // It is asked for with a subscribe once in, whose error says why.
  const later = shown && failedBefore ? shown : null;
  // JSON whatever the SDKs send: the agent converts protobuf for us
  const sock = new WebSocket(wsUrl(!later), 'amonitor.v1.json');
  ws = sock;
  sock.addEventListener('open', () => {
    opened = true;
    everOpen = true;
    failedBefore = false;
    attempt = 0;
    $('login').hidden = true;
    setConn('connected', 'ok');
    if (later) askShown(later, true);
    resync();
  });
  sock.addEventListener('message', (ev) => onMessage(ev.data));
  sock.addEventListener('close', (ev) => {
    if (ws === sock) ws = null;
    clearTimeout(syncTimer);
    queries.clear();   // unanswered: the next connection asks again
    if (subscribing) {
      // not answered: the next connection asks for it in its URL
      const want = subscribing.want;
      subscribing = null;
      setShown(want);
    }
    for (const o of outcomes.values()) {
      for (const l of waitingLines(o)) {
        l.textContent = `#${l.dataset.send} sent, waiting… the connection ` +
          'was lost: its outcome is asked for after reconnecting';
      }
    }
    if (leaving) return;
    if (!opened) {
      failedBefore = true;
      if (!everOpen) $('login').hidden = false;   // maybe a token is needed
      else probeToken();
    }
    retry(ev.code, opened);
  });
}

// Whether the agent refuses the token now: a plain GET of the panel
// location is answered 401 before anything else is looked at
async function probeToken() {
  const u = new URL(cfg.panelUrl.href);
  u.protocol = location.protocol;
  if (token) u.searchParams.set('token', token);
  try {
    const r = await fetch(u.href, { cache: 'no-store' });
    if (r.status === 401) {
      $('login').hidden = false;
      setConn('the agent refused the panel token: enter it again', 'bad');
    }
  } catch (e) {
    // unreachable: the retry says so
  }
}

// After connecting: the agent's snapshot tells every target it serves;
// rows it did not tell within cfg.syncMs (removed by a reload, forgotten,
// now hidden) go, as on a fresh page.  Actions that were waiting for an
// answer when the connection was lost are asked for (action_status).
function resync() {
  for (const t of targets.values()) t.stale = true;
  clearTimeout(syncTimer);
  syncTimer = setTimeout(() => dropTargets((t) => t.stale), cfg.syncMs);
  for (const [id, o] of outcomes) {
    if (waitingLines(o).length) askOutcome(id, 0);
  }
}

// capped exponential backoff with jitter: 0.5 s, 1 s, 2 s ... 10 s
function retry(code, wasOpen) {
  attempt++;
  const base = Math.min(10000, 500 * 2 ** Math.min(attempt - 1, 5));
  const delay = Math.round(base / 2 + Math.random() * base / 2);
  const why = code === 1012 ? 'agent reloading' :
    wasOpen ? `connection lost (${code})` : 'agent unreachable';
  setConn(`${why}: reconnecting in ${(delay / 1000).toFixed(1)} s`, 'bad');
  retryTimer = setTimeout(connect, delay);
}

function send(text) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(text);
  return true;
}

/* --- messages ----------------------------------------------------------- */

function onMessage(data) {
  if (typeof data !== 'string') {
    addEvent({ type: 'other', target: '', text: 'binary (protobuf) message' });
    return;
  }
  let m;
  try {
    m = JSON.parse(data);
  } catch (e) {
    addEvent({ type: 'other', target: '', text: 'not JSON: ' + data.slice(0, 80) });
    return;
  }
  const p = m.payload || {};
  const from = m.source || m.target_id || p.target_id || '';
  switch (m.type) {
  case 'target_status': onStatus(m, p); break;
  case 'heartbeat': onHeartbeat(from, m, p); break;
  case 'action_ack': onAck(m, p); break;
  case 'error': onError(m, p); break;
  case 'subscribed': onSubscribed(m, p); break;
  case 'action_status': onActionStatus(m, p); break;
  default: break;
  }
  addEvent({ type: m.type, target: from, text: summary(m, p), ts: m.timestamp });
}

function target(id) {
  let t = targets.get(id);
  if (!t) {
    t = { id, state: 'unknown', url: '', metrics: {}, series: [] };
    targets.set(id, t);
    addTargetOption(id);
  }
  return t;
}

function onStatus(m, p) {
  const t = target(p.target_id || m.target_id || '');
  t.state = p.state;
  t.url = p.url || t.url;
  t.since = p.since || m.timestamp || Date.now();
  t.reason = p.reason || '';
  t.stale = false;
  renderTarget(t);
}

function onHeartbeat(from, m, p) {
  const t = target(from);
  t.hbAt = typeof m.timestamp === 'number' ? m.timestamp : Date.now();
  t.metrics = p.metrics && typeof p.metrics === 'object' ? p.metrics : {};
  t.stale = false;
  if (t.state === 'unknown') t.state = 'up';
  const v = sparkValue(t.metrics);
  if (v != null) {
    t.series.push({ at: t.hbAt, v });
    const old = t.hbAt - cfg.windowMs;
    while (t.series.length > 1 && (t.series[0].at < old || t.series.length > 300)) {
      t.series.shift();
    }
  }
  renderTarget(t);
}

// the metric drawn: cpu_percent when there is one, else the first number
function sparkValue(metrics) {
  const keys = Object.keys(metrics);
  const pick = keys.includes('cpu_percent') ? ['cpu_percent'] :
    keys.filter((k) => k !== 'seq');
  for (const k of pick) {
    const n = Number(metrics[k]);
    if (metrics[k] !== '' && isFinite(n)) return n;
  }
  return null;
}

// a value as text, objects as JSON, at most cfg.maxText characters
function text(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.length > cfg.maxText ? s.slice(0, cfg.maxText) + '…' : s;
}

// the first cfg.maxMetrics entries of an object, and how many more
function firstEntries(obj) {
  const list = [];
  let more = 0;
  for (const k in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
    if (list.length < cfg.maxMetrics) list.push([k, obj[k]]);
    else more++;
  }
  return { list, more };
}

function summary(m, p) {
  switch (m.type) {
  case 'heartbeat': {
    const { list, more } = firstEntries(p.metrics || {});
    return list.map(([k, v]) => `${k}=${text(v)}`).join(' ') +
      (more ? ` … ${more} more` : '');
  }
  case 'event':
    return `${text(p.event_name ?? '')} ${text(p.data ?? '')}`;
  case 'target_status':
    return `${p.state}${p.reason ? ' (' + p.reason + ')' : ''}`;
  case 'action_ack':
    return `${p.action_msg_id}: ${p.success ? 'ok' : 'failed'} ${p.message || ''}`;
  case 'error':
    return `${p.code}: ${p.message || ''}`;
  default:
    return JSON.stringify(p).slice(0, 120);
  }
}

/* --- targets table -------------------------------------------------------- */

function renderTarget(t) {
  $('no-targets').hidden = true;
  if (!t.row) {
    t.cells = {
      id: el('th', { scope: 'row', text: t.id }),
      state: el('td'), url: el('td', { class: 'url' }),
      age: el('td', { class: 'age' }), metrics: el('td', { class: 'metrics' }),
      spark: el('td'),
    };
    t.svg = newSvg();
    t.cells.spark.append(t.svg);
    t.row = el('tr', { 'data-target': t.id }, ...Object.values(t.cells));
    const body = $('targets').tBodies[0];
    const after = [...body.rows].find((r) => r.dataset.target > t.id);
    body.insertBefore(t.row, after || null);
  }
  const st = t.state === 'down' ? 'down' : t.state === 'up' ? 'up' : 'unknown';
  t.row.className = `state-${st}`;
  t.cells.state.replaceChildren(el('span', { class: `badge ${st}`, text: st }));
  if (st === 'down' && t.reason) {
    t.cells.state.append(el('div', { class: 'note', text: t.reason }));
  }
  if (t.since) {
    t.cells.state.append(el('div', { class: 'note', text: 'since ' + clock(t.since) }));
  }
  t.cells.url.textContent = t.url || '';
  const { list, more } = firstEntries(t.metrics);
  t.cells.metrics.replaceChildren(...list
    .map(([k, v]) => el('span', { text: `${text(k)}: ${text(v)}` })));
  if (more) t.cells.metrics.append(el('span', { class: 'note', text: `… ${more} more` }));
  sparkline(t.svg, t.series.map((s) => s.v));
  renderAge(t);
}

function renderAge(t) {
  if (!t.cells) return;
  t.cells.age.textContent = t.hbAt ? age(Date.now() - t.hbAt) : '—';
  t.cells.age.dataset.at = t.hbAt ? String(t.hbAt) : '';
}

function addTargetOption(id) {
  for (const sel of [$('a-target'), $('f-target')]) {
    if (![...sel.options].some((o) => o.value === id)) {
      sel.append(el('option', { value: id, text: id }));
    }
  }
}

/* --- targets shown ----------------------------------------------------------- */

// "db-1, web-*" as a list; empty: null, every target
function parseTargets(text) {
  const list = text.split(',').map((x) => x.trim()).filter((x) => x);
  return list.length ? list : null;
}

// why the agent would refuse the set (protocol.md), or null
function badTargets(list) {
  if (!list) return null;
  if (list.length > 256) return `${list.length} ids and patterns, at most 256`;
  const long = list.find((x) => new TextEncoder().encode(x).length > 256);
  if (long) return `"${long.slice(0, 40)}…" is longer than 256 bytes`;
  // eslint-disable-next-line no-control-regex
  const ctl = list.find((x) => /[\x00-\x1f\x7f]/.test(x));
  return ctl ? `${JSON.stringify(ctl.slice(0, 40))} has control characters` : null;
}

// the agent's matching: "*" is any run of characters, the rest literal
let shownRe = null;
function shows(id) {
  if (!shown) return true;
  if (!shownRe) {
    shownRe = shown.map((pat) => new RegExp('^' + pat.split('*')
      .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$'));
  }
  return shownRe.some((re) => re.test(id));
}

function showNote(text) {
  $('show-note').textContent = text || (!shown ? 'Showing every target.' :
    shown.length ? `Showing ${shown.join(', ')}.` : 'Showing no target.');
}

// the set is sent to the agent as a subscribe message and, once the
// agent has it (or at once when not connected), kept in the page's URL:
// a reconnect or a reload asks for it again
function applyShow(e) {
  e.preventDefault();
  const want = parseTargets($('show-targets').value);
  const bad = badTargets(want);
  if (bad) {
    showNote(`Not changed (${bad}); ` +
      (shown ? `showing ${shown.join(', ')}.` : 'showing every target.'));
    return;
  }
  if (askShown(want, false)) return;
  setShown(want);
}

// a subscribe for "want"; fromUrl: the page's set, not yet given to this
// connection (an error then leaves every target shown).  false: not sent
function askShown(want, fromUrl) {
  subscribing = { id: uuid(), want, fromUrl };
  if (send(JSON.stringify({ msg_id: subscribing.id, type: 'subscribe',
    payload: { targets: want || ['*'] } }))) {
    showNote('Asking the agent…');
    return true;
  }
  subscribing = null;
  return false;
}

function onSubscribed(m, p) {
  if (!subscribing || m.msg_id !== subscribing.id) return;
  subscribing = null;
  const list = Array.isArray(p.targets) ? p.targets : [];
  setShown(list.length === 1 && list[0] === '*' ? null : list);
}

function setShown(list) {
  shown = list;
  shownRe = null;
  const u = new URL(location.href);
  if (shown) u.searchParams.set('targets', shown.join(','));
  else u.searchParams.delete('targets');
  history.replaceState(null, '', u.href);
  $('show-targets').value = shown ? shown.join(', ') : '';
  showNote(null);
  forgetHidden();
}

// rows and choices of targets the set no longer shows
function forgetHidden() {
  dropTargets((t) => !shows(t.id));
}

function dropTargets(gone) {
  const filter = $('f-target').value;
  for (const [id, t] of targets) {
    if (!gone(t)) continue;
    if (t.row) t.row.remove();
    for (const sel of [$('a-target'), $('f-target')]) {
      const o = [...sel.options].find((x) => x.value === id);
      if (o) o.remove();
    }
    targets.delete(id);
  }
  $('no-targets').hidden = targets.size > 0;
  // the event filter's target went: the list shows what "all" shows
  if ($('f-target').value !== filter) refilter();
}

/* --- event stream ----------------------------------------------------------- */

function addEvent(ev) {
  ev.at = Date.now();
  const list = $('events');
  if (list.scrollTop > 4) {
    // the reader scrolled away from the newest: hold new ones, no more
    // than the list shows (the older ones would only be pushed out)
    paused.push(ev);
    if (paused.length > cfg.maxEvents) {
      paused.shift();
      dropped++;
    }
    const b = $('resume');
    b.hidden = false;
    b.textContent = `Resume (${paused.length} new` +
      (dropped ? `, ${dropped} dropped)` : ')');
    return;
  }
  showEvent(ev);
}

function showEvent(ev) {
  const list = $('events');
  const type = ['heartbeat', 'event', 'target_status', 'action_ack', 'error']
    .includes(ev.type) ? ev.type : 'other';
  const li = el('li', { 'data-type': type, 'data-target': ev.target || '' },
    el('span', { class: 't', text: clock(ev.ts || ev.at) }),
    el('span', { class: 'k', text: ev.type }),
    el('span', { class: 'mono', text: (ev.target ? ev.target + ' ' : '') + ev.text }));
  li.hidden = !matches(li);
  list.prepend(li);
  while (list.children.length > cfg.maxEvents) list.lastChild.remove();
}

function matches(li) {
  const ft = $('f-target').value, fy = $('f-type').value;
  return (!ft || li.dataset.target === ft) && (!fy || li.dataset.type === fy);
}

function refilter() {
  for (const li of $('events').children) li.hidden = !matches(li);
}

function resume() {
  const list = $('events');
  list.scrollTop = 0;
  const held = paused.length;
  for (const ev of paused.splice(0)) showEvent(ev);
  $('resume').hidden = true;
  const note = $('events-note');
  note.hidden = !dropped;
  note.textContent = dropped ?
    `${dropped} older messages were not shown (${held + dropped} arrived ` +
    `while the list was paused; it keeps the newest ${cfg.maxEvents})` : '';
  dropped = 0;
}

/* --- actions --------------------------------------------------------------- */

function sendAction(e) {
  e.preventDefault();
  const err = $('a-error');
  err.textContent = '';
  let params;
  try {
    params = JSON.parse($('a-params').value || '{}');
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new Error('params must be a JSON object');
    }
  } catch (x) {
    err.textContent = `Params: ${x.message}`;
    return;
  }
  const id = uuid();
  const text = JSON.stringify({
    msg_id: id, type: 'action', target_id: $('a-target').value,
    timestamp: Date.now(),
    payload: { action: $('a-name').value, params },
  });
  const li = el('li', { 'data-msg-id': id });
  outcomes.set(id, { li, text, sends: 0 });
  $('outcomes').prepend(li);
  dispatch(id);
}

function dispatch(id) {
  const o = outcomes.get(id);
  o.sends++;
  const line = el('div', { class: 'outcome wait', text: `#${o.sends} sent, waiting…` });
  line.dataset.send = String(o.sends);
  o.current = line;
  (o.lines = o.lines || []).push(line);
  if (o.sends === 1) {
    const again = el('button', { type: 'button', class: 'secondary',
      text: 'Send again with the same msg_id', onclick: () => dispatch(id) });
    const body = JSON.parse(o.text);
    o.li.append(el('div', { class: 'mono',
      text: `${body.payload.action} → ${body.target_id} (msg_id ${id})` }), again);
  }
  o.li.append(line);
  if (!send(o.text)) {
    line.textContent = `#${o.sends} not sent: not connected`;
    line.className = 'outcome err';
  }
}

/*
 * The line an answer is about: a duplicate answers the latest send still
 * waiting, anything else the earliest one (the first attempt, whose own
 * answer may follow a duplicate's "final":false).
 */
function waitingLines(o) {
  return (o.lines || []).filter((l) => l.classList.contains('wait'));
}

function outcomeLine(id, latest) {
  const o = outcomes.get(id);
  if (!o) return null;
  const waiting = waitingLines(o);
  if (!waiting.length) return o.current;
  return waiting[latest ? waiting.length - 1 : 0];
}

function onAck(m, p) {
  const line = outcomeLine(p.action_msg_id, p.duplicate);
  if (!line) return;
  if (p.duplicate) {
    const orig = p.original ? ` — original result: ${JSON.stringify(p.original)}` : '';
    const more = p.final === false ? ' — the first attempt\'s answer follows' : '';
    line.textContent = `duplicate ignored (${p.state || 'pending'})${orig}${more}`;
    line.className = 'outcome dup';
  } else {
    line.textContent = `ack: ${p.success ? 'success' : 'failure'}` +
      (p.message ? ` — ${p.message}` : '');
    line.className = `outcome ${p.success ? 'ok' : 'err'}`;
  }
}

function onError(m, p) {
  if (subscribing && m.msg_id === subscribing.id) {
    const fromUrl = subscribing.fromUrl;
    subscribing = null;
    if (fromUrl) {
      setShown(null);
      showNote(`?targets= not used (${p.code}: ${p.message || ''}); ` +
        'showing every target.');
      return;
    }
    showNote(`Not changed (${p.code}: ${p.message || ''}); ` +
      (shown ? `showing ${shown.join(', ')}.` : 'showing every target.'));
    return;
  }
  if (queries.has(m.msg_id)) {
    // RATE_LIMITED or the like: ask again later
    const q = queries.get(m.msg_id);
    queries.delete(m.msg_id);
    askOutcome(q.id, q.n + 1);
    return;
  }
  const line = outcomeLine(p.action_msg_id || m.msg_id);
  if (!line) return;
  line.textContent = `error ${p.code}: ${p.message || ''}` +
    (p.final === false ? ' (still waiting for a late ack)' : '');
  line.className = `outcome ${p.final === false ? 'wait' : 'err'}`;
}

/*
 * The outcome of an action whose answer was lost with its connection:
 * action_status, again every cfg.pollMs while the agent says pending
 * (its ack goes to the connection that sent it, gone), at most
 * cfg.maxPolls times.
 */
const queries = new Map();    // query msg_id -> { id: action msg_id, n }

function askOutcome(id, n) {
  const o = outcomes.get(id);
  if (!o || !waitingLines(o).length) return;
  if (n >= cfg.maxPolls) {
    for (const l of waitingLines(o)) {
      l.textContent = 'no final answer: the agent still says pending ' +
        `after ${n} questions (send again with the same msg_id to ask)`;
      l.className = 'outcome err';
    }
    return;
  }
  const later = () => setTimeout(() => askOutcome(id, n + 1), cfg.pollMs);
  if (n > 0 && !ws) return;   // the next connection asks again
  const q = uuid();
  queries.set(q, { id, n });
  if (!send(JSON.stringify({ msg_id: q, type: 'action_status',
    payload: { action_msg_id: id } }))) {
    queries.delete(q);
    if (n > 0) later();
  }
}

function onActionStatus(m, p) {
  const q = queries.get(m.msg_id);
  if (!q) return;
  queries.delete(m.msg_id);
  const o = outcomes.get(q.id);
  const lines = o ? waitingLines(o) : [];
  if (!lines.length) return;
  const r = p.result && typeof p.result === 'object' ? p.result : {};
  let say, cls;
  switch (p.state) {
  case 'done':
    say = `ack: ${r.success ? 'success' : 'failure'}` +
      (r.message ? ` — ${text(r.message)}` : '');
    cls = r.success ? 'ok' : 'err';
    break;
  case 'failed':
    say = `error ${text(r.code || '')}: ${text(r.message || '')}`;
    cls = 'err';
    break;
  case 'pending':
    for (const l of lines) {
      l.textContent = `#${l.dataset.send} sent, waiting… the agent says ` +
        'pending (asked after reconnecting)';
    }
    setTimeout(() => askOutcome(q.id, q.n + 1), cfg.pollMs);
    return;
  default:
    say = 'outcome unknown: the agent has no record of this action ' +
      '(not received, or forgotten)';
    cls = 'err';
  }
  for (const l of lines) {
    l.textContent = `${say} (asked after reconnecting)`;
    l.className = `outcome ${cls}`;
  }
}

/* --- counters ---------------------------------------------------------------- */

const COUNTERS = ['panels', 'upstreams_open', 'forwarded', 'actions', 'acks',
  'duplicates', 'dropped', 'errors', 'ack_timeouts', 'invalid'];

async function refreshCounters() {
  const note = $('counters-note');
  try {
    const r = await fetch(cfg.status, { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    $('counters').replaceChildren(...COUNTERS.filter((k) => k in s).map((k) =>
      el('div', { 'data-counter': k }, el('dt', { text: k.replace('_', ' ') }),
        el('dd', { text: String(s[k]) }))));
    note.textContent = `agent ${s.version || ''}, updated ${clock(Date.now())}`;
  } catch (x) {
    note.textContent = `counters unavailable (${cfg.status}: ${x.message})`;
  }
}

/* --- start ------------------------------------------------------------------ */

function start() {
  $('action').addEventListener('submit', sendAction);
  $('f-target').addEventListener('change', refilter);
  $('f-type').addEventListener('change', refilter);
  $('resume').addEventListener('click', resume);
  $('show').addEventListener('submit', applyShow);
  const bad = badTargets(shown);
  if (bad) shown = null;   // the agent would refuse the connection
  $('show-targets').value = shown ? shown.join(', ') : '';
  showNote(bad ? `?targets= not used (${bad}); showing every target.` : null);
  $('events').addEventListener('scroll', () => {
    if ($('events').scrollTop <= 4 && paused.length) resume();
  });
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value;
    sessionStorage.setItem('amonitor-token', token);
    if (retryTimer) clearTimeout(retryTimer);
    if (ws) ws.close(); else connect();
  });
  setInterval(() => targets.forEach(renderAge), 1000);
  setInterval(refreshCounters, 3000);
  refreshCounters();
  // a page left for another (or kept in the back/forward cache) would
  // hold its connection open without reading it
  window.addEventListener('pagehide', () => {
    leaving = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    if (ws) ws.close(1000, 'page left');
  });
  window.addEventListener('pageshow', (e) => {
    if (!e.persisted) return;
    leaving = false;
    attempt = 0;
    if (!ws && cfg.panelUrl) connect();
  });
  cfg.panelUrl = panelUrl(cfg.panel);
  connect();
}

start();
