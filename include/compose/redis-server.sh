#!/bin/sh
# Starts Redis with a password from the redis_password secret. The configuration comes in on stdin
# (`redis-server -`), so the password is neither in the command line nor in a file on a volume.
# The image's entrypoint drops to the redis user and keeps stdin. Extra arguments go to redis-server.
set -eu
password=$(cat "${SECRETS_DIR:-/run/secrets}/redis_password")
exec docker-entrypoint.sh redis-server - "$@" <<CONF
requirepass $password
appendonly yes
# Inside the container memory limit; a Celery broker must never evict queued messages.
maxmemory 200mb
maxmemory-policy noeviction
CONF
