#!/usr/bin/env bash
# Demo: the two SDKs of run.sh serving wss:// with throwaway certificates
# (scripts/tls-certs.sh) and requiring the agent's client certificate; the
# agent verifies them (amonitor_ssl_*); the panel simulator on ws:// as
# usual.
exec bash "$(dirname "$0")/demo.sh" "$(dirname "$0")/config.tls.json" "$@"
