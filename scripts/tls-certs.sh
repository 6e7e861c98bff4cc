#!/bin/bash
# Throwaway certificates for trying wss:// (never for production): a CA,
# a server certificate for the SDK and for nginx's panel server (names
# localhost and sdk.test, address 127.0.0.1), and a client certificate
# for the agent, all signed by that CA, valid for 30 days.
#
#   scripts/tls-certs.sh DIR
#
# writes DIR/ca.crt, DIR/sdk.{crt,key}, DIR/panel.{crt,key} and
# DIR/agent.{crt,key} (keys mode 0600).  nginx-conf-examples/tls-sdk.conf
# and `make demo-tls` use them.

set -euo pipefail

dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

quiet() { "$@" >/dev/null 2>&1 || { echo "$0: $* failed" >&2; exit 1; }; }

quiet openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
    -subj "/CN=AMonitor throwaway CA" -keyout ca.key -out ca.crt

sign() { # name CN subjectAltName extendedKeyUsage
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$4" > "$1.ext"
    quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" \
        -keyout "$1.key" -out "$1.csr"
    quiet openssl x509 -req -days 30 -in "$1.csr" -CA ca.crt -CAkey ca.key \
        -CAcreateserial -out "$1.crt" -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
}

sign sdk sdk.test "DNS:sdk.test,DNS:localhost,IP:127.0.0.1" serverAuth
sign panel localhost "DNS:localhost,IP:127.0.0.1" serverAuth
sign agent amonitor-agent "DNS:amonitor-agent" clientAuth

chmod 0644 ca.crt sdk.crt panel.crt agent.crt
echo "$dir: ca.crt sdk.crt/key panel.crt/key agent.crt/key"
