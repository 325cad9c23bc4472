#!/bin/sh
# Starts one process of the stack by name (the list: common/conf/processes.py); every process handles SIGTERM
# itself (exec, no shell in between).
set -eu
# Production settings unless the environment names others.
export GATEWAY_SETTINGS="${GATEWAY_SETTINGS:-gateway.settings.prod}"
export AUTH_SETTINGS="${AUTH_SETTINGS:-auth_service.settings.prod}"
export MAIN_SETTINGS="${MAIN_SETTINGS:-main_api.settings.prod}"
export STATIC_ROOT_BASE="${STATIC_ROOT_BASE:-/app/var/static}"
settings_for() { case "$1" in gateway) echo "$GATEWAY_SETTINGS" ;; auth*) echo "$AUTH_SETTINGS" ;; main*) echo "$MAIN_SETTINGS" ;; esac; }
case "${1:-gateway}" in
  migrate)
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" python manage_auth.py migrate --noinput
    DJANGO_SETTINGS_MODULE="$MAIN_SETTINGS" python manage_main.py migrate --noinput
    DJANGO_SETTINGS_MODULE="$MAIN_SETTINGS" python manage_main.py provision_streams
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" python manage_auth.py rotate_keys --if-missing
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" exec python manage_auth.py seed ;;
  gateway|auth-*|main-*)
    export DJANGO_SETTINGS_MODULE="$(settings_for "${1:-gateway}")"
    exec python -m common.conf.processes "${1:-gateway}" ;;
  *) exec "$@" ;;
esac
