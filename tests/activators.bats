#!/usr/bin/env bats
# The mission's "used by" shapes, each with the real activator and real clients:
# systemd-socket-activate, xinetd, ssh (through the proxy and as a transport),
# stunnel in front for TLS to the proxy. (The real systemd manager: systemd.bats.)

load helpers

@test "systemd-socket-activate: curl -p gets the target's bytes" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 --proxytunnel --proxy "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=[0-9]+ down=1[0-9]{2} "
}

@test "systemd-socket-activate: nc -X connect (HTTP/1.0, no Host)" {
	start_target sha
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'from nc' | timeout 10 nc -N -X connect -x 127.0.0.1:$PROXY_PORT 127.0.0.1 $TARGET_PORT"
	[ "$output" = "$(printf 'from nc' | sha256sum | cut -d' ' -f1) 7" ]
}

@test "systemd-socket-activate: socat PROXY" {
	start_target sha
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'from socat' | timeout 10 socat - PROXY:127.0.0.1:127.0.0.1:$TARGET_PORT,proxyport=$PROXY_PORT"
	[ "$output" = "$(printf 'from socat' | sha256sum | cut -d' ' -f1) 10" ]
}

@test "systemd-socket-activate: openssl s_client -proxy to [::1] (unbracketed IPv6 on the wire)" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	start_tls_target "$BATS_TEST_TMPDIR/pki" ::1
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -quiet -verify_return_error \
		-CAfile $BATS_TEST_TMPDIR/pki/ca.pem -proxy 127.0.0.1:$PROXY_PORT -connect [::1]:$TLS_TARGET_PORT 2>&1"
	[[ "$output" == *"HTTP/1.0 200 ok"* ]]
	[[ "$output" == *"Ciphers supported in s_server binary"* ]]
	# What openssl sent: the IPv6 address without brackets.
	wait_log "-> ::1:$TLS_TARGET_PORT status=200"
}

@test "systemd-socket-activate: python3 http.client set_tunnel" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}"
	run timeout 10 "$PYTHON" -c "
import http.client
conn = http.client.HTTPConnection('127.0.0.1', $PROXY_PORT, timeout=10)
conn.set_tunnel('127.0.0.1', $TARGET_PORT)
conn.request('GET', '/')
response = conn.getresponse()
print(response.status, response.read().decode().strip())
"
	[ "$output" = "200 hello through the tunnel" ]
}

@test "systemd's native passing: the connection as fd 3 with LISTEN_FDS=1 (no --inetd)" {
	start_target echo
	PROXY_PORT=$(free_port)
	start_bg sh -c 'exec systemd-socket-activate --listen="127.0.0.1:$0" --accept "$@" 2>>"'"$LOG"'"' \
		"$PROXY_PORT" "$TUNNELD" --log=stderr "${LOOPBACK_POLICY[@]}"
	wait_for "proxy on $PROXY_PORT" port_open "$PROXY_PORT"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nvia-fd-3"
	[[ "$output" == "HTTP/1.1 200"*"via-fd-3" ]]
	# The client is named by getpeername on fd 3.
	wait_log "tunneld: 127.0.0.1:[0-9]+ -> 127.0.0.1:$TARGET_PORT status=200 up=8 down=8"
}

@test "xinetd: the shipped entry serves a tunnel, and no log text reaches the client on fd 2" {
	start_target http
	# --log=stderr is asked for, and must still not be honoured: fd 2 is the client.
	start_xinetd --log=stderr --idle-timeout=1 "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$XINETD_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	# A tunnel ended by the idle timeout logs while the client socket is still open both ways:
	# the client must see exactly the 200 and the echo, no log line after them.
	stop_all
	start_target echo
	start_xinetd --log=stderr --idle-timeout=1 "${LOOPBACK_POLICY[@]}"
	{ printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nping' "$TARGET_PORT"; sleep 3; } |
		timeout 10 nc 127.0.0.1 "$XINETD_PORT" >"$BATS_TEST_TMPDIR/stream"
	printf 'HTTP/1.1 200 Connection established\r\n\r\nping' >"$BATS_TEST_TMPDIR/expected"
	cmp "$BATS_TEST_TMPDIR/stream" "$BATS_TEST_TMPDIR/expected"
	# The record went to syslog instead, naming the client by xinetd's REMOTE_HOST.
	wait_for "syslog record" grep -Eq "tunneld\[[0-9]+\]: 127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+ reason=idle timeout" "$SYSLOG"
	# A refusal: exactly the response, with no log line after the body.
	printf 'GET / HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$XINETD_PORT" >"$BATS_TEST_TMPDIR/refusal"
	[ "$(head -n 1 "$BATS_TEST_TMPDIR/refusal" | tr -d '\r')" = "HTTP/1.1 405 Method Not Allowed" ]
	local length
	length=$(sed -n 's/^Content-Length: \([0-9]*\)\r$/\1/p' "$BATS_TEST_TMPDIR/refusal")
	[ "$(sed '1,/^\r$/d' "$BATS_TEST_TMPDIR/refusal" | wc -c)" -eq "$length" ]
}

@test "ssh reaches a throwaway sshd through tunneld with ProxyCommand nc -X connect and socat PROXY; 5 MB intact" {
	start_sshd "$BATS_TEST_TMPDIR/ssh"
	start_proxy "${LOOPBACK_POLICY[@]}"
	make_file "$BATS_TEST_TMPDIR/payload" 5
	local via_nc="nc -X connect -x 127.0.0.1:$PROXY_PORT %h %p"
	local via_socat="socat - PROXY:127.0.0.1:%h:%p,proxyport=$PROXY_PORT"
	for proxy_command in "$via_nc" "$via_socat"; do
		run timeout 30 ssh "${SSH_OPTIONS[@]}" -o ProxyCommand="$proxy_command" -p "$SSHD_PORT" root@127.0.0.1 'echo ran-on-$(hostname)'
		[ "$status" -eq 0 ] || { echo "$proxy_command: $output" >&2; return 1; }
		[ "$output" = "ran-on-$(hostname)" ]
		run sh -c "timeout 60 ssh ${SSH_OPTIONS[*]} -o ProxyCommand='$proxy_command' -p $SSHD_PORT root@127.0.0.1 sha256sum <'$BATS_TEST_TMPDIR/payload'"
		[ "$(echo "$output" | cut -d' ' -f1)" = "$(sha_of "$BATS_TEST_TMPDIR/payload")" ]
	done
	wait_log "-> 127.0.0.1:$SSHD_PORT status=200 up=[0-9]{7,} down="
}

@test "tunneld as a transport over ssh pipes: socat EXEC:'ssh host tunneld', then curl -p through it" {
	start_sshd "$BATS_TEST_TMPDIR/ssh"
	start_target http
	local local_port
	local_port=$(free_port)
	local ssh_command
	ssh_command="ssh ${SSH_OPTIONS[*]} -p $SSHD_PORT root@127.0.0.1 $TUNNELD --log=stderr --allow-port=$TARGET_PORT --allow-dest=127.0.0.1"
	printf '#!/bin/sh\nexec %s 2>>%s\n' "$ssh_command" "$LOG" >"$BATS_TEST_TMPDIR/via-ssh"
	chmod +x "$BATS_TEST_TMPDIR/via-ssh"
	start_bg socat TCP-LISTEN:"$local_port",bind=127.0.0.1,reuseaddr,fork EXEC:"$BATS_TEST_TMPDIR/via-ssh"
	wait_for "socat on $local_port" port_open "$local_port"
	run curl -sS --max-time 20 -p -x "http://127.0.0.1:$local_port" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	# Under ssh, the client is named by $SSH_CLIENT.
	wait_log "tunneld: 127.0.0.1:[0-9]+ -> 127.0.0.1:$TARGET_PORT status=200"
}

# start_stunnel CERTDIR TUNNELD_ARGS...: stunnel terminates TLS and execs tunneld. Sets STUNNEL_PORT.
start_stunnel() {
	local pki=$1
	shift
	STUNNEL_PORT=$(free_port)
	cat >"$BATS_TEST_TMPDIR/stunnel.conf" <<CONFIG
foreground = yes
pid =
output = $BATS_TEST_TMPDIR/stunnel.log
[tunneld]
accept = 127.0.0.1:$STUNNEL_PORT
cert = $pki/server.pem
key = $pki/server.key
exec = $TUNNELD
execArgs = tunneld --log=stderr $*
CONFIG
	start_bg sh -c 'exec stunnel4 "$0" 2>>"'"$LOG"'"' "$BATS_TEST_TMPDIR/stunnel.conf"
	wait_for "stunnel on $STUNNEL_PORT" port_open "$STUNNEL_PORT"
}

@test "stunnel in front: curl --proxy https:// runs TLS inside TLS to an openssl s_server target" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	start_tls_target "$BATS_TEST_TMPDIR/pki"
	start_stunnel "$BATS_TEST_TMPDIR/pki" "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 --proxy "https://127.0.0.1:$STUNNEL_PORT" --proxy-cacert "$BATS_TEST_TMPDIR/pki/ca.pem" \
		--cacert "$BATS_TEST_TMPDIR/pki/ca.pem" "https://127.0.0.1:$TLS_TARGET_PORT/"
	[ "$status" -eq 0 ]
	[[ "$output" == *"<pre>"*"s_server"* ]]
	# stunnel's child sees a loopback socketpair; the client is named by REMOTE_HOST/REMOTE_PORT.
	wait_log "tunneld: 127.0.0.1:[0-9]+ -> 127.0.0.1:$TLS_TARGET_PORT status=200"
}

@test "TLS straight to tunneld (no terminator): the client gets a closed connection and the log says why" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	start_tls_target "$BATS_TEST_TMPDIR/pki"
	start_proxy "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 --proxy "https://127.0.0.1:$PROXY_PORT" --proxy-cacert "$BATS_TEST_TMPDIR/pki/ca.pem" \
		--cacert "$BATS_TEST_TMPDIR/pki/ca.pem" "https://127.0.0.1:$TLS_TARGET_PORT/"
	[ "$status" -ne 0 ]
	[[ "$output" != *"<pre>"* ]]
	wait_log "status=- .*reason=client spoke TLS to this plain-HTTP proxy; TLS to the proxy needs a terminator \(stunnel, HAProxy\) in front of tunneld"
}
