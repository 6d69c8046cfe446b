#!/usr/bin/env bash
# A playtest across three hosts on one machine. Three network namespaces stand for three
# hosts on a private network (10.77.0.0/24), each joined by a veth to a bridge that lives
# in a fourth namespace, so the machine's own network is never touched:
#
#   tessera-servers  10.77.0.1  the four game servers of hosting/playtest/cluster.toml
#   tessera-proxies  10.77.0.2  the two proxies
#   tessera-players  10.77.0.3  Xvfb, three game windows walked by xdotool, and the bots
#   tessera-switch              the bridge
#
# The secret is made as a host makes it (`tessera-server keygen`) and handed to every
# server and proxy; the player store is one SQLite file every process reaches (the
# namespaces share the filesystem), or --store URL. The players' link to the proxies is
# slowed in user space by their own link conditioner (--lag/--jitter of tessera-client
# and tessera-bots: kernel netem is not needed). At the end it reports what the bots
# measured (smoothness, chat, inputs), what the windows did, and the machine's load, and
# exits non-zero if an input was lost or duplicated, a bot failed, or a process died
# early. Everything it started is stopped and the namespaces deleted on exit or Ctrl-C.
#
# Run as root, from anywhere in the repository:  hosting/playtest/netns.sh --help
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: hosting/playtest/netns.sh [OPTIONS]

  --duration SECS        how long the bots are measured (default 180)
  --warmup SECS          seconds the bots take to connect before that (default 10)
  --bots N               bots (default 500)
  --lag MS               delay added each way between players and proxies (default 75)
  --jitter MS            give or take, each way (default 20)
  --chat-every SECS      each bot says a line about this often (default 20)
  --windows N            game windows under Xvfb, 0 to 3 (default 3)
  --client-profile P     debug or release build of tessera-client (default release)
  --no-build             use the binaries already in the target directory
  --secret-file FILE     an existing cluster secret (default: a new one, made here)
  --store URL            the player store (default: a SQLite file in the output dir)
  --out DIR              where logs, screenshots and the report go
                         (default /tmp/tessera-playtest-DATE)
  -h, --help             this text

Binaries come from $CARGO_TARGET_DIR (default: the repository's target/): the server,
proxy and bots always in release.
EOF
}

duration=180 warmup=10 bots=500 lag=75 jitter=20 chat_every=20 window_count=3
client_profile=release build=1 secret_file="" store="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --bots) bots=$2; shift 2 ;;
    --lag) lag=$2; shift 2 ;;
    --jitter) jitter=$2; shift 2 ;;
    --chat-every) chat_every=$2; shift 2 ;;
    --windows) window_count=$2; shift 2 ;;
    --client-profile) client_profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --secret-file) secret_file=$(realpath "$2"); shift 2 ;;
    --store) store=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for number in "$duration" "$warmup" "$bots" "$lag" "$jitter" "$window_count"; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "not a whole number: $number" >&2; exit 2; }
done
case "$client_profile" in debug | release) ;; *) echo "--client-profile is debug or release" >&2; exit 2 ;; esac
((window_count <= 3)) || { echo "--windows is 0 to 3" >&2; exit 2; }
names=(ann bea cid)
names=("${names[@]:0:window_count}")

# --- What it needs --------------------------------------------------------------------

[ "$(id -u)" = 0 ] || { echo "run as root: it makes network namespaces" >&2; exit 2; }
missing=()
tools=(ip ss curl jq timeout)
((window_count == 0)) || tools+=(Xvfb xdotool import)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "on Debian/Ubuntu: apt-get install iproute2 xvfb xdotool imagemagick curl jq coreutils mesa-vulkan-drivers" >&2
  exit 2
fi

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cluster="$root/hosting/playtest/cluster.toml"
target=${CARGO_TARGET_DIR:-$root/target}
out=${out:-/tmp/tessera-playtest-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs" "$out/screenshots" "$out/metrics" "$out/players"
out=$(realpath "$out")
logs=$out/logs

if [ "$build" = 1 ]; then
  echo "building (release: server, proxy, bots; $client_profile: client) into $target"
  (cd "$root" && cargo build --release -p tessera-server -p tessera-proxy -p tessera-bots)
  client_flag=()
  [ "$client_profile" = release ] && client_flag=(--release)
  ((window_count == 0)) || (cd "$root" && cargo build "${client_flag[@]}" -p tessera-client)
fi
server_bin=$target/release/tessera-server
proxy_bin=$target/release/tessera-proxy
bots_bin=$target/release/tessera-bots
client_bin=$target/$client_profile/tessera-client
bins=("$server_bin" "$proxy_bin" "$bots_bin")
((window_count == 0)) || bins+=("$client_bin")
for bin in "${bins[@]}"; do
  [ -x "$bin" ] || { echo "missing binary $bin (build it, or leave out --no-build)" >&2; exit 2; }
done

# --- The hosts ------------------------------------------------------------------------

switch=tessera-switch
hosts=(tessera-servers tessera-proxies tessera-players)
declare -A address=([tessera-servers]=10.77.0.1 [tessera-proxies]=10.77.0.2 [tessera-players]=10.77.0.3)
namespaces=("${hosts[@]}" "$switch")

# Stops whatever still runs in our namespaces (an earlier run's leftovers, or ours at the
# end), then deletes them; the bridge and veths go with them.
remove_namespaces() {
  local ns pids
  for ns in "${namespaces[@]}"; do
    ip netns list | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 50); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && break
        sleep 0.1
      done
      [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
}

make_hosts() {
  ip netns add "$switch"
  ip -n "$switch" link set lo up
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" link set br0 up
  local ns
  for ns in "${hosts[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Made inside the switch, its far end moved straight into the host: the machine's
    # own namespace never holds either end.
    ip -n "$switch" link add "${ns#tessera-}" type veth peer name eth0 netns "$ns"
    ip -n "$switch" link set "${ns#tessera-}" master br0 up
    ip -n "$ns" addr add "${address[$ns]}/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
}

# --- Processes ------------------------------------------------------------------------

declare -A pid_of
started=()       # names, in start order
watched=()       # names that must run until the end

# start NAMESPACE NAME COMMAND...: runs COMMAND on that host, its output in logs/NAME.log.
start() {
  local ns=$1 name=$2
  shift 2
  ip netns exec "$ns" "$@" >"$logs/$name.log" 2>&1 &
  pid_of[$name]=$!
  started+=("$name")
}

stop_all() {
  local i name pid
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    pid=${pid_of[${started[$i]}]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 100); do
    local alive=0
    for name in "${started[@]}"; do kill -0 "${pid_of[$name]}" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for name in "${started[@]}"; do kill -KILL "${pid_of[$name]}" 2>/dev/null || true; done
  started=()
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  remove_namespaces
  exit $rc
}

# Says which watched process has exited, with its code, and fails.
check_alive() {
  local name pid code
  for name in "${watched[@]}"; do
    pid=${pid_of[$name]}
    if ! kill -0 "$pid" 2>/dev/null; then
      code=0
      wait "$pid" || code=$?
      fail "$name exited early (code $code); see $logs/$name.log"
    fi
  done
}

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, failing after SECONDS or as
# soon as a watched process dies.
wait_for() {
  local what=$1 within=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "no $what within $within s"
    check_alive
    sleep 0.2
  done
}

listening() { # NAMESPACE PORT
  [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

metric() { # NAMESPACE ADDR NAME: the metric's value (first sample), or nothing
  ip netns exec "$1" curl -sf --max-time 2 "http://$2/metrics" | awk -v name="$3" '$1 == name || index($1, name "{") == 1 { print $2; exit }'
}

proxy_linked() { # PROXY_ID: linked to every server
  [ "$(metric tessera-proxies "10.77.0.2:920$1" tessera_proxy_servers)" = 4 ]
}

on_players() { ip netns exec tessera-players env DISPLAY=":$display" "$@"; }

window_of() { # PID: the client's window id
  local wid
  wid=$(on_players xdotool search --all --pid "$1" --name '^Tessera' 2>/dev/null | head -n1)
  [ -n "$wid" ] && echo "$wid"
}

in_game() { # WINDOW: its title shows a position
  [[ $(on_players xdotool getwindowname "$1" 2>/dev/null) == "Tessera: ("* ]]
}

trap teardown EXIT
trap 'exit 130' INT TERM

echo "output: $out"
remove_namespaces
make_hosts

# The cluster secret, made as a host makes it; every server and proxy is given the file.
if [ -z "$secret_file" ]; then
  secret_file=$out/cluster.secret
  "$server_bin" keygen --out "$secret_file" >"$logs/keygen.log"
fi
store_flag=(--data "$out/store")
[ -n "$store" ] && store_flag=(--store "$store")

for id in 1 2 3 4; do
  start tessera-servers "server-$id" "$server_bin" --id "$id" --cluster "$cluster" \
    --secret-file "$secret_file" "${store_flag[@]}" --metrics "10.77.0.1:910$id"
  watched+=("server-$id")
done
for id in 1 2 3 4; do
  wait_for "server $id listening" 30 listening tessera-servers "720$id"
done

# 500 bots and three windows share one address: the per-address limits are raised to
# fit them, as README's "Limits at the front door" says a load test must. Each proxy
# runs one thread, its share of a machine that also runs the servers (BENCHMARKS.md).
per_address=$((bots + 64))
for id in 1 2; do
  start tessera-proxies "proxy-$id" "$proxy_bin" --id "$id" --cluster "$cluster" \
    --secret-file "$secret_file" "${store_flag[@]}" --metrics "10.77.0.2:920$id" --threads 1 \
    --max-connections-per-address "$per_address" --join-burst-per-address "$per_address" \
    --joins-per-sec-per-address "$per_address"
  watched+=("proxy-$id")
done
for id in 1 2; do
  wait_for "proxy $id listening" 30 listening tessera-proxies "700$id"
  # Over the bridge, sealed with the secret: the hosts can talk and agree on it.
  wait_for "proxy $id linked to all 4 servers" 30 proxy_linked "$id"
done
echo "cluster up: 4 servers on 10.77.0.1, 2 proxies on 10.77.0.2"

# --- The players' host ----------------------------------------------------------------

# Xvfb picks a free display and writes its number when it is ready for clients.
width=1280 height=800 display=""
if ((window_count > 0)); then
  start tessera-players xvfb Xvfb -displayfd 3 -nolisten tcp -screen 0 "$((width * window_count))x${height}x24" \
    3>"$out/players/display"
  watched+=(xvfb)
  display_written() { [ -s "$out/players/display" ]; }
  wait_for "Xvfb display" 30 display_written
  display=$(tr -dc 0-9 <"$out/players/display")
fi

mkdir -p -m 700 "$out/players/runtime"
windows=()
for name in "${names[@]}"; do
  start tessera-players "client-$name" env DISPLAY=":$display" XDG_CONFIG_HOME="$out/players/config" \
    XDG_RUNTIME_DIR="$out/players/runtime" "$client_bin" --cluster "$cluster" --profile "$name" --name "$name" \
    --lag "$lag" --jitter "$jitter"
  watched+=("client-$name")
done
for i in "${!names[@]}"; do
  pid=${pid_of[client-${names[$i]}]}
  wait_for "window of client ${names[$i]}" 180 window_of "$pid"
  wid=$(window_of "$pid")
  on_players xdotool windowmove "$wid" $((i * width)) 0
  windows+=("$wid")
done
for i in "${!names[@]}"; do
  wait_for "client ${names[$i]} in game" 120 in_game "${windows[$i]}"
done
((window_count == 0)) || echo "$window_count windows in game on display :$display"

# The bots, slowed like the windows.
bots_started=$SECONDS
start tessera-players bots "$bots_bin" --cluster "$cluster" --bots "$bots" --warmup "$warmup" \
  --duration "$duration" --lag "$lag" --jitter "$jitter" --chat-every "$chat_every" --json "$out/bots.json"

# The windows walk in turn (a window walks only while it has the keyboard's focus): each
# says a line, then goes 250 units east, 500 west, 250 east, then the same north and
# south. It spawns within 160 units of the four-way corner, so each leg crosses a region
# border. The pauses around the chat keys let a debug client, drawing a few frames a
# second, open and close its chat line between them.
walk() {
  trap - EXIT INT TERM
  local i step lap=0
  while true; do
    lap=$((lap + 1))
    for i in "${!windows[@]}"; do
      on_players timeout 5 xdotool windowfocus --sync "${windows[$i]}" || true
      on_players xdotool key Return
      sleep 1
      on_players xdotool type --delay 50 "${names[$i]} on lap $lap"
      sleep 1
      on_players xdotool key Return
      sleep 1
      # key:seconds held, at 200 units a second.
      for step in d:1.25 a:2.5 d:1.25 w:1.25 s:2.5 w:1.25; do
        on_players xdotool keydown "${step%:*}"
        sleep "${step#*:}"
        on_players xdotool keyup "${step%:*}"
      done
    done
  done
}
if ((window_count > 0)); then
  walk >"$logs/walk.log" 2>&1 &
  pid_of[walk]=$!
  started+=(walk)
fi

# While the bots play: every 2 s, each window's title (its position and server) and the
# load; a few seconds before the bots stop, the screenshots.
shot_at=$((bots_started + warmup + duration - (duration > 40 ? 10 : duration / 4)))
bots_deadline=$((bots_started + warmup + duration + 120))
shot=0 load_max=0
while kill -0 "${pid_of[bots]}" 2>/dev/null; do
  check_alive
  ((SECONDS < bots_deadline)) || fail "the bots did not finish within 120 s of their window's end"
  for i in "${!names[@]}"; do
    echo "$((SECONDS - bots_started)) $(on_players xdotool getwindowname "${windows[$i]}" 2>/dev/null)" \
      >>"$logs/client-${names[$i]}.titles"
  done
  read -r load _ </proc/loadavg
  echo "$((SECONDS - bots_started)) $load" >>"$logs/loadavg"
  if [ $shot = 0 ] && ((SECONDS >= shot_at)); then
    ((window_count == 0)) || on_players import -window root "$out/screenshots/all-windows.png"
    for i in "${!names[@]}"; do
      on_players import -window "${windows[$i]}" "$out/screenshots/${names[$i]}.png"
    done
    # What each process has cost so far (CPU % over its lifetime), while all still run.
    ps -o pid,pcpu,rss,etime,args -p "$(IFS=,; echo "${pid_of[*]}")" | cut -c1-160 >"$out/processes.txt"
    shot=1
  fi
  sleep 2
done
bots_code=0
wait "${pid_of[bots]}" || bots_code=$?
check_alive

for id in 1 2 3 4; do
  ip netns exec tessera-servers curl -sf --max-time 5 "http://10.77.0.1:910$id/metrics" >"$out/metrics/server-$id.prom" || true
done
for id in 1 2; do
  ip netns exec tessera-proxies curl -sf --max-time 5 "http://10.77.0.2:920$id/metrics" >"$out/metrics/proxy-$id.prom" || true
done
stop_all

# --- The report -----------------------------------------------------------------------

[ -s "$out/bots.json" ] || fail "the bots wrote no report (exit code $bots_code); see $logs/bots.log"

# A server's ticks: how many, the mean, and how many overran the 20 Hz budget (50 ms).
tick_line() {
  awk '
    /^tessera_server_tick_seconds_bucket/ && /le="0.05"/ { within = $2 }
    /^tessera_server_tick_seconds_sum/ { sum = $2 }
    /^tessera_server_tick_seconds_count/ { count = $2 }
    /^tessera_server_handoffs_total/ { handoffs += $2 }
    END {
      if (count == 0) { print "no metrics"; exit }
      printf "%d ticks, mean %.1f ms, %d over 50 ms (%.2f%%), %d handoffs", count, 1000 * sum / count, count - within, 100 * (count - within) / count, handoffs
    }' "$1"
}

{
  echo "Tessera playtest across three hosts (network namespaces), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "link players↔proxies: +${lag}±${jitter} ms each way; ${bots} bots measured ${duration} s after ${warmup} s warm-up; ${window_count} windows${names[*]:+ (${client_profile} client)}"
  echo
  jq -r '
    def f: . * 100 | round / 100;
    "bots: \(.bots_connected)/\(.bots_requested) connected, \(.bots_still_connected) still connected at the end",
    "inputs: \(.inputs_sent) sent, \(.inputs_acknowledged) acknowledged, \(.inputs_lost) lost, \(.inputs_duplicated) duplicated",
    "handoffs: \(.handoffs); resumes: \(.resumes)",
    "echo latency (ms): p50 \(.echo_latency_ms.p50 | f), p99 \(.echo_latency_ms.p99 | f), max \(.echo_latency_ms.max | f)",
    "smoothness (world units; a player is 32 across):",
    "  own correction: p50 \(.smoothness.own_correction.p50 | f), p99 \(.smoothness.own_correction.p99 | f), max \(.smoothness.own_correction.max | f) over \(.smoothness.own_checked) states checked",
    "  snaps (> 4 units): \(.smoothness.own_snaps), of which at handoffs: \(.smoothness.own_snaps_at_handoffs)",
    "  others'"'"' error: p50 \(.smoothness.others_error.p50 | f), p99 \(.smoothness.others_error.p99 | f), max \(.smoothness.others_error.max | f) over \(.smoothness.others_checked) updates",
    "chat: \(.chat.said) said, \(.chat.heard) heard, \(.chat.throttled) throttled",
    "bandwidth per bot: \(.bytes_per_bot_per_sec | round) B/s; entity updates: \(.entity_updates_per_sec | round)/s",
    (if (.errors | length) > 0 then "errors: \(.errors | length), first: \(.errors[0])" else "errors: none" end)
  ' "$out/bots.json"
  echo
  ((window_count == 0)) || echo "windows (position and server from each title over the run):"
  for name in "${names[@]}"; do
    titles=$logs/client-$name.titles
    servers=$(grep -o 'on [A-Za-z]*[ -]*[0-9]*$' "$titles" | uniq | sed 's/^on //' | paste -sd'>' | sed 's/>/ → /g' || true)
    echo "  $name: $(grep -c 'Tessera: (' "$titles") of $(wc -l <"$titles") samples in game; servers in turn: ${servers:-none}"
    echo "       last: $(tail -n1 "$titles" | cut -d' ' -f2-)"
  done
  echo
  echo "servers (from their metrics at the end):"
  for id in 1 2 3 4; do echo "  server $id: $(tick_line "$out/metrics/server-$id.prom")"; done
  echo -n "warnings and errors logged:"
  for log in "$logs"/server-*.log "$logs"/proxy-*.log "$logs/bots.log"; do
    echo -n " $(basename "$log" .log) $(grep -cE ' (WARN|ERROR) ' <(sed 's/\x1b\[[0-9;]*m//g' "$log") || true)"
  done
  echo
  echo "load average (1 min) over the run: max $(awk '$2 > m { m = $2 } END { print m }' "$logs/loadavg") on $(nproc) cores"
  echo "CPU per process (lifetime average, % of one core): $out/processes.txt"
  echo
  ((window_count == 0)) || echo "screenshots: $out/screenshots/"
  echo "logs: $logs/"
  echo "bots' report: $out/bots.json"
} | tee "$out/report.txt"

lost=$(jq .inputs_lost "$out/bots.json")
[ "$lost" = 0 ] || fail "$lost inputs lost"
[ "$bots_code" = 0 ] || fail "tessera-bots exited with $bots_code: bots failed, or inputs were duplicated (see $out/bots.json)"
echo "PASSED: nothing lost, every process ran to the end"
