#!/usr/bin/env bash
# The README's test command on a busy machine: two busy loops keep both cores loaded (normal priority)
# while `python -m pytest -q` runs RUNS times (default 3). Prints each run's counts and wall time; the
# loops are killed on exit, also on Ctrl-C. Exit code: 0 only when every run passed.
#
#   bash benchmarks/stress_suite.sh            # 3 runs
#   RUNS=1 bash benchmarks/stress_suite.sh tests/sarm/explore   # extra arguments go to pytest
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
log_dir=${LOG_DIR:-$(mktemp -d)}
loops=()
stop_loops() { for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; }
trap stop_loops EXIT
trap 'exit 130' INT TERM

for _ in 1 2; do
    python -c "while True: pass" &
    loops+=($!)
done
echo "busy loops: pids ${loops[*]} ($(nproc) cores); logs in $log_dir"

failed=0
summary=()
for run in $(seq 1 "$runs"); do
    start=$(date +%s)
    python -m pytest -q "$@" > "$log_dir/run$run.log" 2>&1
    rc=$?
    wall=$(( $(date +%s) - start ))
    counts=$(grep -E "^(=+ )?[0-9]+ (passed|failed|error)" "$log_dir/run$run.log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
    line="run $run: rc=$rc, ${counts:-no summary line}, wall ${wall} s"
    echo "$line"
    summary+=("$line")
    [ "$rc" -eq 0 ] || { failed=1; grep -E "^(FAILED|ERROR)" "$log_dir/run$run.log" | head -n 20; }
done

echo "== stress suite: $runs run(s) beside 2 busy loops"
printf '%s\n' "${summary[@]}"
exit "$failed"
