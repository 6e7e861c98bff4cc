#!/usr/bin/python3
# amonitor CLI tests without nginx: a python3-websockets fake agent
# (fake_agent.py) forwards to the example SDK or answers for mock
# targets; the CLI's output and exit codes are checked.

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "..", "sdk", "tests"))

from amontest import (BUILD, Lines, Tap, skip_all, slow_factor,
                      valgrind_prefix)

try:
    import websockets  # noqa: F401  (the fake agent needs it)
except ImportError:
    skip_all("python3-websockets is not installed (make deps)")

CLI = os.path.join(BUILD, "amonitor")
EXAMPLE = os.path.join(BUILD, "sdk", "amonitor-sdk-example")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

t = Tap()
procs = []
sanitizer_reports = []


def start(argv, ready):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, bufsize=1)
    procs.append(p)
    p.lines = Lines(p.stdout)
    line = p.lines.wait_for(ready, 20 * slow_factor())
    if ready not in line:
        raise RuntimeError("%s did not start: %s"
                           % (argv[0], "".join(p.lines.all)))
    return p, line


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5 * slow_factor())
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def serve_status(body):
    """An amonitor_status stand-in on a free port: (its URL, stop)."""
    import http.server
    import threading

    data = json.dumps(body).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return ("http://127.0.0.1:%d/amonitor/status" % srv.server_address[1],
            srv.shutdown)


def cli(*args, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run(valgrind_prefix() + [CLI] + list(args),
                       capture_output=True, text=True,
                       timeout=timeout * slow_factor())
    if ("Sanitizer" in r.stderr or "runtime error:" in r.stderr
            or "==ERROR" in r.stderr or r.returncode == 99):
        sanitizer_reports.append(" ".join(args) + "\n" + r.stderr)
    return r.returncode, r.stdout, r.stderr, time.monotonic() - t0


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_ack(out):
    """The ack of "ack_matched <the ack>" (JSON), or None."""
    if not out.startswith("ack_matched {"):
        return None
    try:
        return json.loads(out[len("ack_matched "):])
    except ValueError:
        return None


def age(row):
    """A watch --json row's heartbeat_age_ms; -1 when there is none."""
    v = row.get("heartbeat_age_ms")
    return -1 if v is None else v


def agent_times(p, word):
    """The ms of the agent's "WORD <ms>" lines so far."""
    time.sleep(0.2)
    return [int(ln.split()[1]) for ln in p.lines.all
            if ln.startswith(word + " ")]


def start_agent(*extra):
    p, line = start([PY, os.path.join(HERE, "fake_agent.py"), "--port", "0",
                     "--heartbeat", "0.5"] + list(extra), "READY ")
    return p, "ws://127.0.0.1:%s/ws/panel" % line.split()[1]


# an example SDK and a fake agent that knows it plus mock targets
sdk, line = start([EXAMPLE, "--port", "0", "--target-id", "demo-target-a",
                   "--interval", "0.5", "--event-interval", "0.2"],
                  "serving ws://")
sdk_url = line.split("serving ")[1].split(" ")[0]
agent, url = start_agent("--target", "demo-target-a=" + sdk_url,
                         "--mock", "mock-ok:ok", "--mock", "mock-fail:fail",
                         "--mock", "mock-err:error",
                         "--mock", "mock-silent:silent",
                         "--mock", "mock-nd:nodedupe")
time.sleep(0.5)

try:
    # --- send ---------------------------------------------------------
    rc, out, err, _ = cli("send", "--url", url, "--target-id",
                          "demo-target-a", "--msg-id", "cli-send-1")
    t.is_(rc, 0, "send: exit 0 when the ack says success")
    t.ok(out.startswith("ack_matched {"), "send: prints ack_matched", out)
    ack = json.loads(out[len("ack_matched "):])
    t.is_((ack["type"], ack["payload"]["action_msg_id"],
           ack["payload"]["message"]),
          ("action_ack", "cli-send-1", "restarted"),
          "send: the printed ack is the SDK's ack for our msg_id")

    rc, out, err, _ = cli("send", "--url", url, "--target-id",
                          "demo-target", "--target-url", sdk_url, "--json")
    lines = json_lines(out)
    t.ok(rc == 0 and len(lines) == 1 and lines[0]["event"] == "ack_matched"
         and lines[0]["ack"]["payload"]["success"] is True,
         "send --json: one JSON line; an unknown id with a known URL works",
         out + err)

    rc, out, err, _ = cli("send", "--url", url, "--target-id",
                          "demo-target-a", "--action", "fly",
                          "--params", '{"speed":3}')
    t.ok(rc == 1 and "ack_matched" in out
         and "unsupported action: fly" in err,
         "send: success:false exits 1 with the reason on stderr", out + err)

    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-fail")
    t.ok(rc == 1 and "failed on purpose" in err, "send: a failed action",
         err)

    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-err",
                          "--msg-id", "e-1")
    t.ok(rc == 1 and out.strip() == "error TARGET_UNAVAILABLE target is down"
         and "TARGET_UNAVAILABLE" in err,
         "send: an error envelope for our msg_id prints its code, exit 1",
         out + err)

    rc, out, err, _ = cli("send", "--url", url, "--target-id", "nowhere")
    t.ok(rc == 1 and "UNKNOWN_TARGET" in out, "send: unknown target", out)

    rc, out, err, secs = cli("send", "--url", url, "--target-id",
                             "mock-silent", "--timeout", "1")
    t.ok(rc == 1 and out.strip() == "ack_timeout" and 0.9 < secs < 3,
         "send: ack_timeout after --timeout (%.2fs)" % secs, out + err)

    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-silent",
                          "--timeout", "0.5", "--json")
    t.ok(rc == 1 and json_lines(out)[0]["event"] == "ack_timeout",
         "send --json: ack_timeout as JSON", out)

    # --binary: the protobuf ack is printed as JSON too, as without it
    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-ok",
                          "--binary", "--msg-id", "cli-bin-1")
    ack = parse_ack(out)
    t.ok(rc == 0 and ack is not None,
         "send --binary: prints ack_matched and the ack as JSON", out + err)
    t.is_(ack and (ack["type"], ack["target_id"],
                   ack["payload"]["action_msg_id"], ack["payload"]["success"],
                   ack["payload"]["message"], ack["payload"]["final"]),
          ("action_ack", "mock-ok", "cli-bin-1", True, "restarted", True),
          "send --binary: the JSON is the protobuf ack's fields")
    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-fail",
                          "--binary")
    ack = parse_ack(out)
    t.ok(rc == 1 and ack is not None and ack["payload"]["success"] is False
         and "failed on purpose" in err,
         "send --binary: a failed ack as JSON too, exit 1", out + err)
    rc, out, err, _ = cli("send", "--url", url, "--target-id", "mock-ok",
                          "--binary", "--json", "--msg-id", "cli-bin-2")
    lines = json_lines(out)
    t.ok(rc == 0 and len(lines) == 1 and lines[0]["event"] == "ack_matched"
         and lines[0]["ack"]["payload"]["action_msg_id"] == "cli-bin-2"
         and lines[0]["ack"]["payload"].get("final") is True,
         "send --binary --json: the ack as JSON, final included", out)

    # --- usage errors --------------------------------------------------
    for args, name in [
            (["send", "--url", url], "send without a target"),
            (["send", "--url", url, "--target-id", "x", "--params", "{"],
             "send with --params that is not JSON"),
            (["send", "--bogus"], "an unknown option"),
            (["send", "--target-id", "x", "--timeout", "abc"],
             "a bad --timeout"),
            (["watch", "--action", "x"], "an option of another command"),
            (["frobnicate"], "an unknown command"),
            ([], "no command"),
            (["send", "--target-id", "x", "extra"], "a stray argument")]:
        rc, out, err, _ = cli(*args)
        t.ok(rc == 2 and err.strip() != "", "usage error (exit 2): " + name,
             (rc, err))

    # the option is named, not its value, whichever way it is written
    for args, opt in [
            (["watch", "--action", "x"], "--action"),
            (["watch", "--action=x"], "--action"),
            (["dedupe-check", "--params", "{}"], "--params"),
            (["watch", "--binary"], "--binary")]:
        rc, out, err, _ = cli(*args)
        t.ok(rc == 2 and ('option "%s" does not apply' % opt) in err,
             "usage error names the option: " + " ".join(args), (rc, err))

    rc, out, err, _ = cli("--help")
    t.ok(rc == 0 and "dedupe-check" in out and "watch" in out,
         "--help lists the commands")

    # --- connection failures -------------------------------------------
    rc, out, err, _ = cli("send", "--url", "ws://127.0.0.1:9/ws/panel",
                          "--target-id", "x", "--timeout", "2")
    t.ok(rc == 1 and "127.0.0.1" in err, "a refused connection: exit 1",
         err)
    rc, out, err, _ = cli("send", "--url", url.replace("/ws/panel", "/nope"),
                          "--target-id", "x")
    t.ok(rc == 1 and "404" in err, "a refused handshake: exit 1 with status",
         err)
    rc, out, err, _ = cli("send", "--url", "http://x/", "--target-id", "x")
    t.ok(rc == 1 and "invalid URL" in err, "a non-ws URL", err)

    # --- dedupe-check --------------------------------------------------
    rc, out, err, _ = cli("dedupe-check", "--url", url, "--target-id",
                          "demo-target-a")
    t.ok(rc == 0 and out.strip() == "dedupe_ok",
         "dedupe-check: dedupe_ok against a de-duplicating agent",
         out + err)
    rc, out, err, _ = cli("dedupe-check", "--url", url, "--target-id",
                          "mock-nd")
    t.ok(rc == 1 and "dedupe_failed" in out and "restarted" in err,
         "dedupe-check: fails when the second action is executed again",
         out + err)
    rc, out, err, _ = cli("dedupe-check", "--url", url, "--target-id",
                          "mock-ok", "--json")
    lines = json_lines(out)
    t.ok(rc == 0 and [x["event"] for x in lines] == ["first", "dedupe_ok"]
         and lines[1]["ack"]["payload"]["duplicate"] is True,
         "dedupe-check --json: both answers as JSON lines", out)
    rc, out, err, _ = cli("dedupe-check", "--url", url, "--target-id",
                          "mock-err")
    t.ok(rc == 1 and "TARGET_UNAVAILABLE" in out,
         "dedupe-check: an error on the first action fails", out)

    # --- watch ----------------------------------------------------------
    rc, out, err, secs = cli("watch", "--url", url, "--once", "--timeout",
                             "1.5", "--target-id", "ghost")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    t.ok(rc == 0 and 1.4 < secs < 4, "watch --once: exits after --timeout",
         (rc, secs, err))
    t.ok("demo-target-a" in rows and rows["demo-target-a"][1] == "up",
         "watch: a target with heartbeats is up", out)
    t.ok(rows.get("ghost", [None, None])[1] == "?",
         "watch: a named target never heard of is unknown", out)
    t.ok(all(rows.get(m, [0, 0])[1] == "up" for m in
             ("mock-ok", "mock-fail", "mock-err")),
         "watch: every target seen is listed", out)
    t.ok("\033[" not in out, "watch --once: no ANSI codes")

    rc, out, err, _ = cli("watch", "--url", url, "--once", "--timeout",
                          "3.2", "--json")
    rows = {r["target_id"]: r for r in json_lines(out)}
    a = rows.get("demo-target-a", {})
    t.ok(a.get("state") == "up" and a.get("heartbeats", 0) >= 3
         and a.get("heartbeat_age_ms") is not None
         and 3 <= a.get("events_per_s", 0) <= 7,
         "watch --json: state, heartbeats, heartbeat age, events/s (~5)", a)

    # target_status from the agent: the SDK goes away
    # --- sim ------------------------------------------------------------
    p = subprocess.Popen([CLI, "sim", "--url", url, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=5)
    lines = json_lines(out)
    sent = [x["message"] for x in lines if x["event"] == "sent"]
    recv = [x["message"] for x in lines if x["event"] == "recv"]
    t.is_(p.returncode, 0, "sim: exits 0 on SIGINT")
    t.is_([(m["target_id"], m["payload"]["action"], m["payload"]["params"],
            m["payload"]["target_url"]) for m in sent],
          [("demo-target-a", "restart", {"from": "panel-simulator"},
            "ws://127.0.0.1:8765"),
           ("demo-target-b", "restart", {"from": "panel-simulator"},
            "ws://127.0.0.1:8766")],
          "sim: one restart per default target, with the original params")
    acks = [m for m in recv if m["type"] == "action_ack"]
    errors = [m for m in recv if m["type"] == "error"]
    t.ok(len(acks) == 1 and acks[0]["payload"]["success"]
         and acks[0]["payload"]["action_msg_id"] == sent[0]["msg_id"],
         "sim: prints the ack for demo-target-a", recv)
    t.ok(len(errors) == 1 and errors[0]["msg_id"] == sent[1]["msg_id"],
         "sim: prints the error for the unknown demo-target-b", recv)
    t.ok(any(m["type"] == "heartbeat" for m in recv)
         and any(m["type"] == "event" for m in recv),
         "sim: prints heartbeats and events as they come")

    # human output, and reconnecting after the agent restarts
    p = subprocess.Popen([CLI, "sim", "--url", url, "--target-id",
                          "mock-ok"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    stop(agent)
    port = url.split(":")[2].split("/")[0]
    time.sleep(0.5)
    agent, url = start_agent("--port", port, "--mock", "mock-ok:ok")
    time.sleep(3.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=5)
    connects = out.count("connected to ")
    acks = [ln for ln in out.splitlines()
            if " recv  action_ack" in ln and "success=true" in ln]
    t.ok(connects == 2 and len(acks) == 1,
         "sim: reconnects after the agent went away, without sending the "
         "action again", out + err)
    t.ok("reconnecting to %s in 2s" % url in out,
         "sim: says it will retry in 2 s", out)
    hb = [ln for ln in out.splitlines()
          if " heartbeat " in ln and " mock-ok " in ln]
    t.ok(hb and "status=up" in hb[0] and 'metrics={"mock":"1"}' in hb[0],
         "sim: a compact human line per message", hb[:1])

    # --- the agent's snapshot: a replayed heartbeat keeps its age -------
    # dead-b: down 31 s, last heartbeat 38 s ago; ahead-c: up, its SDK's
    # clock 5 s ahead; skewed-d: down 20 s, its SDK's clock 60 s ahead
    agent3, url3 = start_agent("--mock", "mock-ok:ok",
                               "--snapshot", "dead-b:down:38:31",
                               "--snapshot", "ahead-c:up:-5:100",
                               "--snapshot", "skewed-d:down:-60:20")
    rc, out, err, _ = cli("watch", "--url", url3, "--once", "--timeout", "1",
                          "--json", "--status-url", "none")
    rows = {r["target_id"]: r for r in json_lines(out)}
    b, c, d, m = (rows.get(x, {}) for x in ("dead-b", "ahead-c", "skewed-d",
                                            "mock-ok"))
    t.ok(b.get("state") == "down"
         and 38000 <= age(b) < 41000
         and m.get("state") == "up" and m.get("heartbeats", 0) >= 1
         and 0 <= age(m) < 1500,
         "watch: a dead target's replayed heartbeat is as old as its "
         "timestamp says (~38 s), live ones as their arrival", (b, m))
    t.ok(d.get("state") == "down"
         and 20000 <= age(d) < 23000
         and c.get("state") == "up"
         and 0 <= age(c) < 2500,
         "watch: SDK clocks running ahead: a down target's heartbeat never "
         "younger than its time down (20 s), an up one's not negative",
         (d, c))
    rc, out, err, _ = cli("watch", "--url", url3, "--once", "--timeout", "1",
                          "--status-url", "none")
    row = [ln.split() for ln in out.splitlines() if ln.startswith("dead-b ")]
    t.ok(row and row[0][1] == "down" and 38.0 <= float(row[0][2][:-1]) < 41,
         "watch: the table shows the dead target down, ~38 s", out)

    # --- more targets than the table holds: said, not silent ------------
    status_url, status_stop = serve_status(
        {"targets": [{"id": "many-%05d" % i, "state": "up"}
                     for i in range(9000)]})
    rc, out, err, _ = cli("watch", "--url", url3, "--once", "--timeout", "1",
                          "--json", "--status-url", status_url)
    rows = json_lines(out)
    t.ok(rc == 0 and len(rows) == 8192
         and len({r["target_id"] for r in rows}) == 8192,
         "watch: 9,000 targets listed: the table holds 8,192 distinct ones",
         (rc, len(rows), err))
    t.ok(err.count("more than 8192 targets: the others are not shown "
                   "(--subscribe chooses which)") == 1,
         "and says once that the others are not shown", err)
    rc, out, err, _ = cli("watch", "--url", url3, "--once", "--timeout", "1",
                          "--json", "--status-url", status_url,
                          "--subscribe", "many-0000*,many-08999,é x")
    asked = [ln for ln in agent3.lines.all if ln.startswith("TARGETS ")]
    t.is_(asked[-1:], ["TARGETS many-0000*,many-08999,é x\n"],
          "watch --subscribe: the panel URL's ?targets= names the set")
    # (the stand-in agent does not filter what it sends: only the list is
    # checked here; t/165 checks the agent's side)
    t.is_(sorted(r["target_id"] for r in json_lines(out)
                 if r.get("target_id", "").startswith("many-")),
          ["many-%05d" % i for i in range(10)] + ["many-08999"],
          "watch --subscribe: the status list cut to the set")
    status_stop()
    stop(agent3)

    # --- a close with 1012 (reload): reconnect at once, no actions again
    agent4, url4 = start_agent("--mock", "mock-ok:ok",
                               "--close-first", "1012:0.7")
    rc, out, err, _ = cli("sim", "--url", url4, "--json", "--target-id",
                          "mock-ok", "--duration", "3.5")
    lines = json_lines(out)
    closed, panels = agent_times(agent4, "CLOSED"), agent_times(agent4,
                                                                "PANEL")
    t.ok(len(closed) == 1 and len(panels) >= 2
         and panels[1] - closed[0] < 1000,
         "sim: reconnects at once after the agent's 1012", (closed, panels))
    t.is_([x.get("delay_ms") for x in lines if x["event"] == "retry"], [0],
          "sim --json: the retry says delay_ms 0")
    actions = [ln for ln in agent4.lines.all if ln.startswith("ACTION ")]
    t.ok(len([x for x in lines if x["event"] == "sent"]) == 1
         and len(actions) == 1,
         "sim: the startup action is not sent again on the reconnect",
         actions)
    stop(agent4)

    agent5, url5 = start_agent("--mock", "mock-ok:ok",
                               "--close-first", "1012:0.5",
                               "--exit-after-close")
    rc, out, err, _ = cli("sim", "--url", url5, "--json", "--target-id",
                          "mock-ok", "--duration", "3.2")
    lines = json_lines(out)
    retries = [x for x in lines if x["event"] == "retry"]
    t.ok([x.get("delay_ms") for x in retries][:3] == [0, 2000, 2000]
         and retries[2]["time"] - retries[1]["time"] >= 1900
         and len([x for x in lines if x["event"] == "connect_failed"]) >= 2,
         "sim: when the reconnect after 1012 fails, it retries every 2 s",
         out)

    agent6, url6 = start_agent("--mock", "mock-ok:ok",
                               "--close-first", "1012:0.7")
    p = subprocess.Popen([CLI, "watch", "--url", url6, "--json",
                          "--status-url", "none"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2.4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=5)
    closed, panels = agent_times(agent6, "CLOSED"), agent_times(agent6,
                                                                "PANEL")
    t.ok(len(closed) == 1 and len(panels) >= 2
         and panels[1] - closed[0] < 1000 and "1012" in err,
         "watch: reconnects at once after the agent's 1012",
         (closed, panels, err))
    stop(agent6)

    # --- bench ----------------------------------------------------------
    agent2, url2 = start_agent("--target", "demo-target-a=" + sdk_url,
                               "--mock", "mock-ok:ok")
    time.sleep(0.7)
    rc, out, err, _ = cli("bench", "--url", url2, "--rate", "200",
                          "--duration", "2.2", "--json", "--target-id",
                          "demo-target-a,mock-ok", timeout=20)
    lines = json_lines(out)
    summary = lines[-1] if lines else {}
    t.ok(rc == 0 and len(lines) >= 3 and summary["event"] == "bench_summary",
         "bench --json: a line per second and a summary", out + err)
    t.ok(400 <= summary.get("sent", 0) <= 470
         and summary.get("acks") == summary.get("sent")
         and summary.get("errors") == 0,
         "bench: sends at the rate asked and every action is acked",
         summary)
    t.ok(0 < summary.get("p50_ms", 0) <= summary.get("p99_ms", 0) < 1000,
         "bench: latency percentiles", summary)
    t.ok(summary.get("events", 0) > 5, "bench: counts events received",
         summary)

    # watch, live: redraws once a second and survives an agent restart
    p = subprocess.Popen([CLI, "watch", "--url", url2, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(1.5)
    stop(agent2)
    port2 = url2.split(":")[2].split("/")[0]
    time.sleep(1.0)
    agent2, url2 = start_agent("--port", port2, "--mock", "mock-ok:ok")
    time.sleep(3.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=5)
    rows = [r for r in json_lines(out) if r["target_id"] == "mock-ok"]
    t.ok(p.returncode == 0 and len(rows) >= 4,
         "watch: a JSON snapshot per second until SIGINT, exit 0",
         (p.returncode, out, err))
    t.ok("connection closed" in err or "closed by" in err,
         "watch: reports the lost connection", err)
    t.ok(rows and rows[-1]["state"] == "up"
         and rows[-1]["heartbeats"] > rows[0]["heartbeats"]
         and rows[-1]["heartbeat_age_ms"] < 1500,
         "watch: reconnects and keeps counting heartbeats", rows[-1:])
    stop(agent2)

finally:
    for p in procs:
        stop(p)

t.is_(sanitizer_reports, [], "no sanitizer or valgrind report from the CLI")
t.done()
