#!/usr/bin/env bats
# tunneld(8) "OPTIONS", --auth-file: Basic proxy authentication, hashes checked with crypt(3).

load helpers

setup() {
	setup_common
	AUTH_FILE=$BATS_TEST_TMPDIR/users
	htpasswd -B -C 5 -b -c "$AUTH_FILE" alice 'wonder land' 2>/dev/null
	printf 'bob:%s\n' "$(mkpasswd -m yescrypt 'b0b-secret')" >>"$AUTH_FILE"
	printf 'carol:%s\n' "$(mkpasswd -m sha-512 'carol:has:colons')" >>"$AUTH_FILE"
	printf 'dave:%s\n' "$(mkpasswd -m sha-256 'dave pw')" >>"$AUTH_FILE"
}

@test "407 with Proxy-Authenticate when credentials are missing; 200 for each hash type with the right password" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	local head
	head=$(printf '%s\n' "$output" | head_of)
	[ "$(head -n 1 <<<"$head")" = "HTTP/1.1 407 Proxy Authentication Required" ]
	grep -qx 'Proxy-Authenticate: Basic realm="tunneld", charset="UTF-8"' <<<"$head"
	grep -q '^Proxy-Status: tunneld; error=http_request_denied' <<<"$head"
	wait_log "status=407 .*reason=no proxy credentials"
	for credentials in 'alice:wonder land' 'bob:b0b-secret' 'carol:carol:has:colons' 'dave:dave pw'; do
		run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user "$credentials" "http://127.0.0.1:$TARGET_PORT/"
		[ "$output" = "hello through the tunnel" ] || { echo "${credentials%%:*}: $output" >&2; return 1; }
	done
}

@test "a wrong password or an unknown user gets 407; the log names a known user, never a password" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$PROXY_PORT" \
		--proxy-user 'alice:not-the-password' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$PROXY_PORT" \
		--proxy-user 'mallory:guessed-secret' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\nProxy-Authorization: Basic !!notbase64\r\n\r\n"
	[[ "$output" == "HTTP/1.1 407 "* ]]
	wait_log "status=407 .* user=alice reason=wrong password$"
	wait_log "status=407 .*reason=unknown user"
	wait_log "status=407 .*reason=malformed Proxy-Authorization"
	! grep -q 'not-the-password\|guessed-secret\|mallory' "$LOG" || false
}

@test "an unknown user costs the same time as a known one with a wrong password, over HTTP and SOCKS5" {
	# bcrypt cost 11 makes one check take tens of milliseconds, well above exec noise.
	htpasswd -B -C 11 -b -c "$AUTH_FILE" alice 'wonder land' 2>/dev/null
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run timeout 60 "$PYTHON" - "$PROXY_PORT" <<'PY'
import base64, socket, statistics, sys, time
port = int(sys.argv[1])
def http_407(user):
    token = base64.b64encode(("%s:wrong" % user).encode()).decode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("CONNECT 127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n\r\n" % token).encode())
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 407 "), head
    return time.monotonic() - started
def socks5_login_failed(user):
    name = user.encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x05\x01\x02" + b"\x01" + bytes([len(name)]) + name + b"\x05wrong")
        answer = b""
        while len(answer) < 4:
            chunk = s.recv(4)
            assert chunk, answer
            answer += chunk
    assert answer == b"\x05\x02\x01\x01", answer
    return time.monotonic() - started
failed = 0
for protocol, attempt in (("http", http_407), ("socks5", socks5_login_failed)):
    # Alternated, so that a change in the machine's load falls on both alike.
    pairs = [(attempt("alice"), attempt("nobody-here")) for _ in range(5)]
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    print("%s: known %.1f ms unknown %.1f ms ratio %.2f" % (protocol, known * 1000, unknown * 1000, unknown / known))
    failed += not (known > 0.01 and 0.6 < unknown / known < 1.6)
sys.exit(failed)
PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "SOCKS5: the time a costly hash takes is not counted against the client's header timeout" {
	# bcrypt cost 15 takes longer than the 1 s header timeout here.
	htpasswd -B -C 15 -b -c "$AUTH_FILE" alice 'wonder land' 2>/dev/null
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE" --header-timeout=1
	# A client that waits for each answer before it sends the next message, as curl does.
	run timeout 60 "$PYTHON" - "$PROXY_PORT" "$TARGET_PORT" <<'PY'
import socket, struct, sys, time
proxy_port, target_port = int(sys.argv[1]), int(sys.argv[2])
def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as s:
    s.sendall(b"\x05\x01\x02")
    assert read_exactly(s, 2) == b"\x05\x02"
    started = time.monotonic()
    s.sendall(b"\x01\x05alice\x0bwonder land")
    assert read_exactly(s, 2) == b"\x01\x00"
    hashed = time.monotonic() - started
    s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", target_port) + b"ping")
    reply = read_exactly(s, 14)
print("hash took %.1f s; reply %s" % (hashed, reply.hex()))
sys.exit(0 if hashed > 1 and reply[:2] == b"\x05\x00" and reply[10:] == b"ping" else 1)
PY
	echo "$output"
	[ "$status" -eq 0 ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 .* protocol=socks5 reply=0x00 user=alice$"
}

@test "Apache's \$apr1\$ hashes are refused at load with the htpasswd -B hint; the client gets a 500, no 200" {
	htpasswd -m -b -c "$AUTH_FILE" erin 'md5 password' 2>/dev/null
	grep -q '^erin:\$apr1\$' "$AUTH_FILE"
	run --separate-stderr "$TUNNELD" --log=stderr --auth-file="$AUTH_FILE" </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"line 1: user erin: hash type not supported by crypt(3)"*"create it with htpasswd -B (bcrypt)"* ]]
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "${lines[0]}" = $'HTTP/1.1 500 Internal Server Error\r' ]
	[[ $output == *"error=proxy_configuration_error"* ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=500 .*reason=.*line 1: user erin: hash type not supported by crypt\\(3\\)"
}

@test "unreadable, empty or malformed auth files exit 2 with a message" {
	run --separate-stderr "$TUNNELD" --log=stderr --auth-file=/nonexistent/users </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cannot read auth file /nonexistent/users: No such file or directory"* ]]
	printf '# only a comment\n\n' >"$AUTH_FILE"
	run --separate-stderr "$TUNNELD" --log=stderr --auth-file="$AUTH_FILE" </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"has no users"* ]]
	printf 'no-colon-here\n' >"$AUTH_FILE"
	run --separate-stderr "$TUNNELD" --log=stderr --auth-file="$AUTH_FILE" </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"line 1: not a user:hash line"* ]]
}

@test "a relative auth file is looked up in \$CREDENTIALS_DIRECTORY (systemd LoadCredential=)" {
	start_target http
	mkdir -p "$BATS_TEST_TMPDIR/credentials"
	cp "$AUTH_FILE" "$BATS_TEST_TMPDIR/credentials/tunneld-users"
	PROXY_ENV="CREDENTIALS_DIRECTORY=$BATS_TEST_TMPDIR/credentials" start_proxy "${LOOPBACK_POLICY[@]}" --auth-file=tunneld-users
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user 'dave:dave pw' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
}

@test "a stop signal ends a costly password hash at once, with its record" {
	# bcrypt cost 14: about a second of hashing, as an admin may choose.
	htpasswd -nbB -C 14 alice 'alice pw' >"$BATS_TEST_TMPDIR/costly"
	mkfifo "$BATS_TEST_TMPDIR/in"
	"$TUNNELD" --log=stderr --auth-file="$BATS_TEST_TMPDIR/costly" <"$BATS_TEST_TMPDIR/in" >/dev/null 2>"$LOG" &
	local pid=$!
	exec 4>"$BATS_TEST_TMPDIR/in"
	printf 'CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n\r\n' \
		"$(printf 'alice:wrong' | base64)" >&4
	# Hashing: 50 ms of CPU spent (user and system clock ticks of all its threads).
	wait_for "the hash under way" eval "[ \$(awk '{ print \$14 + \$15 }' /proc/$pid/stat) -ge 5 ]"
	local took
	took=$(stop_and_time "$pid" "-> example.com:443 status=- .*reason=stopped by signal while checking credentials$")
	exec 4>&-
	echo "SIGTERM to record while hashing: $took ms" >&3
	[ "$took" -lt "$STOP_BOUND_MS" ]
}

@test "a name is a user only whole: ali and alicex with alice's password get 407 unknown user, over HTTP and SOCKS5" {
	start_target http
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	local name
	for name in ali alicex Alice ''; do
		run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$PROXY_PORT" \
			--proxy-user "$name:wonder land" "http://127.0.0.1:$TARGET_PORT/"
		[ "$output" = 407 ] || { echo "HTTP $name: $output" >&2; return 1; }
		run curl -s --max-time 10 -o /dev/null -w '%{exitcode}' -U "$name:wonder land" \
			-x "socks5h://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT/"
		[ "$output" = 97 ] || { echo "SOCKS5 $name: curl exit $output" >&2; return 1; }
	done
	[ "$(grep -c 'status=407 .*reason=unknown user$' "$LOG")" -eq 6 ]
	[ "$(grep -c 'status=407 .*protocol=socks5 .*reason=unknown user$' "$LOG")" -eq 3 ]
	# alice whole is alice.
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
}
