#!/usr/bin/env bats
# tunneld(8) "Connecting". Happy Eyeballs between test hosts in network namespaces
# this file makes (veth between them, documentation addresses only): nothing
# leaves the machine.

load helpers

setup() {
	setup_common
	CLIENT_NS=tunneld-c$$-$BATS_TEST_NUMBER
	SERVER_NS=tunneld-s$$-$BATS_TEST_NUMBER
	ip netns add "$CLIENT_NS"
	ip netns add "$SERVER_NS"
	ip link add "vc$$" type veth peer name "vs$$"
	ip link set "vc$$" netns "$CLIENT_NS"
	ip link set "vs$$" netns "$SERVER_NS"
	# nodad: an address still in duplicate address detection cannot be used yet.
	ip -n "$CLIENT_NS" addr add 192.0.2.1/24 dev "vc$$"
	ip -n "$CLIENT_NS" -6 addr add 2001:db8::1/64 dev "vc$$" nodad
	ip -n "$SERVER_NS" addr add 192.0.2.2/24 dev "vs$$"
	ip -n "$SERVER_NS" -6 addr add 2001:db8::2/64 dev "vs$$" nodad
	for ns in "$CLIENT_NS" "$SERVER_NS"; do
		ip -n "$ns" link set lo up
		ip -n "$ns" link set dev "$(ip -n "$ns" -o link show type veth | awk -F': ' '{ print $2 }' | cut -d@ -f1)" up
	done
	printf '2001:db8::2 dual.test\n192.0.2.2 dual.test\n' >"$BATS_TEST_TMPDIR/hosts"
}

teardown() {
	stop_all
	ip netns del "$CLIENT_NS" 2>/dev/null || true
	ip netns del "$SERVER_NS" 2>/dev/null || true
}

# on_server MODE HOST: a target.py in the server namespace on port 8443.
on_server() {
	start_bg ip netns exec "$SERVER_NS" "$PYTHON" "$PEERS/target.py" "$1" "$BATS_TEST_TMPDIR/$1.port" --host "$2" --port 8443
	wait_for "$1 on $2" test -s "$BATS_TEST_TMPDIR/$1.port"
}

# tunnel_from_client REQUEST_BYTES TUNNELD_ARGS...: tunneld over pipes in the client namespace.
tunnel_from_client() {
	local request=$1
	shift
	ip netns exec "$CLIENT_NS" unshare --mount sh -c '
		hosts=$1 request=$2
		shift 2
		mount --bind "$hosts" /etc/hosts && printf "$request" | timeout 20 "$@"' \
		sh "$BATS_TEST_TMPDIR/hosts" "$request" "$TUNNELD" --log=stderr "$@"
}

@test "Happy Eyeballs: the IPv6 address drops SYNs, IPv4 answers; the tunnel is up after ~250 ms, not the connect timeout" {
	on_server blackhole 2001:db8::2
	on_server echo 192.0.2.2
	run --separate-stderr tunnel_from_client 'CONNECT dual.test:8443 HTTP/1.1\r\n\r\nping' \
		--allow-port=8443 --allow-dest=192.0.2.0/24 --allow-dest=2001:db8::/32 --connect-timeout=5
	[ "$output" = "$(printf 'HTTP/1.1 200 Connection established\r\n\r\nping')" ]
	[[ "$stderr" =~ -\>\ dual\.test:8443\ status=200\ up=4\ down=4\ duration_ms=([0-9]+) ]]
	local took=${BASH_REMATCH[1]}
	echo "tunnel up and done in $took ms" >&3
	[ "$took" -ge 250 ] && [ "$took" -lt 1000 ]
}

@test "the first address that answers wins at once: no delay when IPv6 connects" {
	on_server echo 2001:db8::2
	on_server echo 192.0.2.2
	run --separate-stderr tunnel_from_client 'CONNECT dual.test:8443 HTTP/1.1\r\n\r\nping' \
		--allow-port=8443 --allow-dest=192.0.2.0/24 --allow-dest=2001:db8::/32
	[ "$output" = "$(printf 'HTTP/1.1 200 Connection established\r\n\r\nping')" ]
	[[ "$stderr" =~ duration_ms=([0-9]+) ]]
	[ "${BASH_REMATCH[1]}" -lt 200 ]
}

@test "a denied address is skipped without being tried: only IPv4 allowed, the IPv6 blackhole costs nothing" {
	on_server blackhole 2001:db8::2
	on_server echo 192.0.2.2
	run --separate-stderr tunnel_from_client 'CONNECT dual.test:8443 HTTP/1.1\r\n\r\nping' \
		--allow-port=8443 --allow-dest=192.0.2.0/24 --deny-dest=2001:db8::/32
	[ "$output" = "$(printf 'HTTP/1.1 200 Connection established\r\n\r\nping')" ]
	[[ "$stderr" =~ duration_ms=([0-9]+) ]]
	[ "${BASH_REMATCH[1]}" -lt 200 ]
}

@test "every address dropping SYNs: 504 connection_timeout at the connect timeout" {
	on_server blackhole 2001:db8::2
	on_server blackhole 192.0.2.2
	run --separate-stderr tunnel_from_client 'CONNECT dual.test:8443 HTTP/1.1\r\n\r\n' \
		--allow-port=8443 --allow-dest=192.0.2.0/24 --allow-dest=2001:db8::/32 --connect-timeout=1
	[[ "$output" == "HTTP/1.1 504 Gateway Timeout"* ]]
	[[ "$output" == *"Proxy-Status: tunneld; error=connection_timeout"* ]]
}

# start_dns DELAY: tests/peers/dns.py in the client namespace, answering
# every name with 192.0.2.2 after DELAY seconds ("never": no answer). Its
# events go to $DNS_LOG. tunneld then sees only that server (resolv.conf).
start_dns() {
	DNS_LOG=$BATS_TEST_TMPDIR/dns.log
	: >"$DNS_LOG"
	printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:20\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	printf 'hosts: files dns\n' >"$BATS_TEST_TMPDIR/nsswitch.conf"
	start_bg ip netns exec "$CLIENT_NS" "$PYTHON" "$PEERS/dns.py" 192.0.2.2 "$DNS_LOG" "$1"
	wait_for "DNS server" grep -q '^ready$' "$DNS_LOG"
}

# in_client_namespace COMMAND...: COMMAND in the client namespace, with the
# test's hosts, resolv.conf and nsswitch.conf, as the same process (exec all
# the way) so that its pid is the caller's $!.
in_client_namespace() {
	exec ip netns exec "$CLIENT_NS" unshare --mount sh -c '
		dir=$1
		shift
		mount --bind "$dir/hosts" /etc/hosts
		[ -f "$dir/resolv.conf" ] && mount --bind "$dir/resolv.conf" /etc/resolv.conf
		[ -f "$dir/nsswitch.conf" ] && mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf
		exec "$@"' sh "$BATS_TEST_TMPDIR" "$@"
}

@test "a DNS answer that comes after the connect timeout lands in memory nothing else uses" {
	start_dns 1.3
	cc -shared -fPIC -o "$BATS_TEST_TMPDIR/resolver-probe.so" "$PEERS/resolver-probe.c" -ldl
	# The probe reports where the memory handed to the resolver thread lives;
	# the client keeps its side open until the late answer was sent, so that
	# it lands while tunneld is still busy in its refusal path (the linger).
	run --separate-stderr in_client_namespace env LD_PRELOAD="$BATS_TEST_TMPDIR/resolver-probe.so" \
		RESOLVER_PROBE_REPORT="$BATS_TEST_TMPDIR/probe" ASAN_OPTIONS=verify_asan_link_order=0 \
		"$PYTHON" - "$TUNNELD" "$DNS_LOG" <<'PY'
import subprocess, sys, time
tunneld, dns_log = sys.argv[1], sys.argv[2]
proc = subprocess.Popen([tunneld, "--log=stderr", "--allow-port=8443", "--allow-dest=192.0.2.0/24",
                         "--connect-timeout=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
proc.stdin.write(b"CONNECT late.test:8443 HTTP/1.1\r\n\r\n")
proc.stdin.flush()
response = proc.stdout.read()
for _ in range(100):
    if "answered late.test 1" in open(dns_log).read():
        break
    time.sleep(0.1)
print("alive when answered" if proc.poll() is None else "exited before the answer")
proc.stdin.close()
print(proc.wait(timeout=10))
sys.stdout.write(response.decode())
PY
	[ "${lines[0]}" = "alive when answered" ]
	[ "${lines[1]}" = "0" ]
	[ "${lines[2]}" = "HTTP/1.1 504 Gateway Timeout"$'\r' ]
	[[ "$output" == *"Proxy-Status: tunneld; error=dns_timeout; details=\"name resolution timed out\""* ]]
	[[ "$stderr" == *"-> late.test:8443 status=504 "*"reason=name resolution timed out"* ]]
	cat "$BATS_TEST_TMPDIR/probe"
	[ "$(cat "$BATS_TEST_TMPDIR/probe")" = "gaicb=elsewhere hints=elsewhere name=elsewhere service=elsewhere" ]
}

@test "a name resolved over TCP (options use-vc, as after a truncated answer) still resolves in the sandbox" {
	start_dns 0
	printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:5 use-vc\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	on_server echo 192.0.2.2
	run --separate-stderr in_client_namespace sh -c 'printf "CONNECT overtcp.test:8443 HTTP/1.1\r\n\r\nping" | timeout 20 "$@"' \
		sh "$TUNNELD" --log=stderr --allow-port=8443 --allow-dest=192.0.2.0/24
	[[ "$output" == "HTTP/1.1 200 Connection established"*ping ]]
	grep -q '^answered overtcp.test 1$' "$DNS_LOG"
}

@test "SIGTERM while resolving ends the tunnel at once, with its record" {
	start_dns never
	mkfifo "$BATS_TEST_TMPDIR/in"
	in_client_namespace "$TUNNELD" --log=stderr --allow-port=8443 --connect-timeout=8 \
		<"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 2>"$LOG" &
	local pid=$!
	exec 4>"$BATS_TEST_TMPDIR/in"
	printf 'CONNECT silent.test:8443 HTTP/1.1\r\n\r\n' >&4
	wait_for "the query" grep -q '^query silent.test' "$DNS_LOG"
	local took
	took=$(stop_and_time "$pid" "-> silent.test:8443 status=- .*reason=stopped by signal while resolving")
	exec 4>&-
	echo "SIGTERM to record while resolving: $took ms" >&3
	[ "$took" -lt "$STOP_BOUND_MS" ]
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
}

@test "SIGTERM while connecting ends the tunnel at once, with its record" {
	on_server blackhole 192.0.2.2
	mkfifo "$BATS_TEST_TMPDIR/in"
	in_client_namespace "$TUNNELD" --log=stderr --allow-port=8443 --allow-dest=192.0.2.0/24 --connect-timeout=8 \
		<"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 2>"$LOG" &
	local pid=$!
	exec 4>"$BATS_TEST_TMPDIR/in"
	printf 'CONNECT 192.0.2.2:8443 HTTP/1.1\r\n\r\n' >&4
	wait_for "the SYN" sh -c "ip netns exec '$CLIENT_NS' ss -Htn state syn-sent | grep -q 192.0.2.2:8443"
	local took
	took=$(stop_and_time "$pid" "-> 192.0.2.2:8443 status=- .*reason=stopped by signal while connecting")
	exec 4>&-
	echo "SIGTERM to record while connecting: $took ms" >&3
	[ "$took" -lt "$STOP_BOUND_MS" ]
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
}
