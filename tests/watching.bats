#!/usr/bin/env bats
# tunneld(8) "WATCHING AND ENDING TUNNELS": each tunnel process's title (its
# command line, what ps, pgrep -a and systemctl status show) says who goes
# where and what it is doing; pkill on the title ends exactly those tunnels.

load helpers

# hold NAME REQUEST: a client (tests/peers/holder.py) that sends REQUEST (a
# Python bytes literal) and holds on; sets NAME to its port.
hold() {
	local port_file=$BATS_TEST_TMPDIR/holder-$1
	start_bg "$PYTHON" "$PEERS/holder.py" "$PROXY_PORT" "$port_file" "$2"
	wait_for "client $1" test -s "$port_file"
	printf -v "$1" '%s' "$(cat "$port_file")"
}

# title_of PORT: the command line of the proxy's tunneld serving the client on PORT, as ps shows it.
title_of() {
	local pid line
	for pid in $(pgrep -P "$PROXY_PID"); do
		line=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed 's/ *$//') || continue
		case $line in *" 127.0.0.1:$1 "*) printf '%s\n' "$line" ;; esac
	done
}

# title_is PORT TEXT
title_is() {
	[ "$(title_of "$1")" = "$2" ]
}

@test "titles: in each phase a tunnel can be held in, its command line names the client, the target and what it does" {
	start_target echo
	local echo_port=$TARGET_PORT
	start_target blackhole
	local blackhole_port=$TARGET_PORT
	# A resolver that never answers: a tunnel to a name stays in its lookup.
	RESOLV_CONF=$BATS_TEST_TMPDIR/resolv.conf
	printf 'nameserver 127.0.53.53\noptions attempts:1 timeout:30\n' >"$RESOLV_CONF"
	start_bg "$PYTHON" "$PEERS/dns.py" 127.0.0.1 "$BATS_TEST_TMPDIR/dns.log" never 127.0.53.53
	wait_for "the test's resolver" grep -qx ready "$BATS_TEST_TMPDIR/dns.log"
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=60 --connect-timeout=60

	hold reading "b'CONNECT 127.0.0.1:$echo_port HTTP/1.1\r\nHost: x'"
	hold resolving "b'CONNECT slow.example:443 HTTP/1.1\r\n\r\n'"
	hold connecting "b'CONNECT 127.0.0.1:$blackhole_port HTTP/1.1\r\n\r\n'"
	hold relaying "b'CONNECT 127.0.0.1:$echo_port HTTP/1.1\r\n\r\n'"

	wait_for "reading" title_is "$reading" "tunneld: - 127.0.0.1:$reading reading the request"
	wait_for "resolving" title_is "$resolving" "tunneld: - 127.0.0.1:$resolving -> slow.example:443 resolving"
	wait_for "connecting" title_is "$connecting" "tunneld: - 127.0.0.1:$connecting -> 127.0.0.1:$blackhole_port connecting"
	wait_for "relaying" title_is "$relaying" "tunneld: - 127.0.0.1:$relaying -> 127.0.0.1:$echo_port relaying"
	# The name was asked for: the lookup, not something else, holds that one.
	grep -q '^query slow.example' "$BATS_TEST_TMPDIR/dns.log"
	# ps shows the same (what systemctl status and top show too).
	ps -o args= -p "$(pgrep -P "$PROXY_PID" -f "^tunneld: - 127.0.0.1:$relaying ")" | grep -qx "tunneld: - 127.0.0.1:$relaying -> 127.0.0.1:$echo_port relaying *"
}

@test "titles: the user is shown once authenticated, a password never; a name's odd bytes escaped as the record has them" {
	start_target echo
	local auth_file=$BATS_TEST_TMPDIR/users
	htpasswd -B -C 5 -b -c "$auth_file" alice 'wonder land' 2>/dev/null
	printf 'j\xc3\xb6rg:%s\n' "$(mkpasswd -m sha-512 'j0rg-secret')" >>"$auth_file"
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$auth_file"

	hold alice "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\nProxy-Authorization: Basic $(printf 'alice:wonder land' | base64)\r\n\r\n'"
	wait_for "alice relaying" title_is "$alice" "tunneld: alice 127.0.0.1:$alice -> 127.0.0.1:$TARGET_PORT relaying"
	# SOCKS5 with a login whose name is not ASCII: escaped as in the record.
	local port_bytes
	port_bytes=$(printf '\\x%02x\\x%02x' $((TARGET_PORT >> 8)) $((TARGET_PORT & 255)))
	hold jorg "b'\x05\x01\x02\x01\x05j\xc3\xb6rg\x0bj0rg-secret\x05\x01\x00\x01\x7f\x00\x00\x01$port_bytes'"
	wait_for "jorg relaying" title_is "$jorg" "tunneld: j\\xc3\\xb6rg 127.0.0.1:$jorg -> 127.0.0.1:$TARGET_PORT relaying"

	local pid
	for pid in $(pgrep -P "$PROXY_PID"); do
		! grep -aq -e 'wonder' -e 'j0rg-secret' "/proc/$pid/cmdline" || false
	done
	# The whole name, ended by the record's next field or by its end: the
	# target stopped first, a tunnel may end cleanly before its SIGTERM.
	stop_all
	wait_log 'user=alice( |$)'
	wait_log 'user=j\\xc3\\xb6rg( |$)'
}

@test "titles: a request the parser refuses never reaches the title; the tunnel ends with its record" {
	start_proxy "${LOOPBACK_POLICY[@]}" --header-timeout=60
	hold hostile "b'CONNECT \x1b]0;owned\x07.example:443 HTTP/1.1\r\nHost: x'"
	wait_for "reading" title_is "$hostile" "tunneld: - 127.0.0.1:$hostile reading the request"
	hold refused "b'CONNECT \x1b]0;owned\x07.example:443 HTTP/1.1\r\n\r\n'"
	wait_log 'status=400 .*reason=invalid character in host'
	wait_for "its reply" grep -q '^HTTP/1.1 400 ' "$BATS_TEST_TMPDIR/holder-refused.reply"
	[ -z "$(title_of "$refused")" ]
}

@test "titles: behind a balancer (--proxy-protocol) the client is the one the PROXY header names, as the record has it" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --proxy-protocol
	hold balanced "b'PROXY TCP4 203.0.113.9 127.0.0.1 40000 $PROXY_PORT\r\nCONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	titled() {
		local pid
		for pid in $(pgrep -P "$PROXY_PID"); do
			tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed 's/ *$//'
			echo
		done | grep -qx "tunneld: - 203.0.113.9:40000 -> 127.0.0.1:$TARGET_PORT relaying"
	}
	wait_for "the balanced client's title" titled
	# The balancer's own address (the holder's) is in no title.
	for pid in $(pgrep -P "$PROXY_PID"); do
		! grep -aq "127.0.0.1:$balanced" "/proc/$pid/cmdline" || false
	done
	pkill -f '^tunneld: - 203\.0\.113\.9:40000 '
	wait_for "its record" grep -q "^tunneld: 203\.0\.113\.9:40000 -> 127\.0\.0\.1:$TARGET_PORT status=200 " "$LOG"
}

@test "titles: the environment's strings are out of the command line's area before the first title is written" {
	[[ "$TUNNELD" != *valgrind* ]] || skip "gdb runs the binary, not valgrind's wrapper"
	# Stopped at its first title, before a byte of it is written: a title
	# longer than the arguments makes the kernel show what follows them in
	# /proc/PID/cmdline, which anyone may read, so the environment (which
	# only the owner may) must be gone from there already.
	run env -i PATH=/usr/bin:/bin TUNNELD_TEST_SECRET=s3cr3t-in-the-environment gdb -q -batch -nx \
		-ex 'set startup-with-shell off' -ex 'break title_phase' -ex run \
		-ex 'python import gdb; print("environ:", open("/proc/%d/environ" % gdb.selected_inferior().pid, "rb").read())' \
		-ex 'python import gdb; print("cmdline:", open("/proc/%d/cmdline" % gdb.selected_inferior().pid, "rb").read())' \
		-ex kill --args "$TUNNELD" --allow-port=443 </dev/null
	[[ $output == *"Breakpoint 1, title_phase"* ]]
	[[ $output == *"cmdline: b'$TUNNELD\\x00--allow-port=443\\x00'"* ]]
	[[ $output == *"environ: b'\\x00"* ]]
	[[ $output != *s3cr3t-in-the-environment* ]]
}

@test "ending: pkill -f on one user's titles ends exactly that user's tunnels, each with its record; then all to one host" {
	start_target echo
	local first_target=$TARGET_PORT
	start_target echo
	local second_target=$TARGET_PORT
	local auth_file=$BATS_TEST_TMPDIR/users
	htpasswd -B -C 5 -b -c "$auth_file" alice 'alice pw' 2>/dev/null
	htpasswd -B -C 5 -b "$auth_file" bob 'bob pw' 2>/dev/null
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$auth_file"
	local alice_auth bob_auth
	alice_auth=$(printf 'alice:alice pw' | base64)
	bob_auth=$(printf 'bob:bob pw' | base64)
	hold alice1 "b'CONNECT 127.0.0.1:$first_target HTTP/1.1\r\nProxy-Authorization: Basic $alice_auth\r\n\r\n'"
	hold alice2 "b'CONNECT 127.0.0.1:$second_target HTTP/1.1\r\nProxy-Authorization: Basic $alice_auth\r\n\r\n'"
	hold bob1 "b'CONNECT 127.0.0.1:$first_target HTTP/1.1\r\nProxy-Authorization: Basic $bob_auth\r\n\r\n'"
	hold bob2 "b'CONNECT 127.0.0.1:$second_target HTTP/1.1\r\nProxy-Authorization: Basic $bob_auth\r\n\r\n'"
	for client in "$alice1" "$alice2" "$bob1" "$bob2"; do
		wait_for "$client relaying" sh -c "ps -o args= --ppid $PROXY_PID | grep -q ' 127.0.0.1:$client .* relaying'"
	done

	pkill -P "$PROXY_PID" -f '^tunneld: alice '
	wait_for "alice's tunnels gone" sh -c "! pgrep -P $PROXY_PID -f '^tunneld: alice '"
	wait_log "127.0.0.1:$alice1 .*status=200 .*reason=stopped by signal"
	wait_log "127.0.0.1:$alice2 .*status=200 .*reason=stopped by signal"
	# Bob's go on, and nothing of his was recorded.
	[ -n "$(title_of "$bob1")" ] && [ -n "$(title_of "$bob2")" ]
	! grep -q -e "^tunneld: 127.0.0.1:$bob1 " -e "^tunneld: 127.0.0.1:$bob2 " "$LOG" || false

	# Every tunnel to the second target, whoever's.
	pkill -P "$PROXY_PID" -f " -> 127.0.0.1:$second_target relaying\$"
	wait_log "127.0.0.1:$bob2 .*status=200 .*reason=stopped by signal"
	[ -n "$(title_of "$bob1")" ]
	[ "$(grep -c 'reason=stopped by signal' "$LOG")" -eq 3 ]
}

@test "the acceptor's title counts the tunnels it holds" {
	start_target echo
	ACCEPTOR=1 start_proxy "${LOOPBACK_POLICY[@]}"
	acceptor_title() {
		tr '\0' ' ' <"/proc/$PROXY_PID/cmdline" | sed 's/ *$//'
	}
	# systemd-socket-activate becomes the acceptor at the first connection.
	hold one "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	hold two "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	wait_for "two tunnels" sh -c "[ \"\$(tr '\\0' ' ' </proc/$PROXY_PID/cmdline | sed 's/ *\$//')\" = 'tunneld: acceptor, 2 tunnels, 0 waiting' ]"
	title_of "$one" | grep -qx "tunneld: - 127.0.0.1:$one -> 127.0.0.1:$TARGET_PORT relaying"
	pkill -P "$PROXY_PID" -f "^tunneld: - 127.0.0.1:$one "
	wait_for "one tunnel" sh -c "[ \"\$(tr '\\0' ' ' </proc/$PROXY_PID/cmdline | sed 's/ *\$//')\" = 'tunneld: acceptor, 1 tunnel, 0 waiting' ]"
	[ "$(acceptor_title)" = 'tunneld: acceptor, 1 tunnel, 0 waiting' ]
}

# open_and_close_share_id PORT FILE PREFIX: FILE has, for the client on PORT,
# one event=open record and then one event=close record, with one id.
open_and_close_share_id() {
	local port=$1 file=$2 prefix=$3 open close
	open=$(grep -a "^${prefix}127.0.0.1:$port -> .* event=open " "$file")
	close=$(grep -a "^${prefix}127.0.0.1:$port -> .* event=close " "$file")
	[ "$(grep -ac "^${prefix}127.0.0.1:$port -> " "$file")" -eq 2 ]
	[ "$(sed 's/.* id=\([0-9a-f]*\).*/\1/' <<<"$open")" = "$(sed 's/.* id=\([0-9a-f]*\).*/\1/' <<<"$close")" ]
	# open before close, in the file's order
	[ "$(grep -an "^${prefix}127.0.0.1:$port -> " "$file" | cut -d: -f1 | head -n 1)" = \
		"$(grep -an "^${prefix}127.0.0.1:$port -> .* event=open " "$file" | cut -d: -f1)" ]
}

@test "--log-open: an open record while the tunnel is live, a close record at its end, one id in both; HTTP and SOCKS5, stderr and a file" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --log-open
	hold http "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	local port_bytes
	port_bytes=$(printf '\\x%02x\\x%02x' $((TARGET_PORT >> 8)) $((TARGET_PORT & 255)))
	hold socks "b'\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01$port_bytes'"
	wait_log "^tunneld: 127.0.0.1:$http -> 127.0.0.1:$TARGET_PORT status=200 event=open id=[0-9a-f]{32}\$"
	wait_log "^tunneld: 127.0.0.1:$socks -> 127.0.0.1:$TARGET_PORT status=200 protocol=socks5 reply=0x00 event=open id=[0-9a-f]{32}\$"
	# Live: no close record yet, and the ids differ.
	! grep -q 'event=close' "$LOG" || false
	[ "$(grep -o 'id=[0-9a-f]*' "$LOG" | sort -u | wc -l)" -eq 2 ]
	pkill -P "$PROXY_PID" -f '^tunneld: '
	wait_log "^tunneld: 127.0.0.1:$http -> 127.0.0.1:$TARGET_PORT status=200 up=0 down=0 duration_ms=[0-9]+ event=close id=[0-9a-f]{32} reason=stopped by signal\$"
	wait_log "^tunneld: 127.0.0.1:$socks -> .* protocol=socks5 reply=0x00 event=close id=[0-9a-f]{32} reason=stopped by signal\$"
	open_and_close_share_id "$http" "$LOG" "tunneld: "
	open_and_close_share_id "$socks" "$LOG" "tunneld: "

	# A refusal has only its close record, with an id of its own.
	local file=$BATS_TEST_TMPDIR/access.log
	start_target echo
	start_listener "file proxy" PROXY_PORT sh -c 'exec systemd-socket-activate --listen="127.0.0.1:$PORT" --accept --inetd "$@" 2>/dev/null' \
		sh "$TUNNELD" --log="file:$file" --log-open --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32
	PROXY_PID=$LISTENER_PID
	hold filed "b'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n'"
	wait_for "the open record" grep -q "^127.0.0.1:$filed -> 127.0.0.1:$TARGET_PORT status=200 event=open id=[0-9a-f]\{32\}\$" "$file"
	run raw_request "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"
	[[ $output == "HTTP/1.1 403 "* ]]
	pkill -P "$PROXY_PID" -f "^tunneld: - 127.0.0.1:$filed "
	wait_for "the close record" grep -q "^127.0.0.1:$filed -> .* event=close " "$file"
	open_and_close_share_id "$filed" "$file" ""
	[ "$(grep -c ' -> 127.0.0.1:1 status=403 .* event=close id=[0-9a-f]\{32\} reason=' "$file")" -eq 1 ]
	[ "$(grep -c ' -> 127.0.0.1:1 .*event=open' "$file")" -eq 0 ]
}

@test "--log-open: syslog gets both records, one id; the squid format keeps one line per tunnel" {
	start_target echo
	local syslog=$BATS_TEST_TMPDIR/syslog
	run --separate-stderr timeout 20 "$PEERS/with-syslog" "$syslog" sh -c \
		"printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping' | '$TUNNELD' --log=syslog --log-open --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32"
	[[ $output == *ping ]]
	grep -q "tunneld\[[0-9]*\]: - -> 127.0.0.1:$TARGET_PORT status=200 event=open id=[0-9a-f]\{32\}$" "$syslog"
	grep -q "tunneld\[[0-9]*\]: - -> 127.0.0.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]* event=close id=[0-9a-f]\{32\}$" "$syslog"
	[ "$(grep -o 'id=[0-9a-f]*' "$syslog" | sort -u | wc -l)" -eq 1 ]

	run --separate-stderr sh -c "printf 'CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping' | '$TUNNELD' --log=stderr --log-format=squid --log-open --allow-port=$TARGET_PORT --allow-dest=127.0.0.1/32"
	[[ $output == *ping ]]
	[ "$(grep -c . <<<"$stderr")" -eq 1 ]
	[[ $stderr =~ ^tunneld:\ [0-9]+\.[0-9]{3}\ +[0-9]+\ -\ TCP_TUNNEL/200\ 4\ CONNECT\ 127\.0\.0\.1:$TARGET_PORT\ -\ HIER_DIRECT/127\.0\.0\.1\ -$ ]]
}
