#!/usr/bin/env bats
# Clients that mean harm, or behave as if they did: every one ends, bounded,
# with nothing left behind.

load helpers

# The proxy's tunnelds are its activator's children (their command lines are titles, tunneld(8) "WATCHING AND ENDING TUNNELS").
no_tunneld_left() {
	! pgrep -P "$PROXY_PID" >/dev/null
}

@test "slowloris: a head sent one byte a second ends at the header timeout with 408" {
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=2
	run timeout 20 "$PYTHON" - "$PROXY_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
started = time.monotonic()
reply = b""
try:
    for byte in b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nX-Slow: " + b"a" * 100:
        s.send(bytes([byte]))
        time.sleep(1)
        s.setblocking(False)
        try:
            reply += s.recv(4096)
        except BlockingIOError:
            pass
        s.setblocking(True)
        if reply:
            break
except (BrokenPipeError, ConnectionResetError):
    pass
s.settimeout(5)
reply += s.recv(4096)
print(reply.split(b"\r\n")[0].decode(), round(time.monotonic() - started))
PY
	[ "$output" = "HTTP/1.1 408 Request Timeout 2" ] || [ "$output" = "HTTP/1.1 408 Request Timeout 3" ]
	wait_log "status=408 .*reason=request head not complete within the header timeout"
}

@test "a 1 MB head is refused with 431 at 8 KiB, and tunneld does not stay to read the rest" {
	start_proxy "${LOOPBACK_POLICY[@]}"
	run timeout 20 "$PYTHON" - "$PROXY_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
flood = b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nX-Flood: " + b"a" * (1024 * 1024)
s.sendall(flood[:16384])
head = s.recv(4096)  # the answer comes with only 16 KiB sent
print(head.split(b"\r\n")[0].decode())
try:
    s.sendall(flood[16384:])
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
except (BrokenPipeError, ConnectionResetError):
    pass
PY
	[ "$output" = "HTTP/1.1 431 Request Header Fields Too Large" ]
	# Refused after at most LINGER_AFTER_ERROR_MS of draining, at most 64 KiB of it.
	wait_log "status=431 up=0 down=0 duration_ms=[0-9]{1,4} reason=head larger than 8192 bytes"
}

@test "500 connections abandoned mid-head all end: closed ones at once, silent ones at the header timeout; no process left" {
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=2
	run timeout 60 "$PYTHON" - "$PROXY_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
silent = []
for i in range(500):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"CONNECT 127.0.0.1:4")
    if i % 2:
        s.close()
    else:
        silent.append(s)
time.sleep(4)   # past the header timeout, still holding the silent half open
answered = sum(1 for s in silent if s.recv(64).startswith(b"HTTP/1.1 408 "))
print(answered)
PY
	[ "$output" = 250 ]
	wait_for "every tunneld gone" no_tunneld_left
	wait_for "500 records" sh -c "[ \$(grep -c 'reason=client closed in the middle of the head\\|reason=request head not complete' '$LOG') -eq 500 ]"
	[ "$(grep -c 'status=408 .*reason=request head not complete' "$LOG")" -eq 250 ]
	[ "$(grep -c 'status=- .*reason=client closed in the middle of the head' "$LOG")" -eq 250 ]
}

@test "a client that stops reading during a download does not make tunneld's memory grow" {
	start_target source 4000000000
	start_proxy "${LOOPBACK_POLICY[@]}"
	run timeout 30 "$PYTHON" - "$PROXY_PORT" "$TARGET_PORT" "$PROXY_PID" <<'PY'
import socket, subprocess, sys, time
proxy, target, activator = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % target.encode())
s.recv(65536)  # the 200 and the first data; then this client reads no more
def rss_kib():
    pid = subprocess.run(["pgrep", "-P", activator], capture_output=True, text=True).stdout.split()[0]
    with open("/proc/%s/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
time.sleep(1)
first = rss_kib()
time.sleep(3)
last = rss_kib()
print(first, last)
sys.exit(0 if last - first <= 64 and last < 8192 else 1)
PY
	echo "tunneld RSS KiB after 1 s and 4 s of a stalled download: $output" >&3
	[ "$status" -eq 0 ]
}
