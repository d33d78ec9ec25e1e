#!/usr/bin/env bats
# tunneld(8) "OPTIONS" (--proxy-protocol), "Behind a load balancer": the PROXY protocol, and
# HAProxy in front for balancing and for TLS to the proxy.

load helpers

@test "PROXY v1: the header's source is the logged client, and the CONNECT after it is served" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	run raw_request "PROXY TCP4 203.0.113.7 127.0.0.1 40001 3128\r\nCONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ "$output" == "HTTP/1.1 200 Connection established"*"ping" ]]
	wait_log "tunneld: 203\.0\.113\.7:40001 -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4"
	run raw_request "PROXY TCP6 2001:db8::7 ::1 40002 3128\r\nCONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 200"* ]]
	wait_log "tunneld: \[2001:db8::7\]:40002 -> "
}

@test "PROXY v2 arriving one byte at a time, the CONNECT in the same segment as its end: nothing swallowed" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	proxy_v2 2001:db8::9 5555 >"$BATS_TEST_TMPDIR/header"
	run timeout 20 "$PYTHON" - "$PROXY_PORT" "$TARGET_PORT" "$BATS_TEST_TMPDIR/header" <<'PY'
import socket, sys, time
header = open(sys.argv[3], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for byte in header[:-1]:
    s.send(bytes([byte]))
    time.sleep(0.01)
s.send(header[-1:] + b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nafter-proxy-header" % sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    data = s.recv(4096)
    if not data:
        break
    reply += data
print(reply.decode().replace("\r\n", "|"))
PY
	[ "$output" = "HTTP/1.1 200 Connection established||after-proxy-header" ]
	wait_log "tunneld: \[2001:db8::9\]:5555 -> 127\.0\.0\.1:$TARGET_PORT status=200 up=18 down=18"
}

@test "PROXY v2 LOCAL (a health check) closes quietly: no response, no record" {
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	proxy_v2 0 0 LOCAL >"$BATS_TEST_TMPDIR/local"
	run sh -c "timeout 10 nc -N 127.0.0.1 $PROXY_PORT <'$BATS_TEST_TMPDIR/local'"
	[ -z "$output" ]
	# A record that does come afterwards shows the log is live and the LOCAL one left none.
	printf 'PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$PROXY_PORT" >/dev/null
	wait_log "tunneld: 192\.0\.2\.1:1 -> - status=405"
	[ "$(grep -c 'tunneld: .*status=' "$LOG")" -eq 1 ] # the 405 alone
}

@test "a missing, malformed or oversized PROXY header closes the connection with a log line and no response" {
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	run raw_request 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n'
	[ -z "$output" ]
	wait_log "status=- .*reason=connection does not start with a PROXY protocol header"
	run raw_request 'PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\nCONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n'
	[ -z "$output" ]
	wait_log "status=- .*reason=malformed PROXY v1 address or port"
	run raw_request 'PROXY TCP4 192.0.2.1 127.0.0.1 1 2\nCONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n'
	[ -z "$output" ]
	wait_log "status=- .*reason=PROXY v1 line does not end in CRLF"
	run sh -c "printf 'PROXY TCP4 %0200d\r\n' 0 | timeout 10 nc -N 127.0.0.1 $PROXY_PORT"
	[ -z "$output" ]
	wait_log "status=- .*reason=PROXY v1 line longer than 107 bytes"
	run sh -c "{ printf '\r\n\r\n\0\r\nQUIT\n\041\021\003\350'; head -c 1000 /dev/zero; } | timeout 10 nc -N 127.0.0.1 $PROXY_PORT"
	[ -z "$output" ]
	wait_log "status=- .*reason=PROXY v2 header larger than 536 bytes"
}

@test "a PROXY v2 header whose address block is too short for its family is refused: no CONNECT byte is read as an address" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	# TCP4 declaring 8 bytes where its addresses and ports take 12, TCP6 declaring 32 where they take 36;
	# a parser that took them would read the ports from the CONNECT that follows, and answer it.
	run sh -c "{ printf '\r\n\r\n\0\r\nQUIT\n\041\021\000\010'; printf '\300\000\002\007\177\000\000\001'; \
		printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping'; } | timeout 10 nc -N 127.0.0.1 $PROXY_PORT"
	[ -z "$output" ]
	wait_log "-> - status=- up=0 down=0 duration_ms=[0-9]+ reason=PROXY v2 TCP4 address block too short$"
	run sh -c "{ printf '\r\n\r\n\0\r\nQUIT\n\041\041\000\040'; head -c 32 /dev/zero; \
		printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping'; } | timeout 10 nc -N 127.0.0.1 $PROXY_PORT"
	[ -z "$output" ]
	wait_log "-> - status=- up=0 down=0 duration_ms=[0-9]+ reason=PROXY v2 TCP6 address block too short$"
	[ "$(grep -c ' -> ' "$LOG")" -eq 2 ]
	! grep -q "status=200\|192\.0\.2\.7" "$LOG" || false
}

@test "the PROXY header counts against the header timeout" {
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol --header-timeout=1
	run sh -c "{ printf 'PROXY TCP4 192.0.2.1'; sleep 3; } | timeout 10 nc 127.0.0.1 $PROXY_PORT"
	[ -z "$output" ]
	wait_log "status=- up=0 down=0 duration_ms=1[0-9]{3} reason=no complete PROXY header within the header timeout"
}

# start_haproxy CONFIG-BODY: haproxy in the foreground with defaults for mode tcp. Sets HAPROXY_PORT.
start_haproxy() {
	HAPROXY_PORT=$(free_port)
	cat >"$BATS_TEST_TMPDIR/haproxy.cfg" <<CONFIG
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
$(printf '%s\n' "$1" | sed "s/HAPROXY_PORT/$HAPROXY_PORT/g")
CONFIG
	haproxy -c -q -f "$BATS_TEST_TMPDIR/haproxy.cfg"
	start_bg haproxy -db -f "$BATS_TEST_TMPDIR/haproxy.cfg"
	# Ready when its own process listens: a probe connection through it would
	# reach a tunneld and leave a record of its own.
	wait_for "haproxy on $HAPROXY_PORT" listening_as "$HAPROXY_PORT" "$(tail -n 1 "$PIDS_FILE")"
}

# connections_spawned: how many connections the two activators of the balancing test have served.
connections_spawned() {
	cat "$BATS_TEST_TMPDIR/a.log" "$BATS_TEST_TMPDIR/b.log" | grep -c '^Spawned '
}

@test "HAProxy balancing two tunneld listeners with send-proxy-v2: both serve, records name the real client, health checks leave none" {
	start_target http
	LOG=$BATS_TEST_TMPDIR/a.log start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	local port_a=$PROXY_PORT
	LOG=$BATS_TEST_TMPDIR/b.log start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	local port_b=$PROXY_PORT
	start_haproxy "
frontend proxy
    bind 127.0.0.1:HAPROXY_PORT
    default_backend tunnelds
backend tunnelds
    balance roundrobin
    server a 127.0.0.1:$port_a send-proxy-v2 check check-send-proxy inter 200ms
    server b 127.0.0.1:$port_b send-proxy-v2 check check-send-proxy inter 200ms"
	# Several health checks per server first: each is a connection to a tunneld.
	wait_for "six health checks" eval '[ "$(connections_spawned)" -ge 6 ]'
	for _ in 1 2 3 4; do
		run curl -sS --max-time 10 --interface 127.0.0.2 -p -x "http://127.0.0.1:$HAPROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
		[ "$output" = "hello through the tunnel" ]
	done
	LOG=$BATS_TEST_TMPDIR/a.log wait_log "tunneld: 127\.0\.0\.2:[0-9]+ -> 127\.0\.0\.1:$TARGET_PORT status=200"
	LOG=$BATS_TEST_TMPDIR/b.log wait_log "tunneld: 127\.0\.0\.2:[0-9]+ -> 127\.0\.0\.1:$TARGET_PORT status=200"
	wait_for "four records" eval '[ "$(cat "$BATS_TEST_TMPDIR/a.log" "$BATS_TEST_TMPDIR/b.log" | grep -c "tunneld: 127\.0\.0\.2:.* status=200")" -eq 4 ]'
	# Four tunnels, each logged once, by whichever listener served it, and
	# nothing else: the health checks, at least six of the connections, left no record.
	[ "$(cat "$BATS_TEST_TMPDIR/a.log" "$BATS_TEST_TMPDIR/b.log" | grep -c 'tunneld: ')" -eq 4 ]
	[ "$(connections_spawned)" -ge 10 ]
}

@test "HAProxy terminating TLS with send-proxy-v2: curl --proxy https:// reaches a TLS target" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	cat "$BATS_TEST_TMPDIR/pki/server.pem" "$BATS_TEST_TMPDIR/pki/server.key" >"$BATS_TEST_TMPDIR/pki/haproxy.pem"
	start_tls_target "$BATS_TEST_TMPDIR/pki"
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	start_haproxy "
frontend proxy_tls
    bind 127.0.0.1:HAPROXY_PORT ssl crt $BATS_TEST_TMPDIR/pki/haproxy.pem
    default_backend tunneld
backend tunneld
    server local 127.0.0.1:$PROXY_PORT send-proxy-v2"
	run curl -sS --max-time 10 --interface 127.0.0.3 --proxy "https://127.0.0.1:$HAPROXY_PORT" \
		--proxy-cacert "$BATS_TEST_TMPDIR/pki/ca.pem" --cacert "$BATS_TEST_TMPDIR/pki/ca.pem" "https://127.0.0.1:$TLS_TARGET_PORT/"
	[ "$status" -eq 0 ]
	[[ "$output" == *"<pre>"*"s_server"* ]]
	wait_log "tunneld: 127\.0\.0\.3:[0-9]+ -> 127\.0\.0\.1:$TLS_TARGET_PORT status=200 up=[1-9]"
}
