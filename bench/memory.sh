#!/usr/bin/env bash
# Peak RSS of the three jobs whose memory must stay flat in the size of the job (issue 9):
#   1. publish --count 1000000
#   2. tail --since over 1M events into a reader that sleeps before it reads
#   3. dlq list --json over 100k dead letters
# Usage: bench/memory.sh [CLI_DIR] [REDIS_PORT]   (CLI_DIR: a built checkout, default: this one)
# Starts its own redis-server on REDIS_PORT (default 6399) and stops it at the end. Needs GNU time
# (/usr/bin/time; Debian package `time`).
set -euo pipefail
CLI_DIR=$(cd "${1:-$(dirname "$0")/..}" && pwd)
PORT=${2:-6399}
URL="redis://127.0.0.1:$PORT/0"
PREFIX="mem$RANDOM"
WORK=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
trap 'kill "$(cat "$WORK/redis.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done

peak() { grep 'Maximum resident set size' "$1" | awk '{printf "%.0f MB", $6/1024}'; }
status() { grep 'Exit status' "$1" | awk '{print $3}'; }

cd "$CLI_DIR"
/usr/bin/time -v -o "$WORK/publish.time" node bin/run.js publish -c sys.state.update -t tick \
  --payload '{"n":1}' --count 1000000 --redis-url "$URL" --prefix "$PREFIX" >/dev/null || true
echo "publish --count 1000000: peak RSS $(peak "$WORK/publish.time") (exit $(status "$WORK/publish.time"))"

# The reader sleeps 20 s before it reads anything, then reads everything.
(/usr/bin/time -v -o "$WORK/tail.time" node bin/run.js tail sys.state.update --since 1h --json \
  --count 1000000 --redis-url "$URL" --prefix "$PREFIX" || true) | (sleep 20; wc -l >"$WORK/tail.lines")
echo "tail --since 1h (1M events, reader sleeps 20 s): peak RSS $(peak "$WORK/tail.time") (exit $(status "$WORK/tail.time"), $(cat "$WORK/tail.lines") lines)"

# 100k dead letters of 200-byte payloads, written as the dead-letter script writes them.
node --input-type=module -e "
import {Redis} from '$CLI_DIR/node_modules/ioredis/built/index.js'
const r = new Redis('$URL')
const key = '$PREFIX:ch:{sys.alert.warning}:dlq:max_retries_exceeded'
const data = {blob: 'x'.repeat(200)}
for (let start = 0; start < 100000; start += 1000) {
  const p = r.pipeline()
  for (let i = start; i < start + 1000; i++) {
    const e = JSON.stringify({specversion: '1.0', id: 'evt-' + i, type: 't', source: 's', time: new Date().toISOString(),
      datacontenttype: 'application/json', channel: 'sys.alert.warning', priority: 'normal', data})
    p.xadd(key, '*', 'e', e, 'reason', 'max_retries_exceeded', 'channel', 'sys.alert.warning', 'handler', 'h',
      'error', 'Error: boom', 'attempts', '4', 'failedAt', String(Date.now()), 'sid', '1-0', 'requeues', '0')
  }
  await p.exec()
}
r.disconnect()
"
/usr/bin/time -v -o "$WORK/dlq.time" node bin/run.js dlq list --json --limit 100000 \
  --redis-url "$URL" --prefix "$PREFIX" >"$WORK/dlq.json" || true
echo "dlq list --json --limit 100000 (100k entries): peak RSS $(peak "$WORK/dlq.time") (exit $(status "$WORK/dlq.time"), $(wc -c <"$WORK/dlq.json") bytes)"
