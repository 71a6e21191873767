#!/usr/bin/env bash
# A trellis lab for humans, built only from network namespaces (nothing in the root namespace).
#
#   netns-lab.sh up [N]       switch + N hosts (a trellisd in each, one gossip cluster) + a client,
#                              on underlay 10.99.0.0/24
#   netns-lab.sh status       namespaces, daemons, cluster members and networks per daemon
#   netns-lab.sh down [PREFIX] stop the lab's processes, delete its namespaces and its lab dir
#                              (with PREFIX and no lab up: delete namespaces left by a crashed run)
#   netns-lab.sh demo         up 3, a narrated bridge + published-port + overlay + services walk-through, then down
#
# Layout (prefix = tr + 4 random hex digits, e.g. tr3f9a):
#   PREFIX-sw      bridge br0, one veth port per host/client       (no address)
#   PREFIX-hI      eth0 10.99.0.(10+I)/24, trellisd with its socket in the lab dir, node name hI,
#                  gossip on 10.99.0.(10+I):7946 (test timers); h2..hN join h1
#   PREFIX-client  eth0 10.99.0.100/24: a machine outside the hosts
# Lab dir: $TRELLIS_LAB_DIR (default /run/trellis-lab): state file, and per host state/, trellis.sock,
# trellisd.log, trellisd.pid. Extra daemon flags: $TRELLIS_LAB_DAEMON_ARGS (split on spaces).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Under `npm run lab`, PATH starts with node_modules/.bin, which holds an unrelated `nft` (a dependency's
# file tracer). The lab and the daemons it starts get the system's tools.
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v 'node_modules/\.bin/\{0,1\}$' | paste -sd: -)"
export PATH
lab_dir="${TRELLIS_LAB_DIR:-/run/trellis-lab}"
state_file="$lab_dir/state"
underlay=10.99.0
client_ip="$underlay.100"
max_hosts=50
ready_timeout_s=15
# Every daemon must see every host alive within this (test gossip timers: ~1 s for a few hosts).
cluster_timeout_s=20
lab_created=0

# Filled by load_state.
prefix=""
hosts=()

say() { printf '%s\n' "$*"; }
warn() { printf 'netns-lab: %s\n' "$*" >&2; }
die() {
  warn "error: $*"
  exit 1
}

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

require_root() {
  [[ "$(id -u)" == 0 ]] || die "needs root (network namespaces)"
}

host_ip() { printf '%s.%d' "$underlay" "$((10 + $1))"; }
host_dir() { printf '%s/%s' "$lab_dir" "$1"; }
socket_of() { printf '%s/trellis.sock' "$(host_dir "$1")"; }

# ---------------------------------------------------------------- state

write_state() {
  mkdir -p "$lab_dir"
  {
    printf 'prefix=%s\n' "$prefix"
    printf 'hosts=%s\n' "${hosts[*]}"
  } >"$state_file.tmp"
  mv "$state_file.tmp" "$state_file"
}

load_state() {
  [[ -f "$state_file" ]] || return 1
  local key value
  prefix=""
  hosts=()
  while IFS='=' read -r key value; do
    case "$key" in
    prefix) prefix="$value" ;;
    hosts) read -r -a hosts <<<"$value" ;;
    esac
  done <"$state_file"
  [[ "$prefix" =~ ^tr[0-9a-f]{4}$ ]] || die "corrupt state file $state_file (prefix '$prefix')"
}

# Records a process the lab started (besides the daemons), so that `down` stops it.
record_pid() {
  printf '%s %s\n' "$1" "$2" >>"$lab_dir/pids"
}

lab_namespaces() {
  ip netns list | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'
}

# ---------------------------------------------------------------- up

new_prefix() {
  local p i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    p="tr$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
    if [[ -z "$(lab_namespaces "$p")" ]]; then
      printf '%s' "$p"
      return 0
    fi
  done
  die "no free prefix after $i tries"
}

add_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
}

# attach NS PORTNAME IP: veth from the switch's br0 to eth0 in NS, with IP/24.
attach_to_switch() {
  local ns="$1" port="$2" addr="$3" sw="$prefix-sw"
  ip -n "$sw" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "$port" master br0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# start_daemon I: trellisd in hI, advertising its underlay address; h2..hN join h1's gossip port.
start_daemon() {
  local i="$1" host="h$1" ns="$prefix-h$1" dir
  dir="$(host_dir "$host")"
  mkdir -p "$dir/state"
  local cluster=(--advertise-addr "$(host_ip "$i")" --node-name "$host" --gossip-profile test)
  ((i == 1)) || cluster+=(--join "$(host_ip 1)")
  local extra=()
  read -r -a extra <<<"${TRELLIS_LAB_DAEMON_ARGS:-}"
  # setsid: its own session, so the daemon outlives this script and the terminal. In a script's
  # background job setsid does not fork, and `ip netns exec` execs: $! is trellisd's PID.
  setsid ip netns exec "$ns" "$repo/bin/trellisd" --state-dir "$dir/state" --socket "$dir/trellis.sock" \
    "${cluster[@]}" ${extra[@]+"${extra[@]}"} </dev/null >>"$dir/trellisd.log" 2>&1 &
  printf '%s\n' "$!" >"$dir/trellisd.pid"
}

wait_daemon() {
  local host="$1" dir pid deadline
  dir="$(host_dir "$host")"
  pid="$(cat "$dir/trellisd.pid")"
  deadline=$((SECONDS + ready_timeout_s))
  until "$repo/bin/trellis" --socket "$dir/trellis.sock" network ls >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/trellisd.log" >&2 || true
      die "trellisd on $host (PID $pid) exited; log: $dir/trellisd.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$dir/trellisd.log" >&2 || true
      die "trellisd on $host (PID $pid) did not answer within ${ready_timeout_s}s; log: $dir/trellisd.log"
    fi
    sleep 0.1
  done
}

# alive_count HOST: how many members HOST's daemon sees alive (empty when it does not answer).
alive_count() {
  "$repo/bin/trellis" --socket "$(socket_of "$1")" node ls --json 2>/dev/null |
    jq -r '[.[] | select(.State == "alive")] | length' 2>/dev/null
}

# wait_cluster N: until every daemon sees N members alive.
wait_cluster() {
  local n="$1" host deadline seen
  deadline=$((SECONDS + cluster_timeout_s))
  for host in "${hosts[@]}"; do
    until seen="$(alive_count "$host")" && [[ "$seen" == "$n" ]]; do
      if ((SECONDS >= deadline)); then
        "$repo/bin/trellis" --socket "$(socket_of "$host")" node ls >&2 || true
        tail -n 20 "$(host_dir "$host")/trellisd.log" >&2 || true
        die "trellisd on $host sees ${seen:-no} alive member(s), not $n, after ${cluster_timeout_s}s"
      fi
      sleep 0.1
    done
  done
}

cmd_up() {
  local n="${1:-1}" i
  require_root
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > max_hosts)); then
    die "up: N must be 1..$max_hosts (got '$n')"
  fi
  if load_state; then
    die "a lab is already up (prefix $prefix, $lab_dir); run '$0 down' first"
  fi
  [[ -x "$repo/bin/trellisd" && -f "$repo/dist/lib/daemon/main.js" ]] ||
    die "trellis is not built; run 'bash scripts/setup.sh' first"

  prefix="$(new_prefix)"
  hosts=()
  for ((i = 1; i <= n; i++)); do hosts+=("h$i"); done
  write_state # first, so that `down` can clean up a half-built lab
  lab_created=1

  say "lab $prefix: switch, $n host(s), client on $underlay.0/24 (lab dir $lab_dir)"
  add_ns "$prefix-sw"
  ip -n "$prefix-sw" link add br0 type bridge
  ip -n "$prefix-sw" link set br0 up
  for ((i = 1; i <= n; i++)); do
    add_ns "$prefix-h$i"
    attach_to_switch "$prefix-h$i" "h$i" "$(host_ip "$i")"
  done
  add_ns "$prefix-client"
  attach_to_switch "$prefix-client" client "$client_ip"

  for ((i = 1; i <= n; i++)); do start_daemon "$i"; done
  for host in "${hosts[@]}"; do wait_daemon "$host"; done
  wait_cluster "$n"
  say "lab $prefix is up: $n trellisd, each sees $n cluster member(s) alive"
}

# ---------------------------------------------------------------- status

cmd_status() {
  load_state || {
    say "no lab is up ($lab_dir)"
    return 1
  }
  local i=0 host dir pid alive
  say "lab $prefix (lab dir $lab_dir)"
  say "namespaces:"
  lab_namespaces "$prefix" | sed 's/^/  /'
  say "client: $prefix-client $client_ip"
  for host in "${hosts[@]}"; do
    i=$((i + 1))
    dir="$(host_dir "$host")"
    pid="$(cat "$dir/trellisd.pid" 2>/dev/null || echo '?')"
    alive=dead
    kill -0 "$pid" 2>/dev/null && alive=running
    say "host $host: ns $prefix-$host, underlay $(host_ip "$i"), trellisd PID $pid $alive"
    say "  socket $dir/trellis.sock, log $dir/trellisd.log"
    if [[ "$alive" == running ]]; then
      say "  cluster members as $host sees them:"
      "$repo/bin/trellis" --socket "$dir/trellis.sock" node ls 2>&1 | sed 's/^/    /' || true
      say "  networks:"
      "$repo/bin/trellis" --socket "$dir/trellis.sock" network ls 2>&1 | sed 's/^/    /' || true
    fi
  done
}

# ---------------------------------------------------------------- down

# Stops PID with SIGTERM (SIGKILL after 5 s), only if it still runs inside one of the lab's namespaces.
stop_pid() {
  local pid="$1" what="$2" where i
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  where="$(ip netns identify "$pid" 2>/dev/null || true)"
  if [[ "$where" != "$prefix-"* ]]; then
    warn "not stopping PID $pid ($what): it is not in a $prefix namespace (any more)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  warn "$what (PID $pid) ignored SIGTERM for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

delete_namespaces() {
  local ns pid
  for ns in $(lab_namespaces "$prefix"); do
    # Whatever still runs inside is the lab's own (a server's children, ...): the namespace is ours.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for ns in $(lab_namespaces "$prefix"); do
    ip netns del "$ns" || warn "could not delete namespace $ns"
  done
}

cmd_down() {
  require_root
  if ! load_state; then
    if [[ -n "${1:-}" ]]; then
      [[ "$1" =~ ^tr[0-9a-f]{4}$ ]] || die "down: PREFIX looks like tr3f9a (got '$1')"
      prefix="$1"
      delete_namespaces
      say "deleted namespaces with prefix $prefix"
      return 0
    fi
    say "no lab is up ($lab_dir)"
    return 0
  fi
  [[ -z "${1:-}" || "$1" == "$prefix" ]] || die "down: the lab that is up has prefix $prefix, not $1"
  local pid what host
  if [[ -f "$lab_dir/pids" ]]; then
    while read -r pid what; do stop_pid "$pid" "$what"; done <"$lab_dir/pids"
  fi
  for host in "${hosts[@]}"; do
    stop_pid "$(cat "$(host_dir "$host")/trellisd.pid" 2>/dev/null || true)" "trellisd on $host"
  done
  delete_namespaces
  rm -rf -- "$lab_dir"
  local left
  left="$(lab_namespaces "$prefix")"
  [[ -z "$left" ]] || die "namespaces left behind: $left"
  say "lab $prefix is down"
}

# ---------------------------------------------------------------- demo

checks=()
failed=0
sock=""

# step WHY CMD...: narrate, show the command, run it, show its output. A failing step ends the demo.
step() {
  local why="$1"
  shift
  printf '\n==> %s\n' "$why"
  show_and_run "$@" || {
    record_check FAIL "$why"
    exit 1
  }
}

# check WHY EXPECT CMD...: like step, but records PASS/FAIL (output must contain EXPECT) and goes on.
check() {
  local why="$1" expect="$2" out rc=0
  shift 2
  printf '\n==> %s\n' "$why"
  out="$(show_and_run "$@")" || rc=$?
  printf '%s\n' "$out"
  if ((rc == 0)) && [[ "$out" == *"$expect"* ]]; then
    record_check PASS "$why"
  else
    record_check FAIL "$why"
  fi
}

record_check() {
  checks+=("$1  $2")
  [[ "$1" == PASS ]] || failed=$((failed + 1))
}

# Prints the command the way a person would type it (trellis = bin/trellis --socket <h1's socket>).
show_and_run() {
  printf '$ %s\n' "$*"
  "$@" 2>&1 | sed 's/^/    /'
}

trellis() {
  "$repo/bin/trellis" --socket "$sock" "$@"
}

first_ipv4() {
  ip -n "$1" -j -4 addr show | jq -r '[.[] | select(.ifname != "lo") | .addr_info[].local][0] // empty'
}

cmd_demo() {
  cmd_up 3
  demo_bridge
  demo_overlay
  demo_services
}

# The bridge part, all on h1: two containers on a bridge network, ping, a published port.
demo_bridge() {
  local h1="$prefix-h1" c1="$prefix-c1" c2="$prefix-c2" host_ip www c2_ip
  sock="$(socket_of h1)"
  host_ip="$(host_ip 1)"
  www="$lab_dir/www"
  say
  say "==== Part 1: a bridge network on one host"
  say
  say "In this demo, 'trellis' is $repo/bin/trellis --socket $sock"
  say "(the trellisd of host $h1, underlay address $host_ip)."

  step "Create a bridge network 'demo' with subnet 10.20.0.0/24: trellisd in $h1 makes a Linux bridge there, gateway 10.20.0.1" \
    trellis network create --driver bridge --subnet 10.20.0.0/24 demo
  step "Make two 'containers': plain network namespaces, with nothing in them but lo" \
    ip netns add "$c1"
  step "(and the second one)" ip netns add "$c2"
  ip -n "$c1" link set lo up
  ip -n "$c2" link set lo up
  step "Connect c1 to 'demo': trellisd adds a veth pair (bridge port on $h1, eth0 in c1), an address and a default route" \
    trellis network connect demo "$c1"
  step "Connect c2 and publish its TCP port 80 as port 8080 on the host (a DNAT rule in trellis's nftables table)" \
    trellis network connect -p 8080:80 demo "$c2"
  step "The network as the Docker API shows it" trellis network inspect demo
  step "c1's addresses: eth0 got the next free address of 10.20.0.0/24" ip -n "$c1" addr
  step "c1's routes: default via the bridge's gateway" ip -n "$c1" route

  c2_ip="$(first_ipv4 "$c2")"
  [[ -n "$c2_ip" ]] || {
    record_check FAIL "c2 has an IPv4 address"
    exit 1
  }
  check "c1 pings c2 ($c2_ip) across the bridge" " 0% packet loss" \
    ip netns exec "$c1" ping -c 3 -i 0.2 -W 2 "$c2_ip"

  mkdir -p "$www"
  printf 'hello from c2 via trellis\n' >"$www/index.html"
  printf '\n==> Start a tiny web server in c2 on port 80 (busybox httpd, serving %s)\n' "$www"
  printf '$ ip netns exec %s busybox httpd -f -p 80 -h %s &\n' "$c2" "$www"
  ip netns exec "$c2" busybox httpd -f -p 80 -h "$www" </dev/null >>"$lab_dir/httpd.log" 2>&1 &
  record_pid "$!" "httpd in $c2"
  wait_http "$c2" 127.0.0.1 80 || {
    record_check FAIL "httpd in c2 starts"
    exit 1
  }

  check "c1 reaches c2's server directly ($c2_ip:80)" "hello from c2" \
    ip netns exec "$c1" timeout 5 busybox wget -q -O - "http://$c2_ip:80/"
  check "The client (an outside machine on the underlay) reaches it through the published port $host_ip:8080" \
    "hello from c2" ip netns exec "$prefix-client" timeout 5 busybox wget -q -O - "http://$host_ip:8080/"
  check "c1 reaches it through the host's published port too ($host_ip:8080, hairpin NAT)" "hello from c2" \
    ip netns exec "$c1" timeout 5 busybox wget -q -O - "http://$host_ip:8080/"
}

# trellis-hI ARGS...: the CLI against host hI's daemon (named so that the narration shows which host).
trellis-h1() { "$repo/bin/trellis" --socket "$(socket_of h1)" "$@"; }
trellis-h2() { "$repo/bin/trellis" --socket "$(socket_of h2)" "$@"; }
trellis-h3() { "$repo/bin/trellis" --socket "$(socket_of h3)" "$@"; }

# wait_until SECONDS CMD...: until CMD succeeds (quietly), at most SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# endpoint_nodes HOST NET: the Node of every endpoint HOST's daemon lists on NET, sorted, space-separated.
endpoint_nodes() {
  "$repo/bin/trellis" --socket "$(socket_of "$1")" network inspect "$2" |
    jq -r '[.[0].Containers[].Node] | sort | join(" ")'
}

nodes_are() { [[ "$(endpoint_nodes "$1" "$2")" == "$3" ]]; }

# endpoint_ip HOST NET NAME: NAME's IPv4 address on NET as HOST's daemon lists it.
endpoint_ip() {
  "$repo/bin/trellis" --socket "$(socket_of "$1")" network inspect "$2" |
    jq -r --arg n "$3" '.[0].Containers[] | select(.Name == $n) | .IPv4Address | sub("/.*"; "")'
}

network_known() { "$repo/bin/trellis" --socket "$(socket_of "$1")" network inspect "$2" >/dev/null 2>&1; }
network_gone() { ! network_known "$@"; }

# The overlay part: one network across h1..h3, a container on each host, ping and TCP across hosts.
demo_overlay() {
  local net=ovdemo subnet=10.21.0.0/24 i j host ns www ips=() cs=()
  www="$lab_dir/www-h3"
  say
  say "==== Part 2: an overlay network across three hosts"
  say
  say "'trellis-hI' is $repo/bin/trellis --socket $lab_dir/hI/trellis.sock: the CLI of host $prefix-hI's trellisd."
  say "The hosts' daemons gossip on 7946 over the underlay (h2 and h3 joined h1 at start); the data"
  say "plane is kernel VXLAN (UDP 4789) with one static FDB + neighbour entry per remote container."

  step "The cluster as h1 sees it: every host's trellisd is a member, alive" trellis-h1 node ls
  step "Create an overlay network on h1: the gossip table carries it (same ID, subnet and VNI) to h2 and h3" \
    trellis-h1 network create -d overlay --subnet "$subnet" "$net"
  wait_until 10 network_known h3 "$net" || true
  check "h3 knows the network a moment later (created on h1)" "$net" trellis-h3 network ls
  for i in 1 2 3; do
    host="h$i"
    ns="$prefix-$host-c"
    cs+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    step "Make a container on $host ($ns) and connect it there: a veth to the network's bridge on $host, whose VXLAN device leads to the other hosts" \
      "trellis-$host" network connect "$net" "$ns"
  done
  wait_until 10 nodes_are h2 "$net" "h1 h2 h3" || true
  step "The network as h2 sees it: the endpoints of all three hosts, each with its Node" \
    trellis-h2 network inspect "$net"
  if nodes_are h2 "$net" "h1 h2 h3"; then
    record_check PASS "h2 lists endpoints on nodes h1 h2 h3"
  else
    record_check FAIL "h2 lists endpoints on nodes h1 h2 h3 (got: $(endpoint_nodes h2 "$net" 2>&1))"
  fi
  for i in 0 1 2; do
    ips+=("$(endpoint_ip "h$((i + 1))" "$net" "${cs[i]}")")
  done
  for i in 0 1 2; do
    [[ -n "${ips[i]}" ]] || {
      record_check FAIL "h$((i + 1))'s container has an address on $net"
      exit 1
    }
  done
  check "h1's container has MTU 1450 on eth0 (underlay 1500 - 50 for the VXLAN header)" "mtu 1450" \
    ip -n "${cs[0]}" link show eth0
  for i in 0 1 2; do
    for j in 0 1 2; do
      ((i != j)) || continue
      check "h$((i + 1))'s container pings h$((j + 1))'s (${ips[j]}) across the underlay" " 0% packet loss" \
        ip netns exec "${cs[i]}" ping -c 2 -i 0.2 -W 2 "${ips[j]}"
    done
  done
  check "What h1 has programmed: one FDB entry (MAC -> remote VTEP) and one neighbour entry per remote container, and the gossip table entries they came from" \
    "\"address\": \"${ips[1]}\"" trellis-h1 debug overlay "$net"

  mkdir -p "$www"
  printf 'hello from h3 over the overlay\n' >"$www/index.html"
  printf '\n==> Start a TCP server in h3'"'"'s container on port 8000 (busybox httpd, serving %s)\n' "$www"
  printf '$ ip netns exec %s busybox httpd -f -p 8000 -h %s &\n' "${cs[2]}" "$www"
  ip netns exec "${cs[2]}" busybox httpd -f -p 8000 -h "$www" </dev/null >>"$lab_dir/httpd-h3.log" 2>&1 &
  record_pid "$!" "httpd in ${cs[2]}"
  wait_http "${cs[2]}" 127.0.0.1 8000 || {
    record_check FAIL "httpd in h3's container starts"
    exit 1
  }
  check "h1's container reaches it over TCP (${ips[2]}:8000, h1 -> VXLAN -> h3)" "hello from h3 over the overlay" \
    ip netns exec "${cs[0]}" timeout 5 busybox wget -q -O - "http://${ips[2]}:8000/"
  check "A full-size packet with DF set passes (1422 bytes of ICMP payload = 1450 on the overlay): no fragmentation" \
    " 0% packet loss" ip netns exec "${cs[0]}" ping -c 1 -W 2 -M "do" -s 1422 "${ips[2]}"

  for i in 1 2 3; do
    step "Disconnect h$i's container (on h$i)" "trellis-h$i" network disconnect "$net" "${cs[i - 1]}"
  done
  step "Remove the network on h1" trellis-h1 network rm "$net"
  wait_until 10 network_gone h3 "$net" || true
  step "h3 forgets it too a moment later" trellis-h3 network ls
  if network_gone h3 "$net"; then
    record_check PASS "h3 no longer knows $net after its removal on h1"
  else
    record_check FAIL "h3 no longer knows $net after its removal on h1"
  fi
}

# The services part: a VIP in front of backends on h2 and h3, its DNS name, and the routing mesh.
demo_services() {
  local net=svcdemo subnet=10.22.0.0/24 i host ns www vip client="$prefix-h1-svc-client" backends=()
  say
  say "==== Part 3: a service: one name and VIP in front of backends on other hosts, and the routing mesh"
  say
  step "Create an overlay network for the service" trellis-h1 network create -d overlay --subnet "$subnet" "$net"
  for i in 2 3; do wait_until 10 network_known "h$i" "$net" || true; done
  for i in 2 3; do
    host="h$i"
    ns="$prefix-$host-web"
    backends+=("$ns")
    www="$lab_dir/www-svc-$host"
    mkdir -p "$www"
    printf 'hello from the web backend on %s\n' "$host" >"$www/index.html"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    step "A backend container on $host, connected there" "trellis-$host" network connect "$net" "$ns"
    ip netns exec "$ns" busybox httpd -f -p 80 -h "$www" </dev/null >>"$lab_dir/httpd-svc-$host.log" 2>&1 &
    record_pid "$!" "httpd in $ns"
    wait_http "$ns" 127.0.0.1 80 || {
      record_check FAIL "httpd in $ns starts"
      exit 1
    }
  done
  step "Create the service on h1: a VIP on $net, TCP port 80 at the VIP, published as 8081 on every node (mode=ingress)" \
    trellis-h1 service create --name web --network "$net" -p 8081:80
  for i in 2 3; do
    step "Make h$i's container a backend of web (on h$i, where the container runs)" \
      "trellis-h$i" service add-backend web "${backends[i - 2]}"
  done
  wait_until 10 backends_are h1 web 2 || true
  check "h1 lists both backends, on node h2 and h3" "2/2" trellis-h1 service ls
  vip="$(trellis-h1 service inspect web | jq -r '.[0].VirtualIPs[0].Addr | sub("/.*"; "")')"
  ip netns add "$client"
  ip -n "$client" link set lo up
  step "A client container on h1 (which runs no backend)" trellis-h1 network connect "$net" "$client"
  check "Its embedded DNS resolves web to the VIP ($vip)" "$vip" \
    ip netns exec "$client" dig +short @127.0.0.11 web
  check "tasks.web resolves to the backends themselves" "10.22.0." \
    ip netns exec "$client" dig +short @127.0.0.11 tasks.web
  check "New connections to the VIP spread over the backends (one of 10 reached h2)" "backend on h2" \
    fetch_many "$client" "$vip" 80 10
  check "(and one reached h3)" "backend on h3" fetch_many "$client" "$vip" 80 10
  check "The outside client reaches the service through h1's published port 8081, though h1 runs no backend (routing mesh over the overlay)" \
    "hello from the web backend" ip netns exec "$prefix-client" timeout 5 busybox wget -q -O - "http://$(host_ip 1):8081/"
  step "Remove the service, then the containers and the network" trellis-h1 service rm web
  trellis-h1 network disconnect "$net" "$client" >/dev/null
  for i in 2 3; do "trellis-h$i" network disconnect "$net" "${backends[i - 2]}" >/dev/null; done
  check "The VIP has left h1's bridge" "gone" vip_gone h1 "$vip"
  trellis-h1 network rm "$net" >/dev/null
}

# backends_are HOST SERVICE N: HOST's daemon lists N backends of SERVICE.
backends_are() {
  [[ "$("$repo/bin/trellis" --socket "$(socket_of "$1")" service inspect "$2" | jq '.[0].Backends | length')" == "$3" ]]
}

# fetch_many NS IP PORT N: N HTTP GETs from NS, each answer on its own line.
fetch_many() {
  local i
  for ((i = 0; i < $4; i++)); do ip netns exec "$1" timeout 5 busybox wget -q -O - "http://$2:$3/" || true; done
}

# vip_gone HOST VIP: prints "gone" when no address of HOST's namespace is VIP.
vip_gone() {
  ip -n "$prefix-$1" -4 -o addr show | grep -q " $2/32 " || echo gone
}

# wait_http NS IP PORT: until a GET answers (5 s at most). (Debian's busybox 1.35 wget crashes when -T
# meets a refused connection, hence timeout(1) instead.)
wait_http() {
  local i
  for ((i = 0; i < 50; i++)); do
    ip netns exec "$1" timeout 2 busybox wget -q -O /dev/null "http://$2:$3/" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# summary RC: every check, then one PASS/FAIL line. Fails unless RC is 0 and every check passed.
summary() {
  local rc="$1" line
  printf '\n==== demo summary\n'
  for line in ${checks[@]+"${checks[@]}"}; do printf '  %s\n' "$line"; done
  if ((rc == 0 && failed == 0 && ${#checks[@]} > 0)); then
    printf 'PASS: all %d checks passed\n' "${#checks[@]}"
    return 0
  fi
  if ((${#checks[@]} == 0)); then
    printf 'FAIL: the demo stopped (exit %d) before its first check; the lab did not come up?\n' "$rc"
  elif ((failed > 0)); then
    printf 'FAIL: %d of %d checks failed\n' "$failed" "${#checks[@]}"
  else
    printf 'FAIL: the demo stopped early (exit %d) after %d passed checks\n' "$rc" "${#checks[@]}"
  fi
  return 1
}

on_exit_after_demo() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # a second Ctrl-C must not cut the teardown short
  if ((rc == 0 && failed > 0)); then rc=1; fi
  if ((rc != 0 && lab_created)); then
    local host
    for host in ${hosts[@]+"${hosts[@]}"}; do
      [[ -f "$(host_dir "$host")/trellisd.log" ]] || continue
      printf '\n==== last lines of trellisd.log (%s)\n' "$host"
      tail -n 20 "$(host_dir "$host")/trellisd.log" || true
    done
  fi
  summary "$rc" || rc=1
  printf '\n==> Tear the lab down\n'
  if ((lab_created)); then cmd_down || rc=1; fi
  exit "$rc"
}

# ---------------------------------------------------------------- main

on_exit_after_up() {
  local rc=$?
  trap '' INT TERM
  if ((rc != 0 && lab_created)); then
    warn "up failed; removing the half-built lab"
    cmd_down || true
  fi
  exit "$rc"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  trap 'exit 130' INT
  trap 'exit 143' TERM
  case "$cmd" in
  up)
    trap on_exit_after_up EXIT
    cmd_up "$@"
    trap - EXIT
    cmd_status
    ;;
  status) cmd_status ;;
  down) cmd_down "$@" ;;
  demo)
    trap on_exit_after_demo EXIT
    cmd_demo
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
