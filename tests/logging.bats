#!/usr/bin/env bats
# tunneld(8) "LOGGING": where the record goes, and what it says. (The journal, with its
# fields, under a real systemd manager: systemd.bats.)

load helpers

setup() {
	setup_common
	SYSLOG=$BATS_TEST_TMPDIR/syslog
	: >"$SYSLOG"
}

# over_pipes REQUEST ARGS...: tunneld on two pipes, syslog read into $SYSLOG.
over_pipes() {
	local request=$1
	shift
	printf "$request" | timeout 20 "$PEERS/with-syslog" "$SYSLOG" "$TUNNELD" "$@"
}

@test "--log=syslog: one line, facility daemon, tag tunneld[pid], priority by outcome" {
	start_target echo
	run over_pipes "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping" --log=syslog "${LOOPBACK_POLICY[@]}"
	[[ "$output" == "HTTP/1.1 200"*"ping" ]]
	run over_pipes 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n' --log=syslog --allow-dest=127.0.0.1
	run over_pipes "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n" --log=syslog "${LOOPBACK_POLICY[@]}"
	[ "$(wc -l <"$SYSLOG")" -eq 3 ]
	# <30> daemon.info for a tunnel, <29> daemon.notice for a refusal, <28> daemon.warning upstream.
	grep -Eq "^<30>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+$" "$SYSLOG"
	grep -Eq '^<29>.* tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:22 status=403 .*reason=port not allowed$' "$SYSLOG"
	grep -Eq '^<28>.* tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:1 status=502 .*reason=connection refused by the target$' "$SYSLOG"
}

@test "--log=auto with fd 2 closed goes to syslog; --log=none writes nowhere" {
	run over_pipes 'GET / HTTP/1.1\r\n\r\n' --log=auto 2>&-
	[[ "$output" == "HTTP/1.1 405 "* ]]
	grep -q 'tunneld\[[0-9]*\]: - -> - status=405' "$SYSLOG"
	: >"$SYSLOG"
	run --separate-stderr over_pipes 'GET / HTTP/1.1\r\n\r\n' --log=none
	[[ "$output" == "HTTP/1.1 405 "* ]]
	[ -z "$stderr" ]
	[ ! -s "$SYSLOG" ]
}

@test "--log=auto with fd 2 open and not the client goes to stderr, one line" {
	run --separate-stderr over_pipes 'GET / HTTP/1.1\r\n\r\n'
	[ "$stderr" = "tunneld: - -> - status=405 up=0 down=0 duration_ms=${stderr##*duration_ms=}" ]
	[[ "$stderr" == *" reason=method is not CONNECT" ]]
	[ ! -s "$SYSLOG" ]
}

@test "the client is named by REMOTE_ADDR, REMOTE_HOST, SSH_CLIENT, the peer, in that order" {
	run --separate-stderr env REMOTE_ADDR=192.0.2.1 REMOTE_HOST=192.0.2.2 REMOTE_PORT=1111 SSH_CLIENT='192.0.2.3 3333 22' \
		sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: 192.0.2.1:1111 -> "* ]]
	run --separate-stderr env REMOTE_HOST=2001:db8::2 REMOTE_PORT=2222 SSH_CLIENT='192.0.2.3 3333 22' \
		sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: [2001:db8::2]:2222 -> "* ]]
	run --separate-stderr env SSH_CLIENT='192.0.2.3 3333 22' sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: 192.0.2.3:3333 -> "* ]]
	# Values that are not addresses are not trusted into the log.
	run --separate-stderr env REMOTE_ADDR='evil text' sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: - -> "* ]]
}

# inetd_with_syslog HIDE REQUEST ARGS...: tunneld with one socket as fds 0, 1
# and 2 (xinetd's shape), syslog read into $SYSLOG, and the journal out of
# reach: HIDE "journald" leaves no journal socket, "libsystemd" makes the
# library unloadable. Prints every byte the client got.
inetd_with_syslog() {
	local hide=$1 request=$2 library
	shift 2
	library=$(readlink -f "$(ldconfig -p | awk '/libsystemd\.so\.0 / { print $NF; exit }')")
	timeout 20 "$PEERS/with-syslog" "$SYSLOG" sh -c '
		hide=$1 library=$2
		shift 2
		if [ "$hide" = libsystemd ]; then mount --bind /dev/null "$library"; fi
		if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi
		exec "$@"' sh "$hide" "$library" "$PYTHON" "$PEERS/client.py" inetd "$request" "$TUNNELD" "$@"
}

@test "--log=journal with no journal to reach: the record goes to syslog, never to fd 2 when it is the client" {
	start_target echo
	local request="b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\\r\\n\\r\\nping'"
	for hide in journald libsystemd; do
		: >"$SYSLOG"
		run inetd_with_syslog "$hide" "$request" --log=journal "${LOOPBACK_POLICY[@]}"
		[ "$output" = "$(printf 'HTTP/1.1 200 Connection established\r\n\r\nping')" ]
		[ "$(wc -l <"$SYSLOG")" -eq 1 ]
		grep -Eq "^<30>.* tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 " "$SYSLOG"
	done
}

@test "userinfo in the authority never reaches the log: the target is logged without it" {
	run over_pipes 'CONNECT alice:S3cr3t@example.com:443 HTTP/1.1\r\n\r\n' --log=syslog
	[[ "$output" == "HTTP/1.1 400 Bad Request"* ]]
	run --separate-stderr over_pipes 'CONNECT alice:S3cr3t@example.com:443 HTTP/1.1\r\n\r\n' --log=stderr
	[[ "$stderr" == "tunneld: - -> example.com:443 status=400 "*"reason=userinfo is not allowed in the authority" ]]
	grep -q -- '- -> example.com:443 status=400 .*reason=userinfo is not allowed in the authority$' "$SYSLOG"
	! grep -q S3cr3t "$SYSLOG" || false
	[[ "$stderr" != *S3cr3t* ]]
}

@test "hostile bytes from the client or the environment are escaped in every log line" {
	# An ESC sequence, DEL, a C1 CSI, bytes that are not UTF-8, a backslash, an e-acute, a
	# right-to-left override, a line separator and a no-break space posing as a field
	# separator (U+202E, U+2028, U+00A0): nothing outside printable ASCII stays raw.
	local request='CONNECT ex\033[31mam\177ple\302\233\377\\\303\251\342\200\256gpj\342\200\250\302\240status=200.test:443 HTTP/1.1\r\n\r\n'
	local escaped='ex\x1b[31mam\x7fple\xc2\x9b\xff\x5c\xc3\xa9\xe2\x80\xaegpj\xe2\x80\xa8\xc2\xa0status=200.test:443'
	run over_pipes "$request" --log=syslog
	run --separate-stderr over_pipes "$request" --log=stderr
	[[ "$output" == "HTTP/1.1 400 Bad Request"* ]]
	[ "${#lines[@]}" -ge 1 ]
	[[ "$stderr" == "tunneld: - -> $escaped status=400 "* ]]
	grep -qF -- "- -> $escaped status=400" "$SYSLOG"
	# A user name from the auth file with a control byte and a space (a field's space is
	# escaped: it would split the record), and a hostile REMOTE_HOST.
	printf 'ev\033 il:%s\n' "$(htpasswd -nbB x pw | cut -d: -f2)" >"$BATS_TEST_TMPDIR/users"
	local credentials
	credentials=$(printf 'ev\033 il:wrong' | base64)
	export REMOTE_HOST=$'192.0.2.1\n fake record'
	run --separate-stderr over_pipes \
		"CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic $credentials\r\n\r\n" \
		--log=stderr --auth-file="$BATS_TEST_TMPDIR/users"
	[[ "$output" == "HTTP/1.1 407 "* ]]
	[ "$stderr" = "tunneld: - -> example.com:443 status=407 up=0 down=0 duration_ms=${stderr##*duration_ms=}" ]
	[[ "$stderr" == *" user=ev\\x1b\\x20il reason=wrong password" ]]
	# Nothing raw: no ESC, no DEL, no byte that is not UTF-8, one line.
	! printf '%s' "$stderr" | grep -qP '[\x00-\x09\x0b-\x1f\x7f]' || false
	: >"$SYSLOG"
	run over_pipes \
		"CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic $credentials\r\n\r\n" \
		--log=syslog --auth-file="$BATS_TEST_TMPDIR/users"
	[ "$(wc -l <"$SYSLOG")" -eq 1 ]
	grep -q -- '- -> example.com:443 status=407 .* user=ev\\x1b\\x20il reason=wrong password$' "$SYSLOG"
	! grep -qP '[\x00-\x09\x0b-\x1f\x7f]' "$SYSLOG" || false
}

@test "with-syslog (the tests' syslog receiver) keeps every message sent before its command ended" {
	# All on one CPU, the wrapper and the command real-time, the receiver (the
	# command's sibling) not: it cannot read before the command has ended, so
	# 200 datagrams are still queued then, and the wrapper must wait for them.
	run timeout 20 taskset -c 0 chrt -f 10 "$PEERS/with-syslog" "$SYSLOG" "$PYTHON" -c '
import os, socket
me, parent = os.getpid(), os.getppid()
def parent_of(pid):
    try:
        return int(open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return None
receivers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and int(pid) != me and parent_of(pid) == parent]
for pid in receivers:
    os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
log.connect("/dev/log")
for i in range(200):
    log.send(b"<30>burst: message %d" % i)
print(len(receivers))'
	[ "$status" -eq 0 ]
	[ "$output" = 1 ]
	[ "$(wc -l <"$SYSLOG")" -eq 200 ]
	[ "$(tail -n 1 "$SYSLOG")" = "<30>burst: message 199" ]
}

@test "a log sink that blocks cannot hold tunneld: a stop signal ends it 100 ms later" {
	run timeout 20 "$PYTHON" "$PEERS/stuck-sink.py" 2 never 'b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n"' \
		"$TUNNELD" --log=stderr
	echo "${lines[0]}, the record stuck in the sink" >&3
	[[ "${lines[0]}" =~ ^gone\ after\ ([0-9]+)\ ms,\ exit\ -14$ ]]
	[ "${BASH_REMATCH[1]}" -lt 1000 ]
}

@test "a log sink that was blocked when the stop signal came still gets the record once it drains" {
	run timeout 20 "$PYTHON" "$PEERS/stuck-sink.py" 2 drain 'b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n"' \
		"$TUNNELD" --log=stderr
	[ "${lines[0]}" = "gone after ${lines[0]#gone after }" ]
	[[ "${lines[0]}" == *", exit 0" ]]
	[[ "${lines[1]}" == "tunneld: - -> 127.0.0.1:22 status=403 "*"reason=port not allowed" ]]
}

@test "a terminal that is not tunneld's controlling one is a client (socat EXEC:...,pty): no log text reaches it" {
	run timeout 20 "$PEERS/with-syslog" "$SYSLOG" "$PYTHON" "$PEERS/on-pty.py" detached \
		'b"GET / HTTP/1.1\r\n\r\n"' "$TUNNELD" --log=stderr
	[ "${lines[0]}" = 0 ]
	[[ "${lines[1]}" == "HTTP/1.1 405 Method Not Allowed"* ]]
	[[ "$output" != *"tunneld:"*"status="* ]]
	grep -q 'tunneld\[[0-9]*\]: - -> - status=405' "$SYSLOG"
}

@test "a terminal that controls a session tunneld leads is a client (socat setsid,ctty; ssh -t; script)" {
	run timeout 20 "$PEERS/with-syslog" "$SYSLOG" "$PYTHON" "$PEERS/on-pty.py" leader \
		'b"GET / HTTP/1.1\r\n\r\n"' "$TUNNELD" --log=stderr
	[ "${lines[0]}" = 0 ]
	[[ "${lines[1]}" == "HTTP/1.1 405 Method Not Allowed"* ]]
	[[ "$output" != *"tunneld:"*"status="* ]]
	grep -q 'tunneld\[[0-9]*\]: - -> - status=405' "$SYSLOG"
}

@test "a person at a shell still sees tunneld's errors on the terminal" {
	run timeout 20 "$PYTHON" "$PEERS/on-pty.py" shell 'b""' "$TUNNELD" --bogus
	[ "${lines[0]}" = 2 ]
	[ "${lines[1]}" = "tunneld: unknown option '--bogus': see tunneld --help" ]
}

# log_path_refused PATH MESSAGE: --log=file:PATH is a configuration error, at once, saying MESSAGE.
log_path_refused() {
	run --separate-stderr timeout -k 1 5 "$TUNNELD" --log="file:$1" </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $2" ]
}

@test "--log=file: records only, appended; an error goes to stderr; a symbolic link, a FIFO, a device or a relative path is refused" {
	local file=$BATS_TEST_TMPDIR/access.log
	printf 'earlier line\n' >"$file"
	run --separate-stderr sh -c "printf 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=file:$file 2>&-"
	[[ "$output" == "HTTP/1.1 403 "* ]]
	[ "$(sed -n 1p "$file")" = "earlier line" ]
	[[ "$(sed -n 2p "$file")" == "- -> 127.0.0.1:443 status=403 up=0 down=0 duration_ms="*" reason=every address of the target is denied by the destination rules" ]]
	[ "$(wc -l <"$file")" -eq 2 ]
	# A line about tunneld itself is not a record: not in the file, which tools parse.
	run --separate-stderr "$TUNNELD" --log="file:$file" --header-timeout=0 </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: bad --header-timeout '0': want whole seconds, 1-86400" ]
	[ "$(wc -l <"$file")" -eq 2 ]
	ln -s "$file" "$BATS_TEST_TMPDIR/link.log"
	log_path_refused "$BATS_TEST_TMPDIR/link.log" "cannot open log file $BATS_TEST_TMPDIR/link.log: Too many levels of symbolic links"
	# A FIFO (with or without a reader) or a device is not a log file, and must not hold tunneld.
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	log_path_refused "$BATS_TEST_TMPDIR/fifo" "cannot open log file $BATS_TEST_TMPDIR/fifo: No such device or address"
	exec 4<>"$BATS_TEST_TMPDIR/fifo" # a reader now, at once (Linux opens a FIFO read-write without waiting)
	log_path_refused "$BATS_TEST_TMPDIR/fifo" "cannot open log file $BATS_TEST_TMPDIR/fifo: not a regular file"
	exec 4>&-
	log_path_refused /dev/null "cannot open log file /dev/null: not a regular file"
	log_path_refused access.log "bad --log 'file:access.log': want auto, journal, syslog, stderr, none or file:/path"
}
