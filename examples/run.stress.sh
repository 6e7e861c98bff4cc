#!/usr/bin/env bash
# Stress demo: ten SDKs sending events every 50 ms and heartbeats every
# second, and a stream of actions (BENCH_RATE per second, default 500);
# prints acks/s, p50/p99 ack latency and events/s once a second.
exec bash "$(dirname "$0")/demo.sh" "$(dirname "$0")/config.stress.json" \
    "${1:-bench}"
