#!/usr/bin/env bats
# tunneld(8) "The request", "Responses": what tunneld accepts, and how it answers what it refuses.

load helpers

# assert_refusal STATUS REASON TOKEN: $output is a complete refusal (tunneld(8) "Responses").
assert_refusal() {
	local head body length
	head=$(printf '%s\n' "$output" | head_of)
	body=$(printf '%s\n' "$output" | sed '1,/^\r\?$/d')
	[[ "$head" == "HTTP/1.1 $1 $2"* ]] || { echo "status line: $head" >&2; return 1; }
	grep -qx 'Content-Type: text/plain' <<<"$head"
	grep -qx 'Connection: close' <<<"$head"
	grep -q "^Proxy-Status: tunneld; error=$3" <<<"$head"
	length=$(sed -n 's/^Content-Length: //p' <<<"$head")
	# The body is one line and Content-Length counts it exactly (with its newline).
	[ "$length" -eq $((${#body} + 1)) ]
	[[ "$body" == "tunneld: "* ]]
}

@test "curl through the proxy reaches an HTTP target (200, then the target's bytes)" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$status" -eq 0 ]
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=[1-9][0-9]* down=[1-9][0-9]*"
}

@test "the 200 response is a bare status line: no Content-Length, no Transfer-Encoding" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\nHost: x\r\n\r\n" >"$BATS_TEST_TMPDIR/reply"
	printf 'HTTP/1.1 200 Connection established\r\n\r\n' >"$BATS_TEST_TMPDIR/expected"
	cmp "$BATS_TEST_TMPDIR/reply" "$BATS_TEST_TMPDIR/expected"
}

@test "early data after the head reaches the target, in order, in the same packet" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nEARLY-BYTES-1\nmore\n"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | tr -d '\r')" = "$(printf 'HTTP/1.1 200 Connection established\n\nEARLY-BYTES-1\nmore')" ]
	wait_log "status=200 up=19 down=19"
}

@test "bare LF line endings are accepted" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.0\nX-A: b\n\nping"
	[[ "$output" == "HTTP/1.1 200 Connection established"*"ping" ]]
}

@test "a Host that differs from the authority is not an error (the SNI/Host trap)" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\nHost: other.example:8443\r\n\r\nok"
	[[ "$output" == "HTTP/1.1 200"*"ok" ]]
}

@test "any HTTP/1 minor version is accepted" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.7\r\n\r\nok"
	[[ "$output" == "HTTP/1.1 200"*"ok" ]]
}

@test "405 with Allow: CONNECT for any other method, lower-case connect included" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	for method in GET connect POST; do
		run raw_request "$method 127.0.0.1:443 HTTP/1.1\r\n\r\n"
		assert_refusal 405 "Method Not Allowed" http_request_error
		printf '%s\n' "$output" | head_of | grep -qx 'Allow: CONNECT'
	done
	wait_log "status=405 .*reason=method is not CONNECT"
}

@test "400 for malformed request lines and authorities" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	local bad=(
		'CONNECT 127.0.0.1:443\r\n\r\n'
		'CONNECT  127.0.0.1:443 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:443  HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:65536 HTTP/1.1\r\n\r\n'
		'CONNECT 256.1.1.1:443 HTTP/1.1\r\n\r\n'
		'CONNECT 127.1:443 HTTP/1.1\r\n\r\n'
		'CONNECT 0x7f000001:443 HTTP/1.1\r\n\r\n'
		'CONNECT 0177.0.0.1:443 HTTP/1.1\r\n\r\n'
		'CONNECT 0x7f.1:443 HTTP/1.1\r\n\r\n'
		'CONNECT user@host.example:443 HTTP/1.1\r\n\r\n'
		'CONNECT host.example:443/path HTTP/1.1\r\n\r\n'
		'CONNECT host%%41.example:443 HTTP/1.1\r\n\r\n'
		'CONNECT [fe80::1%%eth0]:443 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]443 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]: HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:44:3 HTTP/1.1\r\n\r\n'
		'CONNECT [2001:db8::1]:44:3 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:4x3 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:+443 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:0 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:65536 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]:0000000000443000 HTTP/1.1\r\n\r\n'
		'CONNECT [::1] HTTP/1.1\r\n\r\n'
		'CONNECT [::1:443 HTTP/1.1\r\n\r\n'
		'CONNECT [::1]]:443 HTTP/1.1\r\n\r\n'
		'CONNECT [127.0.0.1]:443 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:44:3 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:4x3 HTTP/1.1\r\n\r\n'
		'CONNECT a..b:443 HTTP/1.1\r\n\r\n'
		'CONNECT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example:443 HTTP/1.1\r\n\r\n'
		'CONNECT 127.0.0.1:443 HTTP/1\r\n\r\n'
		'CONNECT 127.0.0.1:443 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n'
		'CONNECT 127.0.0.1:443 HTTP/1.1\r\nBad Name: a\r\n\r\n'
		'CONNECT 127.0.0.1:443 HTTP/1.1\r\nNoColon\r\n\r\n'
		'CONNECT 127.0.0.1:443 HTTP/1.1\r\nX: a\rb\r\n\r\n'
	)
	for request in "${bad[@]}"; do
		run raw_request "$request"
		assert_refusal 400 "Bad Request" http_request_error || { echo "request: $request" >&2; return 1; }
	done
	# A folded field is refused as one, whether it folds with a space or a tab.
	[ "$(grep -c 'status=400 .*reason=obsolete line folding in header field$' "$LOG")" -eq 1 ]
	run raw_request 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n'
	assert_refusal 400 "Bad Request" http_request_error
	wait_for "two folds refused" eval '[ "$(grep -c "status=400 .*reason=obsolete line folding in header field$" "$LOG")" -eq 2 ]'
}

@test "505 for an HTTP major version other than 1" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request 'CONNECT 127.0.0.1:443 HTTP/2.0\r\n\r\n'
	assert_refusal 505 "HTTP Version Not Supported" http_request_error
	run raw_request 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
	assert_refusal 505 "HTTP Version Not Supported" http_request_error
}

@test "431 for a head over 8192 bytes, and for more than 100 fields" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	local filler
	filler=$(head -c 9000 /dev/zero | tr '\0' a)
	run raw_request "CONNECT 127.0.0.1:443 HTTP/1.1\r\nX-Filler: $filler\r\n\r\n"
	assert_refusal 431 "Request Header Fields Too Large" http_request_error
	local fields
	fields=$(for i in $(seq 101); do printf 'X-%d: v\\r\\n' "$i"; done)
	run raw_request "CONNECT 127.0.0.1:443 HTTP/1.1\r\n${fields}\r\n"
	assert_refusal 431 "Request Header Fields Too Large" http_request_error
	fields=$(for i in $(seq 100); do printf 'X-%d: v\\r\\n' "$i"; done)
	run raw_request "CONNECT 127.0.0.1:1 HTTP/1.1\r\n${fields}\r\n"
	assert_refusal 502 "Bad Gateway" connection_refused
	wait_log "status=431 .*reason=more than 100 header fields"
}

@test "408 when the head does not complete within the header timeout" {
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=1
	run sh -c "{ printf 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n'; sleep 4; } | timeout 10 nc 127.0.0.1 $PROXY_PORT"
	assert_refusal 408 "Request Timeout" http_request_error
	# 1 s of header timeout, then at most LINGER_AFTER_ERROR_MS (1 s) of draining.
	wait_log "status=408 up=0 down=0 duration_ms=[12][0-9]{3} reason=request head not complete within the header timeout"
}

@test "a client that speaks TLS to the plain proxy is closed without a response, and the log says why" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "timeout 10 openssl s_client -connect 127.0.0.1:$PROXY_PORT -servername example.com </dev/null 2>/dev/null"
	[[ "$output" != *HTTP/* ]]
	wait_log "status=- .*client spoke TLS to this plain-HTTP proxy; TLS to the proxy needs a terminator \(stunnel, HAProxy\)"
}

@test "502 with Proxy-Status dns_error and rcode for a name that does not resolve" {
	no_name_resolves
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request 'CONNECT no-such-host.invalid:443 HTTP/1.1\r\n\r\n'
	assert_refusal 502 "Bad Gateway" dns_error
	printf '%s\n' "$output" | grep -q '^Proxy-Status: tunneld; error=dns_error; rcode="NXDOMAIN"'
	wait_log "no-such-host.invalid:443 status=502 .*reason=host name does not resolve"
	grep -qx 'answered no-such-host.invalid 1' "$DNS_LOG"
}

@test "502 connection_refused when nothing listens on the target port" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	local port
	port=$(free_port)
	run raw_request "CONNECT 127.0.0.1:$port HTTP/1.1\r\n\r\n"
	assert_refusal 502 "Bad Gateway" connection_refused
}

@test "bytes sent after a refused head are never parsed or relayed (no smuggling)" {
	start_target echo
	start_proxy --allow-port=443 --allow-dest=127.0.0.0/8
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nCONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nSMUGGLED"
	assert_refusal 403 "Forbidden" http_request_denied
	[[ "$output" != *SMUGGLED* ]]
	[ "$(printf '%s\n' "$output" | grep -c '^HTTP/')" -eq 1 ]
}

@test "openssl s_client's unbracketed IPv6 authority reaches [::1]" {
	start_target echo --host ::1
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT ::1:$TARGET_PORT HTTP/1.0\r\n\r\nv6"
	[[ "$output" == "HTTP/1.1 200"*"v6" ]]
	run raw_request "CONNECT [::1]:$TARGET_PORT HTTP/1.0\r\n\r\nv6b"
	[[ "$output" == "HTTP/1.1 200"*"v6b" ]]
	wait_log "-> ::1:$TARGET_PORT status=200 up=2 down=2"
	wait_log "-> \[::1\]:$TARGET_PORT status=200 up=3 down=3"
}

@test "a trailing dot (FQDN) and leading zeros in the port are accepted" {
	start_target echo
	no_name_resolves
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:000$TARGET_PORT HTTP/1.1\r\n\r\nzeros"
	[[ "$output" == "HTTP/1.1 200"*"zeros" ]]
	# Not a 400: the name was accepted and went to the resolver.
	run raw_request "CONNECT no-such-host.invalid.:443 HTTP/1.1\r\n\r\n"
	assert_refusal 502 "Bad Gateway" dns_error
	grep -qx 'query no-such-host.invalid 1' "$DNS_LOG"
}

@test "504 connection_timeout when the target drops SYNs, after the connect timeout" {
	start_target blackhole
	start_proxy "${LOOPBACK_POLICY[@]}" --connect-timeout=1
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	assert_refusal 504 "Gateway Timeout" connection_timeout
	wait_log "status=504 up=0 down=0 duration_ms=(1[0-9]{3}|2[0-9]{3}) reason=connection to the target timed out"
}

# in_empty_netns COMMAND...: COMMAND in a network namespace of its own with only
# loopback up: nothing it sends can leave the machine.
in_empty_netns() {
	unshare --net --mount sh -c 'ip link set lo up && exec "$@"' _ "$@"
}

@test "502 destination_ip_unroutable when there is no route (an empty network namespace, over pipes)" {
	run --separate-stderr in_empty_netns sh -c "printf 'CONNECT 192.0.2.1:443 HTTP/1.1\r\n\r\n' | timeout 10 '$TUNNELD' --log=stderr --allow-dest=192.0.2.0/24"
	assert_refusal 502 "Bad Gateway" destination_ip_unroutable
	[[ "$stderr" == *"-> 192.0.2.1:443 status=502 up=0 down=0 duration_ms="*"reason=target unreachable"* ]]
}

@test "504 dns_timeout when the resolver does not answer within the connect timeout" {
	# The resolver's own timeout well past the connect timeout, and no longer: under valgrind
	# the process cannot end until its resolver thread's wait does (valgrind interrupts a
	# thread with tkill(), which the sandbox refuses), and 30 s cost each run 30 s.
	printf 'nameserver 127.0.0.1\noptions timeout:4 attempts:1\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	# A resolver that reads queries and never answers, in the namespace's own loopback.
	# tunneld starts once it is bound: before, a query meets a closed port and gets 502 dns_error.
	run --separate-stderr in_empty_netns sh -c "
		mount --bind '$BATS_TEST_TMPDIR/resolv.conf' /etc/resolv.conf
		$PYTHON -c 'import socket,sys,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((\"127.0.0.1\",53)); open(sys.argv[1],\"w\").close(); time.sleep(30)' '$BATS_TEST_TMPDIR/bound' &
		for _ in \$(seq 100); do [ -e '$BATS_TEST_TMPDIR/bound' ] && break; sleep 0.1; done
		printf 'CONNECT silent.example:443 HTTP/1.1\r\n\r\n' | timeout 10 '$TUNNELD' --log=stderr --connect-timeout=1
		kill \$!"
	assert_refusal 504 "Gateway Timeout" dns_timeout
	[[ "$stderr" == *"-> silent.example:443 status=504 up=0 down=0 duration_ms="*"reason=name resolution timed out"* ]]
}
