#!/usr/bin/env bats
# SPEC §6: connecting. Happy Eyeballs between test hosts in network namespaces
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
