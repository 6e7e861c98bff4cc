#!/usr/bin/env bash
# Demo: five SDKs (one with a token, different heartbeat and event
# intervals), two nginx workers, the panel simulator.
exec bash "$(dirname "$0")/demo.sh" "$(dirname "$0")/config.multi.json" "$@"
