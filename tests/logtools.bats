#!/usr/bin/env bats
# tunneld(8) "LOGGING": records that existing tools read. Squid's access.log
# format read by calamaris, a Squid log analyzer; the shipped fail2ban filter
# read by fail2ban-regex and by a real fail2ban-server that bans.

load helpers

setup() {
	setup_common
	AUTH_FILE=$BATS_TEST_TMPDIR/users
	htpasswd -B -C 5 -b -c "$AUTH_FILE" alice 'wonder land' 2>/dev/null
	htpasswd -B -C 5 -b "$AUTH_FILE" bob 'b0b secret' 2>/dev/null
}

# fail2ban_config DIR: a private copy of Debian's fail2ban configuration with
# the shipped filter in it.
fail2ban_config() {
	cp -r /etc/fail2ban "$1"
	cp "$TOP/contrib/fail2ban/tunneld.conf" "$1/filter.d/"
}

@test "--log=file: with --log-format=squid: calamaris counts the tunnels, bytes and users" {
	start_target source 1000
	local access_log=$BATS_TEST_TMPDIR/access.log
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE" --log="file:$access_log" --log-format=squid
	# socat and ncat, not curl's telnet://, which would take the target's 0xff bytes for telnet commands.
	for credentials in 'alice:wonder land' 'alice:wonder land' 'bob:b0b secret'; do
		timeout 10 socat -t 10 - "PROXY:127.0.0.1:127.0.0.1:$TARGET_PORT,proxyport=$PROXY_PORT,proxyauth=$credentials" \
			</dev/null >"$BATS_TEST_TMPDIR/received"
		[ "$(wc -c <"$BATS_TEST_TMPDIR/received")" -eq 1000 ]
	done
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$PROXY_PORT" \
		--proxy-user 'bob:wrong' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	# A SOCKS5 tunnel is a CONNECT to Squid's eyes too.
	timeout 10 ncat --recv-only --proxy "127.0.0.1:$PROXY_PORT" --proxy-type socks5 --proxy-auth 'bob:b0b secret' \
		127.0.0.1 "$TARGET_PORT" >"$BATS_TEST_TMPDIR/received"
	[ "$(wc -c <"$BATS_TEST_TMPDIR/received")" -eq 1000 ]
	wait_for "5 records" eval '[ "$(wc -l <"$access_log")" -eq 5 ]'
	# Squid's own words, field by field; bytes are what the client received through the tunnel.
	grep -Eq "^[0-9]{10}\.[0-9]{3} +[0-9]+ 127\.0\.0\.1 TCP_TUNNEL/200 1000 CONNECT 127\.0\.0\.1:$TARGET_PORT alice HIER_DIRECT/127\.0\.0\.1 -$" "$access_log"
	grep -Eq "^[0-9]{10}\.[0-9]{3} +[0-9]+ 127\.0\.0\.1 TCP_DENIED/407 [0-9]+ CONNECT 127\.0\.0\.1:$TARGET_PORT bob HIER_NONE/- -$" "$access_log"
	# Nothing but records in the file, and nothing of them on stderr.
	[ "$(grep -c ' CONNECT ' "$access_log")" -eq 5 ]
	! grep -q ' -> ' "$LOG" || false

	run sh -c "calamaris --requester-report -1 --requester-report-use-user-info --requester-report-no-dns-lookup \
		--status-report <'$access_log'"
	echo "$output"
	grep -Eq '^lines parsed: +lines +5 *$' <<<"$output"
	grep -Eq '^invalid lines: +lines +0 *$' <<<"$output"
	grep -Eq '^Total amount: +requests +5 *$' <<<"$output"
	grep -Eq '^ TCP_TUNNEL +4 ' <<<"$output"
	grep -Eq '^ TCP_DENIED +1 ' <<<"$output"
	# Per user: alice's two tunnels, bob's one tunnel and one refusal; the bytes each received.
	local alice bob
	alice=$(grep -E '^alice@127\.0\.0\.1 ' <<<"$output")
	bob=$(grep -E '^bob@127\.0\.0\.1 ' <<<"$output")
	[ "$(awk '{ print $2 }' <<<"$alice")" = 2 ]
	[ "$(awk '{ print $2 }' <<<"$bob")" = 3 ]
	local alice_bytes bob_bytes
	alice_bytes=$(awk '$8 == "alice" { sum += $5 } END { print sum }' "$access_log")
	bob_bytes=$(awk '$8 == "bob" { sum += $5 } END { print sum }' "$access_log")
	[ "$(awk '{ print $5 }' <<<"$alice")" = "$alice_bytes" ]
	[ "$(awk '{ print $5 }' <<<"$bob")" = "$bob_bytes" ]
	[ "$alice_bytes" -eq 2000 ]
	[ "$bob_bytes" -eq 2000 ]
}

@test "fail2ban-regex: the shipped filter matches every failed login and nothing else, over HTTP and SOCKS5" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE"
	local url=telnet://127.0.0.1:$TARGET_PORT
	# Failures: a wrong password, an unknown user, malformed credentials, and the same over SOCKS5.
	curl -s --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user 'alice:nope' "$url" </dev/null || true
	curl -s --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user 'mallory:nope' "$url" </dev/null || true
	raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\nProxy-Authorization: Basic !!\r\n\r\n" >/dev/null
	curl -s --max-time 10 -U 'alice:nope' --socks5 "127.0.0.1:$PROXY_PORT" "$url" </dev/null || true
	curl -s --max-time 10 -U 'mallory:nope' --socks5 "127.0.0.1:$PROXY_PORT" "$url" </dev/null || true
	# Not failures: successes both ways, the 407 challenge before credentials, a 403.
	printf 'x' | curl -s --max-time 10 -p -x "http://127.0.0.1:$PROXY_PORT" --proxy-user 'alice:wonder land' "$url" >/dev/null || true
	printf 'x' | curl -s --max-time 10 -U 'bob:b0b secret' --socks5 "127.0.0.1:$PROXY_PORT" "$url" >/dev/null || true
	raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n" >/dev/null
	raw_request "CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: Basic $(printf 'alice:wonder land' | base64)\r\n\r\n" >/dev/null
	wait_for "9 records" eval '[ "$(grep -c " -> " "$LOG")" -eq 9 ]'
	grep ' -> ' "$LOG" >"$BATS_TEST_TMPDIR/records"
	# A server fault is not the client's failure. No client can make tunneld write this record
	# (crypt(3) fails to load at start, not per login), so it is written here in its exact form.
	printf 'tunneld: 127.0.0.9:4000 -> 127.0.0.1:443 status=407 up=0 down=0 duration_ms=1 user=alice reason=crypt(3) unavailable\n' \
		>>"$BATS_TEST_TMPDIR/records"

	fail2ban_config "$BATS_TEST_TMPDIR/fail2ban"
	run fail2ban-regex --config "$BATS_TEST_TMPDIR/fail2ban" --print-all-matched --datepattern '{NONE}' \
		"$BATS_TEST_TMPDIR/records" tunneld
	echo "$output"
	grep -q '^Lines: 10 lines, 0 ignored, 5 matched, 5 missed' <<<"$output"
	local matched
	matched=$(sed -n '/Matched line(s):/,/^`-/p' <<<"$output")
	[ "$(grep -c 'status=407 .*reason=\(wrong password\|unknown user\|malformed Proxy-Authorization\)$' <<<"$matched")" -eq 5 ]
	[ "$(grep -c 'protocol=socks5' <<<"$matched")" -eq 2 ]
	! grep -q 'status=200\|no proxy credentials\|status=403\|crypt(3)' <<<"$matched" || false
}

@test "fail2ban-server with the shipped filter bans the address that failed five times, named by the PROXY header" {
	start_target echo
	start_proxy "${LOOPBACK_POLICY[@]}" --auth-file="$AUTH_FILE" --proxy-protocol
	local dir=$BATS_TEST_TMPDIR/fail2ban
	fail2ban_config "$dir"
	cat >"$dir/action.d/record-ban.conf" <<ACTION
[Definition]
actionstart =
actionstop =
actioncheck =
actionban = echo <ip> >>$BATS_TEST_TMPDIR/banned
actionunban =
ACTION
	cat >"$dir/fail2ban.local" <<CONF
[Definition]
logtarget = $BATS_TEST_TMPDIR/fail2ban.log
dbfile = :memory:
CONF
	rm -f "$dir"/jail.d/*
	cat >"$dir/jail.local" <<JAIL
[DEFAULT]
backend = polling
[tunneld]
enabled = true
filter = tunneld
logpath = $LOG
datepattern = {NONE}
maxretry = 5
findtime = 10m
action = record-ban
JAIL
	start_bg fail2ban-server -f -x -c "$dir" -s "$dir/socket" -p "$dir/pid"
	wait_for "fail2ban's jail" sh -c "fail2ban-client -s '$dir/socket' status tunneld | grep -q 'Currently failed'"
	# Through a balancer: every connection comes from 127.0.0.1, the PROXY header names the client.
	login() { # SOURCE PASSWORD: one CONNECT with alice's name, from SOURCE as the header says
		{ proxy_v2 "$1" 40000
			printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n\r\n' \
				"$TARGET_PORT" "$(printf 'alice:%s' "$2" | base64)"; } |
			timeout 10 nc -N 127.0.0.1 "$PROXY_PORT" | head -n 1
	}
	for _ in 1 2 3 4; do login 192.0.2.8 guess; done
	login 192.0.2.8 'wonder land'
	for _ in 1 2 3 4 5; do [[ "$(login 192.0.2.7 guess)" == "HTTP/1.1 407 "* ]]; done
	wait_for "a ban" test -s "$BATS_TEST_TMPDIR/banned"
	[ "$(cat "$BATS_TEST_TMPDIR/banned")" = 192.0.2.7 ]
	run fail2ban-client -s "$dir/socket" status tunneld
	[[ "$output" == *"Banned IP list:"*"192.0.2.7"* ]]
	[[ "$output" != *"192.0.2.8"* ]]
	fail2ban-client -s "$dir/socket" stop >/dev/null
}
