#!/usr/bin/env bash
# Idempotent setup for the test suite on a fresh Debian 12 machine:
#   - Debian packages: mosquitto, prometheus, prometheus-alertmanager, chromium
#     (+ Java 17 / Maven if missing), only when their binaries are missing;
#     their system services are kept from starting (tests run their own on
#     free loopback ports)
#   - pip install -e '.[test,bench]' (bench: Quix Streams peer, psutil, pyinstrument)
#   - Kafka broker jars from Maven Central (deploy/dev/fetch-kafka.sh)
#   - checks that Playwright imports (browsers are NOT downloaded: tests use
#     /usr/bin/chromium)
# Safe to run again: each step is skipped when already done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON="${PYTHON:-python3}"
log() { echo "install-deps: $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]; }

# binary -> Debian package
declare -A PKG=(
    [mosquitto]=mosquitto
    [mosquitto_passwd]=mosquitto
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
    [amtool]=prometheus-alertmanager
    [chromium]=chromium
    [java]=openjdk-17-jre-headless
    [mvn]=maven
)

missing=()
for bin in "${!PKG[@]}"; do
    have "$bin" || missing+=("${PKG[$bin]}")
done
# dedupe
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    # Keep the packages' services (mosquitto on 1883, prometheus on 9090, ...)
    # from being started by the postinst scripts.
    created_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    trap 'if [[ -n "$created_policy" ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    if [[ -n "$created_policy" ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; created_policy=""; fi
    # Make sure none of their system services runs now (or, under systemd, at boot).
    for svc in mosquitto prometheus prometheus-alertmanager prometheus-node-exporter; do
        if [[ -d /run/systemd/system ]]; then
            $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [[ -x "/etc/init.d/$svc" ]]; then
            $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
else
    log "Debian packages present"
fi

log "pip install -e '.[test,bench]'"
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test,bench]' >&2

log "Kafka jars: $(bash deploy/dev/fetch-kafka.sh)"

"$PYTHON" -m playwright --version >&2
log "done"
