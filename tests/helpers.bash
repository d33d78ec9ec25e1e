# Shared by every bats file: start real peers on loopback, wait with
# timeouts, stop everything in teardown.
#
# A negated assertion is written `! cmd || false`: bash's errexit ignores a
# command that starts with `!`, so a bare `! cmd` inside a test can never
# fail it (cli.bats keeps the suite free of them).

bats_require_minimum_version 1.5.0

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
TUNNELD=${TUNNELD:-$TOP/tunneld}
PYTHON=/usr/bin/python3
PEERS=$TOP/tests/peers

# Every wait in the suite is bounded by this many tenths of a second, unless told.
WAIT_TENTHS=${WAIT_TENTHS:-100}

# A file that defines its own setup() calls this first.
setup_common() {
	PIDS_FILE=$BATS_TEST_TMPDIR/pids
	: >"$PIDS_FILE"
	LOG=$BATS_TEST_TMPDIR/tunneld.log
	: >"$LOG"
}

setup() {
	setup_common
}

teardown() {
	stop_all
}

# Runs a command in its own session, in the background, remembered for teardown.
# 3>&- so bats does not wait for it.
start_bg() {
	setsid "$@" </dev/null 3>&- &
	echo $! >>"$PIDS_FILE"
}

stop_all() {
	local pid
	if [ -f "$BATS_TEST_TMPDIR/shared-dirs" ]; then
		xargs -r rm -rf <"$BATS_TEST_TMPDIR/shared-dirs"
		rm -f "$BATS_TEST_TMPDIR/shared-dirs"
	fi
	[ -f "$PIDS_FILE" ] || return 0
	while read -r pid; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	done <"$PIDS_FILE"
	for _ in $(seq 20); do
		local alive=0
		while read -r pid; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done <"$PIDS_FILE"
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	while read -r pid; do
		kill -KILL -- "-$pid" 2>/dev/null || true
	done <"$PIDS_FILE"
	: >"$PIDS_FILE"
}

# wait_for DESCRIPTION COMMAND...: retries COMMAND until it succeeds or time runs out.
wait_for() {
	local what=$1
	shift
	for _ in $(seq "$WAIT_TENTHS"); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $what" >&2
	return 1
}

port_open() {
	local host=${2:-127.0.0.1}
	nc -z -w 1 "$host" "$1"
}

# listening_as PORT PID: PID itself listens on 127.0.0.1:PORT (not some other
# process that took the port between free_port and the bind).
listening_as() {
	ss -Hltnp "sport = :$1" | grep -q "pid=$2,"
}

# start_listener DESCRIPTION PORT_VARIABLE COMMAND...: runs COMMAND (which
# reads the port from $PORT) until one run listens on a free port of its own;
# LISTENER_PID is then the process that listens.
start_listener() {
	local what=$1 variable=$2
	shift 2
	for _ in 1 2 3; do
		export PORT
		PORT=$(free_port)
		start_bg "$@"
		local pid
		pid=$(tail -n 1 "$PIDS_FILE")
		if wait_for "$what on $PORT" listening_as "$PORT" "$pid"; then
			printf -v "$variable" '%s' "$PORT"
			LISTENER_PID=$pid
			return 0
		fi
		kill -- "-$pid" 2>/dev/null || true
	done
	return 1
}

free_port() {
	"$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_target MODE [ARG] [--host H]: sets TARGET_PORT.
start_target() {
	local port_file
	port_file=$(mktemp -u "$BATS_TEST_TMPDIR/target.XXXXXX")
	start_bg "$PYTHON" "$PEERS/target.py" "$1" "$port_file" "${@:2}"
	wait_for "target $1" test -s "$port_file"
	TARGET_PORT=$(cat "$port_file")
}

# start_proxy ARGS...: tunneld under systemd-socket-activate --inetd, logging
# to $LOG. Sets PROXY_PORT. With HOSTS_FILE set, tunneld sees that file as
# /etc/hosts, and with RESOLV_CONF set that one as /etc/resolv.conf (a
# private mount namespace), for names with chosen answers. With OWN_ETC set
# to a directory, tunneld's /etc is the host's but for that directory's
# files, copied in (tests/peers/own-etc), which a test may replace there.
# systemd-socket-activate gives its children a clean environment: PROXY_ENV
# (NAME=VALUE words) is what they get. With ACCEPTOR set, tunneld is handed
# the listening socket instead (Accept=no, tunneld(8) "ACCEPTOR").
# PROXY_PID is the activator's: each tunneld is a child of it.
start_proxy() {
	local wrapper=() binds=() environment=() accept="--accept --inetd"
	[ -n "${ACCEPTOR:-}" ] && accept=""
	[ -n "${HOSTS_FILE:-}" ] && binds+=("$HOSTS_FILE" /etc/hosts)
	[ -n "${RESOLV_CONF:-}" ] && binds+=("$RESOLV_CONF" /etc/resolv.conf)
	[ ${#binds[@]} -gt 0 ] && wrapper=(unshare --mount sh -c \
		'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; exec "$@"' sh "${binds[@]}" --)
	[ -n "${OWN_ETC:-}" ] && wrapper=("$PEERS/own-etc" "$OWN_ETC")
	for variable in ${PROXY_ENV:-}; do environment+=(--setenv="$variable"); done
	start_listener proxy PROXY_PORT "${wrapper[@]}" sh -c \
		'exec systemd-socket-activate --listen="127.0.0.1:$PORT" '"$accept"' "$@" 2>>"'"$LOG"'"' \
		sh "${environment[@]}" "$TUNNELD" --log=stderr "$@"
	PROXY_PID=$LISTENER_PID
}

# no_name_resolves: from here on, a proxy this test starts asks a resolver
# of the test's own on loopback (tests/peers/dns.py), which answers NXDOMAIN
# to every name; no query leaves the machine. Sets RESOLV_CONF for
# start_proxy; the queries land in $DNS_LOG.
no_name_resolves() {
	DNS_LOG=$BATS_TEST_TMPDIR/dns.log
	RESOLV_CONF=$BATS_TEST_TMPDIR/resolv.conf
	: >"$DNS_LOG"
	printf 'nameserver 127.0.53.53\noptions attempts:1 timeout:5\n' >"$RESOLV_CONF"
	start_bg "$PYTHON" "$PEERS/dns.py" nxdomain "$DNS_LOG" 0 127.0.53.53
	wait_for "the test's resolver" grep -qx ready "$DNS_LOG"
}

LOOPBACK_POLICY=(--allow-port='*' --allow-dest=127.0.0.0/8 --allow-dest=::1/128)

# wait_log PATTERN: a tunneld record matching PATTERN (grep -E) appears in $LOG.
wait_log() {
	wait_for "log line /$1/ in $LOG" grep -aqE -e "$1" "$LOG" || { cat "$LOG" >&2; return 1; }
}

# raw_request BYTES: sends BYTES (printf format) to the proxy, prints the reply.
raw_request() {
	printf "$1" | timeout 15 nc -N 127.0.0.1 "$PROXY_PORT"
}

# A response's status line and header fields, CR removed.
head_of() {
	sed -n '1,/^\r\?$/p' | tr -d '\r'
}

# start_pipe_proxy ARGS...: tunneld on two pipes (socat EXEC ... ,pipes), the
# shape ssh and stunnel give it. Sets PROXY_PORT.
start_pipe_proxy() {
	# A script, because socat's address syntax gives ':' and ',' meanings of its own.
	local script=$BATS_TEST_TMPDIR/tunneld-on-pipes
	printf '#!/bin/sh\nexec %s\n' "$(printf '%q ' "$TUNNELD" --log=stderr "$@")" >"$script"
	chmod +x "$script"
	start_listener "pipe proxy" PROXY_PORT sh -c \
		'exec socat TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork EXEC:"$0",pipes 2>>"'"$LOG"'"' "$script"
}

# make_file PATH MIB: a file of random bytes.
make_file() {
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

sha_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# make_certs DIR: a throwaway CA and a server certificate for 127.0.0.1, ::1
# and localhost: DIR/ca.pem, DIR/server.pem, DIR/server.key.
make_certs() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=tunneld-test-ca \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n' >"$dir/san.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
		-extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}

# start_tls_target CERTDIR [HOST]: openssl s_server -www. Sets TLS_TARGET_PORT.
start_tls_target() {
	local host=${2:-127.0.0.1}
	TLS_TARGET_PORT=$(free_port)
	local accept="$host:$TLS_TARGET_PORT"
	[[ "$host" == *:* ]] && accept="[$host]:$TLS_TARGET_PORT"
	start_bg openssl s_server -quiet -www -accept "$accept" -cert "$1/server.pem" -key "$1/server.key"
	wait_for "TLS target on $accept" port_open "$TLS_TARGET_PORT" "$host"
}

# start_sshd DIR [CONFIG]: a throwaway sshd on loopback, root's key in
# DIR/client_key, CONFIG's lines (a Match block, say) at the end of its
# configuration (DIR/sshd_config). Sets SSHD_PORT and SSH_OPTIONS.
start_sshd() {
	sshd_config_for "$@"
	start_bg /usr/sbin/sshd -D -e -f "$1/sshd_config"
	wait_for "sshd on $SSHD_PORT" port_open "$SSHD_PORT"
}

# sshd_config_for DIR [CONFIG]: start_sshd's keys and configuration, without the sshd.
sshd_config_for() {
	local dir=$1 extra=${2:-}
	mkdir -p "$dir" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
	cp "$dir/client_key.pub" "$dir/authorized_keys"
	SSHD_PORT=$(free_port)
	cat >"$dir/sshd_config" <<CONFIG
ListenAddress 127.0.0.1:$SSHD_PORT
HostKey $dir/host_key
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel ERROR
Subsystem sftp internal-sftp
$extra
CONFIG
	SSH_OPTIONS=(-F none -i "$dir/client_key" -o BatchMode=yes -o StrictHostKeyChecking=no
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10)
}

# proxy_v2 SRC SPORT [LOCAL]: a PROXY v2 header for a TCP client SRC:SPORT (v4 or v6) on stdout.
proxy_v2() {
	"$PYTHON" - "$@" <<'PY'
import ipaddress, struct, sys
signature = b"\r\n\r\n\x00\r\nQUIT\n"
if len(sys.argv) > 3 and sys.argv[3] == "LOCAL":
    sys.stdout.buffer.write(signature + bytes([0x20, 0x00]) + struct.pack("!H", 0))
    sys.exit()
source = ipaddress.ip_address(sys.argv[1])
destination = ipaddress.ip_address("127.0.0.1" if source.version == 4 else "::1")
family = 0x11 if source.version == 4 else 0x21
block = source.packed + destination.packed + struct.pack("!HH", int(sys.argv[2]), 3128)
sys.stdout.buffer.write(signature + bytes([0x21, family]) + struct.pack("!H", len(block)) + block)
PY
}

# stop_and_time PID PATTERN: SIGTERM to PID; prints the milliseconds until
# its record, a line matching PATTERN (a Python regular expression), is in
# $LOG. Fails if the record takes over 2 s, or the process is not gone 5 s
# after the signal.
stop_and_time() {
	"$PYTHON" - "$1" "$2" "$LOG" <<'PY'
import os, re, signal, sys, time
pid, pattern, log = int(sys.argv[1]), re.compile(sys.argv[2]), sys.argv[3]
started = time.monotonic()
os.kill(pid, signal.SIGTERM)
while not any(pattern.search(line) for line in open(log, errors="replace")):
    if time.monotonic() - started > 2:
        sys.exit("no record 2 s after SIGTERM:\n" + open(log, errors="replace").read())
    time.sleep(0.001)
took = (time.monotonic() - started) * 1000
def running():
    try:  # the shell that started it may reap it, and its /proc entry go, at any moment
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
while running():
    if time.monotonic() - started > 5:
        sys.exit("still running 5 s after SIGTERM")
    time.sleep(0.001)
print(int(took))
PY
}

# The most a stop signal may take to end a tunnel with its record
# (tunneld(8) "DESCRIPTION"), measured by a shell that polls; the slowdown
# of valgrind and of the ASan build gets more.
STOP_BOUND_MS=100
if [ -n "${SANITIZER_LOG_DIR:-}" ]; then STOP_BOUND_MS=300; fi
if [[ "$TUNNELD" == *valgrind* ]]; then STOP_BOUND_MS=1000; fi

# shared_copy FILE: prints the path of a copy of FILE that any user may read
# and run. A user the tests run tunneld as (xinetd's nobody) may be unable to
# enter the clone (root's home, a mktemp -d directory, a home that adduser
# made 0700) or the bats run's own 0700 directory: the copy lives in a
# directory of its own under /tmp, removed by stop_all.
shared_copy() {
	local dir
	dir=$(mktemp -d /tmp/tunneld-shared.XXXXXX)
	echo "$dir" >>"$BATS_TEST_TMPDIR/shared-dirs"
	chmod 755 "$dir"
	cp -p "$1" "$dir/"
	chmod a+rX "$dir/${1##*/}"
	echo "$dir/${1##*/}"
}

# start_xinetd SERVER_ARGS...: the shipped tunneld.xinetd, port, path and arguments
# patched, and enabled as the README says. xinetd runs the entry's tunneld as
# nobody: it gets a copy of $TUNNELD that nobody can reach (shared_copy).
start_xinetd() {
	XINETD_PORT=$(free_port)
	local server
	server=$(shared_copy "$TUNNELD")
	sed -e "s|^\(\s*port\s*=\).*|\1 $XINETD_PORT|" \
		-e "s|^\(\s*server\s*=\).*|\1 $server|" \
		-e "s|^\(\s*server_args\s*=\).*|\1 $*|" \
		-e "s|^\(\s*disable\s*=\).*|\1 no\n\tbind = 127.0.0.1|" \
		"$TOP/tunneld.xinetd" >"$BATS_TEST_TMPDIR/xinetd.conf"
	grep -q "port.*= $XINETD_PORT" "$BATS_TEST_TMPDIR/xinetd.conf"
	# Under with-syslog: tunneld logs to syslog here, and the test reads it.
	SYSLOG=$BATS_TEST_TMPDIR/syslog
	start_bg "$PEERS/with-syslog" "$SYSLOG" xinetd -dontfork -f "$BATS_TEST_TMPDIR/xinetd.conf" -pidfile "$BATS_TEST_TMPDIR/xinetd.pid"
	# Listening is ready: a probe connection would start a tunneld of its own.
	wait_for "xinetd on $XINETD_PORT" port_listening "$XINETD_PORT"
}

# port_listening PORT: something listens on 127.0.0.1:PORT.
port_listening() {
	[ -n "$(ss -Hltn "sport = :$1")" ]
}
