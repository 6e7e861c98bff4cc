# The end checks of the soak run (bench/soak/soak.py): actions, lost SDK
# messages, connections left in the workers, memory growth, the error log.

import collections
import os
import re


class Checks:
    def conns(self, pid):
        """Established TCP connections of a process: (panel, sdk) counts."""
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        panel_ports = set(inst.port for inst in self.insts)
        panel = sdk = 0
        with open("/proc/%d/net/tcp" % pid) as f:
            for line in f.readlines()[1:]:
                x = line.split()
                if x[9] not in inodes or x[3] == "0A":     # listening
                    continue
                lport = int(x[1].split(":")[1], 16)
                rport = int(x[2].split(":")[1], 16)
                if lport in panel_ports:
                    panel += 1
                elif rport in self.sdk_ports:
                    sdk += 1
        return panel, sdk

    def end_checks(self, m0, m1):
        for mid, act in self.acts.items():      # done ones are gone
            if act["state"] != "failed":
                self.fail("%s never got a final answer (%s)" % (mid,
                                                                act["state"]))
        dropped = m1.get("amonitor_dropped_total", 0) - m0.get(
            "amonitor_dropped_total", 0)
        if self.gaps > dropped:
            self.fail("panels missed %d SDK messages, the agent dropped %d" %
                      (self.gaps, dropped))
        sdks = []
        for pid in self.workers():
            panel, sdk = self.conns(pid)
            sdks.append(sdk)
            if panel:
                self.fail("worker %d still holds %d panel connections" %
                          (pid, panel))
        # each worker dials every SDK; a cluster, each SDK once in all
        if len(self.insts) == 1 and set(sdks) != {len(self.targets)} \
                or sum(sdks) != self.sdk_conns_wanted():
            self.fail("the workers hold %s SDK connections, not %d in all" %
                      (sdks, self.sdk_conns_wanted()))

    def mem_check(self):
        life, pid = max((s[-1][0] - s[0][0], p) for p, s in self.mem.items())
        s = self.mem[pid]
        half = [x for x in s if x[0] >= s[0][0] + life / 2]
        self.mem_report = "longest-lived worker: %d s" % life
        if len(half) < 3:
            return
        # least squares slope, KiB per minute
        n = len(half)
        mt = sum(x[0] for x in half) / n
        mk = sum(x[1] for x in half) / n
        var = sum((x[0] - mt) ** 2 for x in half)
        slope = 60 * sum((x[0] - mt) * (x[1] - mk) for x in half) / var
        self.mem_report += (", RssAnon %d KiB at half-life, %d KiB at the "
                            "end, %+.1f KiB/min over the second half" %
                            (half[0][1], half[-1][1], slope))
        if life >= self.a.mem_min_life and slope > self.a.max_growth:
            self.fail("worker %d grows %.1f KiB/min (limit %d)" % (
                pid, slope, self.a.max_growth))

    def log_lines(self):
        for inst in self.insts:
            with open(inst.prefix + "/error.log", errors="replace") as f:
                yield from f

    def log_checks(self):
        levels = collections.Counter()
        self.kinds = collections.Counter()
        bad = []
        for line in self.log_lines():
            mm = re.search(r"\[(\w+)\]", line)
            if mm:
                levels[mm.group(1)] += 1
            if mm and mm.group(1) in ("warn", "error"):
                # the message without the time, pids and numbers
                msg = re.sub(r"\d+", "N", line.split("]", 1)[1])
                self.kinds[msg.split(", client")[0].strip()[:120]] += 1
            if re.search(r"\[(alert|crit|emerg)\]|exited on signal|"
                         r"AddressSanitizer|runtime error:|"
                         r"LeakSanitizer", line):
                bad.append(line.strip())
        for line in bad[:10]:
            self.fail("error log: " + line[:300])
        return levels

