# Targets that come and go, for the soak run (bench/soak/soak.py): every
# --ephemeral-every seconds an SDK "eph-N" starts on a new port, panels'
# actions dial it on demand (target_url, allowed by amonitor_allow_url),
# and after a few seconds it goes for good.  The agent must forget each
# (amonitor_learned_expire) so that its registry, dials, subscriptions
# and per-target series do not grow with the number of targets ever seen.

import asyncio
import fnmatch
import random

from instance import HOST

EPH_PATTERN = "eph-*"


class Ephemeral:
    async def ephemerals(self):
        n = 0
        while self.a.ephemeral_every > 0 and not self.stop_load:
            await asyncio.sleep(self.a.ephemeral_every)
            if self.stop_load:
                break
            n += 1
            tid = "eph-%d" % n
            self.ports[tid] = self.free_port()
            await self.sdk_start(tid)
            self.eph_urls[tid] = "ws://%s:%d/" % (HOST, self.ports[tid])
            self.count["ephemeral_sdks"] += 1
            life = random.uniform(2, 2 * self.a.ephemeral_life - 2)
            t = asyncio.ensure_future(self.ephemeral_end(tid, life))
            self.eph_tasks.add(t)
            t.add_done_callback(self.eph_tasks.discard)

    async def ephemeral_end(self, tid, life):
        try:
            await asyncio.sleep(life)
        finally:
            self.eph_urls.pop(tid, None)        # no more actions for it
            srv = self.sdk_servers.pop(tid, None)
            if srv:
                srv.close()
                await srv.wait_closed()

    async def ephemerals_stop(self):
        for t in list(self.eph_tasks):
            t.cancel()
        await asyncio.gather(*self.eph_tasks, return_exceptions=True)

    def eph_pick(self):
        """An ephemeral target to act on now and then, or None."""
        if self.eph_urls and random.random() < 0.2:
            return random.choice(list(self.eph_urls))
        return None

    def eph_gone(self, act):
        """An action for an ephemeral target that has gone for good."""
        return act.get("url") and act["target"] not in self.eph_urls

    @staticmethod
    def in_set(tid, subset):
        return any(fnmatch.fnmatchcase(tid, s) for s in subset)

    async def learned_forgotten(self):
        """Every ephemeral target forgotten once it is gone (one instance:
        a cluster keeps routes in Redis for route_ttl)."""
        want = self.a.learned_expire + 5
        for _ in range(int(want * 10)):
            try:
                n = self.metrics().get("amonitor_learned_targets", 0)
            except OSError:
                n = -1
            if n == 0:
                return 0
            await asyncio.sleep(0.1)
        self.fail("%s learned targets still known %d s after the last went"
                  % (n, want))
        return n
