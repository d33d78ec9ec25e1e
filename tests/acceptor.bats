#!/usr/bin/env bats
# The Accept=no mode (tunneld(8) "ACCEPTOR"): the shipped
# tunneld-acceptor.socket and tunneld-acceptor.service under a real systemd
# manager (tests/peers/systemd-manager). One acceptor forks a process per
# tunnel; its limits, idle exit, reload, restart and stop.

load helpers
load manager

teardown() {
	stop_manager
	stop_all
}

# start_acceptor ARGS...: the shipped pair on a free port ($PROXY_PORT), with ARGS as tunneld's options.
start_acceptor() {
	PROXY_PORT=$(free_port)
	acceptor_units_for_test "$BATS_TEST_TMPDIR/units" "$PROXY_PORT" "$@"
	if [ -n "${UNIT_EXTRA:-}" ]; then printf '%s\n' "$UNIT_EXTRA" >>"$BATS_TEST_TMPDIR/units/tunneld-acceptor.service"; fi
	start_manager "$BATS_TEST_TMPDIR/units/tunneld-acceptor.socket" "$BATS_TEST_TMPDIR/units/tunneld-acceptor.service"
}

service_property() {
	in_manager systemctl show -p "$1" --value tunneld-acceptor.service
}

# tunneld_processes N: the manager has N tunneld processes (the acceptor and its tunnels), besides the forker.
tunneld_processes() {
	[ "$(in_manager pgrep -c -x tunneld)" -eq "$(($1 + $(in_manager pgrep -c -f '^tunneld: forker')))" ]
}

# echo_through TEXT: TEXT through a tunnel to the echo target; prints what came back.
echo_through() {
	printf '%s' "$1" | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT"
}

# cpu_ticks PID: user and system time of PID (in the manager), in clock ticks.
cpu_ticks() {
	in_manager cat "/proc/$1/stat" | awk '{ print $14 + $15 }'
}

# record_units: the _SYSTEMD_UNIT of each connection record, a line each.
record_units() {
	local n
	for n in $(seq 0 $(($(tunneld_records cat | grep -c ' status=') - 1))); do
		journal_field "$n" _SYSTEMD_UNIT
	done
}

# hold_tunnels SOURCE...: tests/peers/hold.py holds a tunnel from each SOURCE
# until the test ends; its verdicts land in $BATS_TEST_TMPDIR/held.
hold_tunnels() {
	start_bg sh -c 'exec env HOLD_UNTIL_KILLED=1 "$@" >"$0"' "$BATS_TEST_TMPDIR/held" \
		"$PYTHON" "$PEERS/hold.py" "$PROXY_PORT" "$TARGET_PORT" "$@"
}

journal_has() {
	tunneld_records cat | grep -qE -e "$1"
}

# open_long_tunnel: nc through the proxy to the sha target, fed by the test
# through a fifo ($LONG_FD); the answer lands in $BATS_TEST_TMPDIR/down.
open_long_tunnel() {
	mkfifo "$BATS_TEST_TMPDIR/up"
	start_bg sh -c 'exec timeout 60 nc -N -X connect -x "127.0.0.1:$1" 127.0.0.1 "$2" <"$3" >"$4"' \
		sh "$PROXY_PORT" "$SHA_PORT" "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/down"
	exec {LONG_FD}>"$BATS_TEST_TMPDIR/up"
}

# long_tunnel_first_half: the long tunnel, and the first MiB of the payload
# through it; sets ACCEPTOR_PID, the acceptor the socket started for it.
long_tunnel_first_half() {
	open_long_tunnel
	wait_for "the long tunnel's process" tunneld_processes 2
	ACCEPTOR_PID=$(service_property MainPID)
	[ "$ACCEPTOR_PID" -gt 0 ]
	head -c 1048576 "$BATS_TEST_TMPDIR/payload" >&"$LONG_FD"
}

# long_tunnel_rest: the rest of the 2 MiB payload; the target's sha256 of all of it, and the record.
long_tunnel_rest() {
	tail -c +1048577 "$BATS_TEST_TMPDIR/payload" >&"$LONG_FD"
	exec {LONG_FD}>&-
	wait_for "the long tunnel's answer" test -s "$BATS_TEST_TMPDIR/down"
	[ "$(cat "$BATS_TEST_TMPDIR/down")" = "$(sha_of "$BATS_TEST_TMPDIR/payload") 2097152" ]
	wait_for "its record" journal_has "-> 127\.0\.0\.1:$SHA_PORT status=200 up=2097152 "
}

# tunnels_while COMMAND...: 20 tunnels, one after another, while COMMAND runs; fails unless each echoed.
tunnels_while() {
	(
		for n in $(seq 20); do
			[ "$(echo_through "n$n")" = "n$n" ] || { echo "tunnel $n failed" >&2; exit 1; }
		done
	) &
	local tunnels=$!
	"$@"
	wait "$tunnels"
}

@test "systemd-analyze: the acceptor units verify clean, and the service's exposure is 1.5 or lower" {
	local dir=$BATS_TEST_TMPDIR/units
	mkdir -p "$dir"
	cp "$TOP/tunneld-acceptor.socket" "$dir/"
	sed "s|/usr/local/sbin/tunneld|$TUNNELD|" "$TOP/tunneld-acceptor.service" >"$dir/tunneld-acceptor.service"
	run systemd-analyze verify --man=no "$dir/tunneld-acceptor.socket" "$dir/tunneld-acceptor.service"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run systemd-analyze security --offline=yes --no-pager "$dir/tunneld-acceptor.service"
	local exposure
	exposure=$(sed -n 's/.*Overall exposure level for tunneld-acceptor.*: \([0-9.]*\) .*/\1/p' <<<"$output")
	echo "exposure: $exposure" >&3
	awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }'
}

@test "the acceptor serves curl, nc -X connect and ssh, one process per tunnel under one acceptor; the journal has each record" {
	start_target http
	local http_port=$TARGET_PORT
	start_target echo
	start_sshd "$BATS_TEST_TMPDIR/ssh"
	start_acceptor --allow-port=$TARGET_PORT,$http_port,$SSHD_PORT --allow-dest=127.0.0.1/32
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" "http://localhost:$http_port/"
	[ "$output" = "hello through the tunnel" ]
	local acceptor
	acceptor=$(service_property MainPID)
	[ "$acceptor" -gt 0 ]
	head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/payload"
	timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/payload" >"$BATS_TEST_TMPDIR/back"
	cmp "$BATS_TEST_TMPDIR/payload" "$BATS_TEST_TMPDIR/back"
	run timeout 30 ssh "${SSH_OPTIONS[@]}" -o ProxyCommand="nc -X connect -x 127.0.0.1:$PROXY_PORT %h %p" \
		-p "$SSHD_PORT" root@127.0.0.1 'echo ran-over-ssh'
	[ "$output" = ran-over-ssh ]
	wait_for "three records" records_at_least 3
	run tunneld_records cat
	[[ "$output" =~ -\>\ localhost:$http_port\ status=200\  ]]
	[[ "$output" =~ -\>\ 127\.0\.0\.1:$TARGET_PORT\ status=200\ up=200000\ down=200000\  ]]
	[[ "$output" =~ -\>\ 127\.0\.0\.1:$SSHD_PORT\ status=200\  ]]
	# The same acceptor throughout; each record from a process of its own, none from the acceptor.
	[ "$(service_property MainPID)" = "$acceptor" ]
	run journal_field 1 _PID
	[ "$output" != "$acceptor" ]
	[ "$(journal_field 0 _PID)" != "$(journal_field 1 _PID)" ]
	# journald names the unit from the sender's cgroup when it reads the record,
	# and misses it if the tunnel has exited by then (tunneld(8) CAVEATS): a
	# record names the acceptor's unit or none, never another.
	run record_units
	[[ "$output" =~ ^(tunneld-acceptor\.service|<missing>)$'\n'(tunneld-acceptor\.service|<missing>)$'\n'(tunneld-acceptor\.service|<missing>)$ ]]
	# So the unit is read where it cannot race: a live tunnel's cgroup is the acceptor's.
	wait_for "tunnels gone, acceptor left" tunneld_processes 1
	hold_tunnels 127.0.0.1
	wait_for "the held tunnel" grep -qx 200 "$BATS_TEST_TMPDIR/held"
	local tunnel cgroup
	tunnel=$(in_manager pgrep -P "$acceptor" -f '^tunneld: - ')
	cgroup=$(in_manager sed -n 's/^0:://p' "/proc/$tunnel/cgroup")
	[[ "$cgroup" == *"$(service_property ControlGroup)" ]]
	[ "$cgroup" = "$(in_manager sed -n 's/^0:://p' "/proc/$acceptor/cgroup")" ]
	kill "$(tail -n 1 "$PIDS_FILE")" # hold.py: its tunnel ends, with a record
	# Under the unit's own filter, each tunnel still has its Landlock and seccomp sandbox: no line says one is missing.
	wait_for "four records" records_at_least 4
	! tunneld_records cat | grep -q 'sandbox:' || false
	wait_for "tunnels gone, acceptor left" tunneld_processes 1
}

@test "the acceptor's total and per-source limits turn connections away, each with a record that says which limit" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 --max-tunnels=3 --max-tunnels-per-source=2
	run held_tunnels_from "$PROXY_PORT" 127.0.0.1 127.0.0.1 127.0.0.1 127.0.0.2 127.0.0.3
	# Two from 127.0.0.1, the third turned away (per source); one from .2, then .3 turned away (total 3).
	[ "$output" = "200 200 closed 200 closed" ]
	wait_for "two turned away" journal_has '127\.0\.0\.3:[0-9]+ -> - status=- .*reason=turned away: 3 tunnels already \(--max-tunnels\)$'
	run tunneld_records cat
	# Each waited its second for a slot (tunneld(8) "ACCEPTOR") before it was turned away.
	[ "$(grep -cE '127\.0\.0\.1:[0-9]+ -> - status=- up=0 down=0 duration_ms=1[0-9]{3} reason=turned away: 2 tunnels already from this address \(--max-tunnels-per-source\)$' <<<"$output")" -eq 1 ]
	# Once the held tunnels are gone, their slots are free at once.
	wait_for "tunnels gone" tunneld_processes 1
	[ "$(echo_through again)" = again ]
}

@test "an idle acceptor exits after --exit-idle-time, and the socket starts it again for the next tunnel" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 --exit-idle-time=1
	[ "$(echo_through first)" = first ]
	local first
	first=$(service_property ExecMainPID)
	wait_for "idle exit" eval '[ "$(service_property ActiveState)" = inactive ]'
	[ "$(service_property Result)" = success ]
	[ "$(in_manager systemctl is-active tunneld-acceptor.socket)" = active ]
	[ "$(echo_through second)" = second ]
	# A new acceptor served it (by now it may have gone idle again: not its state, its pid).
	local second
	second=$(service_property ExecMainPID)
	[ "$second" -gt 0 ]
	[ "$second" != "$first" ]
}

@test "reload: a tunnel carries its data across it (sha256 equal), no connection is refused, the rules file is read again; a broken one is refused and the old rules serve on" {
	make_file "$BATS_TEST_TMPDIR/payload" 2
	start_target http
	local http_port=$TARGET_PORT
	start_target sha
	SHA_PORT=$TARGET_PORT
	start_target echo
	mkdir -m 0755 "$BATS_TEST_TMPDIR/conf"
	printf 'allow to 127.0.0.1/32 port %s, %s, %s\n' "$SHA_PORT" "$TARGET_PORT" "$http_port" >"$BATS_TEST_TMPDIR/conf/rules"
	chmod 0644 "$BATS_TEST_TMPDIR/conf/rules"
	UNIT_EXTRA="BindReadOnlyPaths=$BATS_TEST_TMPDIR/conf:/run/tunneld-conf"
	start_acceptor --rules=/run/tunneld-conf/rules
	long_tunnel_first_half
	local acceptor=$ACCEPTOR_PID

	run raw_request "CONNECT 127.0.0.1:$http_port HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 200 "* ]]
	# The http target's port leaves the rules; the reload takes it in, with tunnels going on meanwhile.
	printf 'allow to 127.0.0.1/32 port %s, %s\n' "$SHA_PORT" "$TARGET_PORT" >"$BATS_TEST_TMPDIR/conf/rules"
	tunnels_while in_manager systemctl reload tunneld-acceptor.service
	wait_for "reloaded" journal_has '^acceptor: reloaded; [1-3] tunnels carried on$'
	[ "$(service_property MainPID)" = "$acceptor" ]
	run raw_request "CONNECT 127.0.0.1:$http_port HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 403 "* ]]

	# A broken file: the check refuses the reload, systemctl reload says so, and the rules read before still decide.
	echo 'allow to nowhere at all' >"$BATS_TEST_TMPDIR/conf/rules"
	run in_manager systemctl reload tunneld-acceptor.service
	[ "$status" -ne 0 ]
	[[ $output == *"Job for tunneld-acceptor.service failed"* ]]
	journal_has 'acceptor: reload refused: the options or their files do not check'
	run in_manager journalctl -u tunneld-acceptor.service -o cat
	[[ $output == *"tunneld: --reload: the acceptor refused the reload, and serves on with the options it had; its log says why"* ]]
	[ "$(service_property MainPID)" = "$acceptor" ]
	[ "$(service_property ActiveState)" = active ]
	run raw_request "CONNECT 127.0.0.1:$http_port HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 403 "* ]]
	[ "$(echo_through still)" = still ]

	long_tunnel_rest
}

@test "restart: the acceptor is replaced, a tunnel in flight runs to its end (sha256 equal), and no connection is refused" {
	make_file "$BATS_TEST_TMPDIR/payload" 2
	start_target sha
	SHA_PORT=$TARGET_PORT
	start_target echo
	start_acceptor --allow-port=$SHA_PORT,$TARGET_PORT --allow-dest=127.0.0.1/32
	long_tunnel_first_half
	local acceptor=$ACCEPTOR_PID
	tunnels_while in_manager systemctl restart tunneld-acceptor.service
	[ "$(service_property MainPID)" != "$acceptor" ]
	[ "$(service_property ActiveState)" = active ]
	long_tunnel_rest
}

@test "stop: every tunnel is ended, each with its record, and no tunneld process is left" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	hold_tunnels 127.0.0.1 127.0.0.1 127.0.0.1
	# Echoed, not just forked: a tunnel stopped before its echo would have another record.
	wait_for "three tunnels" grep -qx '200 200 200' "$BATS_TEST_TMPDIR/held"
	tunneld_processes 4
	in_manager systemctl stop tunneld-acceptor.service
	[ "$(service_property ActiveState)" = inactive ]
	[ -z "$(in_manager pgrep -x tunneld)" ]
	wait_for "three records" records_at_least 3
	[ "$(tunneld_records cat | grep -c "status=200 up=4 down=4 duration_ms=[0-9]* reason=stopped by signal$")" -eq 3 ]
}

@test "a burst of 2,000 connections, 128 at a time: each served or turned away with a record, no zombie, and the acceptor serves on" {
	start_target echo
	# 8 tunnels, 7 of them held through the burst: one slot for 128 at a
	# time, 64 connections waiting for it, and the others turned away at
	# once, however fast a tunnel is.
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 --max-tunnels=8 --max-tunnels-per-source=0
	run timeout 180 "$PYTHON" "$PEERS/burst.py" "$PROXY_PORT" "$TARGET_PORT" 127.0.0.1:7 2000@128@127.0.0.1+127.0.0.2
	echo "$output" >&3
	[[ "$output" =~ ^held\ 7/7\ served\ ([0-9]+)\ refused\ ([0-9]+)\ unreachable\ 0$ ]]
	local served=${BASH_REMATCH[1]} refused=${BASH_REMATCH[2]}
	[ $((served + refused)) -eq 2000 ]
	[ "$served" -gt 0 ]
	[ "$refused" -gt 0 ]
	wait_for "tunnels gone" tunneld_processes 1
	[ -z "$(in_manager ps -e -o stat= | grep '^Z')" ]
	wait_for "every record" records_at_least 2007
	[ "$(tunneld_records cat | grep -c 'reason=turned away: 8 tunnels already (--max-tunnels)$')" -eq "$refused" ]
	[ "$(tunneld_records cat | grep -c ' status=200 up=4 down=4 ')" -eq "$((served + 7))" ]
	[ "$(echo_through after)" = after ]
}

@test "out of file descriptors, the acceptor backs off without spinning, and serves the connection that waited once it has them" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	[ "$(echo_through first)" = first ]
	local acceptor lowest_free=0 before
	acceptor=$(service_property MainPID) # a pid in the manager's namespace
	while in_manager test -e "/proc/$acceptor/fd/$lowest_free"; do lowest_free=$((lowest_free + 1)); done
	before=$(cpu_ticks "$acceptor")
	# accept() now has no descriptor number under the limit to give.
	in_manager prlimit --pid "$acceptor" --nofile=$lowest_free:
	start_bg sh -c 'printf waited | timeout 30 nc -N -X connect -x "127.0.0.1:$1" 127.0.0.1 "$2" >"$3"' \
		sh "$PROXY_PORT" "$TARGET_PORT" "$BATS_TEST_TMPDIR/waited"
	wait_for "backing off to a second" journal_has '^acceptor: accept: Too many open files; accepting again in 1000 ms$'
	# Seven backoffs, 10 ms doubling to a second, took two seconds: a spin would have used them all.
	[ $(($(cpu_ticks "$acceptor") - before)) -lt 20 ]
	[ ! -s "$BATS_TEST_TMPDIR/waited" ]
	in_manager prlimit --pid "$acceptor" --nofile=1024:
	wait_for "the connection that waited" grep -qx waited "$BATS_TEST_TMPDIR/waited"
	[ "$(service_property MainPID)" = "$acceptor" ]
}

@test "out of processes (LimitNPROC=), the acceptor turns away what it cannot fork for, backs off, and serves again" {
	start_target echo
	# The acceptor and three tunnels: the service's dynamic user may have no more processes.
	UNIT_EXTRA=LimitNPROC=4
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 --max-tunnels-per-source=0
	run timeout 120 "$PYTHON" "$PEERS/burst.py" "$PROXY_PORT" "$TARGET_PORT" 127.0.0.1:0 300@32@127.0.0.1
	echo "$output" >&3
	wait_for "tunnels gone" tunneld_processes 1
	run tunneld_records cat
	grep -qE '^acceptor: fork: Resource temporarily unavailable; accepting again in [0-9]+ ms$' <<<"$output"
	grep -qE -- '-> - status=- up=0 down=0 duration_ms=0 reason=turned away: the acceptor could not fork$' <<<"$output"
	[ "$(service_property ActiveState)" = active ]
	[ "$(echo_through after)" = after ]
}

# ---- from an outside review: each of these failed before its fix ----

# acceptor_pid: this test's acceptor, which systemd-socket-activate became (a reload keeps the pid);
# fails if that process is gone or is no acceptor (its title says).
acceptor_pid() {
	tr '\0' ' ' <"/proc/$PROXY_PID/cmdline" | grep -q '^tunneld: acceptor, ' && echo "$PROXY_PID"
}

# reload_outcomes: how many reloads the log says were done or refused.
reload_outcomes() {
	grep -cE '^tunneld: acceptor: (reloaded;|reload refused:)' "$LOG" || true
}

@test "a rules file replaced again and again while reloads run: every reload serves what its check read, and the acceptor lives" {
	start_target echo
	printf 'allow to 127.0.0.1/32 port %s\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/good"
	echo 'this line is not a rule' >"$BATS_TEST_TMPDIR/bad"
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/rules"
	ACCEPTOR=1 start_proxy --rules="$BATS_TEST_TMPDIR/rules"
	[ "$(printf first | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = first ]
	local acceptor
	acceptor=$(acceptor_pid)
	# Good and broken by turns, each by rename, for as long as the reloads go on.
	start_bg sh -c 'while :; do cp "$1/good" "$1/next" && mv "$1/next" "$1/rules"; cp "$1/bad" "$1/next" && mv "$1/next" "$1/rules"; done' \
		sh "$BATS_TEST_TMPDIR"
	local writer n
	writer=$(tail -n 1 "$PIDS_FILE")
	for n in $(seq 30); do
		kill -HUP "$acceptor"
		wait_for "reload $n done or refused" eval '[ "$(reload_outcomes)" -ge $n ]'
	done
	kill -- "-$writer"
	wait_for "the writer gone" eval '! kill -0 "$writer" 2>/dev/null'
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/rules"
	kill -0 "$acceptor"
	[ "$(printf after | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = after ] || {
		cat "$LOG" >&2
		false
	}
}

@test "a tunnel forked after a reload has neither SIGCHLD nor SIGUSR1 blocked, as one forked before it" {
	start_target echo
	printf 'allow to 127.0.0.1/32 port %s\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/rules"
	ACCEPTOR=1 start_proxy --rules="$BATS_TEST_TMPDIR/rules"
	[ "$(printf first | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = first ]
	local acceptor tunnel blocked
	acceptor=$(acceptor_pid)
	kill -HUP "$acceptor"
	wait_for "reloaded" grep -q '^tunneld: acceptor: reloaded; 0 tunnels carried on$' "$LOG"
	hold_tunnels 127.0.0.1
	# Read once it has echoed: between fork and serving, the mask may still be changing.
	wait_for "the tunnel" grep -qx 200 "$BATS_TEST_TMPDIR/held"
	tunnel=$(pgrep -P "$acceptor" -f '^tunneld: - ')
	# Its name, not "exe", after executing /proc/self/exe (the kernel keeps 15 characters).
	[ "$(cat "/proc/$acceptor/comm")" = "$(basename "$TUNNELD" | cut -c1-15)" ]
	blocked=$(awk '/^SigBlk:/ { print $2 }' "/proc/$tunnel/status")
	echo "SigBlk $blocked" >&3
	[ $((0x$blocked & (1 << (17 - 1) | 1 << (10 - 1)))) -eq 0 ] # SIGCHLD is 17, SIGUSR1 10
}

@test "a pid listed three times in the table a reload hands over takes one slot, not three" {
	start_target echo
	PROXY_PORT=$(free_port)
	# An acceptor that already has a child (a sleep) and is told of it thrice, as a reload would tell it.
	cat >"$BATS_TEST_TMPDIR/launch.py" <<'PY'
import os, socket, sys
tunneld, port, target, log = sys.argv[1:5]
listener = socket.socket()
listener.bind(("127.0.0.1", int(port)))
listener.listen(16)
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
sleeper = os.fork()
if sleeper == 0:
    os.execvp("sleep", ["sleep", "60"])
os.dup2(os.open(log, os.O_WRONLY | os.O_APPEND), 2)
environment = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()),
                   TUNNELD_ACCEPTOR_TUNNELS=",".join(["%d/127.0.0.9" % sleeper] * 3))
os.execve(tunneld, [tunneld, "--log=stderr", "--allow-port=" + target, "--allow-dest=127.0.0.1/32",
                    "--max-tunnels=3"], environment)
PY
	start_bg "$PYTHON" "$BATS_TEST_TMPDIR/launch.py" "$TUNNELD" "$PROXY_PORT" "$TARGET_PORT" "$LOG"
	wait_for "the table taken" grep -q '^tunneld: acceptor: reloaded; 1 tunnels carried on$' "$LOG"
	run held_tunnels_from "$PROXY_PORT" 127.0.0.1 127.0.0.1 127.0.0.1
	[ "$output" = "200 200 closed" ]
}

@test "a reload asked for while an earlier reload's check runs is not lost: the last file is the one in force" {
	start_target echo
	local port2 port3
	port2=$(free_port)
	port3=$(free_port)
	start_target echo --port "$port2"
	start_target echo --port "$port3"
	rules() { printf 'allow to 127.0.0.1/32 port %s\n' "$@" >"$BATS_TEST_TMPDIR/next" && mv "$BATS_TEST_TMPDIR/next" "$BATS_TEST_TMPDIR/rules"; }
	rules "$TARGET_PORT, $port2"
	mkfifo "$BATS_TEST_TMPDIR/gate"
	PROXY_ENV="LD_PRELOAD=$TOP/build/tests/stuck-check.so STUCK_CHECK_GATE=$BATS_TEST_TMPDIR/gate ASAN_OPTIONS=verify_asan_link_order=0"
	ACCEPTOR=1 start_proxy --rules="$BATS_TEST_TMPDIR/rules"
	[ "$(printf first | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$port2")" = first ]
	local acceptor first_check
	acceptor=$(acceptor_pid)
	# "Add carol": port3 joins; its check waits at the gate.
	rules "$TARGET_PORT, $port2, $port3"
	kill -HUP "$acceptor"
	wait_for "the first check" pgrep -P "$acceptor" -f -- --check
	first_check=$(pgrep -P "$acceptor" -f -- --check)
	# "Remove bob": port2 leaves, asked for while the first check still runs.
	rules "$TARGET_PORT, $port3"
	kill -HUP "$acceptor"
	wait_for "a check of the later file" eval '[ -n "$(pgrep -P "$acceptor" -f -- --check)" ] && [ "$(pgrep -P "$acceptor" -f -- --check)" != "$first_check" ]'
	timeout 10 sh -c ': >"$1"' sh "$BATS_TEST_TMPDIR/gate"
	wait_for "reloaded" grep -q '^tunneld: acceptor: reloaded; 0 tunnels carried on$' "$LOG"
	run raw_request "CONNECT 127.0.0.1:$port2 HTTP/1.1\r\n\r\n"
	[[ "$output" == "HTTP/1.1 403 "* ]]
	[ "$(printf third | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$port3")" = third ]
	[ "$(grep -c '^tunneld: acceptor: reload' "$LOG")" -eq 1 ]
}

@test "a reload whose check hangs is refused after 30 s, the check killed, and the acceptor serves all along" {
	start_target echo
	printf 'allow to 127.0.0.1/32 port %s\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/rules"
	# The shim is no ASan runtime, and need not come first.
	PROXY_ENV="LD_PRELOAD=$TOP/build/tests/stuck-check.so ASAN_OPTIONS=verify_asan_link_order=0"
	ACCEPTOR=1 start_proxy --rules="$BATS_TEST_TMPDIR/rules"
	[ "$(printf before | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = before ]
	local acceptor check
	acceptor=$(acceptor_pid)
	kill -HUP "$acceptor"
	wait_for "the check" pgrep -P "$acceptor" -f -- --check
	check=$(pgrep -P "$acceptor" -f -- --check)
	[ "$(printf during | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = during ]
	WAIT_TENTHS=450 wait_for "the refusal" grep -q '^tunneld: acceptor: reload refused: tunneld --check ran past 30 s and was killed; still serving with the options it had$' "$LOG"
	wait_for "the check gone" eval '! kill -0 "$check"'
	[ "$(acceptor_pid)" = "$acceptor" ]
	[ "$(printf after | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = after ]
	[ "$(grep -c '^tunneld: acceptor: reload' "$LOG")" -eq 1 ]
}

# ---- from the second outside review: each of these failed before its fix ----

# shipped_limits: the --max-tunnels and --max-tunnels-per-source of the shipped service's ExecStart= line.
shipped_limits() {
	grep -o -- '--max-tunnels=[0-9]* --max-tunnels-per-source=[0-9]*' "$TOP/tunneld-acceptor.service"
}

@test "with the shipped limits, 2,000 tunnels from one address 16 at a time are all served, and a 33rd held from it is turned away after its second's wait" {
	start_target echo
	# shellcheck disable=SC2046
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32 $(shipped_limits)
	[ "$(shipped_limits)" = "--max-tunnels=256 --max-tunnels-per-source=32" ]
	run timeout 180 "$PYTHON" "$PEERS/burst.py" "$PROXY_PORT" "$TARGET_PORT" "" 2000@16@127.0.0.1
	echo "$output" >&3
	[ "$output" = "held 0/0 served 2000 refused 0 unreachable 0" ]
	wait_for "tunnels gone" tunneld_processes 1
	# The limit still holds for tunnels that are live: 32 held, the 33rd turned away after its wait.
	run held_tunnels_from "$PROXY_PORT" $(printf '127.0.0.1 %.0s' $(seq 33))
	[ "$output" = "$(printf '200 %.0s' $(seq 32))closed" ]
	wait_for "its record" journal_has '127\.0\.0\.1:[0-9]+ -> - status=- up=0 down=0 duration_ms=[0-9]+ reason=turned away: 32 tunnels already from this address \(--max-tunnels-per-source\)$'
	# It was turned away only after its second's wait for a slot, which the record's duration counts.
	local waited
	waited=$(tunneld_records cat | grep -oE 'duration_ms=[0-9]+ reason=turned away: 32 tunnels' | grep -oE '[0-9]+' | head -1)
	[ "$waited" -ge 1000 ]
}

@test "tunnels whose client sent urgent data and left do not hold the acceptor's slots" {
	start_acceptor --allow-port=1-65535 --allow-dest=127.0.0.1/32 --max-tunnels=3
	local n
	for n in 1 2 3; do
		start_bg sh -c 'exec "$1" "$2" urgent-down "$3" >"$4"' sh "$PYTHON" "$PEERS/faults.py" "$PROXY_PORT" "$BATS_TEST_TMPDIR/urgent$n"
	done
	for n in 1 2 3; do
		WAIT_TENTHS=300 wait_for "urgent client $n" grep -q 'then eof' "$BATS_TEST_TMPDIR/urgent$n"
		[ "$(cat "$BATS_TEST_TMPDIR/urgent$n")" = "client: received hello-
client: received !world, then eof" ]
	done
	wait_for "three records" eval '[ "$(tunneld_records cat | grep -c "status=200 up=0 down=65548 ")" -eq 3 ]'
	start_target echo
	[ "$(echo_through fourth)" = fourth ]
	wait_for "tunnels gone" tunneld_processes 1
}

@test "stop ends every tunnel of the service, each with its record, after a restart and after a crash" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	local first second n
	# hold N: one tunnel held open until the test ends; its verdict in held$N.
	hold() {
		start_bg sh -c 'exec env HOLD_UNTIL_KILLED=1 "$@" >"$0"' "$BATS_TEST_TMPDIR/held$1" \
			"$PYTHON" "$PEERS/hold.py" "$PROXY_PORT" "$TARGET_PORT" 127.0.0.1
		wait_for "held tunnel $1" grep -qx 200 "$BATS_TEST_TMPDIR/held$1"
	}
	hold 1
	first=$(service_property MainPID)
	in_manager systemctl restart tunneld-acceptor.service
	hold 2
	second=$(service_property MainPID)
	[ "$second" != "$first" ]
	# A crash: the manager starts a third acceptor (Restart=on-failure). SIGKILL, which no sanitizer
	# intercepts: the ASan build reports a SIGSEGV sent by kill(1) as a fault of its own.
	in_manager kill -KILL "$second"
	wait_for "a third acceptor" eval '[ "$(service_property MainPID)" -gt 0 ] && [ "$(service_property MainPID)" != "$second" ]'
	hold 3
	tunneld_processes 4
	# The restart and the crash each left tunnels running, as they should; the stop leaves none.
	local left_before
	left_before=$(in_manager journalctl -u tunneld-acceptor.service | grep -c 'remains running after unit stopped')
	[ "$left_before" -ge 1 ]
	in_manager systemctl stop tunneld-acceptor.service
	[ "$(service_property ActiveState)" = inactive ]
	[ -z "$(in_manager pgrep -x tunneld)" ]
	wait_for "three records" eval '[ "$(tunneld_records cat | grep -c "status=200 up=4 down=4 duration_ms=[0-9]* reason=stopped by signal$")" -eq 3 ]'
	[ "$(in_manager journalctl -u tunneld-acceptor.service | grep -c 'remains running after unit stopped')" -eq "$left_before" ]
}

@test "a log sink that takes nothing stalls neither the acceptor's accepting nor its stop" {
	start_target echo
	# The acceptor's fd 2 a full pipe nobody reads; one tunnel held, so the next connections are turned away and recorded.
	cat >"$BATS_TEST_TMPDIR/stuck.py" <<'PY'
import fcntl, os, signal, socket, subprocess, sys, time
tunneld, target = sys.argv[1:3]
full, sink = os.pipe()
fcntl.fcntl(sink, fcntl.F_SETFL, os.O_NONBLOCK)
try:
    while True:
        os.write(sink, b"\0" * 65536)
except BlockingIOError:
    pass
fcntl.fcntl(sink, fcntl.F_SETFL, 0)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
port = listener.getsockname()[1]
def launch():
    os.dup2(listener.fileno(), 3)
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
proc = subprocess.Popen([tunneld, "--log=stderr", "--allow-port=" + target, "--allow-dest=127.0.0.1/32",
                         "--max-tunnels=1"], stderr=sink, preexec_fn=launch, pass_fds=(3,))
os.close(sink)
def tunnel(word, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n%s" % (target.encode(), word))
    reply = b""
    while not reply.endswith(word):
        data = s.recv(4096)
        if not data:
            return s, "closed"
        reply += data
    return s, "echoed"
held, verdict = tunnel(b"held")
print("held", verdict, flush=True)
if len(sys.argv) > 3 and sys.argv[3] == "reload":
    # Reloaded with the tunnel held: it is carried on, and its end must still free its slot.
    # The acceptor executes itself anew with the tunnels it holds in its
    # environment: that place grows, though a title clears its strings at once.
    environment_bytes = len(open("/proc/%d/environ" % proc.pid, "rb").read())
    os.kill(proc.pid, signal.SIGHUP)
    for _ in range(1000):
        if len(open("/proc/%d/environ" % proc.pid, "rb").read()) > environment_bytes:
            break
        time.sleep(0.01)
    else:
        sys.exit("no reload")
    print("reloaded", flush=True)
else:
    # Over the limit: each waits its second, is turned away, and its record meets the full pipe.
    turned = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    for s in turned:
        print("turned away", "closed" if s.recv(1) == b"" else "answered", flush=True)
held.close()  # its slot frees once its child says so, though its own record is stuck in the pipe too
_, verdict = tunnel(b"after")
print("next tunnel", verdict, flush=True)
started = time.monotonic()
proc.terminate()
try:
    proc.wait(timeout=10)
    print("stopped", "in time" if time.monotonic() - started < 5 else "late", flush=True)
except subprocess.TimeoutExpired:
    proc.kill()
    print("stop ignored", flush=True)
PY
	# In a session of its own, so that teardown ends the acceptor too if it hangs.
	start_bg sh -c 'exec "$@" >"$0"' "$BATS_TEST_TMPDIR/seen" "$PYTHON" "$BATS_TEST_TMPDIR/stuck.py" "$TUNNELD" "$TARGET_PORT"
	WAIT_TENTHS=300 wait_for "the stop" grep -q '^stop' "$BATS_TEST_TMPDIR/seen" || { cat "$BATS_TEST_TMPDIR/seen" >&2; false; }
	[ "$(cat "$BATS_TEST_TMPDIR/seen")" = "held echoed
turned away closed
turned away closed
turned away closed
next tunnel echoed
stopped in time" ]
	# Across a reload: the tunnel carried on still says when it ended, its process stuck on its record.
	stop_all
	start_target echo
	start_bg sh -c 'exec "$@" >"$0"' "$BATS_TEST_TMPDIR/seen" "$PYTHON" "$BATS_TEST_TMPDIR/stuck.py" "$TUNNELD" "$TARGET_PORT" reload
	WAIT_TENTHS=300 wait_for "the stop" grep -q '^stop' "$BATS_TEST_TMPDIR/seen" || { cat "$BATS_TEST_TMPDIR/seen" >&2; false; }
	[ "$(cat "$BATS_TEST_TMPDIR/seen")" = "held echoed
reloaded
next tunnel echoed
stopped in time" ]
}

# ---- deployed as an admin would (tunneld(8) ACCEPTOR; the rest of it, credentials and all, on a
# booted Debian 12 in package.bats, since the tests' manager cannot hand a dynamic user its credentials) ----

@test "deployment: a kernel that refuses Landlock is said once by the acceptor, at notice, not once per tunnel" {
	start_target echo
	# ASAN_OPTIONS replaces the units' own, so it says again detect_leaks=0 (LeakSanitizer needs ptrace, which the unit forbids).
	UNIT_EXTRA="BindReadOnlyPaths=$TOP/build/tests/old-kernel.so:/usr/local/lib/old-kernel.so
Environment=LD_PRELOAD=/usr/local/lib/old-kernel.so ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	local n
	for n in 1 2 3; do [ "$(echo_through "t$n")" = "t$n" ]; done
	wait_for "three records" records_at_least 3
	run in_manager journalctl -o json SYSLOG_IDENTIFIER=tunneld
	[ "$(grep -c 'sandbox: no Landlock' <<<"$output")" -eq 1 ]
	[ "$(grep -c TUNNELD_SANDBOX <<<"$output")" -eq 0 ]
	run in_manager journalctl -p notice..notice -o cat SYSLOG_IDENTIFIER=tunneld
	# The ASan build has no seccomp filter to refuse (LeakSanitizer needs ptrace, which it would forbid).
	local missing='no Landlock (Function not implemented); no seccomp filter (Invalid argument)'
	[ -z "${SANITIZER_LOG_DIR:-}" ] || missing='no Landlock (Function not implemented)'
	[ "$(grep -cxF "acceptor: sandbox: $missing: every tunnel runs without it (tunneld(8) \"Sandbox\")" <<<"$output")" -eq 1 ]
}

@test "systemctl start returns only once the acceptor serves (Type=notify): not while its process is held before it accepts" {
	start_target echo
	start_acceptor --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32
	# The acceptor's process stops itself before tunneld is executed, so its
	# READY=1 can come only when the test lets it go on.
	sed -i "s|^ExecStart=/usr/local/sbin/tunneld |ExecStart=/bin/sh -c 'kill -STOP \$\$\$\$ \&\& exec \"\$\$0\" \"\$\$@\"' /usr/local/sbin/tunneld |" \
		"$MANAGER_DIR/units/tunneld-acceptor.service"
	grep -q "^ExecStart=/bin/sh -c 'kill -STOP" "$MANAGER_DIR/units/tunneld-acceptor.service"
	in_manager systemctl daemon-reload
	timeout 60 "$PEERS/systemd-manager" run "$MANAGER_DIR" systemctl start tunneld-acceptor.service &
	local starting=$!
	process_stopped() {
		local pid
		pid=$(service_property MainPID)
		[ "$pid" -gt 0 ] && [ "$(in_manager awk '{ print $3 }' "/proc/$pid/stat")" = T ]
	}
	wait_for "the acceptor's process, held" process_stopped
	# Held: systemctl start has not returned, and the unit is still activating.
	kill -0 "$starting"
	[ "$(service_property ActiveState)" = activating ]
	in_manager kill -CONT "$(service_property MainPID)"
	wait "$starting"
	# Returned: the acceptor said it serves, and it does, at once.
	[ "$(service_property ActiveState)" = active ]
	[ -n "$(service_property StatusText)" ]
	[ "$(echo_through ready)" = ready ]
}

@test "watching: systemctl status shows the acceptor's counts (tunnels, addresses, waiting, turned away, when its files were read, a refused reload) and its title" {
	start_target echo
	mkdir -m 0755 "$BATS_TEST_TMPDIR/conf"
	printf 'allow to 127.0.0.1/32 port %s\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/conf/rules"
	chmod 0644 "$BATS_TEST_TMPDIR/conf/rules"
	UNIT_EXTRA="BindReadOnlyPaths=$BATS_TEST_TMPDIR/conf:/run/tunneld-conf"
	start_acceptor --rules=/run/tunneld-conf/rules --max-tunnels-per-source=1
	status_is() {
		in_manager systemctl show -p StatusText --value tunneld-acceptor.service | grep -Eqx -e "$1"
	}
	local clock='[0-2][0-9]:[0-5][0-9]:[0-5][0-9]'
	hold_tunnels 127.0.0.1 127.0.0.2 127.0.0.2
	wait_for "three verdicts" grep -qx '200 200 closed' "$BATS_TEST_TMPDIR/held"
	wait_for "the status" status_is "2 tunnels from 2 addresses; 0 waiting; 1 turned away; options and files read $clock"
	local status_line
	status_line=$(service_property StatusText)
	run in_manager systemctl status --no-pager --lines=0 tunneld-acceptor.service
	[[ $output == *"Status: \"$status_line\""* ]]
	# The acceptor's title, and each tunnel's, where systemctl status shows command lines.
	[[ $output == *"tunneld: acceptor, 2 tunnels, 0 waiting"* ]]
	[[ $output == *"tunneld: - 127.0.0.2:"*" -> 127.0.0.1:$TARGET_PORT relaying"* ]]

	# A reload the check refuses is said until one that works; the counts go on.
	echo 'allow to nowhere at all' >"$BATS_TEST_TMPDIR/conf/rules"
	run in_manager systemctl reload tunneld-acceptor.service
	[ "$status" -ne 0 ]
	wait_for "the refusal" status_is "2 tunnels from 2 addresses; 0 waiting; 1 turned away; options and files read $clock; a reload refused at $clock"
	pkill -f "$PEERS/hold.py"
	wait_for "no tunnel" status_is "0 tunnels from 0 addresses; 0 waiting; 1 turned away; options and files read $clock; a reload refused at $clock"
	wait_for "the title" sh -c "'$PEERS/systemd-manager' run '$MANAGER_DIR' pgrep -a -x tunneld | grep -q ' tunneld: acceptor, 0 tunnels, 0 waiting'"
}
