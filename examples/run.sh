#!/usr/bin/env bash
# Demo: nginx + the module on :8080, two example SDKs (demo-target-a on
# 8765, demo-target-b on 8766, heartbeat 5 s), the panel simulator in the
# foreground.  Ctrl-C stops everything it started.
exec bash "$(dirname "$0")/demo.sh" "$(dirname "$0")/config.json" "$@"
