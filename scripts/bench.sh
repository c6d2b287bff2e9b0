#!/usr/bin/env bash
# Holds the harness against the load tools, the floor and scale, on this machine (release build):
#   1. burst rate: the rate-limit burst (`--exact rate_limit::burst`, N requests at concurrency
#      C) against `apiconform serve` with rate limiting off, beside oha and wrk with the same N
#      and C against the same server, in the same run;
#   2. overhead: the default run against the embedded server: wall time, the time spent on the
#      server (waits on purpose, the JSON report's summary.waited_seconds, and requests in
#      flight, from `-v`) and the rest, the harness's overhead;
#   3. start-up and footprint: `--list` wall time, peak RSS of the default run;
#   4. scale: generated suites of 10/100/1000 checks (harness time per check, memory), bursts
#      recording up to 100,000 exchanges (memory), schema validations per second.
# Every figure is the median of RUNS runs (default 3). Loopback only; every run is bounded
# (`--deadline`, `timeout`); every process started here is stopped on exit.
# Ends with one line of medians:
#   burst_vs_oha=<ratio> overhead_s=<s> overhead_frac=<f> list_ms=<ms> rss_mb=<MB> per_check_ms=<ms>
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
n="${BURST_N:-20000}"
concurrencies="${BURST_CONCURRENCY:-32 128}"
key=sk_test_primary

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk && need apt-get; then apt-get install -y wrk >/dev/null 2>&1 || true; fi
if ! need oha; then cargo install oha --locked --quiet; fi
need oha || { echo "bench: oha is missing (cargo install oha --locked)" >&2; exit 2; }
need wrk || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 2; }
need jq || { echo "bench: jq is missing" >&2; exit 2; }

cargo build --release --quiet
cargo bench -p apiconform-engine --bench schema --no-run --quiet 2>/dev/null
bin=target/release/apiconform

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
now_ns() { date +%s%N; }
calc() { awk "BEGIN {printf \"%.${2:-3}f\\n\", $1}"; }

echo "## apiconform bench"
echo
echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!scripts/bench.sh' 2>/dev/null || echo ' (with local changes)')"
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- tools: $(oha --version 2>/dev/null | head -n1), $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2), runs per figure: $runs (medians)"
echo

# ---------------------------------------------------------------- the server
# The reference server with rate limiting effectively off, on a free loopback port.
"$bin" serve --port 0 --rate-limit 4000000000 --rate-refill 1000000000 >"$work/serve.out" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 100); do
  base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.out" | head -n 1 || true)
  [ -n "$base" ] && break
  sleep 0.05
done
[ -n "$base" ] || { echo "bench: the server did not start: $(cat "$work/serve.out")" >&2; exit 2; }
job=$(curl -sS --max-time 5 -X POST -H "X-Api-Key: $key" -H 'Content-Type: application/json' \
  -d '{"video_url":"https://example.com/apiconform-sample.mp4"}' "$base/v1/jobs" | jq -r .id)
[ -n "$job" ] && [ "$job" != null ] || { echo "bench: could not create a job" >&2; exit 2; }
url="$base/v1/jobs/$job"

# A copy of the default suite: schema paths made absolute, the burst's size and concurrency set.
suite_with() { # max_requests concurrency > file
  sed -e "s#\"\.\./schemas/#\"$PWD/schemas/#" \
    -e "s/^max_requests = [0-9]*/max_requests = $1/" \
    -e "s/^concurrency = [0-9]*/concurrency = $2/" suites/default.toml
}

# The burst's achieved rate as its own check reports it (requests/s), and the run's peak RSS.
harness_burst() { # n c -> "rps rss_kb"
  suite_with "$1" "$2" >"$work/burst.toml"
  timeout 120 /usr/bin/time -f "%M" -o "$work/burst.time" "$bin" --base-url "$base" --key "$key" \
    --job-id "$job" --suite "$work/burst.toml" --exact rate_limit::burst \
    --max-requests $(($1 + 100)) --max-rate 100000000 --deadline 100 -q --color never \
    --report-json "$work/burst.json" >/dev/null 2>&1 || true
  local rps
  rps=$(jq -r '.checks[] | select(.name == "rate_limit::burst") | .message' "$work/burst.json" |
    grep -o '[0-9.]* requests/s' | head -n 1 | cut -d' ' -f1)
  echo "${rps:-nan} $(tail -n 1 "$work/burst.time")"
}
oha_rate() { # n c
  timeout 120 oha -n "$1" -c "$2" --no-tui --output-format json -H "X-Api-Key: $key" "$url" |
    jq -r '.summary.requestsPerSec'
}
# wrk runs for a duration, in whole seconds: the one that gives about n requests at the rate
# oha just reached (at least 1 s). Its Lua `wrk.thread:stop()` would stop at n, but wrk still
# divides by the whole duration, so the rate it prints would be wrong.
wrk_rate() { # n c oha_rps -> "rps requests"
  local threads=2 secs
  [ "$2" -lt "$threads" ] && threads=$2
  secs=$(awk "BEGIN {s = int($1 / $3 + 0.5); print (s < 1) ? 1 : s}")
  timeout 120 wrk -t "$threads" -c "$2" -d "${secs}s" -H "X-Api-Key: $key" "$url" |
    awk '/requests in/ {n = $1} /^Requests\/sec:/ {r = $2} END {print r, n}'
}

echo "### 1. Burst rate against the load tools"
echo
echo "$n requests of \`GET /v1/jobs/{id}\` per run, rate limiting off (\`serve --rate-limit 4000000000 --rate-refill 1000000000\`), loopback."
echo
echo "| concurrency | apiconform burst (req/s) | oha (req/s) | wrk (req/s; requests sent) | burst / oha | burst / wrk |"
echo "|---|---|---|---|---|---|"
ratios=()
for c in $concurrencies; do
  : >"$work/h"; : >"$work/o"; : >"$work/w"; : >"$work/wn"
  for _ in $(seq "$runs"); do
    harness_burst "$n" "$c" | cut -d' ' -f1 >>"$work/h"
    o1=$(oha_rate "$n" "$c"); echo "$o1" >>"$work/o"
    read -r w1 wn < <(wrk_rate "$n" "$c" "$o1"); echo "$w1" >>"$work/w"; echo "$wn" >>"$work/wn"
  done
  h=$(median <"$work/h"); o=$(median <"$work/o"); w=$(median <"$work/w")
  r=$(calc "$h / $o" 2); ratios+=("$r")
  echo "| $c | $(calc "$h" 0) | $(calc "$o" 0) | $(calc "$w" 0); $(median <"$work/wn") | $r | $(calc "$h / $w" 2) |"
done
# The headline ratio is the lower of the concurrencies'.
burst_vs_oha=$(printf '%s\n' "${ratios[@]}" | sort -g | head -n 1)
echo

echo "### 2. Overhead against the floor: the default run, embedded server"
echo
echo 'The floor is the time the run spends on the server: waiting on purpose (Retry-After, polling, job durations: the JSON report'"'"'s `summary.waited_seconds`) and requests in flight while nothing waited on purpose (the server answering; the run'"'"'s own account, `-v`, "where the run'"'"'s time went"). Overhead is the rest of the wall time, the harness'"'"'s: start-up and end (outside the run'"'"'s clock: flags, suite, schemas, the embedded server starting and stopping) and its own work inside the run (checks judging, recording, scheduling). The last column keeps the coarser figure, wall less waited on purpose, which counts the server'"'"'s answering time as overhead.'
echo
echo "| run | wall (s) | waited on purpose (s) | in flight (s) | overhead (s) | overhead share | start-up and end (s) | harness's own (s) | peak RSS (MiB) | result | wall less waited (s; share) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
: >"$work/ov"; : >"$work/ovf"; : >"$work/rss"; : >"$work/own"; : >"$work/fly"; : >"$work/ends"; : >"$work/coarse"
for i in $(seq "$runs"); do
  t0=$(now_ns)
  timeout 300 /usr/bin/time -f "%M" -o "$work/default.time" "$bin" -q -v --color never --deadline 120 \
    --report-json "$work/default.json" >"$work/default.out" 2>"$work/default.err" || true
  t1=$(now_ns)
  wall=$(calc "($t1 - $t0) / 1e9" 3)
  waited=$(jq -r '.summary.waited_seconds' "$work/default.json")
  took=$(jq -r '.duration_seconds' "$work/default.json")
  account=$(sed 's/\x1b\[[0-9;]*m//g' "$work/default.err" | grep "where the run's time went" | tail -n 1 || true)
  fly=$(calc "$(grep -o 'in_flight_s=[0-9.e-]*' <<<"$account" | cut -d= -f2 || echo nan)" 3)
  own=$(calc "$(grep -o 'own_s=[0-9.e-]*' <<<"$account" | cut -d= -f2 || echo nan)" 3)
  over=$(calc "$wall - $waited - $fly" 3)
  frac=$(calc "$over / $wall" 3)
  ends=$(calc "$wall - $took" 3)
  coarse=$(calc "$wall - $waited" 3)
  kb=$(tail -n 1 "$work/default.time")
  result=$(jq -r '.summary | "\(.passed) passed, \(.failed) failed, \(.warned) warned, \(.errored) errored"' "$work/default.json")
  echo "$over" >>"$work/ov"; echo "$frac" >>"$work/ovf"; echo "$kb" >>"$work/rss"
  echo "$own" >>"$work/own"; echo "$fly" >>"$work/fly"; echo "$ends" >>"$work/ends"; echo "$coarse" >>"$work/coarse"
  echo "| $i | $wall | $waited | $fly | $over | $frac | $ends | $own | $(calc "$kb / 1024" 1) | $result | $coarse; $(calc "$coarse / $wall" 3) |"
done
overhead_s=$(median <"$work/ov"); overhead_frac=$(median <"$work/ovf")
rss_mb=$(calc "$(median <"$work/rss") / 1024" 1)
echo
echo "Medians: overhead $overhead_s s ($overhead_frac of the wall time): start-up and end $(median <"$work/ends") s, the harness's own $(median <"$work/own") s; in flight $(median <"$work/fly") s; wall less waited $(median <"$work/coarse") s."
echo

echo "### 3. Start-up"
echo
if need hyperfine; then
  : >"$work/list"
  for _ in $(seq "$runs"); do
    hyperfine -N --warmup 3 --runs 30 --export-json "$work/hf.json" "$bin --list" >/dev/null 2>&1
    jq -r '.results[0].median * 1000' "$work/hf.json" >>"$work/list"
  done
  how="hyperfine, median of 30 runs after 3 warm-ups, median of $runs such"
else
  : >"$work/list"
  for _ in $(seq $((runs * 10))); do
    t0=$(now_ns); "$bin" --list >/dev/null; t1=$(now_ns)
    calc "($t1 - $t0) / 1e6" 3 >>"$work/list"
  done
  how="a date +%s%N loop, median of $((runs * 10))"
fi
list_ms=$(calc "$(median <"$work/list")" 2)
echo "\`--list\` (parse the suite, read the schemas, no request): $list_ms ms ($how)."
echo

echo "### 4. Scale"
echo
# N checks, alternating two one-request kinds (a schema-validated list, a 404 envelope),
# against the served server (no rate limit, so pacing does not hide the harness's own cost).
gen_suite() { # checks > file
  sed -n '1,/^# -\{10,\} schema/p' suites/default.toml | sed -e "s#\"\.\./schemas/#\"$PWD/schemas/#"
  for i in $(seq "$1"); do
    if [ $((i % 2)) -eq 0 ]; then
      printf '[[check]]\nname = "scale::list_%04d"\nkind = "response_schema"\nlevel = "MUST"\nrequest = { path = "/v1/jobs?limit=10" }\nschema = "job_list"\n\n' "$i"
    else
      printf '[[check]]\nname = "scale::unknown_%04d"\nkind = "not_found"\nlevel = "MUST"\nrequest = { path = "/v1/jobs/{unknown_job_id}" }\nexpect_status = [404]\n\n' "$i"
    fi
  done
}
echo "| suite | wall (s, median) | waited (s) | harness per check (ms) | peak RSS (MiB) | result |"
echo "|---|---|---|---|---|---|"
declare -A per_check
for size in 10 100 1000; do
  gen_suite "$size" >"$work/scale.toml"
  : >"$work/sw"; : >"$work/srss"; : >"$work/swait"
  for _ in $(seq "$runs"); do
    t0=$(now_ns)
    timeout 300 /usr/bin/time -f "%M" -o "$work/scale.time" "$bin" --base-url "$base" --key "$key" \
      --suite "$work/scale.toml" --rate 1000000 --max-rate 100000000 --max-requests 100000 \
      --deadline 240 -q --color never --report-json "$work/scale.json" >/dev/null 2>&1 || true
    t1=$(now_ns)
    calc "($t1 - $t0) / 1e9" 3 >>"$work/sw"
    tail -n 1 "$work/scale.time" >>"$work/srss"
    jq -r '.summary.waited_seconds' "$work/scale.json" >>"$work/swait"
  done
  wall=$(median <"$work/sw"); waited=$(median <"$work/swait")
  per_check[$size]=$(calc "($wall - $waited) * 1000 / $size" 3)
  result=$(jq -r '.summary | "\(.passed) passed, \(.failed) failed, \(.errored) errored"' "$work/scale.json")
  echo "| $size checks | $wall | $waited | ${per_check[$size]} | $(calc "$(median <"$work/srss") / 1024" 1) | $result |"
done
# The cost of one more check: the slope from 100 to 1000 (start-up cancels out).
per_check_ms=$(calc "(${per_check[1000]} * 1000 - ${per_check[100]} * 100) / 900" 3)
echo
echo "Marginal cost of a check (slope from 100 to 1000 checks): $per_check_ms ms."
echo
echo "| burst recording | apiconform burst (req/s) | peak RSS (MiB) |"
echo "|---|---|---|"
for size in 1000 20000 100000; do
  : >"$work/br"; : >"$work/brss"
  for _ in $(seq "$runs"); do
    read -r rps kb < <(harness_burst "$size" 32)
    echo "$rps" >>"$work/br"; echo "$kb" >>"$work/brss"
  done
  echo "| $size exchanges | $(calc "$(median <"$work/br")" 0) | $(calc "$(median <"$work/brss") / 1024" 1) |"
done
echo
: >"$work/schema"
for _ in $(seq "$runs"); do
  cargo bench -p apiconform-engine --bench schema --quiet 2>/dev/null |
    grep -o 'schema_validations_per_s=[0-9]*' | cut -d= -f2 >>"$work/schema"
done
echo "Schema validation (compiled once, \`job\` schema, \`crates/engine/benches/schema.rs\`): $(calc "$(median <"$work/schema")" 0) job objects per second."
echo

echo "burst_vs_oha=$burst_vs_oha overhead_s=$overhead_s overhead_frac=$overhead_frac list_ms=$list_ms rss_mb=$rss_mb per_check_ms=$per_check_ms"
