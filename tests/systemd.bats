#!/usr/bin/env bats
# The shipped units under a real systemd manager, and systemd-analyze.

load helpers
load manager

teardown() {
	stop_manager
	stop_all
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
	# A name: the resolver thread runs under the unit's system call filter too.
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" "http://localhost:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_for "journal record" records_at_least 1
	run tunneld_records cat
	[[ "$output" =~ 127\.0\.0\.1:[0-9]+\ -\>\ localhost:$TARGET_PORT\ status=200\ up=[1-9][0-9]*\ down=1[0-9][0-9]\  ]]
	# The unit's system call filter leaves tunneld its own sandbox: no line says a part is missing.
	[[ "$output" != *sandbox:* ]]
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
	wait_for "record 1" records_at_least 1
	# A refusal (notice) and an upstream failure (warning).
	printf 'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 2" records_at_least 2
	stop_all # the target goes: its port now refuses
	printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n' "$TARGET_PORT" | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 3" records_at_least 3

	[[ "$(journal_field 0 TUNNELD_CLIENT)" =~ ^127\.0\.0\.1:[0-9]+$ ]]
	[ "$(journal_field 0 TUNNELD_TARGET)" = "127.0.0.1:$TARGET_PORT" ]
	[ "$(journal_field 0 TUNNELD_STATUS)" = 200 ]
	[ "$(journal_field 0 TUNNELD_BYTES_UP)" = 12345 ]
	[ "$(journal_field 0 TUNNELD_BYTES_DOWN)" = 12345 ]
	[[ "$(journal_field 0 TUNNELD_DURATION_MS)" =~ ^[0-9]+$ ]]
	[ "$(journal_field 0 TUNNELD_REASON)" = "" ]
	[ "$(journal_field 0 TUNNELD_PROTOCOL)" = http ]
	[ "$(journal_field 0 TUNNELD_SOCKS5_REPLY)" = "<missing>" ]
	[ "$(journal_field 0 PRIORITY)" = 6 ]
	[[ "$(journal_field 0 MESSAGE)" == *"-> 127.0.0.1:$TARGET_PORT status=200 up=12345 down=12345 "* ]]

	[ "$(journal_field 1 TUNNELD_STATUS)" = 403 ]
	[ "$(journal_field 1 TUNNELD_REASON)" = "port not allowed" ]
	[ "$(journal_field 1 PRIORITY)" = 5 ]

	[ "$(journal_field 2 TUNNELD_STATUS)" = 502 ]
	[ "$(journal_field 2 TUNNELD_REASON)" = "connection refused by the target" ]
	[ "$(journal_field 2 PRIORITY)" = 4 ]
}

@test "journal records: hostile bytes escaped in MESSAGE and the fields, userinfo never there, TUNNELD_USER" {
	local port
	port=$(free_port)
	htpasswd -cbB "$BATS_TEST_TMPDIR/users" alice 'alice pw' 2>/dev/null
	chmod 644 "$BATS_TEST_TMPDIR/users"
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=443 --auth-file=/etc/tunneld-users
	printf 'BindReadOnlyPaths=%s:/etc/tunneld-users\n' "$BATS_TEST_TMPDIR/users" >>"$BATS_TEST_TMPDIR/units/tunneld@.service"
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	printf 'CONNECT ex\033[31mam\177ple\377.test:443 HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 1" records_at_least 1
	printf 'CONNECT alice:S3cr3t@example.com:443 HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 2" records_at_least 2
	# A good user, refused by the built-in denies.
	printf 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n\r\n' "$(printf 'alice:alice pw' | base64)" |
		timeout 10 nc -N 127.0.0.1 "$port" >/dev/null
	wait_for "record 3" records_at_least 3
	[ "$(journal_field 0 TUNNELD_TARGET)" = 'ex\x1b[31mam\x7fple\xff.test:443' ]
	[[ "$(journal_field 0 MESSAGE)" == *' -> ex\x1b[31mam\x7fple\xff.test:443 status=400 '* ]]
	[ "$(journal_field 1 TUNNELD_TARGET)" = example.com:443 ]
	[ "$(journal_field 1 TUNNELD_REASON)" = "userinfo is not allowed in the authority" ]
	! tunneld_records json | grep -q S3cr3t || false
	[ "$(journal_field 1 TUNNELD_USER)" = "<missing>" ]
	[ "$(journal_field 2 TUNNELD_USER)" = alice ]
	[ "$(journal_field 2 TUNNELD_STATUS)" = 403 ]
	[[ "$(journal_field 2 MESSAGE)" == *"-> 127.0.0.1:443 status=403 "*" user=alice reason="* ]]
}

@test "systemd-analyze security --offline scores tunneld@.service at an exposure of 5.0 or lower, as its comment says" {
	local dir=$BATS_TEST_TMPDIR/units
	mkdir -p "$dir"
	cp "$TOP/tunneld@.service" "$dir/"
	run systemd-analyze security --offline=yes --no-pager "$dir/tunneld@.service"
	local exposure
	exposure=$(sed -n 's/.*Overall exposure level for tunneld@.*: \([0-9.]*\) .*/\1/p' <<<"$output")
	echo "exposure: $exposure" >&3
	[ -n "$exposure" ]
	awk -v e="$exposure" 'BEGIN { exit !(e <= 5.0) }'
	grep -q "^# native architecture. systemd-analyze security: $exposure " "$TOP/tunneld@.service"
}

@test "the real manager enforces the socket's MaxConnectionsPerSource= and MaxConnections=" {
	grep -q '^MaxConnections=[0-9]' "$TOP/tunneld.socket"
	grep -q '^MaxConnectionsPerSource=[0-9]' "$TOP/tunneld.socket"
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	sed -i -e 's/^MaxConnections=.*/MaxConnections=3/' -e 's/^MaxConnectionsPerSource=.*/MaxConnectionsPerSource=2/' \
		"$BATS_TEST_TMPDIR/units/tunneld.socket"
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	run held_tunnels_from "$port" 127.0.0.1 127.0.0.1 127.0.0.1 127.0.0.2 127.0.0.3
	# Two from 127.0.0.1, the third refused (per source); one from .2, then .3 refused (total 3).
	[ "$output" = "200 200 closed 200 closed" ]
}

@test "SOCKS5 under the real manager: a tunnel and a refusal, with TUNNELD_PROTOCOL and TUNNELD_SOCKS5_REPLY" {
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	head -c 4321 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	timeout 10 nc -N -X 5 -x "127.0.0.1:$port" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/up" >"$BATS_TEST_TMPDIR/down"
	cmp "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/down"
	wait_for "record 1" records_at_least 1
	run curl -sS --max-time 10 --socks5 "127.0.0.1:$port" "http://127.0.0.1:1/"
	[ "$status" -ne 0 ]
	wait_for "record 2" records_at_least 2
	[ "$(journal_field 0 TUNNELD_PROTOCOL)" = socks5 ]
	[ "$(journal_field 0 TUNNELD_SOCKS5_REPLY)" = 0x00 ]
	[ "$(journal_field 0 TUNNELD_TARGET)" = "127.0.0.1:$TARGET_PORT" ]
	[ "$(journal_field 0 TUNNELD_STATUS)" = 200 ]
	[ "$(journal_field 0 TUNNELD_BYTES_UP)" = 4321 ]
	[ "$(journal_field 0 TUNNELD_BYTES_DOWN)" = 4321 ]
	[ "$(journal_field 1 TUNNELD_PROTOCOL)" = socks5 ]
	[ "$(journal_field 1 TUNNELD_SOCKS5_REPLY)" = 0x02 ]
	[ "$(journal_field 1 TUNNELD_STATUS)" = 403 ]
	[ "$(journal_field 1 TUNNELD_REASON)" = "port not allowed" ]
	[[ "$(journal_field 1 MESSAGE)" == *"-> 127.0.0.1:1 status=403 "*" protocol=socks5 reply=0x02 reason=port not allowed" ]]
}

# access_lines N: the manager's squid-format log file has N lines.
access_lines() {
	[ "$(in_manager cat /var/log/tunneld/access.log 2>/dev/null | wc -l)" -eq "$1" ]
}

@test "the man page's log file drop-in (tunneld(8) EXAMPLES): every instance appends its squid-format record to one file" {
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 \
		--log=file:/var/log/tunneld/access.log --log-format=squid
	# As tunneld(8) EXAMPLES says: one dynamic user for every instance, and its log directory.
	printf 'User=tunneld\nLogsDirectory=tunneld\n' >>"$BATS_TEST_TMPDIR/units/tunneld@.service"
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	for n in 1 2 3; do
		[ "$(printf x | timeout 10 nc -N -X connect -x "127.0.0.1:$port" 127.0.0.1 "$TARGET_PORT")" = x ]
		wait_for "record $n" access_lines "$n"
	done
	run in_manager cat /var/log/tunneld/access.log
	[ "$(grep -cE "^[0-9]{10}\.[0-9]{3} +[0-9]+ 127\.0\.0\.1 TCP_TUNNEL/200 1 CONNECT 127\.0\.0\.1:$TARGET_PORT - HIER_DIRECT/127\.0\.0\.1 -$" <<<"$output")" -eq 3 ]
}

@test "a kernel that refuses Landlock: each record says it in TUNNELD_SANDBOX, and no line of its own doubles the journal" {
	start_target echo
	local port n
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	# ASAN_OPTIONS replaces the units' own, so it says again detect_leaks=0 (LeakSanitizer needs ptrace, which the unit forbids).
	printf 'BindReadOnlyPaths=%s:/usr/local/lib/old-kernel.so\nEnvironment=LD_PRELOAD=/usr/local/lib/old-kernel.so ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0\n' \
		"$TOP/build/tests/old-kernel.so" >>"$BATS_TEST_TMPDIR/units/tunneld@.service"
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	for n in 1 2; do
		[ "$(printf "t$n" | timeout 10 nc -N -X connect -x "127.0.0.1:$port" 127.0.0.1 "$TARGET_PORT")" = "t$n" ]
	done
	wait_for "two records" records_at_least 2
	# The ASan build has no seccomp filter to refuse (LeakSanitizer needs ptrace, which it would forbid).
	local missing='sandbox: no Landlock (Function not implemented); no seccomp filter (Invalid argument)'
	[ -z "${SANITIZER_LOG_DIR:-}" ] || missing='sandbox: no Landlock (Function not implemented)'
	[ "$(journal_field 0 TUNNELD_SANDBOX)" = "$missing" ]
	[ "$(journal_field 1 TUNNELD_SANDBOX)" = "$missing" ]
	[ "$(tunneld_records cat | wc -l)" -eq 2 ]
}

@test "watching: under the real manager a tunnel's title is in systemctl status, and systemctl stop on its instance ends it with its record" {
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	start_bg "$PYTHON" "$PEERS/holder.py" "$port" "$BATS_TEST_TMPDIR/held" "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	wait_for "the tunnel" grep -q '^HTTP/1.1 200 ' "$BATS_TEST_TMPDIR/held.reply"
	local client_port unit
	client_port=$(cat "$BATS_TEST_TMPDIR/held")
	unit=$(in_manager systemctl list-units --plain --no-legend "tunneld@*-127.0.0.1:$client_port.service" | cut -d' ' -f1)
	[[ $unit == tunneld@*-127.0.0.1:$port-127.0.0.1:$client_port.service ]]
	run in_manager systemctl status --no-pager --lines=0 "$unit"
	[[ $output == *"tunneld: - 127.0.0.1:$client_port -> 127.0.0.1:$TARGET_PORT relaying"* ]]
	# tunneld(8) "WATCHING AND ENDING TUNNELS": the instance name is enough to end it.
	in_manager systemctl stop "tunneld@*-127.0.0.1:$client_port.service"
	wait_for "its record" records_at_least 1
	run tunneld_records cat
	[[ $output == *"127.0.0.1:$client_port -> 127.0.0.1:$TARGET_PORT status=200 "*"reason=stopped by signal"* ]]
}

@test "--log-open under the real manager: TUNNELD_EVENT=open while the tunnel is live, and journalctl TUNNELD_ID= shows its life, open then close" {
	start_target echo
	local port
	port=$(free_port)
	units_for_test "$BATS_TEST_TMPDIR/units" "$port" --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 --log-open
	start_manager "$BATS_TEST_TMPDIR/units/tunneld.socket" "$BATS_TEST_TMPDIR/units/tunneld@.service"
	start_bg "$PYTHON" "$PEERS/holder.py" "$port" "$BATS_TEST_TMPDIR/held" "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	wait_for "the tunnel" grep -q '^HTTP/1.1 200 ' "$BATS_TEST_TMPDIR/held.reply"
	local client_port id
	client_port=$(cat "$BATS_TEST_TMPDIR/held")
	wait_for "the open record" sh -c "'$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat TUNNELD_EVENT=open | grep -q '127.0.0.1:$client_port'"
	id=$(in_manager journalctl -o json TUNNELD_EVENT=open | "$PYTHON" -c '
import json, sys
record = json.loads(sys.stdin.readline())
assert "TUNNELD_BYTES_UP" not in record and "TUNNELD_DURATION_MS" not in record, record
assert record["TUNNELD_STATUS"] == "200" and record["TUNNELD_PROTOCOL"] == "http", record
print(record["TUNNELD_ID"])')
	[[ $id =~ ^[0-9a-f]{32}$ ]]
	[ -z "$(in_manager journalctl -o cat TUNNELD_EVENT=close)" ]
	in_manager systemctl stop "tunneld@*-127.0.0.1:$client_port.service"
	wait_for "the close record" sh -c "[ -n \"\$('$PEERS/systemd-manager' run '$MANAGER_DIR' journalctl -o cat TUNNELD_EVENT=close)\" ]"
	run in_manager journalctl -o cat "TUNNELD_ID=$id"
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "127.0.0.1:$client_port -> 127.0.0.1:$TARGET_PORT status=200 event=open id=$id" ]
	[[ ${lines[1]} == "127.0.0.1:$client_port -> 127.0.0.1:$TARGET_PORT status=200 up=0 down=0 duration_ms="*" event=close id=$id reason=stopped by signal" ]]
}
