#!/usr/bin/env bats
# tunneld(8) "OPTIONS", "Destination rules": ports, host patterns, destination
# rules and their built-in denies.

load helpers

status_of() {
	printf '%s\n' "$output" | head -n 1 | tr -d '\r'
}

@test "only port 443 is allowed by default: 403 http_request_denied for another port" {
	start_proxy --allow-dest=127.0.0.0/8
	run raw_request 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
	printf '%s\n' "$output" | grep -q '^Proxy-Status: tunneld; error=http_request_denied; details="port not allowed"'
	wait_log "-> 127.0.0.1:22 status=403 .*reason=port not allowed"
}

@test "--allow-port lists and ranges, repeated, replace the default" {
	start_target echo
	start_proxy --allow-dest=127.0.0.0/8 --allow-port=22 -p "1-2,$TARGET_PORT"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nin-range"
	[[ "$output" == "HTTP/1.1 200"*"in-range" ]]
	run raw_request 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n'
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
}

@test "loopback is denied by default: 403 destination_ip_prohibited, never connected" {
	start_target echo
	start_proxy --allow-port='*'
	for target in "127.0.0.1:$TARGET_PORT" "[::1]:$TARGET_PORT" "[::ffff:127.0.0.1]:$TARGET_PORT" "localhost:$TARGET_PORT" "0.0.0.0:$TARGET_PORT"; do
		run raw_request "CONNECT $target HTTP/1.1\r\n\r\n"
		[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ] || { echo "$target: $output" >&2; return 1; }
		printf '%s\n' "$output" | grep -q '^Proxy-Status: tunneld; error=destination_ip_prohibited'
	done
	wait_log "-> localhost:$TARGET_PORT status=403 .*every address of the target is denied"
}

@test "an explicit --allow-dest of equal or longer prefix lifts a built-in deny" {
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.1/32
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nallowed"
	[[ "$output" == "HTTP/1.1 200"*"allowed" ]]
	run raw_request "CONNECT 127.0.0.2:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
	stop_all
	# Equal length: the built-in 127.0.0.0/8 itself, allowed explicitly.
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.0/8
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nequal"
	[[ "$output" == "HTTP/1.1 200"*"equal" ]]
}

@test "a shorter --allow-dest does not lift a longer built-in deny" {
	start_target echo
	start_proxy --allow-port='*' --allow-dest=0.0.0.0/0
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
}

@test "the longest prefix decides, and deny beats allow at equal length" {
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.0/8 --deny-dest=127.0.0.0/24 --allow-dest=127.0.0.1/32
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nmost-specific"
	[[ "$output" == "HTTP/1.1 200"*"most-specific" ]]
	run raw_request "CONNECT 127.0.0.2:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
	stop_all
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.1/32 --deny-dest=127.0.0.1/32
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
}

@test "default-deny: --deny-dest 0.0.0.0/0 and ::/0 plus allows" {
	start_target echo
	start_proxy --allow-port='*' --deny-dest=0.0.0.0/0 --deny-dest=::/0 --allow-dest=127.0.0.1/32
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nonly-this"
	[[ "$output" == "HTTP/1.1 200"*"only-this" ]]
	run raw_request "CONNECT 192.0.2.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
}

@test "IPv4-mapped IPv6 addresses are judged as their IPv4 address" {
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.1/32
	run raw_request "CONNECT [::ffff:127.0.0.1]:$TARGET_PORT HTTP/1.1\r\n\r\nmapped"
	[[ "$output" == "HTTP/1.1 200"*"mapped" ]]
}

@test "a name resolving only to denied addresses is refused; the address connected is the address checked" {
	start_target echo --host ::1
	# dual.test is 127.0.0.1 and ::1: only ::1 is allowed, and only ::1 listens.
	HOSTS_FILE=$BATS_TEST_TMPDIR/hosts
	printf '127.0.0.1 dual.test\n::1 dual.test\n' >"$HOSTS_FILE"
	start_proxy --allow-port='*' --allow-dest=::1/128
	run raw_request "CONNECT dual.test:$TARGET_PORT HTTP/1.1\r\n\r\nvia-v6"
	[[ "$output" == "HTTP/1.1 200"*"via-v6" ]]
	# With only 127.0.0.1 allowed, nothing is connected: 127.0.0.1 does not listen there.
	stop_all
	start_target echo --host ::1
	start_proxy --allow-port='*' --allow-dest=127.0.0.1/32
	run raw_request "CONNECT dual.test:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 502 Bad Gateway"* ]]
	wait_log "dual.test:$TARGET_PORT status=502 .*reason=connection refused"
}

@test "--allow-host: exact names and *.domain, case-insensitive; others 403" {
	start_target echo
	no_name_resolves
	start_proxy --allow-port='*' --allow-dest=127.0.0.0/8 --allow-host=LOCALHOST --allow-host='*.example.com'
	run raw_request "CONNECT localhost:$TARGET_PORT HTTP/1.1\r\n\r\nnamed"
	[[ "$output" == "HTTP/1.1 200"*"named" ]]
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
	printf '%s\n' "$output" | grep -q 'error=http_request_denied; details="host not allowed"'
	# *.example.com matches below example.com (refused later by DNS, not by policy), not example.com itself.
	run raw_request 'CONNECT a.b.Example.COM:443 HTTP/1.1\r\n\r\n'
	[ "$(status_of)" = "HTTP/1.1 502 Bad Gateway" ]
	grep -qx 'query a.b.Example.COM 1' "$DNS_LOG"
	run raw_request 'CONNECT example.com:443 HTTP/1.1\r\n\r\n'
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
	! grep -q 'query example.com ' "$DNS_LOG" || false
}

@test "--allow-host: an IP literal host matches only an equal IP-literal pattern" {
	start_target echo
	start_proxy --allow-port='*' --allow-dest=127.0.0.0/8 --allow-dest=::1 --allow-host=127.0.0.1 --allow-host=0:0::1
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nv4"
	[[ "$output" == "HTTP/1.1 200"*"v4" ]]
	run raw_request "CONNECT ::1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 502 Bad Gateway" ]
	run raw_request "CONNECT 127.0.0.2:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$(status_of)" = "HTTP/1.1 403 Forbidden" ]
}

# verdicts ARGS... < TABLE: for each "address" line, tunneld (with ARGS) in a
# network namespace of its own with no interface up, so that nothing can
# leave it: "denied" when the destination rules refuse the address (403),
# "tried" when tunneld went on to connect (502, unreachable). Prints
# "address verdict" lines.
verdicts() {
	local address status
	while read -r address _; do
		status=$(printf 'CONNECT [%s]:443 HTTP/1.1\r\n\r\n' "$address" | sed 's/\[\([0-9.]*\)\]/\1/' |
			unshare --net timeout 10 "$TUNNELD" --log=none "$@" | head -n 1 | tr -d '\r')
		case "$status" in
		"HTTP/1.1 403 Forbidden") echo "$address denied" ;;
		"HTTP/1.1 502 Bad Gateway") echo "$address tried" ;;
		*) echo "$address unexpected: $status" ;;
		esac
	done
}

# Address, its verdict under the default rules, and under --deny-dest=10.0.0.0/8.
EMBEDDED_IPV4_TABLE='
127.0.0.1                          denied denied
::1                                denied denied
169.254.169.254                    denied denied
fe80::1                            denied denied
::ffff:127.0.0.1                   denied denied
::127.0.0.1                        denied denied
::ffff:0:127.0.0.1                 denied denied
64:ff9b::127.0.0.1                 denied denied
64:ff9b::169.254.169.254           denied denied
64:ff9b:1::127.0.0.1               denied denied
64:ff9b:1:ab:cd:ef:a9fe:a9fe       denied denied
2002:7f00:1::1                     denied denied
2002:a9fe:a9fe::1                  denied denied
2001:0:4136:e378:8000:63bf:80ff:fffe denied denied
10.0.0.5                           tried  denied
::ffff:10.0.0.5                    tried  denied
::10.0.0.5                         tried  denied
::ffff:0:10.0.0.5                  tried  denied
64:ff9b::10.0.0.5                  tried  denied
64:ff9b:1::10.0.0.5                tried  denied
2002:a00:5::1                      tried  denied
2001:0:4136:e378:8000:63bf:f5ff:fffa tried denied
192.0.2.1                          tried  tried
64:ff9b::192.0.2.1                 tried  tried
2002:c000:201::1                   tried  tried
2001:db8::1                        tried  tried
'

@test "an IPv6 address that carries IPv4 (mapped, compatible, SIIT, NAT64, 6to4, Teredo) is judged in both forms" {
	local table
	table=$(printf '%s\n' "$EMBEDDED_IPV4_TABLE" | sed '/^$/d')
	run verdicts <<<"$table"
	diff -u <(awk '{ print $1, $2 }' <<<"$table") <(printf '%s\n' "$output")
	run verdicts --deny-dest=10.0.0.0/8 <<<"$table"
	diff -u <(awk '{ print $1, $3 }' <<<"$table") <(printf '%s\n' "$output")
}

# Each built-in deny at its first and last address, and just outside it, under the default rules.
BUILTIN_EDGES_TABLE='
0.0.0.0                            denied
0.255.255.255                      denied
1.0.0.0                            tried
126.255.255.255                    tried
127.0.0.0                          denied
127.255.255.255                    denied
128.0.0.0                          tried
169.253.255.255                    tried
169.254.0.0                        denied
169.254.255.255                    denied
169.255.0.0                        tried
223.255.255.255                    tried
224.0.0.0                          denied
239.255.255.255                    denied
240.0.0.0                          tried
255.255.255.254                    tried
255.255.255.255                    denied
::                                 denied
::1                                denied
fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff tried
fe80::                             denied
fe80::1                            denied
fe80:0:0:1::1                      denied
febf::1                            denied
febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff denied
fec0::                             tried
feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff tried
ff00::                             denied
ff02::1                            denied
ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff denied
'

@test "each built-in deny holds to its last address and no further: fe80::/10 is all of link-local, not fe80::/64" {
	local table
	table=$(printf '%s\n' "$BUILTIN_EDGES_TABLE" | sed '/^$/d')
	run verdicts <<<"$table"
	diff -u <(awk '{ print $1, $2 }' <<<"$table") <(printf '%s\n' "$output")
}

@test "--nat64-prefix: a site's own NAT64 prefix, at its RFC 6052 length, carries IPv4 too" {
	# The second address carries 10.0.0.5 at a /48 prefix's place, and 192.0.2.1 in its last 32 bits.
	local table='2001:db8:64::10.0.0.5
64:ff9b:1:a00:0:500:c000:201'
	run verdicts --deny-dest=10.0.0.0/8 <<<"$table"
	[ "$output" = "$(printf '%s tried\n%s tried' $table)" ]
	run verdicts --deny-dest=10.0.0.0/8 --nat64-prefix=2001:db8:64::/96 --nat64-prefix=64:ff9b:1::/48 <<<"$table"
	[ "$output" = "$(printf '%s denied\n%s denied' $table)" ]
	run --separate-stderr "$TUNNELD" --log=stderr --nat64-prefix=2001:db8:64::/80 </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: bad --nat64-prefix '2001:db8:64::/80': NAT64 prefix length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)" ]
}
