#!/usr/bin/env bats
# Where tunnels leave from (tunneld(8) "Leaving from an address"): two
# network namespaces this file makes, joined by a veth. The proxy's side
# has two addresses of each family (192.0.2.1 and .11, 2001:db8::1 and
# ::11); the target's side (192.0.2.2, 2001:db8::2) runs targets that say
# which address each connection came from.

load helpers

setup() {
	setup_common
	PROXY_NS=tunneld-o$$-$BATS_TEST_NUMBER
	TARGET_NS=tunneld-t$$-$BATS_TEST_NUMBER
	ip netns add "$PROXY_NS"
	ip netns add "$TARGET_NS"
	ip link add "vo$$" type veth peer name "vt$$"
	ip link set "vo$$" netns "$PROXY_NS"
	ip link set "vt$$" netns "$TARGET_NS"
	# nodad: an address still in duplicate address detection cannot be used yet.
	ip -n "$PROXY_NS" addr add 192.0.2.1/24 dev "vo$$"
	ip -n "$PROXY_NS" addr add 192.0.2.11/24 dev "vo$$"
	ip -n "$PROXY_NS" -6 addr add 2001:db8::1/64 dev "vo$$" nodad
	ip -n "$PROXY_NS" -6 addr add 2001:db8::11/64 dev "vo$$" nodad
	ip -n "$TARGET_NS" addr add 192.0.2.2/24 dev "vt$$"
	ip -n "$TARGET_NS" -6 addr add 2001:db8::2/64 dev "vt$$" nodad
	for ns in "$PROXY_NS" "$TARGET_NS"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$PROXY_NS" link set "vo$$" up
	ip -n "$TARGET_NS" link set "vt$$" up
	POLICY=(--allow-port='*' --allow-dest=192.0.2.0/24 --allow-dest=2001:db8::/32)
}

teardown() {
	stop_all
	ip netns del "$PROXY_NS" 2>/dev/null || true
	ip netns del "$TARGET_NS" 2>/dev/null || true
}

# on_target MODE HOST: a target.py in the target's namespace. Sets TARGET_PORT.
on_target() {
	local port_file
	port_file=$(mktemp -u "$BATS_TEST_TMPDIR/target.XXXXXX")
	start_bg ip netns exec "$TARGET_NS" "$PYTHON" "$PEERS/target.py" "$1" "$port_file" --host "$2"
	wait_for "$1 target on $2" test -s "$port_file"
	TARGET_PORT=$(cat "$port_file")
}

# through REQUEST_BYTES ARGS...: tunneld over pipes in the proxy's namespace, its record in $LOG.
through() {
	local request=$1
	shift
	printf "$request" | ip netns exec "$PROXY_NS" timeout 20 "$TUNNELD" --log=file:"$LOG" "$@"
}

# served_from: the address the target saw, from a tunnel's output.
served_from() {
	sed -n 's/^from //p' <<<"$1"
}

@test "--outgoing-address: IPv4 tunnels leave from its IPv4 address, IPv6 ones from its IPv6 one; the record says local=" {
	on_target whoami 192.0.2.2
	local v4=$TARGET_PORT
	on_target whoami 2001:db8::2
	local v6=$TARGET_PORT
	run through "CONNECT 192.0.2.2:$v4 HTTP/1.1\r\n\r\n" "${POLICY[@]}"
	[ "$(served_from "$output")" = 192.0.2.1 ] # the kernel's choice, with no option: the first address
	run through "CONNECT 192.0.2.2:$v4 HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.11,2001:db8::11
	[[ "$output" == "HTTP/1.1 200 "* ]]
	[ "$(served_from "$output")" = 192.0.2.11 ]
	run through "CONNECT [2001:db8::2]:$v6 HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.11,2001:db8::11
	[ "$(served_from "$output")" = 2001:db8::11 ]
	grep -qE "^- -> 192\.0\.2\.2:$v4 status=200 up=0 down=[0-9]+ duration_ms=[0-9]+$" "$LOG"
	grep -qE "^- -> 192\.0\.2\.2:$v4 status=200 .* local=192\.0\.2\.11:[0-9]+$" "$LOG"
	grep -qE "^- -> \[2001:db8::2\]:$v6 status=200 .* local=\[2001:db8::11\]:[0-9]+$" "$LOG"
}

@test "per rule: alice and bob leave from addresses of their own, and a rule for one destination from another; --explain says where" {
	on_target whoami 192.0.2.2
	local v4=$TARGET_PORT
	on_target whoami 2001:db8::2
	local v6=$TARGET_PORT
	: >"$BATS_TEST_TMPDIR/users"
	htpasswd -bB "$BATS_TEST_TMPDIR/users" alice alice-pw 2>/dev/null
	htpasswd -bB "$BATS_TEST_TMPDIR/users" bob bob-pw 2>/dev/null
	cat >"$BATS_TEST_TMPDIR/rules" <<-RULES
		allow user bob to 2001:db8::2 outgoing 2001:db8::11
		allow user alice to 192.0.2.0/24, 2001:db8::/32 outgoing 192.0.2.11, 2001:db8::11
		allow user bob to 192.0.2.0/24
		deny
	RULES
	local args=(--rules "$BATS_TEST_TMPDIR/rules" --auth-file "$BATS_TEST_TMPDIR/users" --outgoing-address=192.0.2.1)
	local alice bob
	alice=$(printf 'alice:alice-pw' | base64)
	bob=$(printf 'bob:bob-pw' | base64)
	run through "CONNECT 192.0.2.2:$v4 HTTP/1.1\r\nProxy-Authorization: Basic $alice\r\n\r\n" "${args[@]}"
	[ "$(served_from "$output")" = 192.0.2.11 ]
	run through "CONNECT 192.0.2.2:$v4 HTTP/1.1\r\nProxy-Authorization: Basic $bob\r\n\r\n" "${args[@]}"
	[ "$(served_from "$output")" = 192.0.2.1 ] # no outgoing in rule 3: --outgoing-address's
	run through "CONNECT [2001:db8::2]:$v6 HTTP/1.1\r\nProxy-Authorization: Basic $bob\r\n\r\n" "${args[@]}"
	[ "$(served_from "$output")" = 2001:db8::11 ]
	run through "CONNECT [2001:db8::2]:$v6 HTTP/1.1\r\nProxy-Authorization: Basic $alice\r\n\r\n" "${args[@]}"
	[ "$(served_from "$output")" = 2001:db8::11 ]
	grep -qE " status=200 .* rule=2 local=192\.0\.2\.11:[0-9]+ user=alice$" "$LOG"
	grep -qE " status=200 .* rule=3 local=192\.0\.2\.1:[0-9]+ user=bob$" "$LOG"
	grep -qE " status=200 .* rule=1 local=\[2001:db8::11\]:[0-9]+ user=bob$" "$LOG"
	run ip netns exec "$PROXY_NS" "$TUNNELD" "${args[@]}" --explain user=alice to="192.0.2.2:$v4"
	[[ "$output" == *$'verdict: allow, line 2\nleaves from: 192.0.2.11,2001:db8::11, line 2' ]]
	run ip netns exec "$PROXY_NS" "$TUNNELD" "${args[@]}" --explain user=bob to="192.0.2.2:$v4"
	[[ "$output" == *$'verdict: allow, line 3\nleaves from: 192.0.2.1 (--outgoing-address)' ]]
	run ip netns exec "$PROXY_NS" "$TUNNELD" "${args[@]}" --check
	[ "$status" -eq 0 ]
}

@test "outgoing same: a tunnel that came in on 192.0.2.11 leaves from it, one that came in on 192.0.2.1 from that (the clients are on the targets' side)" {
	on_target whoami 192.0.2.2
	local port
	port=$(free_port)
	start_bg ip netns exec "$PROXY_NS" sh -c 'exec systemd-socket-activate --listen="0.0.0.0:$1" --accept --inetd "$2" \
		--log=file:"$3" --allow-port="$4" --allow-dest=192.0.2.0/24 --outgoing-address=same' sh "$port" "$TUNNELD" \
		"$LOG" "$TARGET_PORT"
	wait_for "the proxy in its namespace" ip netns exec "$TARGET_NS" nc -z 192.0.2.1 "$port"
	local reached
	for reached in 192.0.2.11 192.0.2.1 192.0.2.11; do
		run sh -c 'printf "CONNECT 192.0.2.2:%s HTTP/1.1\r\n\r\n" "$1" | ip netns exec "$2" timeout 10 nc -N "$3" "$4"' \
			sh "$TARGET_PORT" "$TARGET_NS" "$reached" "$port"
		[ "$(served_from "$output")" = "$reached" ] || { echo "reached $reached: $output"; return 1; }
	done
	wait_for "three records" test "$(grep -c 'status=200' "$LOG")" -eq 3
	[ "$(grep -c ' local=192\.0\.2\.11:' "$LOG")" -eq 2 ]
	# On pipes the client reached no address: refused, and the record says why.
	run through "CONNECT 192.0.2.2:$TARGET_PORT HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=same
	[[ "$output" == "HTTP/1.1 502 Bad Gateway"* ]]
	[[ "$output" == *"Proxy-Status: tunneld; error=destination_ip_unroutable; details=\"outgoing same: the client reached no IP address of this host (it is not on a TCP socket)\""* ]]
}

@test "a parent (via) is reached from the rule's outgoing address" {
	on_target whoami 192.0.2.2
	local parent_port parent_log=$BATS_TEST_TMPDIR/parent.log
	parent_port=$(free_port)
	: >"$parent_log"
	start_bg ip netns exec "$TARGET_NS" sh -c 'exec systemd-socket-activate --listen="192.0.2.2:$1" --accept --inetd \
		"$2" --log=file:"$3" --allow-port="$4" --allow-dest=192.0.2.2/32' sh "$parent_port" "$TUNNELD" "$parent_log" \
		"$TARGET_PORT"
	wait_for "the parent" ip netns exec "$TARGET_NS" nc -z 192.0.2.2 "$parent_port"
	printf 'via http://192.0.2.2:%s to 192.0.2.2 outgoing 192.0.2.11\ndeny\n' "$parent_port" >"$BATS_TEST_TMPDIR/rules"
	run through "CONNECT 192.0.2.2:$TARGET_PORT HTTP/1.1\r\n\r\n" --rules "$BATS_TEST_TMPDIR/rules"
	[[ "$output" == "HTTP/1.1 200 "* ]]
	wait_for "the parent's record" grep -q 'status=200' "$parent_log"
	grep -qE "^192\.0\.2\.11:[0-9]+ -> 192\.0\.2\.2:$TARGET_PORT status=200 " "$parent_log"
	grep -qE " status=200 .* via=http://192\.0\.2\.2:$parent_port rule=1 local=192\.0\.2\.11:[0-9]+$" "$LOG"
}

@test "an address the host does not have: --check says so, a tunnel gets 502 with its reason, never a hang; a v4-only address and a v6-only target: 502, nothing tried" {
	on_target whoami 2001:db8::2
	run --separate-stderr ip netns exec "$PROXY_NS" "$TUNNELD" "${POLICY[@]}" --outgoing-address=192.0.2.99 --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: --outgoing-address: outgoing address 192.0.2.99: not an address of this host" ]
	printf 'allow to 192.0.2.0/24 outgoing 192.0.2.11\nallow to 2001:db8::/32 outgoing 2001:db8::99\ndeny\n' \
		>"$BATS_TEST_TMPDIR/rules"
	run --separate-stderr ip netns exec "$PROXY_NS" "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $BATS_TEST_TMPDIR/rules:2: outgoing address 2001:db8::99: not an address of this host" ]
	run through "CONNECT [2001:db8::2]:$TARGET_PORT HTTP/1.1\r\n\r\n" --rules "$BATS_TEST_TMPDIR/rules"
	[[ "$output" == "HTTP/1.1 502 Bad Gateway"* ]]
	[[ "$output" == *'Proxy-Status: tunneld; error=proxy_configuration_error; details="cannot leave from 2001:db8::99: not an address of this host"'* ]]
	grep -q "status=502 .* rule=2 reason=cannot leave from 2001:db8::99: not an address of this host$" "$LOG"
	# IPv4 to leave from, an IPv6 target: nothing is tried.
	run through "CONNECT [2001:db8::2]:$TARGET_PORT HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.11
	[[ "$output" == "HTTP/1.1 502 Bad Gateway"* ]]
	[[ "$output" == *"Proxy-Status: tunneld; error=destination_ip_unroutable; details=\"the outgoing address has none of the target's address families\""* ]]
	# SOCKS5 says network unreachable (0x03).
	run sh -c 'printf "\005\001\000\005\001\000\004\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\002\000\026" |
		ip netns exec "$1" timeout 20 "$2" --log=file:"$3" --allow-port="*" --allow-dest=2001:db8::/32 \
		--outgoing-address=192.0.2.11 | od -An -tx1 | tr -d " \n"' sh "$PROXY_NS" "$TUNNELD" "$LOG"
	[[ "$output" == 0500050300* ]]
}

# ---- from the outside review of the outgoing change: each of these failed before its fix ----

@test "review: no address a tunnel cannot leave from is taken (unspecified, multicast, broadcast, link-local, empty list words), nor the option twice; a subnet's broadcast address is refused by --check and answered 502, never left from silently" {
	local address
	for address in 0.0.0.0 :: 224.0.0.1 255.255.255.255 ff02::1 fe80::1 ::ffff:192.0.2.11 ,192.0.2.11 192.0.2.11, 192.0.2.11,,2001:db8::11; do
		run --separate-stderr ip netns exec "$PROXY_NS" "$TUNNELD" "${POLICY[@]}" --outgoing-address="$address" --check
		[ "$status" -eq 2 ] || { echo "$address: $status $output"; return 1; }
		[[ $stderr == "tunneld: bad --outgoing-address '$address': "* ]]
	done
	printf 'allow to 192.0.2.0/24 outgoing 224.0.0.1\n' >"$BATS_TEST_TMPDIR/rules"
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --check
	[ "$status" -eq 2 ]
	[[ $stderr == *"found '224.0.0.1': not an address a tunnel can leave from"* ]]
	run --separate-stderr "$TUNNELD" "${POLICY[@]}" --outgoing-address=192.0.2.1 --outgoing-address=2001:db8::1 --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: --outgoing-address given twice: give both families once, ADDRESS,ADDRESS" ]

	# 192.0.2.255 binds (the kernel takes a broadcast address), but a connection from it leaves from another.
	on_target whoami 192.0.2.2
	run --separate-stderr ip netns exec "$PROXY_NS" "$TUNNELD" "${POLICY[@]}" --outgoing-address=192.0.2.255 --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: --outgoing-address: outgoing address 192.0.2.255: a broadcast address, which no tunnel leaves from" ]
	run through "CONNECT 192.0.2.2:$TARGET_PORT HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.255
	[[ "$output" == "HTTP/1.1 502 Bad Gateway"* ]]
	[[ "$output" == *'error=proxy_configuration_error; details="cannot leave from 192.0.2.255: the kernel chose another address (a broadcast one?)"'* ]]
	! grep -q '^from ' <<<"$output" || false
}

@test "review: --compile writes no image for a file whose outgoing address the host lacks, and leaves the one there" {
	printf 'allow to 192.0.2.0/24\n' >"$BATS_TEST_TMPDIR/good"
	printf 'allow to 192.0.2.0/24 outgoing 192.0.2.99\n' >"$BATS_TEST_TMPDIR/bad"
	run ip netns exec "$PROXY_NS" "$TUNNELD" --rules "$BATS_TEST_TMPDIR/good" --compile "$BATS_TEST_TMPDIR/image"
	[ "$status" -eq 0 ]
	local before
	before=$(sha_of "$BATS_TEST_TMPDIR/image")
	run --separate-stderr ip netns exec "$PROXY_NS" "$TUNNELD" --rules "$BATS_TEST_TMPDIR/bad" --compile "$BATS_TEST_TMPDIR/image"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $BATS_TEST_TMPDIR/bad:1: outgoing address 192.0.2.99: not an address of this host" ]
	[ "$(sha_of "$BATS_TEST_TMPDIR/image")" = "$before" ]
	run ip netns exec "$PROXY_NS" "$TUNNELD" --rules "$BATS_TEST_TMPDIR/bad" --compile "$BATS_TEST_TMPDIR/new-image"
	[ "$status" -eq 2 ]
	[ ! -e "$BATS_TEST_TMPDIR/new-image" ]
}

@test "review: an IPv4-mapped target leaves from the IPv4 address (HTTP and SOCKS5); --explain says when no family is left, as the tunnel's 502" {
	on_target whoami 192.0.2.2
	run through "CONNECT [::ffff:192.0.2.2]:$TARGET_PORT HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.11
	[[ "$output" == "HTTP/1.1 200 "* ]]
	[ "$(served_from "$(tail -n 1 <<<"$output")")" = 192.0.2.11 ]
	run through "CONNECT [::ffff:192.0.2.2]:$TARGET_PORT HTTP/1.1\r\n\r\n" "${POLICY[@]}" --outgoing-address=192.0.2.11,2001:db8::11
	[ "$(served_from "$(tail -n 1 <<<"$output")")" = 192.0.2.11 ]
	grep -q " local=\[::ffff:192\.0\.2\.11\]:" "$LOG"
	# SOCKS5, an IPv6 address that carries 192.0.2.2 (ATYP 4).
	local port_bytes
	port_bytes=$(printf '\\%03o\\%03o' $((TARGET_PORT >> 8)) $((TARGET_PORT & 255)))
	run sh -c "printf '\005\001\000\005\001\000\004\000\000\000\000\000\000\000\000\000\000\377\377\300\000\002\002$port_bytes' |
		ip netns exec '$PROXY_NS' timeout 20 '$TUNNELD' --log=file:'$LOG' --allow-port='*' --allow-dest=192.0.2.0/24 \
		--outgoing-address=192.0.2.11 | grep -ao 'from [0-9.]*'"
	[ "$output" = "from 192.0.2.11" ]
	# An IPv6-only outgoing address and an IPv4 target: --explain says what the tunnel would answer.
	run ip netns exec "$PROXY_NS" "$TUNNELD" "${POLICY[@]}" --outgoing-address=2001:db8::11 --explain to=192.0.2.2:80
	[ "$status" -eq 1 ]
	[[ $output == *"leaves from: 2001:db8::11 (--outgoing-address)"$'\n'"but the outgoing address has none of the target's address families: a tunnel gets 502 (destination_ip_unroutable)" ]]
}

@test "review: outgoing same from a client that reached a link-local address leaves from it, on its interface" {
	ip -n "$PROXY_NS" -6 addr add fe80::1/64 dev "vo$$" nodad
	ip -n "$TARGET_NS" -6 addr add fe80::2/64 dev "vt$$" nodad
	on_target whoami 2001:db8::2
	local port
	port=$(free_port)
	start_bg ip netns exec "$PROXY_NS" sh -c 'exec systemd-socket-activate --listen="[::]:$1" --accept --inetd "$2" \
		--log=file:"$3" --allow-port="$4" --allow-dest=2001:db8::/32 --outgoing-address=same' sh "$port" "$TUNNELD" \
		"$LOG" "$TARGET_PORT"
	wait_for "the proxy in its namespace" ip netns exec "$TARGET_NS" nc -z 2001:db8::1 "$port"
	run sh -c 'printf "CONNECT [2001:db8::2]:%s HTTP/1.1\r\n\r\n" "$1" | ip netns exec "$2" timeout 10 nc -N "fe80::1%$3" "$4"' \
		sh "$TARGET_PORT" "$TARGET_NS" "vt$$" "$port"
	[[ "$output" == "HTTP/1.1 200 "* ]] || { echo "$output"; cat "$LOG"; return 1; }
	[ "$(served_from "$(tail -n 1 <<<"$output")")" = fe80::1 ]
	wait_for "the record" grep -q ' local=\[fe80::1\]:' "$LOG"
}

@test "20,000 tunnels at 64 at a time leave from one address with a port range of 2,000: the range is shared by the destinations, not spent by binds" {
	# Sixteen echo targets, so 1,250 tunnels a destination; bound before connect(), 20,000 would need a port each.
	local ports=() n
	for n in $(seq 16); do
		on_target echo 192.0.2.2
		ports+=("$TARGET_PORT")
	done
	ip netns exec "$PROXY_NS" sysctl -q -w net.ipv4.ip_local_port_range="50000 51999"
	local port
	port=$(free_port)
	start_bg ip netns exec "$PROXY_NS" sh -c 'exec systemd-socket-activate --listen="192.0.2.1:$1" "$2" --log=file:"$3" \
		--allow-port="*" --allow-dest=192.0.2.0/24 --outgoing-address=192.0.2.11 --max-tunnels=256 \
		--max-tunnels-per-source=0' sh "$port" "$TUNNELD" "$LOG"
	wait_for "the acceptor" ip netns exec "$TARGET_NS" nc -z 192.0.2.1 "$port"
	run timeout 600 ip netns exec "$TARGET_NS" "$PYTHON" "$PEERS/spread.py" 192.0.2.1 "$port" 192.0.2.2 \
		"$(IFS=,; echo "${ports[*]}")" 20000 64
	echo "$output" >&3
	[ "$output" = "served 20000 refused 0 unreachable 0" ]
	wait_for "every record" test "$(grep -c ' status=200 ' "$LOG")" -eq 20000
	[ "$(grep -c ' status=200 .* local=192\.0\.2\.11:5[01][0-9][0-9][0-9]$' "$LOG")" -eq 20000 ]
	! grep -q 'cannot leave from\|Cannot assign' "$LOG" || false
}
