#!/usr/bin/env python3
# Turn a demo config (examples/config*.json) into an nginx.conf for the
# AMonitor module and a list of the SDKs to start.  Standard library only.
#
#   gen-nginx-conf.py --config examples/config.json --module /abs/x.so \
#       --out build/demo/nginx.conf --sdk-list build/demo/sdks.txt
#
# Environment overrides (all optional):
#   SDK_COUNT               generate that many SDKs instead of the config's
#   SDK_START_PORT          first SDK port: of generated SDKs (8765), or
#                           the config's SDKs moved to consecutive ports
#   SDK_HEARTBEAT_INTERVAL  heartbeat seconds for every SDK
#   SDK_EVENT_INTERVAL      event seconds for every SDK (0: none)
#   AGENT_PORT              the agent's port (8080)
#   AGENT_WORKERS           nginx worker_processes
#
# The SDK list has one line per SDK:
#   target_id port heartbeat_seconds event_seconds token

import argparse
import json
import os
import re
import sys

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TOKEN_RE = re.compile(r"^[!-~]{1,256}$")
SIZE_RE = re.compile(r"^[0-9]+[kKmM]?$")
TIME_RE = re.compile(r"^[0-9]+(ms|s|m|h)?$")


def fail(msg):
    sys.stderr.write("gen-nginx-conf: %s\n" % msg)
    sys.exit(2)


def env_number(name, default, kind=float, low=0, high=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = kind(raw)
    except ValueError:
        fail("%s must be a number, not %r" % (name, raw))
    if v < low or (high is not None and v > high):
        fail("%s=%s is out of range" % (name, raw))
    return v


def seconds(v, what):
    if not isinstance(v, (int, float)) or v < 0 or v > 86400:
        fail("%s must be a number of seconds" % what)
    return v


def load(path):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (path, e))
    if not isinstance(cfg, dict):
        fail("%s: the top level must be an object" % path)
    return cfg


def sdks_from(cfg):
    defaults = cfg.get("sdk_defaults", {})
    hb = defaults.get("heartbeat_interval", 5)
    ev = defaults.get("event_interval", 0)
    hb = env_number("SDK_HEARTBEAT_INTERVAL", hb, float, 0.05, 86400)
    ev_env = os.environ.get("SDK_EVENT_INTERVAL")

    count = env_number("SDK_COUNT", None, int, 1, 5000)
    if count is not None:
        start = env_number("SDK_START_PORT", 8765, int, 1, 65535)
        if start + count - 1 > 65535:
            fail("SDK_START_PORT + SDK_COUNT goes past port 65535")
        width = max(3, len(str(count)))
        sdks = [{"target_id": "demo-target-%0*d" % (width, i + 1),
                 "port": start + i} for i in range(count)]
    else:
        sdks = cfg.get("sdks")
        if not isinstance(sdks, list) or not sdks:
            fail("the config needs a non-empty \"sdks\" list")
        if os.environ.get("SDK_START_PORT", "") != "":
            # the config's SDKs, in order, on consecutive ports from there
            start = env_number("SDK_START_PORT", 8765, int, 1, 65535)
            if start + len(sdks) - 1 > 65535:
                fail("SDK_START_PORT + the number of SDKs goes past 65535")
            sdks = [dict(s, port=start + i) if isinstance(s, dict) else s
                    for i, s in enumerate(sdks)]

    out = []
    seen_ids, seen_ports = set(), set()
    for s in sdks:
        tid = s.get("target_id")
        port = s.get("port")
        if not isinstance(tid, str) or not ID_RE.match(tid):
            fail("invalid target_id %r" % (tid,))
        if not isinstance(port, int) or not 1 <= port <= 65535:
            fail("invalid port %r for %s" % (port, tid))
        if tid in seen_ids or port in seen_ports:
            fail("duplicate target_id or port: %s %d" % (tid, port))
        seen_ids.add(tid)
        seen_ports.add(port)
        token = s.get("token", "-")
        if token != "-" and (not isinstance(token, str)
                             or not TOKEN_RE.match(token)):
            fail("invalid token for %s" % tid)
        s_hb = hb if "SDK_HEARTBEAT_INTERVAL" in os.environ else \
            seconds(s.get("heartbeat_interval", hb), "heartbeat_interval")
        s_ev = seconds(s.get("event_interval", ev), "event_interval")
        if ev_env not in (None, ""):
            s_ev = env_number("SDK_EVENT_INTERVAL", 0, float, 0, 86400)
        out.append((tid, port, s_hb, s_ev, token))
    return out


def render(cfg, sdks, module):
    agent = cfg.get("agent", {})
    port = env_number("AGENT_PORT", agent.get("listen", 8080), int, 1, 65535)
    workers = env_number("AGENT_WORKERS", agent.get("worker_processes", 2),
                         int, 1, 64)
    path = agent.get("panel_path", "/ws/panel")
    zone = agent.get("zone_size", "16m")
    ping = agent.get("ping", "20s")
    if not isinstance(path, str) or not re.match(r"^/[A-Za-z0-9/_.-]*$",
                                                  path):
        fail("invalid panel_path %r" % (path,))
    if not SIZE_RE.match(str(zone)):
        fail("invalid zone_size %r" % (zone,))
    if not TIME_RE.match(str(ping)):
        fail("invalid ping %r" % (ping,))
    conns = max(1024, 4 * len(sdks) + 512)
    tls = agent.get("tls", False)
    if not isinstance(tls, bool):
        fail("invalid tls %r (true or false)" % (tls,))

    lines = [
        "# Generated by examples/gen-nginx-conf.py; edits are overwritten.",
        "load_module %s;" % module,
        "",
        "worker_processes %d;" % workers,
        "worker_rlimit_nofile %d;" % (conns * 2),
        "daemon off;",
        "pid nginx.pid;",
        "error_log error.log info;",
        "",
        "events {",
        "    worker_connections %d;" % conns,
        "}",
        "",
        "http {",
        "    access_log off;",
        "    client_body_temp_path temp/client_body;",
        "    proxy_temp_path temp/proxy;",
        "    fastcgi_temp_path temp/fastcgi;",
        "    uwsgi_temp_path temp/uwsgi;",
        "    scgi_temp_path temp/scgi;",
        "",
        "    amonitor_zone amonitor %s;" % zone,
        "    amonitor_ping %s;" % ping,
    ]
    if tls:
        # made by scripts/tls-certs.sh in the prefix (demo.sh does it)
        lines += [
            "    amonitor_ssl_trusted_certificate certs/ca.crt;",
            "    amonitor_ssl_certificate certs/agent.crt;",
            "    amonitor_ssl_certificate_key certs/agent.key;",
        ]
    for tid, p, _, _, token in sdks:
        extra = "" if token == "-" else " token=%s" % token
        lines.append("    amonitor_target %s %s://127.0.0.1:%d/%s;"
                     % (tid, "wss" if tls else "ws", p, extra))
    lines += [
        "",
        "    server {",
        "        listen 127.0.0.1:%d;" % port,
        "",
        "        location = %s { amonitor_panel on; }" % path,
        "        location = /amonitor/status { amonitor_status; }",
        "        location = /amonitor/metrics { amonitor_metrics; }",
        "        location /amonitor/ { amonitor_dashboard on; }",
        "        location = /healthz { return 200 \"ok\\n\"; }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines), port, path, tls


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--module", required=True,
                    help="absolute path of ngx_http_amonitor_module.so")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sdk-list", required=True)
    args = ap.parse_args()

    if not os.path.isabs(args.module):
        fail("--module must be an absolute path")

    cfg = load(args.config)
    sdks = sdks_from(cfg)
    conf, port, path, tls = render(cfg, sdks, args.module)

    with open(args.out, "w") as f:
        f.write(conf)
    with open(args.sdk_list, "w") as f:
        for tid, p, hb, ev, token in sdks:
            f.write("%s %d %g %g %s\n" % (tid, p, hb, ev, token))

    panel = cfg.get("panel", {})
    # what the run script needs, as shell assignments
    print("AGENT_PORT=%d" % port)
    print("PANEL_PATH=%s" % path)
    print("TLS=%d" % (1 if tls else 0))
    print("PANEL_MODE=%s" % panel.get("mode", "sim"))
    print("BENCH_RATE=%g" % float(panel.get("rate", 100)))


if __name__ == "__main__":
    main()
