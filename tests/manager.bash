# Shared by the bats files that run the shipped units under a real systemd
# manager (tests/peers/systemd-manager). A file that loads this calls
# stop_manager in its teardown.

stop_manager() {
	if [ -n "${MANAGER_DIR:-}" ]; then "$PEERS/systemd-manager" stop "$MANAGER_DIR"; fi
}

# units_for_test DIR PORT ARGS...: the shipped units, with the port, the
# binary (bound over the shipped path, as an install would put it) and the
# policy patched for the test.
units_for_test() {
	patched_units tunneld.socket tunneld@.service "$@"
}

# acceptor_units_for_test DIR PORT ARGS...: the same for the Accept=no pair.
acceptor_units_for_test() {
	patched_units tunneld-acceptor.socket tunneld-acceptor.service "$@"
}

# patched_units SOCKET SERVICE DIR PORT ARGS...
patched_units() {
	local socket=$1 service=$2 dir=$3 port=$4
	shift 4
	mkdir -p "$dir"
	sed "s/^ListenStream=.*/ListenStream=127.0.0.1:$port/" "$TOP/$socket" >"$dir/$socket"
	sed "s|^ExecStart=/usr/local/sbin/tunneld .*|ExecStart=/usr/local/sbin/tunneld $*|" "$TOP/$service" >"$dir/$service"
	grep -q "^ExecStart=/usr/local/sbin/tunneld $*\$" "$dir/$service"
	printf 'BindReadOnlyPaths=%s:/usr/local/sbin/tunneld\n' "$TUNNELD" >>"$dir/$service"
	if [ -n "${SANITIZER_LOG_DIR:-}" ]; then
		# The ASan build (make sanitize-check): let reports land where make looks.
		# LeakSanitizer stops the world with ptrace, which the unit's system call
		# filter forbids; leaks are checked under the other activators and valgrind.
		# BindPaths, not ReadWritePaths: a clone under /tmp is hidden by PrivateTmp=.
		printf 'BindPaths=%s\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' "$SANITIZER_LOG_DIR" >>"$dir/$service"
	fi
}

start_manager() {
	MANAGER_DIR=$BATS_TEST_TMPDIR/manager
	"$PEERS/systemd-manager" start "$MANAGER_DIR" "$@" >/dev/null
	# Its bus answers once it is up: a test that starts a unit itself needs that, not a socket.
	wait_for "the manager's bus" "$PEERS/systemd-manager" run "$MANAGER_DIR" systemctl show --property=Version
	# Active means listening; no probe connection, which would add a record of its own.
	local socket
	for socket in "$@"; do
		case $socket in
		*.socket) wait_for "${socket##*/} active" "$PEERS/systemd-manager" run "$MANAGER_DIR" \
			systemctl is-active --quiet "${socket##*/}" ;;
		esac
	done
}

in_manager() {
	"$PEERS/systemd-manager" run "$MANAGER_DIR" "$@"
}

# tunneld_records FORMAT: the journal's tunneld lines, as the README says to
# select them (by identifier: a record may lack its unit, see tunneld(8)).
tunneld_records() {
	in_manager journalctl -o "$1" SYSLOG_IDENTIFIER=tunneld
}

# records_at_least N: the journal holds N connection records.
records_at_least() {
	[ "$(tunneld_records cat | grep -c ' status=')" -ge "$1" ]
}

# journal_field N FIELD: FIELD of the N-th tunneld connection record (0-based).
journal_field() {
	tunneld_records json |
		"$PYTHON" -c '
import json, sys
records = [r for r in map(json.loads, sys.stdin.read().splitlines()) if "TUNNELD_STATUS" in r]
print(records[int(sys.argv[1])].get(sys.argv[2], "<missing>"))' "$1" "$2"
}


# held_tunnels_from PORT SOURCE...: tests/peers/hold.py to the echo $TARGET_PORT.
held_tunnels_from() {
	timeout 60 "$PYTHON" "$PEERS/hold.py" "$1" "$TARGET_PORT" "${@:2}"
}
