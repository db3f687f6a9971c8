#!/bin/sh
# Put $FUNDFLOW_ALERT_WEBHOOK_URL into the Alertmanager config, then start Alertmanager.
# (prom/alertmanager is busybox-based: sh and sed are there.)
# ALERTMANAGER_CONFIG_IN / _OUT / ALERTMANAGER_BIN exist for tests; compose leaves them unset.
set -eu
placeholder='http://fundflow-alert-webhook.invalid/'
config_in="${ALERTMANAGER_CONFIG_IN:-/etc/alertmanager/alertmanager.yml}"
config_out="${ALERTMANAGER_CONFIG_OUT:-/tmp/alertmanager.yml}"
url="${FUNDFLOW_ALERT_WEBHOOK_URL:-$placeholder}"
escaped=$(printf '%s' "$url" | sed 's/[&|\\]/\\&/g')
sed "s|$placeholder|$escaped|" "$config_in" > "$config_out"
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$config_out" --storage.path=/alertmanager "$@"
