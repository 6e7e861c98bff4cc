#!/usr/bin/env python3
"""Where an open loop's slow round trips come from.

Reads a timeline written by `amon-load --timeline FILE` (one line per
measured action: k, due time in us since the start, round trip in us,
1 if the answer was an error, how late the load generator wrote it in
us) and groups the actions slower than a
threshold into episodes: slow actions whose due times lie within --gap
of each other.  A tail made of a few long episodes, in which every
action due meanwhile is slow, is a stall of the server or of the load
generator; a tail spread thinly over the run is per-action cost.

    python3 bench/agent/stalls.py [--threshold US] [--gap US] FILE...
"""

import argparse
import sys

NEVER = 4294967295


def pct(sorted_v, p):
    if not sorted_v:
        return 0
    i = min(len(sorted_v) - 1, int(len(sorted_v) * p / 100.0))
    return sorted_v[i]


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            f = line.split()
            lag = int(f[4]) if len(f) > 4 else 0
            rows.append((int(f[1]), int(f[2]), int(f[3]), lag))
    return rows


def episodes(rows, threshold, gap):
    eps = []
    cur = None
    for due, rtt, _, lag in rows:
        if rtt < threshold:
            continue
        if cur is not None and due - cur["end"] <= gap:
            cur["end"] = due
            cur["n"] += 1
            cur["max"] = max(cur["max"], rtt)
            cur["lag"] = max(cur["lag"], lag)
        else:
            cur = {"start": due, "end": due, "n": 1, "max": rtt, "lag": lag}
            eps.append(cur)
    return eps


def report(path, threshold, gap):
    rows = read(path)
    if not rows:
        print(f"{path}: no actions")
        return
    rtts = sorted(r[1] for r in rows)
    first = rows[0][0]
    span = (rows[-1][0] - first) / 1e6
    slow = sum(1 for r in rows if r[1] >= threshold)
    # slow because this program wrote them late (half the round trip or
    # more was the writer's lateness)
    late = sum(1 for r in rows if r[1] >= threshold and 2 * r[3] >= r[1])
    never = sum(1 for r in rows if r[1] == NEVER)
    errors = sum(r[2] for r in rows)
    eps = episodes(rows, threshold, gap)
    print(f"{path}: {len(rows)} actions over {span:.2f} s, "
          f"p50 {pct(rtts, 50)} us, p99 {pct(rtts, 99)} us, "
          f"max {rtts[-1]} us; errors {errors}, never answered {never}")
    print(f"  {slow} actions at or over {threshold} us "
          f"({100.0 * slow / len(rows):.2f} %), in {len(eps)} episodes "
          f"(slow actions due within {gap} us of each other); "
          f"{late} of them written late by the load generator")
    if not eps:
        return
    eps_by_n = sorted(eps, key=lambda e: -e["n"])
    acc = 0
    for i, e in enumerate(eps_by_n):
        acc += e["n"]
        if acc * 2 >= slow:
            print(f"  half of them are in the {i + 1} largest episodes")
            break
    lens = sorted((e["end"] - e["start"]) for e in eps)
    print(f"  episode length: median {pct(lens, 50)} us, "
          f"p90 {pct(lens, 90)} us, max {lens[-1]} us")
    starts = [e["start"] for e in eps]
    if len(starts) > 2:
        gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
        print(f"  between episode starts: median {pct(gaps, 50)} us, "
              f"min {gaps[0]} us")
    print("  largest (start s, length us, slow actions, max rtt us, "
          "max lag us):")
    for e in eps_by_n[:8]:
        print(f"    {(e['start'] - first) / 1e6:8.3f} "
              f"{e['end'] - e['start']:8d} {e['n']:7d} {e['max']:9d} "
              f"{e['lag']:9d}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", type=int, default=1000,
                    help="slow: a round trip of at least this many us")
    ap.add_argument("--gap", type=int, default=1000,
                    help="slow actions due within this many us are one "
                         "episode")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    for path in a.files:
        report(path, a.threshold, a.gap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
