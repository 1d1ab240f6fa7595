#!/usr/bin/env bash
# Gateway overhead on this machine, in one go: the same wrk load against
#   a) the backend directly
#   b) a bare net/http/httputil.ReverseProxy (the baseline)
#   c) NGINX as a plain reverse proxy
#   d) the Vigil gateway, one valid JWT (verification cached)
#   e) the Vigil gateway, a different JWT on every request (identity
#      cache_size 1000, 20000 tokens cycled: every request verifies an
#      ES256 signature)
# and prints requests/s, p50/p99 latency, CPU per request of the process
# under test (utime+stime from /proc/<pid>/stat) and ratios against (b).
#
#   bench/gateway/run.sh                      # 10 s per run, 64 connections, 2 threads
#   DURATION=30 CONNECTIONS=128 bench/gateway/run.sh
#   PIN=0 bench/gateway/run.sh                # no CPU pinning
#   PROFILE=1 bench/gateway/run.sh            # also profile (b), (d) and (e): CPU and allocations
#   VIGIL_ENV="GOGC=400" bench/gateway/run.sh # extra environment for the vigil processes
#
# Needs: go, wrk, nginx, curl. Everything listens on 127.0.0.1 (ports
# PORT_BASE+1..+8, default 19101..19108) and stops when the script ends.
# With PIN=1 (default, needs 2+ CPUs and taskset) the process under test
# runs on CPU 0 and wrk, the backend and the token issuer on CPU 1, so the
# proxy's CPU is not shared with the load generator.
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
PORT_BASE=${PORT_BASE:-19100}
TOKENS=${TOKENS:-20000}
PIN=${PIN:-1}

cd "$(dirname "$0")/../.."
repo=$(pwd)
for tool in go wrk nginx curl; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
    echo "run.sh: $tool not found (apt-get install -y $tool)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/vigil-bench-gateway.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

proxy_cpu=() load_cpu=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  proxy_cpu=(taskset -c 0)
  load_cpu=(taskset -c 1)
  pinning="process under test on CPU 0; wrk, backend and issuer on CPU 1"
else
  pinning="none"
fi

backend=127.0.0.1:$((PORT_BASE + 1))
bareproxy=127.0.0.1:$((PORT_BASE + 2))
issuer=127.0.0.1:$((PORT_BASE + 3))
nginxaddr=127.0.0.1:$((PORT_BASE + 4))
gateway=127.0.0.1:$((PORT_BASE + 5))
vmain=127.0.0.1:$((PORT_BASE + 6))
vadmin=127.0.0.1:$((PORT_BASE + 7))

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load_before%% *}" 'BEGIN {exit !(l > 0.5)}'; then
  echo "run.sh: warning: load average is $load_before; other work on this machine will skew the figures" >&2
fi

echo "== build (into $work)" >&2
go build -o "$work/vigil" ./cmd/vigil
go build -o "$work/loadtarget" ./bench/gateway/loadtarget

wait_http() { # url [status]
  local want=${2:-200}
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = "$want" ] && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not answer $want" >&2
  return 1
}

# --- backend, issuer, tokens ------------------------------------------------
"${load_cpu[@]}" "$work/loadtarget" backend -addr "$backend" >"$work/backend.log" 2>&1 &
backend_pid=$!; pids+=("$backend_pid")
"${load_cpu[@]}" "$work/loadtarget" issuer -addr "$issuer" -tokens "$TOKENS" -out "$work/tokens.txt" \
  -aud vigil-bench -sub bob -roles editor >"$work/issuer.log" 2>&1 &
pids+=("$!")
wait_http "http://$backend/documents/doc-1"
wait_http "http://$issuer/.well-known/openid-configuration"
token=$(head -n1 "$work/tokens.txt")

# --- Vigil: the demo policies plus 200 team policies and global forbids ----
mkdir -p "$work/policies"
cp examples/demo/policies/* "$work/policies/"
{
  echo '// Generated for the benchmark: per-team permits (scoped, so the index'
  echo '// skips them for other principals) and forbids every request meets.'
  for i in $(seq 1 200); do
    printf '@id("team-%d-edit")\npermit (principal in Team::"team-%d", action in [Action::"PUT /documents/{id}", Action::"DELETE /documents/{id}"], resource in Folder::"folder-%d");\n' "$i" "$i" "$i"
  done
  cat <<'EOF'
@id("high-risk")
forbid (principal, action, resource) when { context.risk.level == "HIGH" };
@id("embargoed-countries")
forbid (principal, action, resource) when { ["KP", "IR", "SY"].contains(context.geo.country) };
@id("office-hours-for-deletes")
forbid (principal, action == Action::"DELETE /documents/{id}", resource)
when { context.request.ip.isInRange(ip("198.51.100.0/24")) };
EOF
} >"$work/policies/bench.cedar"

vigil_config() { # cache_size
  cat <<EOF
server: {addr: "$vmain", admin_addr: "$vadmin"}
data_dir: "$work/vigil-data-$1"
log: {level: warn}
policies: {dir: "$work/policies", watch: false}
# One client at 10k+ requests/s would (rightly) be rated HIGH risk by the
# request-rate detector and refused by the high-risk policy; the risk
# engine's own cost is measured separately (bench/RESULTS.md, Risk engine).
risk: {enabled: false}
gateway:
  listen: "$gateway"
  upstreams: [{name: documents, url: "http://$backend", pass_authorization: false}]
identity:
  cache_size: $1
  issuers:
    - issuer: "http://$issuer"
      discovery: true
      audiences: [vigil-bench]
      algorithms: [ES256]
      token_type: at+jwt
      roles_claim: roles
routing:
  routes:
    - {method: [GET, POST], path: /documents, resource: {type: Collection, id: documents}}
    - {method: [GET, PUT, DELETE], path: "/documents/{id}", resource: {type: Document, id: "{id}"}}
EOF
}
vigil_config 100000 >"$work/vigil-cached.yaml"
vigil_config 1000 >"$work/vigil-uncached.yaml"

# --- nginx as a plain proxy ----------------------------------------------------
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path client_body_temp;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  upstream backend { server $backend; keepalive 64; }
  server {
    listen $nginxaddr;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF

# --- measurement -----------------------------------------------------------------
clk=$(getconf CLK_TCK)
cpu_ticks() { # pids... → utime+stime of all, in ticks
  local total=0 p f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat")   # fields after the command name
    set -- $f
    total=$((total + ${12} + ${13}))           # utime, stime (fields 14, 15)
  done
  echo "$total"
}

rows=()
# measure NAME URL PIDS -- WRK-ARGS...
measure() {
  local name=$1 url=$2 pidlist=$3; shift 4
  "${load_cpu[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$@" "$url" >/dev/null
  local before after
  before=$(cpu_ticks $pidlist)
  "${load_cpu[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" >"$work/$name.wrk"
  after=$(cpu_ticks $pidlist)
  local out=$work/$name.wrk
  local rps reqs p50 p99 errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  reqs=$(awk '/requests in/ {print $1}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errs=$(awk '/Non-2xx/ {print $NF}' "$out"); errs=${errs:-0}
  local sockerr; sockerr=$(grep -c 'Socket errors' "$out" || true)
  local cpu_us
  cpu_us=$(awk -v d=$((after - before)) -v c="$clk" -v n="$reqs" 'BEGIN {printf "%.1f", d / c * 1e6 / n}')
  local cpu_pct
  cpu_pct=$(awk -v d=$((after - before)) -v c="$clk" -v s="$DURATION" 'BEGIN {printf "%.0f", d / c / s * 100}')
  rows+=("$name|$rps|$p50|$p99|$cpu_us|$cpu_pct|$errs|$sockerr")
  echo "   $name: $rps req/s, p50 $p50, p99 $p99, ${cpu_us} µs CPU/request (${cpu_pct}% of a CPU), non-2xx $errs" >&2
  if [ "$errs" != 0 ]; then
    echo "run.sh: $name answered $errs non-2xx responses; see $out" >&2
  fi
}

path=/documents/doc-1
echo "== a) backend directly" >&2
# Every setup receives the same request, bearer token included (a proxy
# parses it even when it does not check it).
auth=(-H "Authorization: Bearer $token")
measure a-backend "http://$backend$path" "$backend_pid" -- "${auth[@]}"
echo "== b) bare httputil.ReverseProxy" >&2
"${proxy_cpu[@]}" "$work/loadtarget" proxy -addr "$bareproxy" -upstream "http://$backend" >"$work/proxy.log" 2>&1 &
bp=$!; pids+=("$bp")
wait_http "http://$bareproxy$path"
measure b-reverseproxy "http://$bareproxy$path" "$bp" -- "${auth[@]}"
kill "$bp"; wait "$bp" 2>/dev/null || true

echo "== c) nginx (1 worker)" >&2
"${proxy_cpu[@]}" "$NGINX" -p "$work/nginx" -e "$work/nginx/error.log" -c nginx.conf -g 'daemon off;' >"$work/nginx.log" 2>&1 &
np=$!; pids+=("$np")
wait_http "http://$nginxaddr$path"
measure c-nginx "http://$nginxaddr$path" "$np $(pgrep -P "$np" | tr '\n' ' ')" -- "${auth[@]}"
kill "$np"; wait "$np" 2>/dev/null || true

run_vigil() { # name config -- wrk args
  local name=$1 cfg=$2; shift 3
  env ${VIGIL_ENV:-} "${proxy_cpu[@]}" "$work/vigil" serve --config "$cfg" >"$work/$name.log" 2>&1 &
  local vp=$!; pids+=("$vp")
  wait_http "http://$vmain/readyz"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$gateway$path")" = 200 ] || {
    echo "run.sh: the gateway does not allow the benchmark request; see $work/$name.log" >&2; exit 1; }
  measure "$name" "http://$gateway$path" "$vp" -- "$@"
  kill -INT "$vp"; wait "$vp" 2>/dev/null || true
}

echo "== d) vigil gateway, one token (cached verification)" >&2
run_vigil d-vigil-cached "$work/vigil-cached.yaml" -- "${auth[@]}"

echo "== e) vigil gateway, a different token on every request" >&2
printf 'local file = "%s"\n' "$work/tokens.txt" >"$work/tokens.lua"
cat >>"$work/tokens.lua" <<'EOF'
-- Cycles through the pre-minted tokens; each thread starts at its own
-- offset.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  for line in io.lines(file) do tokens[#tokens + 1] = line end
  n = #tokens
  i = (tid or 0) * 7919 % n
end
function request()
  i = i % n + 1
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
EOF
run_vigil e-vigil-per-request-token "$work/vigil-uncached.yaml" -- -s "$work/tokens.lua"

if [ "${PROFILE:-0}" = 1 ]; then
  # The loads of (b), (d) and (e) again, each process under the CPU and
  # allocation profilers (Vigil in-process, as `vigil serve` runs it); not
  # part of the table.
  for mode in proxy cached uncached; do
    echo "== profile: $mode" >&2
    prof=(-cpuprofile "$work/$mode.pprof" -memprofile "$work/$mode.mem.pprof")
    if [ "$mode" = proxy ]; then
      "${proxy_cpu[@]}" "$work/loadtarget" proxy -addr "$bareproxy" -upstream "http://$backend" "${prof[@]}" \
        >"$work/profile-$mode.log" 2>&1 &
      pp=$!; url="http://$bareproxy$path"
      wait_http "$url"
    else
      "${proxy_cpu[@]}" "$work/loadtarget" vigil -config "$work/vigil-$mode.yaml" "${prof[@]}" \
        >"$work/profile-$mode.log" 2>&1 &
      pp=$!; url="http://$gateway$path"
      wait_http "http://$vmain/readyz"
    fi
    pids+=("$pp")
    case $mode in
      proxy) wargs=("${auth[@]}") ;;
      cached) wargs=(-H "Authorization: Bearer $token") ;;
      uncached) wargs=(-s "$work/tokens.lua") ;;
    esac
    "${load_cpu[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${wargs[@]}" "$url" >"$work/profile-$mode.wrk"
    kill -INT "$pp"; wait "$pp" 2>/dev/null || true
    out=${PROFILE_OUT:-/tmp/vigil-bench-gateway-profile}-$mode
    cp "$work/$mode.pprof" "$out.pprof"
    cp "$work/$mode.mem.pprof" "$out.mem.pprof"
    cp "$work/loadtarget" "$out.bin"
    cp "$work/profile-$mode.wrk" "$out.wrk"
    go tool pprof -top -nodecount=45 "$out.bin" "$out.pprof" >"$out-flat.txt" 2>/dev/null
    go tool pprof -top -cum -nodecount=80 "$out.bin" "$out.pprof" >"$out-cum.txt" 2>/dev/null
    go tool pprof -top -sample_index=alloc_space -nodecount=40 "$out.bin" "$out.mem.pprof" >"$out-alloc.txt" 2>/dev/null
    echo "   $out.{pprof,mem.pprof} ($(awk '/requests in/ {print $1}' "$out.wrk") requests): $out-{flat,cum,alloc}.txt" >&2
  done
fi

# --- report --------------------------------------------------------------------
base_rps=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$1 == "b-reverseproxy" {print $2}')
base_cpu=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$1 == "b-reverseproxy" {print $5}')
{
  echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr), $(go version | awk '{print $3}'), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
  echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -n "${VIGIL_ENV:-}" ] && echo "vigil environment: $VIGIL_ENV"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency GET $path with a bearer token (ES256, ~$(head -n1 "$work/tokens.txt" | wc -c) bytes) after a ${WARMUP}s warm-up; pinning: $pinning"
  echo
  echo "| setup | requests/s | p50 | p99 | CPU µs/request | CPU use | throughput vs (b) | CPU/request vs (b) | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do
    IFS='|' read -r name rps p50 p99 cpu pct errs _ <<<"$r"
    awk -v n="$name" -v r="$rps" -v p50="$p50" -v p99="$p99" -v c="$cpu" -v pct="$pct" -v e="$errs" -v br="$base_rps" -v bc="$base_cpu" \
      'BEGIN {printf "| %s | %.0f | %s | %s | %s | %s%% | %.2f× | %.2f× | %s |\n", n, r, p50, p99, c, pct, r / br, c / bc, e}'
  done
} | tee "$work/results.md"
cp "$work/results.md" "${RESULTS_OUT:-/tmp/vigil-bench-gateway-results.md}"
echo >&2
echo "(also written to ${RESULTS_OUT:-/tmp/vigil-bench-gateway-results.md})" >&2
