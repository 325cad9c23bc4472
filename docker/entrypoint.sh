#!/bin/sh
# Starts one process of the stack by name; every process handles SIGTERM itself (exec, no shell in between).
set -eu
WORKERS="${HTTP_WORKERS:-2}"
# Production settings unless the environment names others.
export GATEWAY_SETTINGS="${GATEWAY_SETTINGS:-gateway.settings.prod}"
export AUTH_SETTINGS="${AUTH_SETTINGS:-auth_service.settings.prod}"
export MAIN_SETTINGS="${MAIN_SETTINGS:-main_api.settings.prod}"
settings_for() { case "$1" in gateway) echo "$GATEWAY_SETTINGS" ;; auth*) echo "$AUTH_SETTINGS" ;; main*) echo "$MAIN_SETTINGS" ;; esac; }
http() { # module port
  exec granian --interface wsgi "$1.wsgi:application" --host 0.0.0.0 --port "$2" --workers "$WORKERS" \
    --blocking-threads 4 --no-ws --static-path-route /static --static-path-mount "/app/var/static/$3"
}
if [ "${1:-gateway}" != "migrate" ]; then export DJANGO_SETTINGS_MODULE="$(settings_for "${1:-gateway}")"; fi
case "${1:-gateway}" in
  gateway)      http gateway 8000 gateway ;;
  auth-http)    http auth_service 8001 auth ;;
  main-http)    http main_api 8002 main ;;
  auth-bridge)  exec python manage_auth.py nats_bridge ;;
  main-bridge)  exec python manage_main.py nats_bridge ;;
  # `python -m common.conf.worker` is `celery worker` without the rest of the celery CLI (common/conf/worker.py).
  auth-worker)
    exec python -m common.conf.worker -A auth_service --pool threads --concurrency "${CELERY_CONCURRENCY:-4}" -l info ;;
  # The one worker that also schedules the periodic tasks, on a thread of its own (start exactly one of these).
  auth-worker-beat)
    exec python -m common.conf.worker -A auth_service --pool threads --concurrency "${CELERY_CONCURRENCY:-4}" \
      -l info --beat-thread -s /tmp/celerybeat-schedule ;;
  # The scheduler as a process of its own, for a platform that runs it apart (then start workers without beat).
  auth-beat)    exec celery -A auth_service beat -l info -s /tmp/celerybeat-schedule ;;
  migrate)
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" python manage_auth.py migrate --noinput
    DJANGO_SETTINGS_MODULE="$MAIN_SETTINGS" python manage_main.py migrate --noinput
    DJANGO_SETTINGS_MODULE="$MAIN_SETTINGS" python manage_main.py provision_streams
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" python manage_auth.py rotate_keys --if-missing
    DJANGO_SETTINGS_MODULE="$AUTH_SETTINGS" exec python manage_auth.py seed ;;
  *) exec "$@" ;;
esac
