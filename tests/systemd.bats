#!/usr/bin/env bats
# The shipped units under a real systemd manager, and systemd-analyze.

load helpers

# units_for_test DIR PORT ARGS...: the shipped units, with the port, the
# binary (bound over the shipped path, as an install would put it) and the
# policy patched for the test.
units_for_test() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	sed "s/^ListenStream=.*/ListenStream=127.0.0.1:$port/" "$TOP/tunneld.socket" >"$dir/tunneld.socket"
	sed "s|^ExecStart=/usr/local/sbin/tunneld .*|ExecStart=/usr/local/sbin/tunneld $*|" "$TOP/tunneld@.service" >"$dir/tunneld@.service"
	grep -q "^ExecStart=/usr/local/sbin/tunneld $*\$" "$dir/tunneld@.service"
	printf 'BindReadOnlyPaths=%s:/usr/local/sbin/tunneld\n' "$TUNNELD" >>"$dir/tunneld@.service"
}

teardown() {
	[ -n "${MANAGER_DIR:-}" ] && "$PEERS/systemd-manager" stop "$MANAGER_DIR"
	stop_all
}

start_manager() {
	MANAGER_DIR=$BATS_TEST_TMPDIR/manager
	"$PEERS/systemd-manager" start "$MANAGER_DIR" "$@" >/dev/null
	# Active means listening; no probe connection, which would add a record of its own.
	wait_for "tunneld.socket active" "$PEERS/systemd-manager" run "$MANAGER_DIR" systemctl is-active --quiet tunneld.socket
}

in_manager() {
	"$PEERS/systemd-manager" run "$MANAGER_DIR" "$@"
}

@test "systemd-analyze verify: the shipped units are clean" {
	local dir=$BATS_TEST_TMPDIR/units
	mkdir -p "$dir"
	cp "$TOP/tunneld.socket" "$dir/"
	# verify checks that ExecStart's binary exists: point it at the built one.
	sed "s|/usr/local/sbin/tunneld|$TUNNELD|" "$TOP/tunneld@.service" >"$dir/tunneld@.service"
	run systemd-analyze verify --man=no "$dir/tunneld.socket" "$dir/tunneld@.service"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "a real systemd manager serves the shipped tunneld.socket and tunneld@.service; the journal has the record" {
	start_target http
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_for "journal record" sh -c "'$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat -u 'tunneld@*' | grep -q 'status=200'"
	run in_manager journalctl -o cat -u 'tunneld@*'
	[[ "$output" =~ 127\.0\.0\.1:[0-9]+\ -\>\ 127\.0\.0\.1:$TARGET_PORT\ status=200\ up=[1-9][0-9]*\ down=1[0-9][0-9]\  ]]
}

# journal_field N FIELD: FIELD of the N-th tunneld record (0-based).
journal_field() {
	in_manager journalctl -o json -u 'tunneld@*' SYSLOG_IDENTIFIER=tunneld |
		"$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[int(sys.argv[1])]).get(sys.argv[2], "<missing>"))' "$1" "$2"
}

@test "journal records carry TUNNELD_* fields with the real byte counts, and PRIORITY by outcome" {
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	head -c 12345 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	timeout 10 nc -N -X connect -x "127.0.0.1:$port" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/up" >"$BATS_TEST_TMPDIR/down"
	cmp "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/down"
	wait_for "record 1" sh -c "[ \"\$('$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat -u 'tunneld@*' SYSLOG_IDENTIFIER=tunneld | wc -l)\" -ge 1 ]"
	# A refusal (notice) and an upstream failure (warning).
	printf 'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 2" sh -c "[ \"\$('$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat -u 'tunneld@*' SYSLOG_IDENTIFIER=tunneld | wc -l)\" -ge 2 ]"
	stop_all # the target goes: its port now refuses
	printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n' "$TARGET_PORT" | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 3" sh -c "[ \"\$('$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat -u 'tunneld@*' SYSLOG_IDENTIFIER=tunneld | wc -l)\" -ge 3 ]"

	[[ "$(journal_field 0 TUNNELD_CLIENT)" =~ ^127\.0\.0\.1:[0-9]+$ ]]
	[ "$(journal_field 0 TUNNELD_TARGET)" = "127.0.0.1:$TARGET_PORT" ]
	[ "$(journal_field 0 TUNNELD_STATUS)" = 200 ]
	[ "$(journal_field 0 TUNNELD_BYTES_UP)" = 12345 ]
	[ "$(journal_field 0 TUNNELD_BYTES_DOWN)" = 12345 ]
	[[ "$(journal_field 0 TUNNELD_DURATION_MS)" =~ ^[0-9]+$ ]]
	[ "$(journal_field 0 TUNNELD_REASON)" = "" ]
	[ "$(journal_field 0 PRIORITY)" = 6 ]
	[[ "$(journal_field 0 MESSAGE)" == *"-> 127.0.0.1:$TARGET_PORT status=200 up=12345 down=12345 "* ]]

	[ "$(journal_field 1 TUNNELD_STATUS)" = 403 ]
	[ "$(journal_field 1 TUNNELD_REASON)" = "port not allowed" ]
	[ "$(journal_field 1 PRIORITY)" = 5 ]

	[ "$(journal_field 2 TUNNELD_STATUS)" = 502 ]
	[ "$(journal_field 2 TUNNELD_REASON)" = "connection refused by the target" ]
	[ "$(journal_field 2 PRIORITY)" = 4 ]
}
