#!/usr/bin/env bats
# SPEC §8: where the record goes, and what it says. (The journal, with its
# fields, under a real systemd manager: systemd.bats.)

load helpers

setup() {
	setup_common
	SYSLOG=$BATS_TEST_TMPDIR/syslog
	: >"$SYSLOG"
}

# over_pipes REQUEST ARGS...: tunneld on two pipes, syslog read into $SYSLOG.
over_pipes() {
	local request=$1
	shift
	printf "$request" | timeout 20 "$PEERS/with-syslog" "$SYSLOG" "$TUNNELD" "$@"
}

@test "--log=syslog: one line, facility daemon, tag tunneld[pid], priority by outcome" {
	start_target echo
	run over_pipes "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping" --log=syslog "${LOOPBACK_POLICY[@]}"
	[[ "$output" == "HTTP/1.1 200"*"ping" ]]
	run over_pipes 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n' --log=syslog --allow-dest=127.0.0.1
	run over_pipes "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n" --log=syslog "${LOOPBACK_POLICY[@]}"
	[ "$(wc -l <"$SYSLOG")" -eq 3 ]
	# <30> daemon.info for a tunnel, <29> daemon.notice for a refusal, <28> daemon.warning upstream.
	grep -Eq "^<30>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+$" "$SYSLOG"
	grep -Eq '^<29>.* tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:22 status=403 .*reason=port not allowed$' "$SYSLOG"
	grep -Eq '^<28>.* tunneld\[[0-9]+\]: - -> 127\.0\.0\.1:1 status=502 .*reason=connection refused by the target$' "$SYSLOG"
}

@test "--log=auto with fd 2 closed goes to syslog; --log=none writes nowhere" {
	run over_pipes 'GET / HTTP/1.1\r\n\r\n' --log=auto 2>&-
	[[ "$output" == "HTTP/1.1 405 "* ]]
	grep -q 'tunneld\[[0-9]*\]: - -> - status=405' "$SYSLOG"
	: >"$SYSLOG"
	run --separate-stderr over_pipes 'GET / HTTP/1.1\r\n\r\n' --log=none
	[[ "$output" == "HTTP/1.1 405 "* ]]
	[ -z "$stderr" ]
	[ ! -s "$SYSLOG" ]
}

@test "--log=auto with fd 2 open and not the client goes to stderr, one line" {
	run --separate-stderr over_pipes 'GET / HTTP/1.1\r\n\r\n'
	[ "$stderr" = "tunneld: - -> - status=405 up=0 down=0 duration_ms=${stderr##*duration_ms=}" ]
	[[ "$stderr" == *" reason=method is not CONNECT" ]]
	[ ! -s "$SYSLOG" ]
}

@test "the client is named by REMOTE_ADDR, REMOTE_HOST, SSH_CLIENT, the peer, in that order" {
	run --separate-stderr env REMOTE_ADDR=192.0.2.1 REMOTE_HOST=192.0.2.2 REMOTE_PORT=1111 SSH_CLIENT='192.0.2.3 3333 22' \
		sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: 192.0.2.1:1111 -> "* ]]
	run --separate-stderr env REMOTE_HOST=2001:db8::2 REMOTE_PORT=2222 SSH_CLIENT='192.0.2.3 3333 22' \
		sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: [2001:db8::2]:2222 -> "* ]]
	run --separate-stderr env SSH_CLIENT='192.0.2.3 3333 22' sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: 192.0.2.3:3333 -> "* ]]
	# Values that are not addresses are not trusted into the log.
	run --separate-stderr env REMOTE_ADDR='evil text' sh -c "printf 'GET / HTTP/1.1\r\n\r\n' | '$TUNNELD' --log=stderr"
	[[ "$stderr" == "tunneld: - -> "* ]]
}
