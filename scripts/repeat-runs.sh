#!/usr/bin/env bash
# The suite's repeat-run proof (docs/testing.md "Repeat runs of the suite").
#   bash scripts/repeat-runs.sh N DIR [COMMIT]
# Clones this repository at COMMIT (default HEAD) into DIR/main, links ../shared beside
# it, and runs the suite N times in a row there: run 1 is `CI=true bash .ci/run` (setup,
# then npm test), the others `CI=true npm test`. Stops at the first failure. One summary
# line per run (exit code, UTC start–end, seconds, 1-minute load at start and end,
# vitest's counts) goes to DIR/runs.log and stdout; each run's output to DIR/runN.out.
# For the "beside" proof, run a second copy in another DIR at the same time.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/repeat-runs.sh N DIR [COMMIT]" >&2; exit 2; }
N=$1
DIR=$2
COMMIT=${3:-HEAD}
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$(cd "$REPO/../shared" && pwd)" || { echo "repeat-runs: $REPO/../shared not found" >&2; exit 2; }
rm -rf "$DIR" && mkdir -p "$DIR"
git clone -q "$REPO" "$DIR/main" && git -C "$DIR/main" checkout -q "$COMMIT" || exit 2
ln -s "$SHARED" "$DIR/shared"
LOG="$DIR/runs.log"
load() { cut -d' ' -f1 /proc/loadavg; }
echo "commit $(git -C "$DIR/main" rev-parse --short HEAD), $N runs, start $(date -u +%FT%TZ)" | tee "$LOG"
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  l0=$(load)
  if [ "$i" = 1 ]; then cmd=(bash .ci/run); else cmd=(npm test); fi
  (cd "$DIR/main" && CI=true "${cmd[@]}") >"$DIR/run$i.out" 2>&1
  rc=$?
  end=$(date +%s)
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$DIR/run$i.out" | grep -E "^ *(Test Files|Tests) " | tr -s ' ' | tr '\n' ';')
  echo "run $i [${cmd[*]}] $(date -u -d "@$start" +%H:%M)-$(date -u -d "@$end" +%H:%M) rc=$rc $((end - start))s load ${l0}->$(load) $summary" | tee -a "$LOG"
  [ "$rc" = 0 ] || { echo "repeat-runs: run $i failed; output in $DIR/run$i.out" | tee -a "$LOG"; exit 1; }
done
echo "all $N runs passed, done $(date -u +%FT%TZ)" | tee -a "$LOG"
