#!/usr/bin/env bats
# tunneld(8) "DESCRIPTION", "The relay": both plumbing shapes, half-close, no loss, bounded waits.

load helpers

# Under valgrind (make valgrind-check) the bulk cases move less: it checks memory, not speed.
BULK_MIB=${BULK_MIB:-64}
BULK_BYTES=$((BULK_MIB * 1024 * 1024))

# echo_both_ways: BULK_MIB of random bytes through an echo target and back, both ways at once.
echo_both_ways() {
	make_file "$BATS_TEST_TMPDIR/up" "$BULK_MIB"
	timeout 60 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/up" >"$BATS_TEST_TMPDIR/down"
	[ "$(sha_of "$BATS_TEST_TMPDIR/down")" = "$(sha_of "$BATS_TEST_TMPDIR/up")" ]
	wait_log "status=200 up=$BULK_BYTES down=$BULK_BYTES"
}

@test "64 MiB (BULK_MIB) each way at once, one socket on fds 0/1: sha256 equal both ways" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	echo_both_ways
}

@test "64 MiB (BULK_MIB) each way at once, two pipes on fds 0/1: sha256 equal both ways" {
	start_target echo
	start_pipe_proxy "${LOOPBACK_POLICY[@]}"
	echo_both_ways
}

@test "Accept=no: an acceptor forks a process per tunnel; two tunnels at once, 64 MiB (BULK_MIB) each way, sha256 equal" {
	start_target echo
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	make_file "$BATS_TEST_TMPDIR/up" "$BULK_MIB"
	local n
	for n in 1 2; do
		start_bg sh -c 'timeout 60 nc -N -X connect -x "127.0.0.1:$1" 127.0.0.1 "$2" <"$3" >"$4.part" && mv "$4.part" "$4"' \
			sh "$PROXY_PORT" "$TARGET_PORT" "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/down$n"
	done
	# As long as the clients themselves may take.
	WAIT_TENTHS=600 wait_for "both tunnels done" test -f "$BATS_TEST_TMPDIR/down1" -a -f "$BATS_TEST_TMPDIR/down2"
	[ "$(sha_of "$BATS_TEST_TMPDIR/down1")" = "$(sha_of "$BATS_TEST_TMPDIR/up")" ]
	[ "$(sha_of "$BATS_TEST_TMPDIR/down2")" = "$(sha_of "$BATS_TEST_TMPDIR/up")" ]
	wait_for "two records" eval '[ "$(grep -c "status=200 up=$BULK_BYTES down=$BULK_BYTES" "$LOG")" -eq 2 ]'
}

# pipes_of PID: how many pipes the process holds below fd 64 (a tunnel's
# limit; valgrind keeps its own descriptors far above it).
pipes_of() {
	local fd count=0
	for fd in /proc/"$1"/fd/*; do
		[ "${fd##*/}" -lt 64 ] && [[ "$(readlink "$fd" 2>/dev/null)" == pipe:* ]] && count=$((count + 1))
	done
	echo "$count"
}

@test "a tunnel makes its splice pipes only once a direction reads a full 2 KiB: none for a ping, one each way for 64 KiB" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	start_bg sh -c '"$1" "$2" "$3" "$4" "$5" >"$5/out"' sh "$PYTHON" "$PEERS/stepper.py" "$PROXY_PORT" "$TARGET_PORT" "$BATS_TEST_TMPDIR"
	wait_for "the ping echoed" test -e "$BATS_TEST_TMPDIR/small"
	local tunnel
	tunnel=$(pgrep -P "$PROXY_PID")
	[ "$(pipes_of "$tunnel")" -eq 0 ]
	touch "$BATS_TEST_TMPDIR/go"
	wait_for "64 KiB echoed" test -e "$BATS_TEST_TMPDIR/bulk"
	[ "$(pipes_of "$tunnel")" -eq 4 ]
	touch "$BATS_TEST_TMPDIR/done"
	wait_log "status=200 up=65540 down=65540"
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "HTTP/1.1 200 Connection established ping bulk equal" ]
}

@test "client EOF reaches the target as a half-close, and the answer still comes back (echo x | nc)" {
	start_target sha
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'abc' | timeout 10 nc -N -X connect -x 127.0.0.1:$PROXY_PORT 127.0.0.1 $TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'abc' | sha256sum | cut -d' ' -f1) 3" ]
}

@test "client EOF over two pipes reaches the target too" {
	start_target sha
	start_pipe_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'abcd' | timeout 10 nc -N -X connect -x 127.0.0.1:$PROXY_PORT 127.0.0.1 $TARGET_PORT"
	[ "$output" = "$(printf 'abcd' | sha256sum | cut -d' ' -f1) 4" ]
}

@test "target EOF reaches the client, and the client can still send (socket shape)" {
	start_target speak-first "$BATS_TEST_TMPDIR/received"
	start_proxy "${LOOPBACK_POLICY[@]}"
	run timeout 10 "$PYTHON" "$PEERS/client.py" after-target-eof "$PROXY_PORT" 127.0.0.1 "$TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "hello from target" ]
	wait_for "target received" grep -qx 'sent after target EOF' "$BATS_TEST_TMPDIR/received"
	wait_log "status=200 up=22 down=18"
}

@test "target EOF reaches the client as close(fd 1) over two pipes, and the client can still send" {
	start_target speak-first "$BATS_TEST_TMPDIR/received"
	run --separate-stderr timeout 10 "$PYTHON" "$PEERS/client.py" pipe-after-target-eof "$TUNNELD" --log=stderr "${LOOPBACK_POLICY[@]}" -- 127.0.0.1 "$TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "hello from target" ]
	wait_for "target received" grep -qx 'sent after target EOF' "$BATS_TEST_TMPDIR/received"
	[[ "$stderr" == *"status=200 up=22 down=18"* ]]
}

@test "O_NONBLOCK on inherited pipes is given back before exit" {
	start_target echo
	run timeout 20 "$PYTHON" "$PEERS/client.py" pipe-flags "$TUNNELD" --log=none "${LOOPBACK_POLICY[@]}" -- 127.0.0.1 "$TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = "flags restored 0" ]
}

@test "O_NONBLOCK on a socket that is both fd 0 and fd 1 is given back before exit" {
	start_target echo
	run timeout 20 "$PYTHON" "$PEERS/client.py" socket-flags 'b"GET / HTTP/1.1\r\n\r\n"' "$TUNNELD" --log=none
	[ "${lines[0]}" = "blocking -> blocking" ]
	[[ "${lines[1]}" == "HTTP/1.1 405 Method Not Allowed"* ]]
	run timeout 20 "$PYTHON" "$PEERS/client.py" socket-flags \
		"b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\\r\\n\\r\\nping'" "$TUNNELD" --log=none "${LOOPBACK_POLICY[@]}"
	[ "${lines[0]}" = "blocking -> blocking" ]
	[[ "$output" == *"HTTP/1.1 200 Connection established"*"ping" ]]
}

@test "SIGTERM ends a tunnel whose two directions never rest, at once and with its record" {
	# valgrind runs the program's signals itself and delivers one only when
	# the program blocks: a loop that never blocks never gets it there.
	if [[ "$TUNNELD" == *valgrind* ]]; then skip "valgrind delivers signals only to a blocked program"; fi
	# The target sends zeros without end and drops what comes (tests/peers/flood.c);
	# the client is a file, always readable: the request, then 100 GB of holes.
	cc -O2 -pthread -o "$BATS_TEST_TMPDIR/flood" "$PEERS/flood.c"
	start_bg "$BATS_TEST_TMPDIR/flood" "$BATS_TEST_TMPDIR/flood.port"
	wait_for "flood target" test -s "$BATS_TEST_TMPDIR/flood.port"
	TARGET_PORT=$(cat "$BATS_TEST_TMPDIR/flood.port")
	printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/endless"
	truncate -s 100G "$BATS_TEST_TMPDIR/endless"
	"$TUNNELD" --log=stderr "${LOOPBACK_POLICY[@]}" <"$BATS_TEST_TMPDIR/endless" >/dev/null 2>"$LOG" &
	local pid=$!
	wait_for "bytes flowing both ways" eval "[ \$(awk '/^rchar/ { print \$2 }' /proc/$pid/io) -gt 1000000 ]"
	local took
	took=$(stop_and_time "$pid" "status=200 up=[1-9][0-9]* down=[1-9][0-9]* duration_ms=[0-9]+ reason=stopped by signal$")
	echo "SIGTERM to record while relaying without rest: $took ms" >&3
	[ "$took" -lt "$STOP_BOUND_MS" ]
}

@test "the idle timeout closes a silent tunnel, and the log says so" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --idle-timeout=1
	run sh -c "{ printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping'; sleep 6; } | timeout 10 nc 127.0.0.1 $PROXY_PORT"
	[[ "$output" == "HTTP/1.1 200"*"ping" ]]
	# One second idle after the echo; the client would have closed at 6 s.
	wait_log "status=200 up=4 down=4 duration_ms=[12][0-9]{3} reason=idle timeout"
}

@test "traffic holds the idle timeout off: a ping every half second for 4 s through --idle-timeout=2 all come back" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --idle-timeout=2
	run timeout 20 "$PYTHON" - "$PROXY_PORT" "$TARGET_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[2].encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
echoed = 0
for n in range(8):
    s.sendall(b"p")
    if s.recv(1) == b"p":
        echoed += 1
    time.sleep(0.5)
print("echoed", echoed)
PY
	[ "$output" = "echoed 8" ]
}

@test "without an idle timeout a quiet tunnel stays up" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "{ printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nfirst'; sleep 2; printf second; } | timeout 10 nc -N 127.0.0.1 $PROXY_PORT"
	[[ "$output" == "HTTP/1.1 200"*"firstsecond" ]]
}

@test "a client that vanishes mid-download ends the tunnel: no crash from SIGPIPE, a log record" {
	start_target source 100000000
	start_proxy "${LOOPBACK_POLICY[@]}"
	run sh -c "printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n' | timeout 10 nc 127.0.0.1 $PROXY_PORT | head -c 100000 >/dev/null"
	wait_log "status=200 up=0 down=[1-9][0-9]* duration_ms=[0-9]+ reason=client (read failed|write failed|reset the connection)"
	! grep -q 'died with code [^0]\|killed' "$LOG" || false
}

@test "SIGTERM (systemctl stop) ends a tunnel with its record, not silently" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}"
	local activator
	activator=$(tail -n 1 "$PIDS_FILE")
	{ printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nping' "$TARGET_PORT"; sleep 5; } |
		timeout 10 nc 127.0.0.1 "$PROXY_PORT" >"$BATS_TEST_TMPDIR/stream" &
	local client=$!
	wait_for "the echo" grep -q ping "$BATS_TEST_TMPDIR/stream"
	# The activator's child is the tunnel's process (tunneld, or valgrind running it).
	pkill -TERM -P "$activator"
	wait_log "status=200 up=4 down=4 duration_ms=[0-9]+ reason=stopped by signal"
	wait "$client" || true
}

@test "a stop signal pending when the tunnel starts (inherited blocked) ends its first phase: no 200, the record says so" {
	start_target echo
	printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nping' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/request"
	"$PYTHON" -c '
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
os.kill(os.getpid(), signal.SIGTERM)
os.execv(sys.argv[1], sys.argv[1:])' "$TUNNELD" --log=stderr "${LOOPBACK_POLICY[@]}" \
		<"$BATS_TEST_TMPDIR/request" >"$BATS_TEST_TMPDIR/answer" 2>"$LOG"
	[ ! -s "$BATS_TEST_TMPDIR/answer" ]
	grep -Eq -- "-> 127\.0\.0\.1:$TARGET_PORT status=- up=0 down=0 duration_ms=[0-9]+ reason=stopped by signal while " "$LOG"
}
