#!/usr/bin/env bats
# tunneld(8) "The relay": its fault table. Each row is one fault, played by
# tests/peers/faults.py holding both ends of a tunnel, and each row runs on
# both relay paths: splice() through pipes, and read()/write() (a system
# out of pipes, build/tests/no-splice.so). Every row ends with the tunnel's
# process gone and its record written.

load helpers

NO_SPLICE=$TOP/build/tests/no-splice.so

# fault SCENARIO RECORD [OPTIONS...]: the scenario on each relay path; what
# the peer prints must equal $EXPECTED (lines), the record match RECORD
# (grep -E), and the activator be left with no child.
fault() {
	local scenario=$1 record=$2 path
	shift 2
	for path in splice read-write; do
		stop_all
		: >"$LOG"
		PROXY_ENV=
		[ "$path" = read-write ] && PROXY_ENV="LD_PRELOAD=$NO_SPLICE ASAN_OPTIONS=verify_asan_link_order=0"
		start_proxy "${LOOPBACK_POLICY[@]}" "$@"
		local activator
		activator=$(tail -n 1 "$PIDS_FILE")
		run timeout 90 "$PYTHON" "$PEERS/faults.py" "$scenario" "$PROXY_PORT"
		echo "$path: $output" >&2
		[ "$status" -eq 0 ]
		[ "$output" = "$EXPECTED" ]
		wait_log "$record"
		[ "$(grep -c ' -> ' "$LOG")" -eq 1 ]
		WAIT_TENTHS=300 wait_for "the tunnel's process to end ($path)" eval '! pgrep -P "$activator" >/dev/null'
	done
}

@test "urgent data from the client is passed on inline, and every byte after it arrives" {
	EXPECTED="target: received before-
target: received !after
target: eof
client: eof"
	fault urgent-up "status=200 up=65549 down=0 duration_ms=[0-9]+$"
}

@test "urgent data from the client before its direction splices (within its first 2 KiB) is passed on inline too" {
	EXPECTED="target: received before-
target: received !after
target: eof
client: eof"
	fault urgent-up-unspliced "status=200 up=13 down=0 duration_ms=[0-9]+$"
}

@test "urgent data from the target is passed on inline, and every byte after it arrives" {
	EXPECTED="client: received hello-
client: received !world, then eof"
	fault urgent-down "status=200 up=0 down=65548 duration_ms=[0-9]+$"
}

@test "a client's reset reaches the target as a reset, after every byte the proxy took before it" {
	EXPECTED="target: received 1048576 bytes from the client, then reset"
	fault reset-from-client "status=200 up=1048576 down=0 duration_ms=[0-9]+ reason=client reset the connection$"
}

@test "a target's reset reaches the client as a reset, not as a clean end, after every byte the proxy took before it" {
	EXPECTED="client: received 1048576 bytes from the target, then reset"
	fault reset-from-target "status=200 up=0 down=1048576 duration_ms=[0-9]+ reason=target reset the connection$"
}

@test "a client that stops reading stalls the target, not memory; when it reads again every byte arrives" {
	EXPECTED="target: blocked while the client reads nothing
client: received all target sent, then eof"
	fault client-stalls "status=200 up=0 down=[1-9][0-9]* duration_ms=[0-9]+$"
}

@test "a target that stops reading stalls the client, not memory; when it reads again every byte arrives" {
	EXPECTED="client: blocked while the target reads nothing
target: received all client sent, then eof"
	fault target-stalls "status=200 up=[1-9][0-9]* down=0 duration_ms=[0-9]+$"
}

@test "a client that never reads again ends the tunnel at the idle timeout" {
	EXPECTED="target: blocked while the client reads nothing
target: send failed"
	fault client-stalls-idle "status=200 up=0 down=[1-9][0-9]* duration_ms=[0-9]+ reason=idle timeout$" --idle-timeout=4
}

@test "a target that never reads again ends the tunnel at the idle timeout" {
	EXPECTED="client: blocked while the target reads nothing
client: send failed"
	fault target-stalls-idle "status=200 up=[1-9][0-9]* down=0 duration_ms=[0-9]+ reason=idle timeout$" --idle-timeout=4
}

@test "the client's half-close reaches the target, and 1 MiB still comes back" {
	EXPECTED="target: received x, then eof
client: received 1048576 bytes, then eof"
	fault half-close-up "status=200 up=1 down=1048576 duration_ms=[0-9]+$"
}

@test "the target's half-close reaches the client, and 1 MiB still goes out" {
	EXPECTED="client: received hello, then eof
target: received 1048576 bytes, then eof"
	fault half-close-down "status=200 up=1048576 down=5 duration_ms=[0-9]+$"
}

@test "a target that closed and refuses more (EPIPE) ends the tunnel" {
	EXPECTED="target: received first
client: eof, then send failed"
	fault target-gone "status=200 up=[0-9]+ down=0 duration_ms=[0-9]+ reason=target (write failed|reset the connection)$"
}

@test "both sides closing at once end the tunnel cleanly" {
	EXPECTED="target: eof
client: eof"
	fault both-close "status=200 up=0 down=0 duration_ms=[0-9]+$"
}
