#!/usr/bin/env bats
# tunneld(8) "SOCKS5": the same port serves SOCKS5 (RFC 1928, RFC 1929 logins)
# when the first byte is 0x05. Real clients (curl, OpenBSD nc, ssh, ncat,
# PySocks, Chromium), every reply code, and hostile clients. (Under the real
# systemd manager: systemd.bats.)

load helpers

setup() {
	setup_common
	AUTH_FILE=$BATS_TEST_TMPDIR/users
	htpasswd -B -C 5 -b -c "$AUTH_FILE" alice 'wonder land' 2>/dev/null
}

# hex_of: stdin as lower-case hex, one line.
hex_of() {
	od -An -v -tx1 | tr -d ' \n'
}

# socks_name NAME PORT: ATYP 3 and the rest of a request's address, in hex.
socks_name() {
	printf '03%02x%s%04x' "${#1}" "$(printf '%s' "$1" | hex_of)" "$2"
}

# socks_ipv4 PORT: ATYP 1, 127.0.0.1, PORT, in hex.
socks_ipv4() {
	printf '017f000001%04x' "$1"
}

GREETING=050100                  # one method: no authentication
CONNECT=050100                   # VER CMD=CONNECT RSV; the address follows
REFUSED_WITH() { printf '05%s0001000000000000' "$1"; } # a failure reply: 0.0.0.0:0

# closed_at_header_timeout FILE: socks5.py --hold saw the close at the 1 s
# header timeout, which tunneld counts from its start: not before, and not
# much after, start-up included (valgrind's start-up takes seconds).
closed_at_header_timeout() {
	local most=2999
	if [[ "$TUNNELD" == *valgrind* ]]; then most=5999; fi
	[[ "$(cat "$1")" =~ ^closed\ after\ ([0-9]+)\ ms$ ]]
	[ "${BASH_REMATCH[1]}" -ge 1000 ] && [ "${BASH_REMATCH[1]}" -le "$most" ]
}

@test "curl --socks5 and --socks5-hostname: IPv4, IPv6 literal and name targets, each with its record" {
	start_target http
	start_target http --host ::1
	local v6_port=$TARGET_PORT
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}"
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=[0-9]+ down=1[0-9]{2} duration_ms=[0-9]+ protocol=socks5 reply=0x00$"
	run curl -sS --max-time 10 --socks5-hostname "127.0.0.1:$PROXY_PORT" "http://[::1]:$v6_port/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> \[::1\]:$v6_port status=200 .* protocol=socks5 reply=0x00$"
	# socks5h: the name travels, and tunneld resolves it.
	run curl -sS --max-time 10 -x "socks5h://127.0.0.1:$PROXY_PORT" "http://localhost:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> localhost:$TARGET_PORT status=200 .* protocol=socks5 reply=0x00$"
	# HTTP CONNECT on the same port is untouched: no protocol= in its record.
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=[0-9]+ down=1[0-9]{2} duration_ms=[0-9]+$"
}

@test "curl -U against --auth-file: only username/password is offered; right, wrong, unknown and missing logins" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run curl -sS --max-time 10 -U 'alice:wonder land' --socks5-hostname "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 .* protocol=socks5 reply=0x00 user=alice$"
	run curl -sS --max-time 10 -U 'alice:not-the-password' --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$status" -eq 97 ] # CURLE_PROXY: the proxy refused the login
	wait_log "-> - status=407 .* protocol=socks5 user=alice reason=wrong password$"
	run curl -sS --max-time 10 -U 'mallory:guessed-secret' --socks5 "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
	[ "$status" -eq 97 ]
	wait_log "-> - status=407 .* protocol=socks5 reason=unknown user$"
	! grep -q 'not-the-password\|guessed-secret\|mallory' "$LOG" || false
	# A client that offers only "no authentication" gets 0xFF, "no acceptable methods".
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 05ff ]
	wait_log "-> - status=407 .* protocol=socks5 reason=no proxy credentials: SOCKS5 client does not offer username/password$"
	# The login is RFC 1929's: version 1, and a failure is answered 0x01 before the close.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 050102 0105616c69636503626164 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 05020101 ]
	# A NUL in the user or the password is refused as such: "ali\0ce" is not taken for ali.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 050102 0106616c690063650b776f6e646572206c616e64 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 05020101 ]
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 050102 0105616c6963650c776f6e64657200206c616e64 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 05020101 ]
	wait_for "two NUL refusals" eval '[ "$(grep -c -- "-> - status=407 .* protocol=socks5 reason=SOCKS5 login holds a NUL byte$" "$LOG")" -eq 2 ]'
}

@test "every reply code and the case that produces it, over pipes in a network namespace of its own" {
	# In the namespace: loopback only, 198.51.100.0/24 explicitly unreachable, a resolver that is not there.
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	printf 'deny to 127.0.0.1\n' >"$BATS_TEST_TMPDIR/deny.rules"
	printf 'allow to allowed.example\n' >"$BATS_TEST_TMPDIR/none.rules"
	printf 'alow to x\n' >"$BATS_TEST_TMPDIR/broken.rules"
	cat >"$BATS_TEST_TMPDIR/cases" <<CASES
0x02 403 denied by a rule|--rules=$BATS_TEST_TMPDIR/deny.rules|$CONNECT$(socks_ipv4 443)
0x02 403 no rule matches|--rules=$BATS_TEST_TMPDIR/none.rules|$CONNECT$(socks_name other.example 443)
0x01 500 $BATS_TEST_TMPDIR/broken.rules:1:1: expected allow, deny, via or group, found 'alow'|--rules=$BATS_TEST_TMPDIR/broken.rules|$CONNECT$(socks_ipv4 443)
0x02 403 port not allowed|--allow-dest=127.0.0.0/8|$CONNECT$(socks_ipv4 80)
0x02 403 host not allowed|--allow-host=*.allowed.example|$CONNECT$(socks_name other.example 443)
0x02 403 every address of the target is denied by the destination rules||$CONNECT$(socks_ipv4 443)
0x02 403 every address of the target is denied by the destination rules||${CONNECT}0400000000000000000000ffff7f00000101bb
0x03 502 target unreachable|--allow-dest=192.0.2.0/24|${CONNECT}01c000020101bb
0x04 502 target host unreachable|--allow-dest=198.51.100.0/24|${CONNECT}01c633640101bb
0x04 502 temporary failure in name resolution||$CONNECT$(socks_name no-such-host.example 443)
0x05 502 connection refused by the target|--allow-port=* --allow-dest=127.0.0.0/8|$CONNECT$(socks_ipv4 1)
0x07 405 SOCKS5 BIND is not supported||050200$(socks_ipv4 443)
0x07 405 SOCKS5 UDP ASSOCIATE is not supported||050300$(socks_ipv4 443)
0x07 405 unknown SOCKS5 command||050900$(socks_ipv4 443)
0x08 400 SOCKS5 address type not supported||0501000200000000
0x01 400 malformed SOCKS5 request||050101$(socks_ipv4 443)
0x01 400 malformed SOCKS5 request||040100$(socks_ipv4 443)
0x01 400 SOCKS5 request with an empty host name||${CONNECT}030001bb
0x01 400 host name longer than 253 octets||$CONNECT$(socks_name "$(printf 'a%.0s' $(seq 255))" 443)
0x01 400 SOCKS5 host name holds a NUL byte||${CONNECT}030a676f6f642e746573740001bb
0x01 400 invalid character in host||$CONNECT$(socks_name 'bad name.example' 443)
0x01 400 port out of range||$CONNECT$(socks_name example.com 0)
CASES
	run in_empty_netns bash -c '
		ip route add unreachable 198.51.100.0/24
		mount --bind "$1" /etc/resolv.conf
		while IFS="|" read -r expected options request; do
			reply=$(printf "$(sed "s/../\\\\x&/g" <<<"$GREETING$request")" |
				timeout 10 "$TUNNELD" --log=stderr $options 2>"$LOG.case" | od -An -v -tx1 | tr -d " \n")
			echo "case $expected: reply $reply; $(grep -e " -> " "$LOG.case")"
		done <"$2"' _ "$BATS_TEST_TMPDIR/resolv.conf" "$BATS_TEST_TMPDIR/cases"
	echo "$output"
	local n=0
	while IFS='|' read -r expected _ _; do
		n=$((n + 1))
		local code=${expected%% *} rest=${expected#* }
		local status=${rest%% *} why=${rest#* }
		local line
		line=$(sed -n "${n}p" <<<"$output")
		# A rule's refusal names the rule's line between the reply and the reason.
		local rule=""
		[ "$why" != "denied by a rule" ] || rule="rule=1 "
		[[ "$line" == "case $expected: reply 0500$(REFUSED_WITH "${code#0x}"); tunneld: - -> "*" status=$status "*" protocol=socks5 reply=$code ${rule}reason=$why" ]] ||
			{ echo "case $n does not match: $line" >&2; return 1; }
	done <"$BATS_TEST_TMPDIR/cases"
	[ "$n" -eq 22 ]
}

# in_empty_netns COMMAND...: COMMAND in a network namespace of its own, only loopback up.
in_empty_netns() {
	TUNNELD=$TUNNELD LOG=$LOG GREETING=$GREETING unshare --net --mount sh -c 'ip link set lo up && exec "$@"' _ "$@"
}

@test "0x04 for a connect timeout (the target drops SYNs), after --connect-timeout" {
	start_target blackhole
	start_proxy "${LOOPBACK_POLICY[@]}" --connect-timeout=1
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING$CONNECT$(socks_ipv4 "$TARGET_PORT") 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "0500$(REFUSED_WITH 04)" ]
	wait_log "status=504 up=0 down=0 duration_ms=(1[0-9]{3}|2[0-9]{3}) protocol=socks5 reply=0x04 reason=connection to the target timed out"
}

@test "the success reply names the outbound socket's address and port; early data goes to the target first" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	"$PYTHON" "$PEERS/socks5.py" "$PROXY_PORT" "$GREETING$CONNECT$(socks_ipv4 "$TARGET_PORT")6561726c79" \
		>"$BATS_TEST_TMPDIR/out" 2>/dev/null
	[ "$(head -c 10 "$BATS_TEST_TMPDIR/out" | hex_of)" = 050005000001"7f000001" ]
	[ "$(tail -c +13 "$BATS_TEST_TMPDIR/out")" = early ]
	# BND.PORT is the tunnel's own source port: the target saw a connection from it.
	local bound_port
	bound_port=$((16#$(head -c 12 "$BATS_TEST_TMPDIR/out" | tail -c 2 | hex_of)))
	[ "$bound_port" -gt 0 ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=5 down=5 .* protocol=socks5 reply=0x00$"
}

@test "OpenBSD nc -X 5, and ssh with ProxyCommand nc -X 5 moving 5 MB to a throwaway sshd, sha256 equal" {
	start_target sha
	start_sshd "$BATS_TEST_TMPDIR/ssh"
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'from nc' | timeout 10 nc -N -X 5 -x 127.0.0.1:$PROXY_PORT 127.0.0.1 $TARGET_PORT"
	[ "$output" = "$(printf 'from nc' | sha256sum | cut -d' ' -f1) 7" ]
	make_file "$BATS_TEST_TMPDIR/payload" 5
	local proxy_command="nc -X 5 -x 127.0.0.1:$PROXY_PORT %h %p"
	run timeout 30 ssh "${SSH_OPTIONS[@]}" -o ProxyCommand="$proxy_command" -p "$SSHD_PORT" root@127.0.0.1 'echo ran-on-$(hostname)'
	[ "$output" = "ran-on-$(hostname)" ]
	run sh -c "timeout 60 ssh ${SSH_OPTIONS[*]} -o ProxyCommand='$proxy_command' -p $SSHD_PORT root@127.0.0.1 sha256sum <'$BATS_TEST_TMPDIR/payload'"
	[ "$(echo "$output" | cut -d' ' -f1)" = "$(sha_of "$BATS_TEST_TMPDIR/payload")" ]
	wait_log "-> 127.0.0.1:$SSHD_PORT status=200 up=[0-9]{7,} down=[0-9]+ duration_ms=[0-9]+ protocol=socks5 reply=0x00$"
}

@test "ncat --proxy-type socks5 --proxy-auth against --auth-file" {
	start_target sha
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run sh -c "printf 'from ncat' | timeout 10 ncat --proxy 127.0.0.1:$PROXY_PORT --proxy-type socks5 \
		--proxy-auth 'alice:wonder land' 127.0.0.1 $TARGET_PORT"
	[ "$output" = "$(printf 'from ncat' | sha256sum | cut -d' ' -f1) 9" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=9 down=[0-9]+ .* protocol=socks5 reply=0x00 user=alice$"
}

@test "python3 PySocks: an HTTPS request through tunneld, the certificate verified end to end" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	start_tls_target "$BATS_TEST_TMPDIR/pki"
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run timeout 20 "$PYTHON" - "$PROXY_PORT" "$TLS_TARGET_PORT" "$BATS_TEST_TMPDIR/pki/ca.pem" <<'PY'
import ssl, sys
import socks
proxy_port, target_port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=True, username="alice", password="wonder land")
s.settimeout(10)
s.connect(("localhost", target_port))
context = ssl.create_default_context(cafile=ca)
with context.wrap_socket(s, server_hostname="localhost") as tls:
    version = tls.version()
    tls.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    answer = b""
    while chunk := tls.recv(65536):
        answer += chunk
print(answer.split(b"\r\n")[0].decode(), version)
PY
	[[ "$output" == "HTTP/1.0 200 ok TLSv1."[23] ]]
	wait_log "-> localhost:$TLS_TARGET_PORT status=200 .* protocol=socks5 reply=0x00 user=alice$"
}

# chromium_dump PROXY URL SPKI: headless Chromium's DOM of URL through PROXY,
# trusting exactly the target's key. Its own profile; no sandbox, as tests
# run as root; nothing of its own (updates, sync) sent anywhere.
chromium_dump() {
	timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-sync \
		--disable-background-networking --disable-component-update --disable-default-apps \
		--user-data-dir="$(mktemp -d "$BATS_TEST_TMPDIR/profile.XXXXXX")" \
		--proxy-server="$1" --proxy-bypass-list='<-loopback>' --ignore-certificate-errors-spki-list="$3" \
		--dump-dom "$2" 2>>"$BATS_TEST_TMPDIR/chromium.log"
}

@test "headless Chromium loads an HTTPS page through tunneld, as an HTTP proxy and as a SOCKS5 proxy" {
	make_certs "$BATS_TEST_TMPDIR/pki"
	local site=$BATS_TEST_TMPDIR/site
	mkdir -p "$site"
	printf '<html><body><p id="said">hello, browser, through tunneld</p></body></html>\n' >"$site/page.html"
	TLS_TARGET_PORT=$(free_port)
	start_bg sh -c "cd '$site' && exec openssl s_server -quiet -WWW -accept 127.0.0.1:$TLS_TARGET_PORT \
		-cert '$BATS_TEST_TMPDIR/pki/server.pem' -key '$BATS_TEST_TMPDIR/pki/server.key'"
	wait_for "TLS site" port_open "$TLS_TARGET_PORT"
	local spki
	spki=$(openssl x509 -in "$BATS_TEST_TMPDIR/pki/server.pem" -pubkey -noout |
		openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
	start_proxy --allow-port="$TLS_TARGET_PORT" --allow-dest=127.0.0.1/32
	for proxy in "http://127.0.0.1:$PROXY_PORT" "socks5://127.0.0.1:$PROXY_PORT"; do
		run chromium_dump "$proxy" "https://127.0.0.1:$TLS_TARGET_PORT/page.html" "$spki"
		[[ "$output" == *'<p id="said">hello, browser, through tunneld</p>'* ]] ||
			{ echo "$proxy: $output" >&2; tail -20 "$BATS_TEST_TMPDIR/chromium.log" >&2; return 1; }
	done
	wait_log "-> 127.0.0.1:$TLS_TARGET_PORT status=200 up=[1-9][0-9]* down=[1-9][0-9]* duration_ms=[0-9]+$"
	wait_log "-> 127.0.0.1:$TLS_TARGET_PORT status=200 up=[1-9][0-9]* down=[1-9][0-9]* duration_ms=[0-9]+ protocol=socks5 reply=0x00$"
}

@test "hostile greetings: 0 methods gets 0xFF, 255 methods is served, a truncated one ends at the header timeout" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=1
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 0500 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 05ff ]
	wait_log "-> - status=400 .* protocol=socks5 reason=SOCKS5 greeting offers no method$"
	local methods
	methods=$(for m in $(seq 255 -1 1); do printf '%02x' $((m % 256)); done) # 0xff .. 0x01, then:
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 05ff${methods:2}00$CONNECT$(socks_ipv4 "$TARGET_PORT")7069 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[[ "$output" == "0500050000017f000001"????"7069" ]]
	# Half a greeting, held open: closed, unanswered, at the header timeout.
	"$PYTHON" "$PEERS/socks5.py" "$PROXY_PORT" --hold 0502 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	closed_at_header_timeout "$BATS_TEST_TMPDIR/err"
	wait_log "-> - status=408 .* protocol=socks5 reason=SOCKS5 greeting not complete within the header timeout$"
}

@test "hostile requests: truncated, a domain of 255 bytes, split a byte per packet, a flood after the request" {
	start_target sha
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=1
	# Truncated and held open: 0x01 at the header timeout.
	"$PYTHON" "$PEERS/socks5.py" "$PROXY_PORT" --hold "$GREETING${CONNECT}03ff6162" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	[ "$(hex_of <"$BATS_TEST_TMPDIR/out")" = "0500$(REFUSED_WITH 01)" ]
	closed_at_header_timeout "$BATS_TEST_TMPDIR/err"
	wait_log "-> - status=408 .* protocol=socks5 reply=0x01 reason=SOCKS5 request not complete within the header timeout$"
	# Closed halfway: no answer owed, a record all the same.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT 05 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "" ]
	wait_log "-> - status=- .* protocol=socks5 reason=client closed in the middle of the head$"
	# Closed in the middle of the request: the record claims no reply, for none was sent.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING${CONNECT}01 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = 0500 ]
	wait_log "-> - status=- up=0 down=0 duration_ms=[0-9]+ protocol=socks5 reason=client closed in the middle of the head$"
	! grep -q 'reply=0x01 reason=client closed' "$LOG" || false
	# A name of 255 bytes, the most the length byte allows: longer than DNS allows, refused.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING$CONNECT$(socks_name "$(printf 'b%.0s' $(seq 255))" 443) 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "0500$(REFUSED_WITH 01)" ]
	# One byte a packet, greeting and request: served.
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT --each $GREETING$CONNECT$(socks_name localhost "$TARGET_PORT") 2>/dev/null | tail -c +13"
	[ "$output" = "$(printf '' | sha256sum | cut -d' ' -f1) 0" ]
	# 4 MiB sent right behind the request, without waiting for any answer: all of it reaches the target.
	"$PYTHON" "$PEERS/socks5.py" "$PROXY_PORT" --flood $((4 << 20)) "$GREETING$CONNECT$(socks_ipv4 "$TARGET_PORT")" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	[ "$(tail -c +13 "$BATS_TEST_TMPDIR/out")" = "$(sed -n 's/^flood sha256 //p' "$BATS_TEST_TMPDIR/err") $((4 << 20))" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=$((4 << 20)) down=[0-9]+ .* protocol=socks5 reply=0x00$"
}

@test "--protocols: a protocol that is not served is closed unanswered, with a record" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --protocols=socks5
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "$output" = "" ]
	wait_log "-> - status=- .* reason=HTTP is not served here \(--protocols\)$"
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING$CONNECT$(socks_ipv4 "$TARGET_PORT")6f6b 2>/dev/null | tail -c +13"
	[ "$output" = ok ]
	stop_all
	start_proxy "${LOOPBACK_POLICY[@]}" --protocols=http
	run sh -c "$PYTHON '$PEERS/socks5.py' $PROXY_PORT $GREETING 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "" ]
	wait_log "-> - status=- .* protocol=socks5 reason=SOCKS5 is not served here \(--protocols\)$"
	run --separate-stderr "$TUNNELD" --log=stderr --protocols=gopher </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: bad --protocols 'gopher': want http, socks5 or http,socks5" ]
}

@test "xinetd: a SOCKS5 tunnel through the shipped entry, the record in syslog" {
	[[ "$TUNNELD" != *valgrind* ]] || skip "valgrind's wrapper cannot be copied where xinetd's nobody may run it"
	start_target sha
	start_xinetd "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'via xinetd' | timeout 10 nc -N -X 5 -x 127.0.0.1:$XINETD_PORT 127.0.0.1 $TARGET_PORT"
	[ "$output" = "$(printf 'via xinetd' | sha256sum | cut -d' ' -f1) 10" ]
	wait_for "syslog record" grep -Eq "tunneld\[[0-9]+\]: 127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:$TARGET_PORT status=200 up=10 down=[0-9]+ duration_ms=[0-9]+ protocol=socks5 reply=0x00$" "$SYSLOG"
}
