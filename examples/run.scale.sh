#!/usr/bin/env bash
# Scale demo: SDK_COUNT SDKs (default 20) on ports from SDK_START_PORT
# (default 8765), heartbeat SDK_HEARTBEAT_INTERVAL seconds (default 5),
# the action ACTION_NAME (default restart) sent by the panel simulator.
#   SDK_COUNT=100 examples/run.scale.sh
export SDK_COUNT=${SDK_COUNT:-20}
exec bash "$(dirname "$0")/demo.sh" "$(dirname "$0")/config.json" "$@"
