#!/usr/bin/env python3
# Soak run of the agent: nginx with the module (2 workers) in a private
# prefix, S fake SDKs and a mixed load held for a long time while the
# things production does to an agent happen on a schedule:
#
#   - long-lived panels (half take everything, half ?targets= a subset)
#     read every heartbeat and event and send actions, some of them again
#     with an msg_id already answered (a duplicate must not run again);
#   - short-lived panels come and go all the time: clean closes, resets,
#     half handshakes, frames that break RFC 6455, subscribe messages,
#     panels that do not read for a while;
#   - an SDK goes down now and then and comes back;
#   - SDKs dialed on demand (target_url) come and go for good
#     (ephemeral.py);
#   - nginx is reloaded now and then (panels are closed with 1012 and
#     reconnect; actions in flight are retried with the same msg_id);
#     with --instances N, N instances run amonitor_cluster and reload in
#     turn.
#
# It checks, and exits 1 on any failure:
#
#   - no msg_id ran twice in an SDK; every action has one final answer
#     and ends done or failed (never unresolved); a duplicate of a done
#     action says "done" with the original's result;
#   - no SDK message lost silently: per SDK connection the messages carry
#     a sequence number, and the gaps a panel sees are at most what the
#     agent counted as dropped; every event's bytes arrive intact;
#   - a short-lived panel's snapshot and live frames are those of its set;
#   - panels are closed only with 1000 or 1012 (no crash: 1006);
#   - after the load stops no worker holds a panel connection, and each
#     holds one connection per SDK;
#   - nginx stops within 10 s; its error log has no alert, crit, emerg,
#     crashed worker or sanitizer report;
#   - the longest-lived worker's RssAnon (heap, not the zone) grows by at most
#     --max-growth KiB per minute over the second half of its life
#     (when it lived at least --mem-min-life seconds).
#
#   /usr/bin/python3 bench/soak/soak.py [--seconds 900] [options]
#
# Every 5 s (--sample) one line goes to the CSV (--csv): time, workers,
# their RssAnon and open files, panels, and the agent's counters.

import argparse
import asyncio
import binascii
import collections
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

import websockets

from checks import Checks
from ephemeral import EPH_PATTERN, Ephemeral
from instance import HOST, Instance, free_port, make_cert
from short_panels import OK_CLOSE, ShortPanels


def now_ms():
    return int(time.time() * 1000)


class Soak(ShortPanels, Checks, Ephemeral):
    free_port = staticmethod(free_port)

    def __init__(self, a):
        self.a = a
        self.t0 = time.monotonic()
        self.stop_load = False
        self.closing = False
        self.open_ws = set()
        self.violations = []
        self.count = collections.Counter()
        self.tls = None                 # the panels' ssl context, --tls
        self.closes = collections.Counter()
        # actions not done yet: msg_id -> {"target", "state"}; a done one
        # moves to a count, and the last 2000 to "done" for repeats
        self.acts = {}
        self.executed = collections.Counter()
        # (msg_id, target, target_url of an ephemeral one)
        self.done = collections.deque(maxlen=2000)
        self.n_done = 0
        self.retry = collections.deque()   # (due, msg_id)
        self.hb_lat = []
        self.gaps = 0
        self.samples = []
        self.mem = collections.defaultdict(list)   # pid -> [(t, kib)]
        self.sdk_servers = {}
        self.sdk_conn_id = 0
        self.redis_proc = None
        self.eph_urls = {}          # ephemeral SDKs now up: id -> URL
        self.eph_tasks = set()
        self.last_reload = 0
        self.targets = ["soak-%d" % i for i in range(a.sdks)]
        self.run_id = "%s:%d" % (HOST, os.getpid())

    def fail(self, what):
        self.count["violation"] += 1
        if len(self.violations) < 50:
            self.violations.append("%.1fs %s" % (self.elapsed(), what))

    def say(self, what):
        if self.a.verbose:
            print("soak: %.1fs %s" % (self.elapsed(), what), file=sys.stderr)

    def elapsed(self):
        return time.monotonic() - self.t0

    # --- fake SDKs ----------------------------------------------------------

    async def sdk_conn(self, tid, ws):
        self.sdk_conn_id += 1
        cid = self.sdk_conn_id
        seq = [0]
        self.count["sdk_connections"] += 1

        async def send(kind, payload):
            seq[0] += 1
            if self.a.inject == "gap" and seq[0] == 20:
                seq[0] += 1             # the checker's self-test
            payload["seq"] = seq[0]
            payload["conn"] = cid
            payload["run"] = self.run_id
            await ws.send(json.dumps({
                "msg_id": str(uuid.uuid4()), "type": kind, "target_id": tid,
                "timestamp": now_ms(), "payload": payload},
                separators=(",", ":"), ensure_ascii=random.random() < 0.5))

        async def beats():
            nxt = time.monotonic()
            ev_every = 1.0 / self.a.event_rate if self.a.event_rate else 0
            hb_next = nxt
            while True:
                t = time.monotonic()
                if t >= hb_next:
                    await send("heartbeat", {"target_id": tid, "status": "up",
                                             "metrics": {"pid": os.getpid()}})
                    self.count["heartbeats_sent"] += 1
                    hb_next += self.a.hb_interval
                if ev_every:
                    data = "".join(random.choice("abcdé€😀 \"\\/\n")
                                   for _ in range(random.randint(0, 300)))
                    await send("event", {"target_id": tid, "event": "soak",
                                         "data": data,
                                         "crc": binascii.crc32(
                                             data.encode()) & 0xffffffff})
                    self.count["events_sent"] += 1
                    nxt += ev_every
                    await asyncio.sleep(max(0, nxt - time.monotonic()))
                else:
                    await asyncio.sleep(max(0, hb_next - time.monotonic()))

        async def beats_guarded():
            try:
                await beats()
            except websockets.ConnectionClosed:
                pass

        task = asyncio.ensure_future(beats_guarded())
        try:
            async for raw in ws:
                m = json.loads(raw)
                if m.get("type") != "action":
                    continue
                mid = m["msg_id"]
                if mid not in self.acts:
                    self.fail("%s got %s, done before or never sent" %
                              (tid, mid))
                self.executed[mid] += 1
                if self.a.inject == "rerun" and not self.count["injected"]:
                    self.count["injected"] += 1
                    self.executed[mid] += 1
                if self.executed[mid] > 1:
                    self.fail("msg_id %s ran %d times in %s" %
                              (mid, self.executed[mid], tid))
                if random.random() < self.a.slow_ack:
                    await asyncio.sleep(random.uniform(0, 0.3))
                await ws.send(json.dumps({
                    "msg_id": str(uuid.uuid4()), "type": "action_ack",
                    "target_id": tid, "timestamp": now_ms(),
                    "payload": {"action_msg_id": mid, "success": True,
                                "message": "done by " + tid}},
                    separators=(",", ":")))
        except websockets.ConnectionClosed:
            pass
        finally:
            task.cancel()

    async def sdk_start(self, tid):
        for _ in range(50):             # another run may hold it a while
            try:
                self.sdk_servers[tid] = await websockets.serve(
                    lambda ws, path=None: self.sdk_conn(tid, ws),
                    HOST, self.ports[tid], max_size=None,
                    ping_interval=None)
                return
            except OSError as e:
                err = e
                await asyncio.sleep(0.2)
        self.fail("SDK %s cannot listen again: %s" % (tid, err))

    async def sdk_restarts(self):
        while self.a.sdk_restart_every > 0:
            await asyncio.sleep(self.a.sdk_restart_every)
            if self.stop_load:
                break
            tid = random.choice(self.targets)
            srv = self.sdk_servers.pop(tid)
            srv.close()
            await srv.wait_closed()
            self.count["sdk_restarts"] += 1
            await asyncio.sleep(self.a.sdk_down)
            await self.sdk_start(tid)

    # --- long-lived panels -------------------------------------------------

    def inst_of(self, i=None):
        """Panel i's instance, or one at random."""
        if i is None:
            return random.choice(self.insts)
        return self.insts[i % len(self.insts)]

    def workers(self):
        return [p for inst in self.insts for p in inst.workers()]

    def metrics(self):
        """The instances' series added up."""
        out = collections.Counter()
        for inst in self.insts:
            out.update(inst.metrics())
        return out

    async def panel(self, i):
        inst = self.inst_of(i)
        subset = None
        query = ""
        if i % 2 and len(self.targets) > 1:
            subset = random.sample(self.targets, max(1, len(self.targets) // 3))
            query = "?targets=" + ",".join(subset + [EPH_PATTERN])
        pending = {}                    # msg_id -> kind, on this connection
        tls = self.tls if i // 2 % 2 else None
        while True:
            try:
                ws = await websockets.connect(inst.url(query, tls is not None),
                                              ssl=tls, max_size=None,
                                              ping_interval=None)
            except (OSError, websockets.WebSocketException):
                if self.closing:
                    return
                await asyncio.sleep(0.2)
                continue
            self.count["panel_connects"] += 1
            if tls:
                self.count["tls_panel_connects"] += 1
            self.open_ws.add(ws)
            last = {}                   # SDK connection -> last seq
            sender = asyncio.ensure_future(self.panel_send(ws, subset,
                                                           pending))
            try:
                async for raw in ws:
                    self.panel_frame(raw, subset, pending, last)
            except websockets.ConnectionClosed:
                pass
            sender.cancel()
            self.open_ws.discard(ws)
            code = ws.close_code
            self.closes[code] += 1
            if code not in OK_CLOSE:
                self.fail("panel %d closed with %s %s" % (i, code,
                                                          ws.close_reason))
            # what was in flight is retried on the next connection
            for mid in list(pending):
                self.retry.append((time.monotonic(), mid))
            pending.clear()
            if self.closing:
                return

    def settled(self):
        return all(a["state"] == "failed" for a in self.acts.values())

    def panel_frame(self, raw, subset, pending, last):
        m = json.loads(raw)
        kind = m.get("type")
        p = m.get("payload") or {}
        tid = p.get("target_id") or m.get("target_id")
        if kind in ("heartbeat", "event", "target_status"):
            self.count["panel_" + kind] += 1
            if subset is not None and not self.in_set(
                    tid, subset + [EPH_PATTERN]):
                self.fail("panel for %s got %s of %s: %s" % (
                    ",".join(subset), kind, tid, raw[:300]))
            if kind == "target_status":
                return
            if p.get("run") != self.run_id:
                self.fail("%s from another run: %s" % (kind, raw[:300]))
                return
            cid, seq = p.get("conn"), p.get("seq")
            if kind == "event":
                if binascii.crc32(p["data"].encode()) & 0xffffffff != p["crc"]:
                    self.fail("event of %s changed on the way" % tid)
                if cid not in last:
                    last[cid] = seq     # events are live: not in snapshots
                    return
            if cid in last:
                if seq <= last[cid]:
                    self.fail("%s from SDK connection %s: seq %d after %d" %
                              (kind, cid, seq, last[cid]))
                self.gaps += seq - last[cid] - 1
                last[cid] = seq
                if kind == "heartbeat":
                    self.hb_lat.append(now_ms() - m["timestamp"])
            return
        if kind not in ("action_ack", "error") or "action_msg_id" not in p:
            self.count["panel_other"] += 1
            return
        mid = p["action_msg_id"]
        if not p.get("final", False):
            self.count["not_final"] += 1
            return
        sent = pending.pop(mid, None)
        if sent is None:
            self.fail("final answer for %s not in flight: %s" % (mid, raw))
            return
        self.answer(mid, sent, kind, p)

    def finish(self, mid, act):
        if self.executed.pop(mid, 0) != 1:
            self.fail("%s done but did not run exactly once" % mid)
        del self.acts[mid]
        self.done.append((mid, act["target"], act.get("url")))
        self.n_done += 1

    def answer(self, mid, sent, kind, p):
        sent, target = sent
        act = self.acts.get(mid)
        if act is None and sent != "probe":     # a retry of a done one
            if kind != "error" and not p.get("duplicate"):
                self.fail("%s ran again after it was done" % mid)
            return
        if kind == "error":
            code = p.get("code")
            self.count["error_" + str(code)] += 1
            if sent == "probe":         # the action itself is done
                if code not in ("RATE_LIMITED", "INTERNAL"):
                    self.fail("duplicate of %s answered %s" % (mid, p))
                return
            if self.eph_gone(act) and code in ("TARGET_UNAVAILABLE",
                                               "UNKNOWN_TARGET"):
                act["state"] = "failed"         # not retried: it went
                self.count["eph_gone"] += 1
            elif code in ("TARGET_UNAVAILABLE", "RATE_LIMITED", "INTERNAL"):
                act["state"] = "retry"
                self.retry.append((time.monotonic() + 0.3, mid))
            elif code in ("TARGET_DISCONNECTED", "ACK_TIMEOUT"):
                act["state"] = "failed"
            else:
                self.fail("error %s for %s: %s" % (code, mid, p))
                act["state"] = "failed"
            return
        if not p.get("duplicate"):
            self.count["acks"] += 1
            if sent == "probe":
                self.fail("%s ran again after it was done" % mid)
            else:
                self.finish(mid, act)
            return
        self.count["dup_" + str(p.get("state"))] += 1
        st = p.get("state")
        if sent == "new":
            self.fail("a new msg_id %s answered as a duplicate" % mid)
        if sent == "probe":
            orig = p.get("original") or {}
            if st != "done" or not orig.get("success") \
                    or orig.get("message") != "done by " + target:
                self.fail("duplicate of done %s says %s" % (mid, p))
            return
        if st == "done":
            self.finish(mid, act)
        elif st == "failed":
            act["state"] = "failed"
        else:                           # pending: ask again a bit later
            act["state"] = "retry"
            self.retry.append((time.monotonic() + 0.5, mid))

    async def panel_send(self, ws, subset, pending):
        per = self.a.panels
        gap = per / self.a.action_rate if self.a.action_rate else 1e9
        targets = subset or self.targets
        while True:
            await asyncio.sleep(random.expovariate(1.0 / gap))
            url = None
            if self.retry and self.retry[0][0] <= time.monotonic():
                _, mid = self.retry.popleft()
                kind = "retry"
            elif self.stop_load:
                continue
            elif self.done and random.random() < self.a.dup:
                mid, target, url = random.choice(self.done)
                kind = "probe"
            else:
                mid, target = str(uuid.uuid4()), random.choice(targets)
                act = {"target": target, "state": "sent"}
                eph = self.eph_pick()
                if eph:                 # dialed on demand
                    act = {"target": eph, "state": "sent",
                           "url": self.eph_urls[eph]}
                    target = eph
                self.acts[mid] = act
                kind = "new"
            if mid in pending:
                continue
            act = self.acts.get(mid)
            if kind == "retry":
                if act is None or act["state"] == "failed":
                    continue
                target = act["target"]
            pending[mid] = (kind, target)
            self.count["sent_" + kind] += 1
            payload = {"action": "soak", "params": {"n": 1}}
            if act is not None:
                url = act.get("url")
            if url:                     # an ephemeral target, maybe gone
                payload["target_url"] = url
                self.count["sent_to_ephemeral"] += 1
            await ws.send(json.dumps({
                "msg_id": mid, "type": "action", "target_id": target,
                "timestamp": now_ms(), "payload": payload},
                separators=(",", ":")))

    # --- sampling, reloads -----------------------------------------------

    @staticmethod
    def anon_kib(pid):
        # RssAnon: the heap and other private memory, without the shared
        # zone (RssShmem), whose pages a worker touches as the dedupe
        # table fills
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def sample(self):
        t = self.elapsed()
        mem = fds = 0
        ws = self.workers()
        for pid in ws:
            try:
                k = self.anon_kib(pid)
                fds += len(os.listdir("/proc/%d/fd" % pid))
            except OSError:
                continue
            mem += k
            self.mem[pid].append((t, k))
        try:
            m = self.metrics()
        except OSError:
            m = {}
        row = [round(t, 1), len(ws), mem, fds] + [
            int(m.get("amonitor_" + c, -1)) for c in COLUMNS]
        self.samples.append(row)
        if self.csv:
            self.csv.write(",".join(map(str, row)) + "\n")
            self.csv.flush()
        return m

    async def sampler(self):
        while not self.stop_load:
            await asyncio.sleep(self.a.sample)
            self.sample()
            if self.a.verbose:
                print("soak: %s" % self.samples[-1], file=sys.stderr)

    async def reloads(self):
        n = 0
        while self.a.reload_every > 0:
            await asyncio.sleep(self.a.reload_every)
            if self.stop_load:
                break
            inst = self.insts[n % len(self.insts)]     # in turn
            n += 1
            r = inst.nginx("-s", "reload")
            if r.returncode != 0:
                self.fail("reload of %s: %s" % (inst.name, r.stderr.strip()))
            self.count["reloads"] += 1
            self.last_reload = time.monotonic()

    # --- the run ------------------------------------------------------------

    async def run(self):
        a = self.a
        self.prefix = tempfile.mkdtemp(prefix="amon-soak-")
        os.chmod(self.prefix, 0o755)
        cert = make_cert(self.prefix) if a.tls else None
        if cert:
            self.tls = ssl.create_default_context(cafile=cert[0])
        self.insts = [Instance(a, "%s/i%d" % (self.prefix, i), free_port(),
                               "soak-i%d" % i, cert)
                      for i in range(a.instances)]
        self.ports = {t: free_port() for t in self.targets}
        self.sdk_ports = set(self.ports.values())
        self.csv = open(a.csv, "w") if a.csv else None
        if self.csv:
            self.csv.write(",".join(["t", "workers", "anon_kib", "fds"] +
                                    COLUMNS) + "\n")
        for t in self.targets:
            await self.sdk_start(t)
        redis = None
        if a.redis == "auto":
            redis = self.start_redis()
        elif a.redis:
            redis = (a.redis, "soak%d" % os.getpid())
        try:
            for inst in self.insts:
                inst.write_conf([(t, self.ports[t]) for t in self.targets],
                                redis, a.instances > 1)
                r = inst.nginx()
                if r.returncode != 0:
                    self.fail("nginx %s did not start: %s" % (inst.name,
                                                              r.stderr))
                    return
            await self.run_load()
        finally:
            for inst in self.insts:
                if inst.master():
                    inst.nginx("-s", "stop")
            if self.redis_proc:
                self.redis_proc.terminate()
                self.redis_proc.wait()
            if self.csv:
                self.csv.close()
        if not self.violations and not a.keep:
            shutil.rmtree(self.prefix, ignore_errors=True)

    def start_redis(self):
        port = free_port()
        self.redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", HOST,
             "--save", "", "--appendonly", "no", "--dir", self.prefix],
            stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), 0.1).close()
                return ("%s:%d" % (HOST, port), "soak")
            except OSError:
                time.sleep(0.05)
        sys.exit("soak: redis-server did not start")

    def sdk_conns_wanted(self):
        # every worker dials every SDK; in a cluster one worker in all
        return len(self.targets) * (1 if len(self.insts) > 1 else 2)

    async def wait_upstreams(self, want):
        for _ in range(200):
            try:
                if self.metrics().get("amonitor_upstream_connections") == want:
                    return True
            except OSError:
                pass
            await asyncio.sleep(0.05)
        return False

    async def run_load(self):
        a = self.a
        if not await self.wait_upstreams(self.sdk_conns_wanted()):
            self.fail("the workers did not connect to every SDK")
        m0 = self.sample()
        tasks = [asyncio.ensure_future(self.panel(i)) for i in range(a.panels)]
        side = [asyncio.ensure_future(f()) for f in (
            self.sampler, self.churn, self.sdk_restarts, self.reloads,
            self.ephemerals)]
        await asyncio.sleep(a.seconds)

        # stop the load; let every action end (retries go on)
        self.stop_load = True
        for t in side:
            if t is not side[1]:        # short-lived panels end by themselves
                t.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        await self.ephemerals_stop()
        self.say("load stopped")
        for t in self.targets:
            if t not in self.sdk_servers:
                await self.sdk_start(t)
        end = time.monotonic() + 30
        while not self.settled() and time.monotonic() < end:
            await asyncio.sleep(0.2)
        self.say("actions settled: %s" % self.settled())
        self.closing = True
        for ws in list(self.open_ws):
            await ws.close()
        await asyncio.wait(tasks, timeout=10)
        for t in tasks:
            t.cancel()
        await asyncio.sleep(1)
        m1 = self.sample()
        await self.wait_upstreams(self.sdk_conns_wanted())
        self.learned_end = None
        if len(self.insts) == 1 and self.count["ephemeral_sdks"]:
            self.learned_end = await self.learned_forgotten()
        self.end_checks(m0, m1)
        self.mem_check()

        masters = [inst.master() for inst in self.insts]
        t = time.monotonic()
        for inst in self.insts:
            inst.nginx("-s", "quit")
        while any(os.path.exists("/proc/%d" % m) for m in masters) and \
                time.monotonic() - t < 10:
            await asyncio.sleep(0.05)
        self.quit_s = time.monotonic() - t
        if any(os.path.exists("/proc/%d" % m) for m in masters):
            self.fail("nginx did not stop within 10 s")
        levels = self.log_checks()
        self.report(m0, m1, levels)

    def report(self, m0, m1, levels):
        c = self.count
        lat = sorted(self.hb_lat) or [0]
        states = collections.Counter(x["state"] for x in self.acts.values())
        states["done"] = self.n_done
        ran = sum(1 for mid, x in self.acts.items()
                  if x["state"] == "failed" and self.executed[mid])

        def d(k):
            return int(m1.get(k, 0) - m0.get(k, 0))

        print("soak: %.0f s, %d SDKs, %d panels, %d reloads, %d SDK restarts, "
              "%d short-lived panels" % (
                  self.a.seconds, len(self.targets), self.a.panels,
                  c["reloads"], c["sdk_restarts"],
                  sum(v for k, v in c.items() if k.startswith("short_")
                      and not k.startswith(("short_closed", "short_cut")))))
        print("soak: actions: %d new, %d retries, %d duplicate probes; "
              "%d done, %d failed (%d of them ran); acks %d; duplicates %s; "
              "errors %s" % (
                  c["sent_new"], c["sent_retry"], c["sent_probe"],
                  states["done"], states["failed"], ran, c["acks"],
                  {k[4:]: v for k, v in c.items() if k.startswith("dup_")},
                  {k[6:]: v for k, v in c.items() if k.startswith("error_")}))
        print("soak: SDK messages: %d heartbeats, %d events sent; panels "
              "read %d heartbeats, %d events, %d target_status; gaps %d, "
              "agent dropped %d; heartbeat latency p50 %d ms, p99 %d ms, "
              "max %d ms" % (
                  c["heartbeats_sent"], c["events_sent"],
                  c["panel_heartbeat"], c["panel_event"],
                  c["panel_target_status"], self.gaps,
                  d("amonitor_dropped_total"), lat[len(lat) // 2],
                  lat[int(len(lat) * 0.99)], lat[-1]))
        print("soak: agent: forwarded %d, actions %d, duplicates %d, "
              "invalid %d, evictions %d" % (
                  d("amonitor_forwarded_total"), d("amonitor_actions_total"),
                  d("amonitor_duplicates_total"),
                  d("amonitor_invalid_messages_total"),
                  d("amonitor_evictions_total")))
        print("soak: ephemeral targets: %d SDKs, %d actions sent to them, "
              "%d not retried as their SDK had gone; learned targets "
              "still known at the end: %s" % (
                  c["ephemeral_sdks"], c["sent_to_ephemeral"], c["eph_gone"],
                  "not checked" if self.learned_end is None
                  else self.learned_end))
        print("soak: panel closes by code: %s; short-lived panels closed "
              "by a reload: %d with 1012, %d cut without a close" % (
                  dict(self.closes), c["short_closed_1012"],
                  c["short_cut_by_reload"]))
        if self.tls:
            print("soak: over TLS: %d connects of long-lived panels, %d "
                  "short-lived panels" % (c["tls_panel_connects"],
                                          c["tls_short_panels"]))
        print("soak: memory: %s" % self.mem_report)
        print("soak: stop took %.2f s; error log lines by level: %s" % (
            self.quit_s, dict(levels)))
        for msg, n in self.kinds.most_common(6):
            print("soak:   %6d  %s" % (n, msg))
        if self.violations:
            print("soak: FAILED, %d violations:" % c["violation"])
            for v in self.violations:
                print("  " + v)
        else:
            print("soak: passed")


COLUMNS = ["panels", "upstream_connections", "forwarded_total",
           "dropped_total", "actions_total", "duplicates_total",
           "invalid_messages_total", "evictions_total"]


def main():
    ap = argparse.ArgumentParser(
        description="Soak run of the agent: bench/soak/README.md")
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--sdks", type=int, default=16)
    ap.add_argument("--panels", type=int, default=16)
    ap.add_argument("--hb-interval", type=float, default=1.0)
    ap.add_argument("--event-rate", type=float, default=10,
                    help="events per second per SDK connection")
    ap.add_argument("--action-rate", type=float, default=200,
                    help="actions per second, all panels together")
    ap.add_argument("--dup", type=float, default=0.05,
                    help="share of actions that repeat an answered msg_id")
    ap.add_argument("--slow-ack", type=float, default=0.01,
                    help="share of acks an SDK delays by up to 300 ms")
    ap.add_argument("--churn", type=float, default=20,
                    help="short-lived panels per second")
    ap.add_argument("--sdk-restart-every", type=float, default=30,
                    help="seconds; 0: never")
    ap.add_argument("--sdk-down", type=float, default=2)
    ap.add_argument("--reload-every", type=float, default=400,
                    help="seconds; 0: never")
    ap.add_argument("--ephemeral-every", type=float, default=2,
                    help="seconds between SDKs dialed on demand that go "
                    "after a while; 0: none")
    ap.add_argument("--ephemeral-life", type=float, default=6,
                    help="seconds an ephemeral SDK lives, on average")
    ap.add_argument("--zone", default="32m",
                    help="amonitor_zone size; a small one keeps it full, "
                    "evicting")
    ap.add_argument("--learned-expire", type=int, default=5,
                    help="amonitor_learned_expire, seconds")
    ap.add_argument("--sample", type=float, default=5)
    ap.add_argument("--max-growth", type=float, default=256,
                    help="KiB per minute of RssAnon, at most")
    ap.add_argument("--mem-min-life", type=float, default=300,
                    help="judge memory only for a worker that lived this long")
    ap.add_argument("--redis", default=None,
                    help="HOST:PORT, or auto (a private redis-server): "
                    "the Redis store")
    ap.add_argument("--instances", type=int, default=1,
                    help="nginx instances; more than one: amonitor_cluster "
                    "(with --redis auto unless --redis says)")
    ap.add_argument("--module", default="build/ngx_http_amonitor_module.so")
    ap.add_argument("--tls", action="store_true",
                    help="every other pair of long-lived panels and half "
                    "of the clean and subscribe short-lived ones over "
                    "wss:// (listen ... ssl, a self-signed certificate)")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--csv", default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--inject", choices=["gap", "rerun"], default=None,
                    help="the checker's self-test: every SDK connection "
                    "skips one sequence number, or an SDK reports a msg_id "
                    "run twice")
    ap.add_argument("--keep", action="store_true",
                    help="keep the nginx prefix (kept anyway on failure)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.instances > 1 and not a.redis:
        a.redis = "auto"
    if a.seed is not None:
        random.seed(a.seed)
    s = Soak(a)
    asyncio.run(s.run())
    if s.violations:
        print("soak: nginx prefix kept: %s" % s.prefix)
    sys.exit(1 if s.violations else 0)


if __name__ == "__main__":
    main()
