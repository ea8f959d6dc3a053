#!/usr/bin/env bash
# The main job on the local Redis: a live `raptor tail` beside three `raptor publish` calls.
# Uses REDIS_URL (default redis://127.0.0.1:6379/0) and its own prefix, so it touches nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAPTOR_PREFIX="${RAPTOR_PREFIX:-raptor-demo}"
raptor=./bin/run.js
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$raptor" tail 'sys.**' --count 3 --timeout 15s 2>"$log" &
tail_pid=$!
# Publish once the tail is subscribed (it says so on stderr).
for _ in $(seq 1 100); do
  grep -q 'tail: listening' "$log" && break
  kill -0 "$tail_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
cat "$log" >&2
"$raptor" publish --channel sys.guild.research.broadcast --type research_complete --source RES-001 \
  --payload '{"findings":"Enterprise CTOs prefer cloud-native solutions","confidence":0.89}'
"$raptor" publish --channel sys.alert.warning --type disk_low --priority high --payload '{"free":0.05}'
"$raptor" publish --channel sys.state.update --type campaign_created --payload '{"campaignId":"c-42"}'
wait "$tail_pid"
