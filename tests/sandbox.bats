#!/usr/bin/env bats
# The sandbox tunneld enters before the client's first byte (tunneld(8)
# "Sandbox"), proved from outside: a probe loaded into tunneld with
# LD_PRELOAD tries, at tunneld's connect() to the target, what a hijacked
# tunnel would; a shim plays a kernel with neither Landlock nor seccomp.

load helpers

PROBE=$TOP/build/tests/sandbox-probe.so
OLD_KERNEL=$TOP/build/tests/old-kernel.so

setup() {
	setup_common
	echo secret >/root/.tunneld-sandbox-probe
	mkdir -p "$BATS_TEST_TMPDIR/scratch"
	chmod 1777 "$BATS_TEST_TMPDIR/scratch"
}

teardown() {
	stop_all
	rm -f /root/.tunneld-sandbox-probe /tmp/tunneld-sandbox-probe
}

# assert_all_denied FILE: the probe's sixteen attempts, each refused.
assert_all_denied() {
	local attempt
	cat "$1"
	for attempt in read-/etc/shadow read-/root-file list-/root write-scratch-dir write-/tmp socket-netlink \
		socket-packet socket-unix-stream socket-inet-packet socket-inet-raw setsockopt-mark bind-inet-dgram \
		ptrace-parent mount-tmpfs fork execve-shell; do
		grep -qE "^$attempt denied E[A-Z]+$" "$1" || { echo "not denied: $attempt"; false; }
	done
	[ "$(wc -l <"$1")" -eq 16 ]
	[ ! -e "$BATS_TEST_TMPDIR/scratch/written-by-tunneld" ]
	[ ! -e /tmp/tunneld-sandbox-probe ]
}

# build_seccomp_dump: tests/peers/seccomp-dump.c, with the sources of the
# tunneld under test where they lie beside it (a mutant's tree), else this tree's.
build_seccomp_dump() {
	local sources=$TOP/src
	[ -f "$(dirname "$TUNNELD")/src/sandbox.c" ] && sources=$(dirname "$TUNNELD")/src
	cc -O2 -D_GNU_SOURCE -DSANDBOX_C="\"$sources/sandbox.c\"" -o "$BATS_TEST_TMPDIR/seccomp-dump" "$PEERS/seccomp-dump.c"
}

# one_tunnel_with ENV: tunneld with ENV in its environment carries one "ping" to an echo target, and records it.
one_tunnel_with() {
	start_target echo
	PROXY_ENV=$1
	start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=4 down=4 "
}

@test "the seccomp filter gives every call number, on each architecture, with the arguments each case tells apart, the verdict the allow-list says; the kernel caches them in a search, not a chain" {
	[ "$(uname -m)" = x86_64 ] || skip "the verdicts are written for x86_64's numbers"
	build_seccomp_dump
	"$BATS_TEST_TMPDIR/seccomp-dump" numbers >"$BATS_TEST_TMPDIR/numbers"
	"$BATS_TEST_TMPDIR/seccomp-dump" >"$BATS_TEST_TMPDIR/filter"
	"$BATS_TEST_TMPDIR/seccomp-dump" bind >"$BATS_TEST_TMPDIR/filter-bind"
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/filter" "$BATS_TEST_TMPDIR/numbers"
	[ "$status" -eq 0 ]
	[[ $output =~ ^([0-9]+)\ instructions,\ ([0-9]+)\ run\ to\ cache.*,\ 0\ verdicts\ wrong$ ]]
	# Loading a filter, the kernel runs it for each call number with
	# interrupts off, at every connection: about 4 us an instruction run
	# (bench/PERFORMANCE.md). A chain of comparisons ran 47 a call; the search runs 10.
	[ "${BASH_REMATCH[2]}" -le $((463 * 12)) ]
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/filter-bind" "$BATS_TEST_TMPDIR/numbers" bind
	[ "$status" -eq 0 ]
	[[ $output == *", 0 verdicts wrong" ]]
	# And the judge can tell: bind() is refused without an outgoing address.
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/filter" "$BATS_TEST_TMPDIR/numbers" bind
	[ "$status" -eq 1 ]
	[[ $output == *"call 49 arch 0xc000003e args 0x0 0x0: 0x50001, not 0x7fff0000"* ]]
}

@test "Accept=no: a tunnel the forker forks gets, call for call, the verdict its own filter gives: the forker's filter with the one each tunnel stacks on it" {
	[ "$(uname -m)" = x86_64 ] || skip "the verdicts are written for x86_64's numbers"
	build_seccomp_dump
	"$BATS_TEST_TMPDIR/seccomp-dump" numbers >"$BATS_TEST_TMPDIR/numbers"
	"$BATS_TEST_TMPDIR/seccomp-dump" forker >"$BATS_TEST_TMPDIR/forker"
	"$BATS_TEST_TMPDIR/seccomp-dump" forker-bind >"$BATS_TEST_TMPDIR/forker-bind"
	grep -qx stacked "$BATS_TEST_TMPDIR/forker"
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/forker" "$BATS_TEST_TMPDIR/numbers"
	[ "$status" -eq 0 ]
	[[ $output == *", 0 verdicts wrong" ]]
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/forker-bind" "$BATS_TEST_TMPDIR/numbers" bind
	[ "$status" -eq 0 ]
	[[ $output == *", 0 verdicts wrong" ]]
	# The forker's alone lets a process receive a descriptor (recvmsg 47), fork
	# one kind of child (clone 56) and signal another (rt_sigqueueinfo 129, tgkill 234): no tunnel may.
	sed '/^stacked$/,$d' "$BATS_TEST_TMPDIR/forker" >"$BATS_TEST_TMPDIR/forker-alone"
	run "$PYTHON" "$PEERS/seccomp-verdicts.py" "$BATS_TEST_TMPDIR/forker-alone" "$BATS_TEST_TMPDIR/numbers"
	[ "$status" -eq 1 ]
	[[ $output == *"calls judged wrong: 47 56 129 234" ]]
	[[ $output == *"call 47 arch 0xc000003e args 0x0 0x0: 0x7fff0000, not 0x50001"* ]]
}

@test "a hijacked tunnel can read no secret, write nothing, open no raw or netlink socket, start nothing, trace nothing, mount nothing; the tunnel carries its bytes (HTTP CONNECT)" {
	make_file "$BATS_TEST_TMPDIR/payload" 1
	start_target sha
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_OUT=$BATS_TEST_TMPDIR/probe SANDBOX_PROBE_SCRATCH=$BATS_TEST_TMPDIR/scratch"
	start_proxy "${LOOPBACK_POLICY[@]}"
	run timeout 15 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/payload"
	[ "$output" = "$(sha_of "$BATS_TEST_TMPDIR/payload") 1048576" ]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=1048576 down=[0-9]+ "
	assert_all_denied "$BATS_TEST_TMPDIR/probe"
	! grep -q 'sandbox:' "$LOG" || false
}

@test "once its target is connected, no thread of a tunnel can open an Internet socket, bind, connect, or start a thread; the record's datagram socket still opens" {
	start_target echo
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_AFTER_OUT=$BATS_TEST_TMPDIR/after SANDBOX_PROBE_RESOLVER=1"
	start_proxy "${LOOPBACK_POLICY[@]}"
	# By name: the resolver's thread is still there, idle, when the tunnel tightens.
	run raw_request "CONNECT localhost:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_log "-> localhost:$TARGET_PORT status=200 up=4 down=4 "
	cat "$BATS_TEST_TMPDIR/after"
	grep -qx 'socket-inet-stream denied EPERM' "$BATS_TEST_TMPDIR/after"
	grep -qx 'socket-inet6-dgram denied EPERM' "$BATS_TEST_TMPDIR/after"
	grep -qE '^thread denied E[A-Z]+$' "$BATS_TEST_TMPDIR/after"
	grep -qx 'socket-unix-dgram ALLOWED' "$BATS_TEST_TMPDIR/after"
	grep -qx 'bind-unix-abstract denied EPERM' "$BATS_TEST_TMPDIR/after"
	grep -qx 'disconnect-target denied EPERM' "$BATS_TEST_TMPDIR/after"
	grep -qE '^resolver-thread-socket denied E[A-Z]+$' "$BATS_TEST_TMPDIR/after"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/after")" -eq 7 ]
	! grep -q 'sandbox:' "$LOG" || false
}

@test "a record to syslog still goes out after the tightening: its socket was connected ahead" {
	start_target echo
	printf "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping" |
		timeout 20 "$PEERS/with-syslog" "$BATS_TEST_TMPDIR/syslog" env LD_PRELOAD="$PROBE" \
			SANDBOX_PROBE_AFTER_OUT="$BATS_TEST_TMPDIR/after" "$TUNNELD" --log=syslog "${LOOPBACK_POLICY[@]}" \
			>"$BATS_TEST_TMPDIR/answer"
	[[ "$(cat "$BATS_TEST_TMPDIR/answer")" == "HTTP/1.1 200 Connection established"*ping ]]
	grep -qx 'disconnect-target denied EPERM' "$BATS_TEST_TMPDIR/after"
	grep -Eq "tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 " "$BATS_TEST_TMPDIR/syslog"
}

@test "Accept=no: each tunnel the acceptor forks is as confined, and the acceptor serves the next one" {
	make_file "$BATS_TEST_TMPDIR/payload" 1
	start_target sha
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_OUT=$BATS_TEST_TMPDIR/probe SANDBOX_PROBE_SCRATCH=$BATS_TEST_TMPDIR/scratch"
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	local n
	for n in 1 2; do
		run timeout 15 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT" <"$BATS_TEST_TMPDIR/payload"
		[ "$output" = "$(sha_of "$BATS_TEST_TMPDIR/payload") 1048576" ]
		# The report file was opened by the acceptor, at load: each tunnel appends its sixteen lines.
		wait_for "probe report $n" eval '[ "$(wc -l <"$BATS_TEST_TMPDIR/probe")" -ge $((16 * n)) ]'
	done
	head -n 16 "$BATS_TEST_TMPDIR/probe" >"$BATS_TEST_TMPDIR/probe-1"
	tail -n +17 "$BATS_TEST_TMPDIR/probe" >"$BATS_TEST_TMPDIR/probe-2"
	assert_all_denied "$BATS_TEST_TMPDIR/probe-1"
	assert_all_denied "$BATS_TEST_TMPDIR/probe-2"
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=200 up=1048576 .*"
	wait_for "two records" eval '[ "$(grep -c " status=200 up=1048576 " "$LOG")" -eq 2 ]'
	# Each tunnel was a process of its own, gone with its tunnel; the acceptor and its forker are still there.
	wait_for "only the acceptor and its forker left" eval \
		'[ "$(pgrep -P "$PROXY_PID")" = "$(pgrep -P "$PROXY_PID" -f "^tunneld: forker")" ] && kill -0 "$PROXY_PID"'
}

# forker_of PID: the forker of the acceptor PID, if it has one (tunneld(8) "ACCEPTOR").
forker_of() {
	pgrep -P "$1" -f '^tunneld: forker'
}

@test "Accept=no: a file the tunnels may read, replaced (a new /etc/hosts), is the one the next tunnel reads: the forker whose rules hold the old one is replaced" {
	start_target echo
	no_name_resolves
	mkdir "$BATS_TEST_TMPDIR/etc"
	mv "$RESOLV_CONF" "$BATS_TEST_TMPDIR/etc/resolv.conf"
	unset RESOLV_CONF
	printf '127.0.0.1 localhost\n127.0.0.1 first.tunneld.test\n' >"$BATS_TEST_TMPDIR/etc/hosts"
	OWN_ETC=$BATS_TEST_TMPDIR/etc ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT first.tunneld.test:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	local forker fds
	forker=$(forker_of "$PROXY_PID")
	[ -n "$forker" ]
	fds=$(ls "/proc/$forker/fd" | wc -l)
	# As a resolver's manager writes it: a new file, renamed over the old.
	nsenter -m -t "$PROXY_PID" sh -c \
		'printf "127.0.0.1 localhost\n127.0.0.1 second.tunneld.test\n" >/etc/hosts.new && mv /etc/hosts.new /etc/hosts'
	run raw_request "CONNECT second.tunneld.test:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_log "-> second\.tunneld\.test:$TARGET_PORT status=200 up=4 down=4 "
	[ -n "$(forker_of "$PROXY_PID")" ]
	[ "$(forker_of "$PROXY_PID")" != "$forker" ]
	# Started while the acceptor held that connection, it keeps no copy of it.
	[ "$(ls "/proc/$(forker_of "$PROXY_PID")/fd" | wc -l)" -eq "$fds" ]
	# Only the hosts file answered: no query went to the resolver.
	[ ! -s "$DNS_LOG" ] || ! grep -q tunneld.test "$DNS_LOG" || false
}

@test "Accept=no: the forker killed, the acceptor says so and forks each tunnel itself, as confined; later another forker forks them" {
	start_target echo
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_OUT=$BATS_TEST_TMPDIR/probe SANDBOX_PROBE_SCRATCH=$BATS_TEST_TMPDIR/scratch"
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	local forker
	# systemd-socket-activate starts the acceptor at the first connection.
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	forker=$(forker_of "$PROXY_PID")
	[ -n "$forker" ]
	: >"$BATS_TEST_TMPDIR/probe"
	kill -KILL "$forker"
	wait_for "the acceptor's word" grep -q '^tunneld: acceptor: the forker was killed; until another starts, the acceptor forks each tunnel itself$' "$LOG"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_for "probe report" eval '[ "$(wc -l <"$BATS_TEST_TMPDIR/probe")" -ge 16 ]'
	head -n 16 "$BATS_TEST_TMPDIR/probe" >"$BATS_TEST_TMPDIR/probe-1"
	assert_all_denied "$BATS_TEST_TMPDIR/probe-1"
	another_forker() {
		raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping" >/dev/null
		[ -n "$(forker_of "$PROXY_PID")" ]
	}
	wait_for "another forker" another_forker
	[ "$(forker_of "$PROXY_PID")" != "$forker" ]
	wait_for "the records" eval '[ "$(grep -c " status=200 up=4 down=4 " "$LOG")" -ge 3 ]'
}

@test "Accept=no, on a kernel that refuses seccomp filters: a hijacked tunnel can ptrace neither the forker nor another tunnel, which share its Landlock domain" {
	start_target echo
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_NO_SECCOMP=1 SANDBOX_PROBE_SIBLINGS_OUT=$BATS_TEST_TMPDIR/siblings"
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	# A tunnel held open, then another that tries them all while it is there.
	mkfifo "$BATS_TEST_TMPDIR/held-input"
	start_bg sh -c 'exec timeout 30 nc -X connect -x "127.0.0.1:$1" 127.0.0.1 "$2" <"$3" >/dev/null' sh \
		"$PROXY_PORT" "$TARGET_PORT" "$BATS_TEST_TMPDIR/held-input"
	exec {held}>"$BATS_TEST_TMPDIR/held-input"
	wait_for "the held tunnel's probe" grep -q ptrace-sibling "$BATS_TEST_TMPDIR/siblings"
	[ -n "$(forker_of "$PROXY_PID")" ]
	# Its bytes are not the point: without a filter the probe's own attempts disturb its target.
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	wait_for "the second probe" eval '[ "$(grep -c ptrace-sibling "$BATS_TEST_TMPDIR/siblings")" -eq 2 ]'
	cat "$BATS_TEST_TMPDIR/siblings"
	[ "$(grep -cx 'ptrace-sibling denied' "$BATS_TEST_TMPDIR/siblings")" -eq 2 ]
	grep -q 'no seccomp filter' "$LOG"
	exec {held}>&-
}

@test "Accept=no: a forker that takes a connection and does not answer is replaced; that connection is turned away, never forked twice" {
	start_target echo
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	local forker
	forker=$(forker_of "$PROXY_PID")
	kill -STOP "$forker"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[ -z "$output" ]
	wait_log ' -> - status=- up=0 down=0 duration_ms=[0-9]+ reason=turned away: the forker did not answer$'
	grep -q '^tunneld: acceptor: the forker did not answer; until another starts, the acceptor forks each tunnel itself$' "$LOG"
	wait_for "the stopped forker gone" eval '! kill -0 "$forker" 2>/dev/null'
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_for "two records of tunnels" eval '[ "$(grep -c " status=200 " "$LOG")" -eq 2 ]'
}

@test "sandboxed, SOCKS5 with a login still loads libcrypt when it checks the password, and a name is still resolved" {
	htpasswd -bBC 4 -c "$BATS_TEST_TMPDIR/users" alice 'wonder land' 2>/dev/null
	start_target http
	PROXY_ENV="LD_PRELOAD=$PROBE SANDBOX_PROBE_OUT=$BATS_TEST_TMPDIR/probe SANDBOX_PROBE_SCRATCH=$BATS_TEST_TMPDIR/scratch"
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$BATS_TEST_TMPDIR/users"
	run curl -sS --max-time 10 -U 'alice:wonder land' -x "socks5h://127.0.0.1:$PROXY_PORT" "http://localhost:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	wait_log "-> localhost:$TARGET_PORT status=200 .* protocol=socks5 reply=0x00 user=alice$"
	assert_all_denied "$BATS_TEST_TMPDIR/probe"
	run curl -sS --max-time 10 -U 'alice:wrong' -x "socks5h://127.0.0.1:$PROXY_PORT" "http://localhost:$TARGET_PORT/"
	[ "$status" -ne 0 ]
	wait_log "-> - status=407 .* protocol=socks5 user=alice reason=wrong password$"
}

@test "a kernel with neither Landlock nor seccomp filters: the tunnel is served, and one line says what is missing" {
	one_tunnel_with "LD_PRELOAD=$OLD_KERNEL"
	[ "$(grep -c '^tunneld: sandbox: no Landlock (Function not implemented); no seccomp filter (Invalid argument)$' "$LOG")" -eq 1 ]
}

@test "a tunnel handed 58 descriptors (three left under its limit of 64) still reads its resolver's files: a name in /etc/hosts resolves" {
	start_target echo
	printf '127.0.0.1 localhost\n127.0.0.1 crowded.tunneld.test\n' >"$BATS_TEST_TMPDIR/hosts"
	# A resolver nobody answers, on loopback: were the hosts file unreadable, nothing leaves the machine.
	printf 'nameserver 127.0.53.53\noptions attempts:1 timeout:1\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	printf 'CONNECT crowded.tunneld.test:%s HTTP/1.1\r\n\r\nping' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/request"
	cat >"$BATS_TEST_TMPDIR/crowded.py" <<'PY'
import os, sys
while os.open("/dev/null", os.O_RDONLY) < 60:
    pass
for fd in range(3, 61):
    os.set_inheritable(fd, True)
os.execv(sys.argv[1], sys.argv[1:])
PY
	unshare --mount sh -c 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"' \
		sh "$BATS_TEST_TMPDIR/hosts" "$BATS_TEST_TMPDIR/resolv.conf" \
		"$PYTHON" "$BATS_TEST_TMPDIR/crowded.py" "$TUNNELD" --log=stderr "${LOOPBACK_POLICY[@]}" \
		<"$BATS_TEST_TMPDIR/request" >"$BATS_TEST_TMPDIR/answer" 2>"$LOG"
	[[ "$(cat "$BATS_TEST_TMPDIR/answer")" == "HTTP/1.1 200 Connection established"*ping ]]
	grep -Eq -- "-> crowded\.tunneld\.test:$TARGET_PORT status=200 up=4 down=4 " "$LOG"
}
