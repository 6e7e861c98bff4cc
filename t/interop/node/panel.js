#!/usr/bin/env node
// A dashboard ("panel") written with Node's "ws" package, for the
// interoperability tests of the agent.  Connects to URL and runs the steps
// given on the command line in order, printing one JSON line per step
// (the same steps as t/interop/panel.py):
//
//   wait-heartbeat           the next heartbeat, as received (text)
//   wait-type:TYPE           the next message of that type
//   action:ID:NAME[:FRAGS]   send an action for --target (in FRAGS
//                            fragments) and wait for its ack or error
//   subscribe:ID:T1,T2       send a subscribe for those ids and patterns
//                            (none: an empty set) and wait for its answer
//   heartbeats:N             the target_id of each of the next N heartbeats
//   ping[:PAYLOAD]           ping and wait for the pong
//   sleep:SECONDS            stay connected (answering pings) for a while
//   close[:CODE]             close and report the close code

'use strict';

const { WebSocket } = require('ws');

const opts = { token: null, target: 'node-sdk', targetUrl: null,
  subprotocol: null, timeout: 5 };
const positional = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--')) {
    const k = a.slice(2).replace(/-(.)/g, (m, c) => c.toUpperCase());
    opts[k] = process.argv[++i];
  } else {
    positional.push(a);
  }
}
const url = positional.shift();
const steps = positional;
const timeout = Number(opts.timeout) * 1000;

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

const headers = {};
if (opts.token) headers.Authorization = 'Bearer ' + opts.token;

const ws = new WebSocket(url, opts.subprotocol ? [opts.subprotocol] : [],
  { headers, maxPayload: 1 << 24 });

const queue = [];
let waiter = null;
let closed = null;

ws.on('message', (data, isBinary) => {
  if (isBinary) return;
  queue.push(data.toString('utf8'));
  if (waiter) waiter();
});
ws.on('close', (code, reason) => {
  closed = { code, reason: reason.toString('utf8') };
  if (waiter) waiter();
});
ws.on('error', (err) => { out({ step: 'error', ok: false,
  error: String(err) }); });

function nextMessage(pred) {
  const deadline = Date.now() + timeout;
  return new Promise((resolve) => {
    const check = () => {
      while (queue.length) {
        const m = queue.shift();
        let j;
        try { j = JSON.parse(m); } catch (e) { continue; }
        if (pred(j)) { waiter = null; resolve(m); return true; }
      }
      if (closed || Date.now() >= deadline) {
        waiter = null; resolve(null); return true;
      }
      return false;
    };
    if (check()) return;
    const timer = setTimeout(() => { waiter = null; resolve(null); },
      deadline - Date.now());
    waiter = () => { if (check()) clearTimeout(timer); };
  });
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function run() {
  for (const step of steps) {
    const parts = step.split(':');
    const name = parts[0];
    if (name === 'wait-heartbeat' || name === 'wait-type') {
      const want = name === 'wait-heartbeat' ? 'heartbeat' : parts[1];
      const m = await nextMessage((j) => j && j.type === want);
      out({ step, ok: m !== null, text: m });
    } else if (name === 'action') {
      const msgId = parts[1];
      const frags = parts.length > 3 ? Number(parts[3]) : 1;
      const env = {
        msg_id: msgId, trace_id: 'trace-' + msgId, type: 'action',
        target_id: opts.target, timestamp: Date.now(),
        payload: { action: parts[2], params: { from: 'node', n: frags },
          target_url: opts.targetUrl },
      };
      const text = JSON.stringify(env);
      if (frags > 1) {
        const buf = Buffer.from(text, 'utf8');
        const n = Math.max(1, Math.floor(buf.length / frags));
        for (let i = 0; i < buf.length; i += n) {
          ws.send(buf.subarray(i, Math.min(i + n, buf.length)),
            { binary: false, fin: i + n >= buf.length });
        }
      } else {
        ws.send(text);
      }
      const m = await nextMessage((j) => j && ((j.type === 'action_ack' &&
        (j.payload || {}).action_msg_id === msgId) ||
        (j.type === 'error' && j.msg_id === msgId)));
      out({ step, ok: m !== null, text: m, sent: text });
    } else if (name === 'subscribe') {
      const msgId = parts[1];
      const targets = parts.slice(2).join(':').split(',').filter((x) => x);
      ws.send(JSON.stringify({ msg_id: msgId, type: 'subscribe',
        payload: { targets } }));
      const m = await nextMessage((j) => j && j.msg_id === msgId &&
        (j.type === 'subscribed' || j.type === 'error'));
      out({ step, ok: m !== null, text: m });
    } else if (name === 'heartbeats') {
      const ids = [];
      for (let i = 0; i < Number(parts[1]); i++) {
        const m = await nextMessage((j) => j && j.type === 'heartbeat');
        if (m === null) break;
        ids.push(JSON.parse(m).target_id);
      }
      out({ step, ok: ids.length === Number(parts[1]), targets: ids });
    } else if (name === 'ping') {
      const payload = parts.length > 1 ? parts[1] : 'node-ping';
      const t0 = Date.now();
      const ok = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeout);
        const onPong = (data) => {
          if (data.toString() === payload) {
            clearTimeout(timer);
            ws.off('pong', onPong);
            resolve(true);
          }
        };
        ws.on('pong', onPong);
        ws.ping(payload);
      });
      out({ step, ok, rtt: (Date.now() - t0) / 1000 });
    } else if (name === 'sleep') {
      const before = queue.length;
      let pings = 0;
      const onPing = () => { pings++; };
      ws.on('ping', onPing);
      await sleep(Number(parts[1]) * 1000);
      ws.off('ping', onPing);
      out({ step, ok: ws.readyState === WebSocket.OPEN,
        received: queue.length - before, pings });
    } else if (name === 'close') {
      const code = parts.length > 1 ? Number(parts[1]) : 1000;
      ws.close(code, 'node panel done');
      await new Promise((r) => { if (closed) r(); else ws.once('close', r); });
      out({ step, ok: true, code: closed.code, reason: closed.reason });
    } else {
      out({ step, ok: false, error: 'unknown step' });
    }
  }
  if (ws.readyState === WebSocket.OPEN) {
    ws.close(1000);
    await new Promise((r) => ws.once('close', r));
  }
}

ws.on('unexpected-response', (req, res) => {
  out({ step: 'connect', ok: false, status: res.statusCode });
  process.exit(1);
});

ws.on('open', () => {
  out({ step: 'connect', ok: true, subprotocol: ws.protocol });
  run().then(() => process.exit(0));
});
