#!/usr/bin/env node
// A monitored program's SDK written with Node's "ws" package, for the
// interoperability tests of the agent: a WebSocket server that sends a
// heartbeat on open and then every --hb-interval seconds, answers actions
// with an action_ack, checks a Bearer token (close 4401), pings the agent
// when --ping-interval is set, and logs what it sends and receives as JSON
// lines to --log.

'use strict';

const fs = require('fs');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const a = { targetId: 'node-sdk', hbInterval: 0.3, fragmentHeartbeat: 1,
    fragmentAck: 1, pingInterval: 0, token: null, port: 0, log: null };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-(.)/g, (m, c) =>
      c.toUpperCase());
    const v = argv[i + 1];
    a[k] = ['port', 'hbInterval', 'fragmentHeartbeat', 'fragmentAck',
      'pingInterval'].includes(k) ? Number(v) : v;
  }
  return a;
}

const args = parseArgs(process.argv);
const logFd = fs.openSync(args.log, 'a');
let seq = 0;
let nextConn = 1;

function note(obj) {
  obj.t = Date.now() / 1000;
  fs.writeSync(logFd, JSON.stringify(obj) + '\n');
}

function heartbeatText() {
  seq++;
  // unusual formatting, non-ASCII and escapes: the agent must forward
  // these bytes unchanged
  return '{"payload":{"status":"up","target_id":"' + args.targetId +
    '","metrics":{"seq":"' + seq + '","note":"na\u00efve \\u00ef \\/ \u2713"}},' +
    '  "type":"heartbeat" ,"msg_id":"' + crypto.randomUUID() +
    '","target_id":"' + args.targetId + '","timestamp":' + Date.now() +
    ',"trace_id":"node-' + seq + '"}';
}

function send(ws, conn, text, fragments) {
  if (fragments > 1) {
    const buf = Buffer.from(text, 'utf8');
    const step = Math.max(1, Math.floor(buf.length / fragments));
    for (let i = 0; i < buf.length; i += step) {
      ws.send(buf.subarray(i, Math.min(i + step, buf.length)),
        { binary: false, fin: i + step >= buf.length });
    }
  } else {
    ws.send(text);
  }
  note({ ev: 'sent', conn, text, fragments });
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: args.port });

wss.on('listening', () => {
  note({ ev: 'listening', port: args.port });
  process.stdout.write('READY\n');
});

wss.on('connection', (ws, req) => {
  const conn = nextConn++;
  const auth = req.headers.authorization;
  note({ ev: 'connect', conn, path: req.url, auth: auth === undefined
    ? null : auth, host: req.headers.host });

  if (args.token && auth !== 'Bearer ' + args.token) {
    note({ ev: 'reject', conn });
    ws.close(4401, 'unauthorized');
    return;
  }

  let alive = true;
  let pinger = null;
  const hb = () => send(ws, conn, heartbeatText(), args.fragmentHeartbeat);
  hb();
  const hbTimer = args.hbInterval > 0
    ? setInterval(hb, args.hbInterval * 1000) : null;

  if (args.pingInterval > 0) {
    ws.on('pong', () => { alive = true; });
    pinger = setInterval(() => {
      if (!alive) {
        note({ ev: 'ping-timeout', conn });
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping('node-sdk-ping');
    }, args.pingInterval * 1000);
  }

  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      note({ ev: 'recv-binary', conn, len: data.length });
      return;
    }
    const text = data.toString('utf8');
    note({ ev: 'recv', conn, text });
    let env;
    try { env = JSON.parse(text); } catch (e) { return; }
    if (!env || env.type !== 'action') return;
    const name = (env.payload || {}).action;
    const ok = name === 'restart';
    const ack = {
      msg_id: crypto.randomUUID(),
      type: 'action_ack',
      target_id: args.targetId,
      timestamp: Date.now(),
      payload: {
        action_msg_id: env.msg_id,
        success: ok,
        message: ok ? 'restarted by node' : 'unsupported action: ' + name,
      },
    };
    if (env.trace_id !== undefined) ack.trace_id = env.trace_id;
    send(ws, conn, JSON.stringify(ack), args.fragmentAck);
  });

  ws.on('error', (err) => note({ ev: 'error', conn, error: String(err) }));

  ws.on('close', (code, reason) => {
    if (hbTimer) clearInterval(hbTimer);
    if (pinger) clearInterval(pinger);
    note({ ev: 'close', conn, code, reason: reason.toString('utf8') });
  });
});

process.on('SIGTERM', () => {
  wss.close();
  for (const c of wss.clients) c.terminate();
  process.exit(0);
});
