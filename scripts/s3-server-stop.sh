#!/bin/bash
# Stops the S3 server started by scripts/s3-server.sh (by its pid files) and waits for the
# daemons to exit.   scripts/s3-server-stop.sh [--purge]   (--purge also deletes the state)
set -uo pipefail
D=${PORTFOLIO_CEPH_DIR:-/tmp/portfolio-ceph}
pids=()
for f in "$D"/run/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f" 2>/dev/null || true)
  # Only our daemons: a stale pid file may name a process that has reused the number.
  if [[ "$p" =~ ^[0-9]+$ ]] && grep -qE '^(ceph-mon|ceph-osd|radosgw)$' "/proc/$p/comm" 2>/dev/null; then
    pids+=("$p")
  fi
done
if [ ${#pids[@]} -gt 0 ]; then
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 100); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  [ $alive = 0 ] || { kill -9 "${pids[@]}" 2>/dev/null || true; }
  echo "s3-server: stopped ${pids[*]}"
else
  echo "s3-server: not running (no live daemons in $D/run)"
fi
[ "${1:-}" = --purge ] && rm -rf "$D" "$D.lock"
exit 0
