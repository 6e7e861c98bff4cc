# One nginx of the soak run (bench/soak/soak.py): its prefix, config,
# control and the agent's metrics.  With several instances they share a
# Redis and run amonitor_cluster.

import os
import random
import socket
import subprocess
import sys
import urllib.request

# each run on an address of its own, so that runs side by side cannot
# meet on a port one of them has let go (an SDK that is down, or gone)
HOST = "127.%d.%d.1" % (random.randint(1, 254), random.randint(1, 254))
TAKEN = set()
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    """A free port just below the kernel's ephemeral range, so that no
    outgoing connection takes it while an SDK is down (the test harness
    takes its ports lower still)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        top = int(f.read().split()[0]) - 1
    for _ in range(1000):
        p = random.randint(top - 700, top)
        if p in TAKEN:
            continue
        s = socket.socket()
        try:
            s.bind((HOST, p))
            TAKEN.add(p)
            return p
        except OSError:
            continue
        finally:
            s.close()
    sys.exit("soak: no free port below %d" % top)


CONF = """load_module %(module)s;
worker_processes 2;
worker_rlimit_nofile 8192;
error_log %(p)s/error.log info;
pid %(p)s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(p)s/cbt; proxy_temp_path %(p)s/pt;
  fastcgi_temp_path %(p)s/ft; uwsgi_temp_path %(p)s/ut;
  scgi_temp_path %(p)s/st;
  amonitor_zone soak %(zone)s;
%(store)s
  amonitor_reconnect 100ms 1s;
  amonitor_ack_timeout 3s;
  amonitor_ack_late_window 3s;
  amonitor_max_message_size 64k;
  amonitor_allow_url ws://%(host)s:*;
  amonitor_learned_expire %(expire)ds;
  amonitor_dial_limit 64;
  amonitor_dial_limit_per_panel 16;
%(targets)s
  server {
    listen %(host)s:%(port)d;
    location = /ws/panel { amonitor_panel on; }
    location = /amonitor/metrics { amonitor_metrics; }
    location = /amonitor/status { amonitor_status; }
  }
%(tls_server)s}
"""

# with --tls: panels over nginx's listen ... ssl too
TLS_SERVER = """  server {
    listen %(host)s:%(port)d ssl;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    location = /ws/panel { amonitor_panel on; }
  }
"""


def make_cert(prefix):
    """A self-signed certificate for HOST in prefix: (crt, key)."""
    crt, key = prefix + "/panel.crt", prefix + "/panel.key"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-subj", "/CN=soak",
                        "-addext", "subjectAltName=IP:" + HOST,
                        "-keyout", key, "-out", crt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("soak: openssl could not make a certificate: " + r.stderr)
    return crt, key


class Instance:
    def __init__(self, a, prefix, port, name, cert=None):
        self.a = a
        self.prefix = prefix
        self.port = port
        self.name = name
        self.cert = cert                # (crt, key) with --tls
        self.tls_port = free_port() if cert else None
        os.makedirs(prefix)
        os.chmod(prefix, 0o755)

    def write_conf(self, targets, redis, cluster):
        store = ""
        if redis:
            store = "  amonitor_redis %s prefix=%s: timeout=1s;\n" % redis
        if cluster:
            store += ("  amonitor_cluster on route_ttl=1m;\n"
                      "  amonitor_instance_id %s;\n" % self.name)
        tls_server = ""
        if self.cert:
            tls_server = TLS_SERVER % dict(host=HOST, port=self.tls_port,
                                           crt=self.cert[0], key=self.cert[1])
        conf = CONF % dict(
            tls_server=tls_server,
            module=os.path.abspath(self.a.module), p=self.prefix,
            store=store, port=self.port, expire=self.a.learned_expire,
            host=HOST, zone=self.a.zone,
            targets="".join(
                "  amonitor_target %s ws://%s:%d/;\n" % (t[0], HOST, t[1])
                for t in targets))
        with open(self.prefix + "/nginx.conf", "w") as f:
            f.write(conf)

    def nginx(self, *args):
        return subprocess.run([self.a.nginx, "-p", self.prefix + "/", "-c",
                               self.prefix + "/nginx.conf", "-e",
                               self.prefix + "/error.log"] + list(args),
                              capture_output=True, text=True)

    def master(self):
        try:
            with open(self.prefix + "/nginx.pid") as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def workers(self):
        m = self.master()
        if m is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(m)], capture_output=True,
                             text=True).stdout.split()
        pids = []
        for p in out:
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if b"worker process" in f.read():
                        pids.append(int(p))
            except OSError:
                pass
        return pids

    def url(self, query="", tls=False):
        if tls:
            return "wss://%s:%d/ws/panel%s" % (HOST, self.tls_port, query)
        return "ws://%s:%d/ws/panel%s" % (HOST, self.port, query)

    def metrics(self):
        """The agent's unlabelled series, as numbers."""
        with NO_PROXY.open("http://%s:%d/amonitor/metrics" % (HOST, self.port),
                           timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.split("\n"):
            if line and not line.startswith("#") and "{" not in line:
                k, v = line.split()
                out[k] = float(v)
        return out
