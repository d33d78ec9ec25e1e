#!/usr/bin/env bats
# Bursts of connections against the shipped units under a real systemd
# manager and against the shipped xinetd entry (tunneld(8) "CAVEATS"): the
# proxy stays up, refuses exactly what its limits say, and serves the next
# tunnel at once. Sources are loopback addresses 127.0.0.1 to 127.0.0.10.

load helpers
load manager

teardown() {
	stop_manager
	stop_all
}

# burst HOLD BURST [--silent]: tests/peers/burst.py against $PROXY_PORT and the echo $TARGET_PORT.
burst() {
	timeout 180 "$PYTHON" "$PEERS/burst.py" "$PROXY_PORT" "$TARGET_PORT" "$@"
}

# tunnel_from SOURCE TEXT: TEXT through a tunnel to the echo target, from SOURCE; prints what came back.
tunnel_from() {
	printf '%s' "$2" | timeout 10 socat - "PROXY:127.0.0.1:127.0.0.1:$TARGET_PORT,proxyport=$PROXY_PORT,bind=$1"
}

start_units() {
	start_target echo
	PROXY_PORT=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$PROXY_PORT" --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32 "$@"
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
}

socket_property() {
	in_manager systemctl show -p "$1" --value tunneld.socket
}

# after_burst: the socket is up and not failed, a new tunnel carries bytes
# (from a source the burst did not use), and once the held tunnels have
# ended no tunneld process is left.
after_burst() {
	[ "$(socket_property ActiveState)" = active ]
	[ "$(socket_property Result)" = success ]
	run tunnel_from 127.0.0.10 'after the burst'
	[ "$output" = 'after the burst' ]
	wait_for "every tunnel gone" eval '[ "$(socket_property NConnections)" = 0 ]'
	[ -z "$(in_manager pgrep -x tunneld)" ]
}

@test "systemd: 1,000 connections, 64 at a time, from one source already at its limit: all refused, the socket stays" {
	start_units
	run burst 127.0.0.1:32 1000@64@127.0.0.1
	echo "$output" >&3
	[ "$output" = "held 32/32 served 0 refused 1000 unreachable 0" ]
	after_burst
}

@test "systemd: 1,000 connections from eight sources while every connection slot is taken: all refused, the socket stays" {
	local hold="" sources="" n
	for n in 2 3 4 5 6 7 8 9; do
		hold+="127.0.0.$n:32,"
		sources+="127.0.0.$n+"
	done
	start_units
	run burst "$hold" "1000@64@${sources}127.0.0.1"
	echo "$output" >&3
	# 8 x 32 = 256 = MaxConnections: the last source is refused by the total, the others by both limits.
	[ "$output" = "held 256/256 served 0 refused 1000 unreachable 0" ]
	after_burst
}

@test "systemd: 100 connections that send nothing do not stop another client from being served" {
	# The manager takes tens of milliseconds to start each sandboxed instance
	# (here 7 s for 100): a header timeout long enough for all 100 to be up at
	# once on a machine three times slower, and waits as long.
	start_units --header-timeout=25
	burst "" 100@100@127.0.0.2+127.0.0.3+127.0.0.4+127.0.0.5+127.0.0.6 --silent >"$BATS_TEST_TMPDIR/silent" &
	local silent=$!
	WAIT_TENTHS=250 wait_for "100 silent connections in place" eval '[ "$(socket_property NConnections)" -ge 100 ]'
	WAIT_TENTHS=250 wait_for "100 tunneld processes" eval '[ "$(in_manager pgrep -cx tunneld)" -ge 100 ]'
	run tunnel_from 127.0.0.10 'beside the silent ones'
	[ "$output" = 'beside the silent ones' ]
	wait "$silent"
	# Each silent connection was a tunneld that answered 408 at the header timeout.
	[ "$(cat "$BATS_TEST_TMPDIR/silent")" = "held 0/0 served 100 refused 0 unreachable 0" ]
	after_burst
}

# xinetd_children: how many processes xinetd has started and not yet reaped.
xinetd_children() {
	pgrep -c -P "$(cat "$BATS_TEST_TMPDIR/xinetd.pid")" || true
}

# A new tunnel from 127.0.0.1 (the only source the entry's only_from allows),
# tried until the held ones are gone, for at most the entry's documented 1 s
# past the reaping.
xinetd_serves_again() {
	wait_for "a new tunnel through xinetd" eval '[ "$(tunnel_from 127.0.0.1 again)" = again ]'
}

@test "xinetd: 1,000 connections, 64 at a time, from one source already at its per_source: all refused, then served again" {
	start_target echo
	start_xinetd --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32
	PROXY_PORT=$XINETD_PORT
	grep -Eq '^\s*per_source\s*=\s*32$' "$BATS_TEST_TMPDIR/xinetd.conf"
	run burst 127.0.0.1:32 1000@64@127.0.0.1
	echo "$output" >&3
	[ "$output" = "held 32/32 served 0 refused 1000 unreachable 0" ]
	xinetd_serves_again
	wait_for "no tunneld left" eval '[ "$(xinetd_children)" -eq 0 ]'
}

@test "xinetd: 30 connections that send nothing do not stop another client from being served" {
	start_target echo
	start_xinetd --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32 --header-timeout=3
	PROXY_PORT=$XINETD_PORT
	burst "" 30@30@127.0.0.1 --silent >"$BATS_TEST_TMPDIR/silent" &
	local silent=$!
	wait_for "30 silent connections in place" eval '[ "$(xinetd_children)" -ge 30 ]'
	xinetd_serves_again
	wait "$silent"
	[ "$(cat "$BATS_TEST_TMPDIR/silent")" = "held 0/0 served 30 refused 0 unreachable 0" ]
	wait_for "no tunneld left" eval '[ "$(xinetd_children)" -eq 0 ]'
}
