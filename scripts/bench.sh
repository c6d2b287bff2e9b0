#!/usr/bin/env bash
# Measures what users wait for and what the harness costs, on this machine:
#   - start-up: `--list` (parse the suite, compile the schemas, no request);
#   - the default run against the embedded server: wall time, peak memory, and the burst's
#     achieved rate as the run itself reports it.
# Loopback only; every run is bounded (`--deadline`). Results go to stdout as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
cargo build --release --quiet
bin=target/release/apiconform
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1; }

echo "| what | run | wall time (s) | peak memory (MiB) | note |"
echo "|---|---|---|---|---|"
for i in $(seq "$runs"); do
  read -r secs kb < <(measure "$bin" --list)
  echo "| start-up (\`--list\`) | $i | $secs | $((kb / 1024)) | |"
done
for i in $(seq "$runs"); do
  out=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$out.time" "$bin" -q --deadline 120 >"$out" 2>/dev/null || true
  read -r secs kb <"$out.time"
  burst=$(grep -o '[0-9]* requests/s; the first 429 came after [0-9]* responses' "$out" | head -n 1)
  result=$(grep '^apiconform:' "$out" | tail -n 1 | cut -d'(' -f1)
  echo "| default run, embedded server | $i | $secs | $((kb / 1024)) | ${result#apiconform: }; burst ${burst:-?} |"
  rm -f "$out" "$out.time"
done
