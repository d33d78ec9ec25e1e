#!/usr/bin/env bats
# The rules file (tunneld(8) "RULES"): the table through real tunnels and
# --explain, --check's errors, and upstream parents that are real proxies:
# Squid and tinyproxy (HTTP), microsocks (SOCKS5), one that refuses, one
# that is down.

load helpers

RULES_TABLE=$BATS_TEST_DIRNAME/rules-table

setup() {
	setup_common
	PARENT_DIR=
}

teardown() {
	stop_all
	[ -z "$PARENT_DIR" ] || rm -rf "$PARENT_DIR"
}

# make_users FILE NAME...: an htpasswd file, each NAME's password NAME-pw.
make_users() {
	local file=$1 name
	shift
	: >"$file"
	for name in "$@"; do htpasswd -bBC 4 "$file" "$name" "$name-pw" 2>/dev/null; done
}

@test "the rules table through real tunnels: users and group members by their whole name and case, networks, names, CIDRs, public, ports, protocols, first match; --explain agrees in every case" {
	make_users "$BATS_TEST_TMPDIR/users" alice bob carol dave erin bo Carol
	cp "$RULES_TABLE/bastion.rules" "$BATS_TEST_TMPDIR/rules"
	# protocol user from to             -> tunnel and --explain verdict, rule line
	cat >"$BATS_TEST_TMPDIR/cases" <<-'CASES'
		http alice 192.0.2.1 db1.internal:22 allow 3
		http bob 192.0.2.1 web.internal:22 allow 3
		http carol 192.0.2.1 db1.internal:22 deny 11
		http carol 192.0.2.1 db1.internal:5432 allow 4
		http alice 192.0.2.1 db1.internal:5432 deny 11
		http alice 10.1.9.9 db1.internal:22 allow 3
		http dave 10.1.9.9 pub.example:443 deny 5
		http dave 10.1.2.3 pub.example:443 allow 6
		http dave 10.1.2.3 db1.internal:443 deny 11
		http dave 10.1.2.3 10.20.0.12:8080 allow 7
		http dave 10.1.2.3 web.internal:8080 allow 7
		http dave 192.0.2.1 web.internal:80 deny 8
		http dave 192.0.2.1 db1.internal:80 allow 9
		http alice 192.0.2.1 loop.internal:22 deny 3
		http erin 192.0.2.1 db1.internal:22 deny 11
		socks5 erin 192.0.2.1 db1.internal:22 allow 10
		socks5 dave 2001:db8::5 db1.internal:80 allow 9
		http dave 10.1.2.3 [::ffff:9.9.9.9]:443 allow 6
		http dave 10.1.2.3 9.9.9.9:8080 deny 11
		http bo 192.0.2.1 db1.internal:22 deny 11
		http Carol 192.0.2.1 db1.internal:5432 deny 11
		http dave 10.1.9.9 9.9.9.9:443 deny 5
	CASES
	cut -d' ' -f1-4 "$BATS_TEST_TMPDIR/cases" >"$BATS_TEST_TMPDIR/requests"
	# The text, then its compiled image: the same verdicts by the same lines, in tunnels and in --explain.
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --compile "$BATS_TEST_TMPDIR/rules.image"
	local rules number protocol user from to verdict line
	for rules in "$BATS_TEST_TMPDIR/rules" "$BATS_TEST_TMPDIR/rules.image"; do
		: >"$LOG"
		run timeout -k 1 120 unshare --net --mount "$RULES_TABLE/run" "$TUNNELD" "$rules" \
			"$BATS_TEST_TMPDIR/users" "$BATS_TEST_TMPDIR/requests" "$LOG"
		echo "$rules:"
		echo "$output"
		[ "$status" -eq 0 ]
		number=0
		while read -r protocol user from to verdict line; do
			number=$((number + 1))
			grep -qx "$number tunnel=$verdict rule=$line explain=$verdict line=$line" <<<"$output" ||
				{ echo "case $number ($protocol $user from $from to $to): want $verdict by line $line"; false; }
		done <"$BATS_TEST_TMPDIR/cases"
		[ "$number" -eq 22 ]
		[ "$(grep -c ' tunnel=' <<<"$output")" -eq 22 ]
	done
}

# check_error FILE_TEXT LINE:COL MESSAGE: --check refuses the text, naming that place first and saying MESSAGE.
check_error() {
	local file=$BATS_TEST_TMPDIR/broken.rules
	printf '%b' "$1" >"$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 2 ] || { echo "status $status for: $1"; false; }
	[ -z "$output" ]
	[ "${stderr_lines[0]}" = "tunneld: $file:$2: $3" ] ||
		{ printf 'for: %s\nwant: %s\ngot:  %s\n' "$1" "$file:$2: $3" "${stderr_lines[0]}"; false; }
}

@test "--check: each error of a broken file names its file, line and column, and what was expected" {
	check_error 'alow to x\n' 1:1 "expected allow, deny, via or group, found 'alow'"
	check_error '# fine\n\nallow to x port 99999\n' 3:17 "expected a port 1-65535, a range as 8000-8999, or *, found '99999'"
	check_error 'allow to a.example,, b.example\n' 1:20 "expected a destination after 'to', found ','"
	check_error 'allow user\n' 1:11 "expected a user name after 'user', found end of line"
	check_error 'allow user # who?\n' 1:12 "expected a user name after 'user', found a comment"
	check_error 'via ftp://proxy:21 to x\n' 1:5 "expected a parent as http://HOST:PORT or socks5://HOST:PORT, found the scheme 'ftp'"
	check_error 'via http://proxy to x\n' 1:5 "expected the parent's HOST:PORT after the scheme (port required in the authority)"
	check_error 'via http://u:p%%zz@proxy:3128\n' 1:5 "expected the parent's login as user:password@ (at most 255 bytes each, %XX for special characters, no control characters)"
	check_error 'allow from 10.0.0.0/8 to 10.0.0.0/33\n' 1:26 "expected an address or a network as 10.0.0.0/8, found '10.0.0.0/33' (malformed CIDR prefix length)"
	check_error 'allow from office\n' 1:12 "expected a network as 10.0.0.0/8 or 2001:db8::/32, found 'office' (malformed CIDR address)"
	check_error 'allow group ops\ngroup ops = alice\n' 1:13 "unknown group 'ops' (define it above: group ops = USER ...)"
	check_error 'group ops = alice\ngroup ops = bob\n' 2:7 "group 'ops' is already defined"
	check_error 'group ops alice\n' 1:11 "expected '=' after the group's name, found alice"
	check_error 'group ops =\n' 1:12 "expected the group's members after '='"
	check_error 'allow to x to y\n' 1:12 "'to' is already given in this rule: list its values with commas"
	check_error 'allow protocol gopher\n' 1:16 "expected http, socks5 or jump, found 'gopher'"
	check_error 'allow to bad_name! port 1\n' 1:10 "expected a host name, *.domain, an address, a network, public or *, found 'bad_name!'"
	check_error 'allow to x\n\tdeny ports 22\n' 2:7 "expected user, group, from, to, port, protocol or outgoing, found 'ports'"
	check_error 'allow to caf\xc3\xa9.example\n' 1:13 "unexpected byte 0xc3 (words are printable ASCII)"
	check_error '# a comment may hold anything: caf\xc3\xa9\nallow to x\tport 1\x01\n' 2:18 "unexpected byte 0x01 (words are printable ASCII)"
	check_error 'allow to x\r\nallow to *.*.example\r\n' 2:10 "expected a host name, *.domain, an address, a network, public or *, found '*.*.example'"
}

@test "--check: every error of a file in one run, a good file passes, and the options the rules replace are refused" {
	local file=$BATS_TEST_TMPDIR/rules
	printf 'alow\nallow to x\ndeny prot http\nallow port 0\n' >"$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 3 ]
	[[ ${stderr_lines[0]} == "tunneld: $file:1:1: "* ]]
	[[ ${stderr_lines[1]} == "tunneld: $file:3:6: "* ]]
	[[ ${stderr_lines[2]} == "tunneld: $file:4:12: "* ]]

	# The file is read through a buffer of two lines' length: lines too long, and lines across reads, keep their numbers.
	{
		printf 'allow to %s\n' "$(head -c 9000 /dev/zero | tr '\0' a)"
		for _ in $(seq 3000); do echo "allow to a.example port 443"; done
		echo "allow to x prot 1"
		printf 'allow to %s.example\n' "$(head -c 5000 /dev/zero | tr '\0' b)"
		echo "deny ports 1"
	} >"$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "tunneld: $file:1:4097: line longer than 4096 bytes" ]
	[ "${stderr_lines[1]}" = "tunneld: $file:3002:12: expected user, group, from, to, port, protocol or outgoing, found 'prot'" ]
	[ "${stderr_lines[2]}" = "tunneld: $file:3003:4097: line longer than 4096 bytes" ]
	[ "${stderr_lines[3]}" = "tunneld: $file:3004:6: expected user, group, from, to, port, protocol or outgoing, found 'ports'" ]
	yes '# a comment' | head -c $((1024 * 1024 + 1)) >"$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$stderr" = "tunneld: rules file $file: larger than 1048576 bytes" ]

	make_users "$BATS_TEST_TMPDIR/users" alice
	run --separate-stderr "$TUNNELD" --rules "$RULES_TABLE/bastion.rules" --auth-file "$BATS_TEST_TMPDIR/users" --check
	[ "$status" -eq 0 ]
	[ "$output" = "tunneld: $RULES_TABLE/bastion.rules OK: 9 rules, 1 groups, 0 parents" ]
	[ -z "$stderr" ]
	# Rules that name users but no --auth-file: they can never match, and --check says so.
	run --separate-stderr "$TUNNELD" --rules "$RULES_TABLE/bastion.rules" --check
	[ "$status" -eq 0 ]
	[[ $stderr == *"bastion.rules:3: warning: this rule names users, but without --auth-file (or --jump) no request has a user"* ]]

	for option in --allow-port=22 -a10.0.0.0/8 "--deny-dest 10.0.0.0/8" "-H x.example"; do
		# shellcheck disable=SC2086
		run --separate-stderr "$TUNNELD" --rules "$file" $option --check
		[ "$status" -eq 2 ]
		[[ $stderr == *" and --rules: the rules file replaces --allow-port, --allow-dest, --deny-dest and --allow-host"* ]]
	done
	# A bad option is told as a connection would tell it, and --check fails.
	run --separate-stderr "$TUNNELD" --rules "$RULES_TABLE/bastion.rules" --header-timeout=0 --check
	[ "$status" -eq 2 ]
	[[ $stderr == "tunneld: bad --header-timeout '0'"* ]]
}

@test "a broken rules file: each connection is answered 500 (proxy_configuration_error), and the log names file, line and column" {
	printf 'allow to *.example port 443\nallow to x prt 1\n' >"$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	run raw_request 'CONNECT a.example:443 HTTP/1.1\r\n\r\n'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = $'HTTP/1.1 500 Internal Server Error\r' ]
	[[ $output == *$'Proxy-Status: tunneld; error=proxy_configuration_error; details="the proxy\'s configuration has an error; its log says which"\r'* ]]
	[[ $output != *prt* ]]
	wait_log "tunneld: $BATS_TEST_TMPDIR/rules:2:12: expected user, group, from, to, port, protocol or outgoing, found 'prt'"
	wait_log "-> a.example:443 status=500 up=0 down=0 duration_ms=[0-9]+ reason=$BATS_TEST_TMPDIR/rules:2:12: expected user, group, from, to, port, protocol or outgoing, found 'prt'$"
	# SOCKS5: general failure (0x01), the same record.
	run sh -c "timeout 10 '$PYTHON' '$PEERS/socks5.py' $PROXY_PORT 050100 0501000309612e6578616d706c6501bb 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "050005010001000000000000" ]
	wait_log "-> a.example:443 status=500 up=0 down=0 duration_ms=[0-9]+ protocol=socks5 reply=0x01 reason=$BATS_TEST_TMPDIR/rules:2:12"
	# With a password file that is fine, no login is asked on the way to the same answer.
	htpasswd -bBC 4 -c "$BATS_TEST_TMPDIR/users" alice secret 2>/dev/null
	stop_all
	: >"$LOG"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules" --auth-file "$BATS_TEST_TMPDIR/users"
	run sh -c "timeout 10 '$PYTHON' '$PEERS/socks5.py' $PROXY_PORT 050100 0501000309612e6578616d706c6501bb 2>/dev/null | od -An -tx1 | tr -d ' \n'"
	[ "$output" = "050005010001000000000000" ]
	wait_log "-> a.example:443 status=500 up=0 down=0 duration_ms=[0-9]+ protocol=socks5 reply=0x01 reason=$BATS_TEST_TMPDIR/rules:2:12"
	stop_all
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	# Fixed in place, the next connection reads it.
	printf 'allow to 127.0.0.1 port %s\n' "$(free_port)" >"$BATS_TEST_TMPDIR/rules"
	start_target echo
	printf 'allow to 127.0.0.1 port %s\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/rules"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+ rule=1$"
}

@test "--explain: a name's addresses one by one, a via rule without a lookup, the built-in denies, and its exit status" {
	local file=$BATS_TEST_TMPDIR/rules
	cat >"$file" <<-'RULES'
		via socks5://127.0.0.1:1080 to *.partner.example
		allow to localhost port 8000-8999
		allow to 127.0.0.1/32 port 9000
		deny
	RULES
	run "$TUNNELD" --rules "$file" --explain to=www.partner.example:443
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "request: user=- from=- protocol=http to=www.partner.example:443" ]
	[ "${lines[1]}" = "before any lookup: via, sent via a parent by a rule, line 1: via socks5://127.0.0.1:1080 to *.partner.example" ]
	[ "${lines[2]}" = "verdict: via socks5://127.0.0.1:1080, line 1" ]
	[ "${lines[3]}" = "the parent resolves www.partner.example: where it leads, and whether that is allowed, is the parent's policy (the built-in denies apply here to addresses only)" ]
	[ "${#lines[@]}" -eq 4 ]
	# localhost is matched by name, but its address is in a built-in deny the rule does not name.
	run "$TUNNELD" --rules "$file" --explain to=localhost:8080
	[ "$status" -eq 1 ]
	[[ $output == *"before any lookup: deny, address in a built-in deny range that the matching rule does not name, line 2: allow to localhost port 8000-8999"* ]]
	[ "${lines[-1]}" = "verdict: deny, line 2" ]
	run "$TUNNELD" --rules "$file" --explain to=127.0.0.1:9000 protocol=socks5 from=10.1.2.3
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "request: user=- from=10.1.2.3 protocol=socks5 to=127.0.0.1:9000" ]
	[ "${lines[-1]}" = "verdict: allow, line 3" ]
	run "$TUNNELD" --rules "$file" --explain to=example.invalid:1
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "verdict: deny, line 4" ]
	run "$TUNNELD" --rules "$file" --explain to=a.example:1 from=office
	[ "$status" -eq 2 ]
	run "$TUNNELD" --rules "$file" --explain user=alice
	[ "$status" -eq 2 ]
	# Without a rules file it explains the options.
	run "$TUNNELD" --allow-port=8080 --explain to=127.0.0.1:8080
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = "port: allowed (--allow-port)" ]
	[ "${lines[3]}" = "127.0.0.1: deny (destination rules)" ]
	[ "${lines[4]}" = "verdict: deny" ]
}

# Parents are real proxies on loopback, each in the test's own directory
# (Squid drops to its own user, which must reach it), resolving the test's
# names through HOSTS_FILE as tunneld does.
make_parent_dir() {
	PARENT_DIR=$(mktemp -d /tmp/tunneld-parents.XXXXXX)
	chmod 777 "$PARENT_DIR"
	HOSTS_FILE=$PARENT_DIR/hosts
	printf '127.0.0.1 %s\n' "$@" >"$HOSTS_FILE"
	chmod 644 "$HOSTS_FILE"
	# A parent run behind this sees $HOSTS_FILE as /etc/hosts.
	WITH_HOSTS=(unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$HOSTS_FILE")
}


# start_file_server: an HTTP server on loopback with FILE_SERVED, 2 MiB; sets TARGET_PORT.
start_file_server() {
	mkdir -p "$BATS_TEST_TMPDIR/served"
	make_file "$BATS_TEST_TMPDIR/served/data" 2
	start_listener "file server" TARGET_PORT sh -c \
		'exec python3 -m http.server --bind 127.0.0.1 --directory "$0" "$PORT" >/dev/null 2>&1' "$BATS_TEST_TMPDIR/served"
}

# fetch_through_proxy HOST [CURL OPTIONS]: the served file through tunneld as HOST, bytes compared.
fetch_through_proxy() {
	local host=$1
	shift
	rm -f "$BATS_TEST_TMPDIR/fetched"
	run timeout 20 curl -sS --proxy "http://127.0.0.1:$PROXY_PORT" -p "$@" -o "$BATS_TEST_TMPDIR/fetched" \
		"http://$host:$TARGET_PORT/data"
	[ "$status" -eq 0 ] || { echo "$host: $output"; cat "$LOG"; false; }
	[ "$(sha_of "$BATS_TEST_TMPDIR/fetched")" = "$(sha_of "$BATS_TEST_TMPDIR/served/data")" ]
}

# start_squid: Squid on loopback; CONNECT to open.squid.test needs no login,
# blocked.test is refused (403), anything else needs parent:parent-pw (407).
start_squid() {
	make_users "$PARENT_DIR/squid-users" parent
	chmod 644 "$PARENT_DIR/squid-users"
	cat >"$PARENT_DIR/squid.conf.in" <<-CONF
		http_port 127.0.0.1:@PORT@
		pid_filename $PARENT_DIR/squid.pid
		cache_log $PARENT_DIR/squid-cache.log
		access_log stdio:$PARENT_DIR/squid-access.log
		coredump_dir $PARENT_DIR
		cache deny all
		shutdown_lifetime 0 seconds
		auth_param basic program /usr/lib/squid/basic_ncsa_auth $PARENT_DIR/squid-users
		acl authed proxy_auth REQUIRED
		acl open dstdomain open.squid.test
		acl blocked dstdomain blocked.test
		http_access deny blocked
		http_access allow open
		http_access allow authed
		http_access deny all
	CONF
	start_listener squid SQUID_PORT "${WITH_HOSTS[@]}" sh -c \
		'sed "s/@PORT@/$PORT/" "$0.in" >"$0" && exec squid -N -f "$0"' "$PARENT_DIR/squid.conf"
}

# start_tinyproxy VARIABLE [LOGIN]: tinyproxy on loopback, with BasicAuth if LOGIN ("user pass") is given.
start_tinyproxy() {
	local variable=$1 config=$PARENT_DIR/$1.conf
	printf 'Listen 127.0.0.1\nTimeout 30\nMaxClients 20\nUser nobody\nGroup nogroup\nLogLevel Info\n' >"$config.in"
	[ -z "${2:-}" ] || printf 'BasicAuth %s\n' "$2" >>"$config.in"
	start_listener tinyproxy "$variable" "${WITH_HOSTS[@]}" sh -c \
		'{ echo "Port $PORT"; cat "$0.in"; } >"$0" && exec tinyproxy -d -c "$0" >>"$0.log" 2>&1' "$config"
}

@test "HTTP parents: Squid and tinyproxy, with and without a login, carry the bytes; their refusals (403, 407) are our 502 with received-status" {
	make_parent_dir open.squid.test auth.squid.test badauth.squid.test blocked.test open.tiny.test auth.tiny.test noauth.tiny.test
	start_squid
	start_tinyproxy TINY_PORT
	start_tinyproxy TINY_AUTH_PORT "parent parent-pw"
	start_file_server
	cat >"$BATS_TEST_TMPDIR/rules" <<-RULES
		via http://127.0.0.1:$SQUID_PORT to open.squid.test, blocked.test
		via http://parent:parent-pw@127.0.0.1:$SQUID_PORT to auth.squid.test
		via http://parent:wrong-pw@127.0.0.1:$SQUID_PORT to badauth.squid.test
		via http://127.0.0.1:$TINY_PORT to open.tiny.test
		via http://parent:parent-pw@127.0.0.1:$TINY_AUTH_PORT to auth.tiny.test
		via http://127.0.0.1:$TINY_AUTH_PORT to noauth.tiny.test
		deny
	RULES
	chmod 600 "$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	local host line

	for host in "open.squid.test 1" "auth.squid.test 2" "open.tiny.test 4" "auth.tiny.test 5"; do
		set -- $host
		fetch_through_proxy "$1"
		wait_log "-> $1:$TARGET_PORT status=200 up=[0-9]+ down=[0-9]{7,} duration_ms=[0-9]+ via=http://127.0.0.1:[0-9]+ rule=$2$"
	done
	# The parents saw the name, and the login where one was given.
	grep -qE "TCP_TUNNEL/200 [0-9]+ CONNECT open.squid.test:$TARGET_PORT - HIER_DIRECT" "$PARENT_DIR/squid-access.log"
	grep -qE "TCP_TUNNEL/200 [0-9]+ CONNECT auth.squid.test:$TARGET_PORT parent HIER_DIRECT" "$PARENT_DIR/squid-access.log"
	grep -q "auth.tiny.test" "$PARENT_DIR/TINY_AUTH_PORT.conf.log"

	# Refusals: the client gets our 502, naming what the parent answered; never the parent's 407.
	for refused in "blocked.test 403 1" "badauth.squid.test 407 3" "noauth.tiny.test 407 6"; do
		set -- $refused
		run raw_request "CONNECT $1:$TARGET_PORT HTTP/1.1\r\n\r\n"
		[ "$(head_of <<<"$output" | head -n 1)" = "HTTP/1.1 502 Bad Gateway" ]
		grep -qx "Proxy-Status: tunneld; error=destination_unavailable; received-status=$2; details=\"the parent proxy refused the tunnel\"" <<<"$(head_of <<<"$output")"
		! grep -qi "Proxy-Authenticate" <<<"$output" || false
		wait_log "-> $1:$TARGET_PORT status=502 up=0 down=0 duration_ms=[0-9]+ via=http://127.0.0.1:[0-9]+ rule=$3 reason=the parent proxy refused the tunnel: HTTP $2$"
	done
	# The parent's password is in no record.
	! grep -q "parent-pw\|wrong-pw" "$LOG" || false
}

@test "a SOCKS5 parent (microsocks, with a login) gets the name to resolve; HTTP and SOCKS5 clients both go through it, the parent found by Happy Eyeballs" {
	make_parent_dir a.socks.test b.socks.test
	# The parent's name: ::1 first, where nothing listens, then 127.0.0.1.
	printf '::1 parent.test\n127.0.0.1 parent.test\n' >>"$HOSTS_FILE"
	start_listener microsocks SOCKS_PORT "${WITH_HOSTS[@]}" sh -c \
		'exec microsocks -i 127.0.0.1 -p "$PORT" -u parent -P parent-pw 2>>"$0"' "$PARENT_DIR/microsocks.log"
	start_file_server
	printf 'via socks5://parent:parent-pw@parent.test:%s to *.socks.test\ndeny\n' "$SOCKS_PORT" >"$BATS_TEST_TMPDIR/rules"
	chmod 600 "$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"

	fetch_through_proxy a.socks.test
	wait_log "-> a.socks.test:$TARGET_PORT status=200 up=[0-9]+ down=[0-9]{7,} duration_ms=[0-9]+ via=socks5://parent.test:$SOCKS_PORT rule=1$"
	run timeout 20 curl -sS --proxy "socks5h://127.0.0.1:$PROXY_PORT" -o "$BATS_TEST_TMPDIR/fetched" "http://b.socks.test:$TARGET_PORT/data"
	[ "$status" -eq 0 ]
	[ "$(sha_of "$BATS_TEST_TMPDIR/fetched")" = "$(sha_of "$BATS_TEST_TMPDIR/served/data")" ]
	wait_log "-> b.socks.test:$TARGET_PORT status=200 up=[0-9]+ down=[0-9]{7,} duration_ms=[0-9]+ protocol=socks5 reply=0x00 via=socks5://parent.test:$SOCKS_PORT rule=1$"
	# microsocks resolved the names itself: tunneld sent them as names.
	grep -q "connected to a.socks.test:$TARGET_PORT" "$PARENT_DIR/microsocks.log"
	grep -q "connected to b.socks.test:$TARGET_PORT" "$PARENT_DIR/microsocks.log"
	! grep -q "parent-pw" "$LOG" || false
}

# start_hostile_parent VARIABLE SHELL_COMMAND: a "parent" whose every connection gets SHELL_COMMAND's output.
start_hostile_parent() {
	# A script: socat's address syntax gives ':' and ',' meanings of its own.
	printf '#!/bin/sh\n%s\n' "$2" >"$BATS_TEST_TMPDIR/$1.sh"
	chmod +x "$BATS_TEST_TMPDIR/$1.sh"
	start_listener "hostile parent" "$1" sh -c \
		'exec socat TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork EXEC:"$0"' "$BATS_TEST_TMPDIR/$1.sh"
}

@test "parents that are down, refuse a login, speak nonsense, or never answer: 502 or 504, each with its record" {
	make_parent_dir down.test refused.test nonsense.test huge.test silent.test
	start_listener microsocks SOCKS_PORT "${WITH_HOSTS[@]}" sh -c \
		'exec microsocks -i 127.0.0.1 -p "$PORT" -u parent -P parent-pw 2>/dev/null'
	start_hostile_parent NONSENSE_PORT 'echo SSH-2.0-OpenSSH_9.2; sleep 5'
	start_hostile_parent HUGE_PORT 'printf "HTTP/1.1 200 OK\r\nX: "; head -c 20000 /dev/zero | tr "\\0" a; sleep 5'
	start_hostile_parent SILENT_PORT 'sleep 10'
	cat >"$BATS_TEST_TMPDIR/rules" <<-RULES
		via http://127.0.0.1:$(free_port) to down.test
		via socks5://parent:wrong@127.0.0.1:$SOCKS_PORT to refused.test
		via http://127.0.0.1:$NONSENSE_PORT to nonsense.test
		via http://127.0.0.1:$HUGE_PORT to huge.test
		via socks5://127.0.0.1:$SILENT_PORT to silent.test
	RULES
	chmod 600 "$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules" --connect-timeout=1
	local host answer error reason
	while IFS='|' read -r host answer error reason; do
		run raw_request "CONNECT $host:443 HTTP/1.1\r\n\r\n"
		[ "$(head_of <<<"$output" | head -n 1)" = "HTTP/1.1 $answer" ] || { echo "$host: $output"; false; }
		grep -q "^Proxy-Status: tunneld; error=$error; " <<<"$(head_of <<<"$output")"
		wait_log "-> $host:443 status=${answer%% *} up=0 down=0 duration_ms=[0-9]+ via=[a-z0-9]+://127.0.0.1:[0-9]+ rule=[0-9] reason=$reason$"
	done <<-CASES
		down.test|502 Bad Gateway|connection_refused|connection refused by the parent proxy
		refused.test|502 Bad Gateway|destination_unavailable|the parent proxy refused our login
		nonsense.test|502 Bad Gateway|http_protocol_error|the parent proxy's answer is not HTTP
		huge.test|502 Bad Gateway|http_protocol_error|the parent proxy's response head is too large
		silent.test|504 Gateway Timeout|connection_timeout|the parent proxy did not answer in time
	CASES
	! grep -q "wrong" "$LOG" || false
}

@test "a rules file with a parent's password is refused while group or others can read it; LoadCredential-style relative paths are found" {
	mkdir -p "$BATS_TEST_TMPDIR/credentials"
	local file=$BATS_TEST_TMPDIR/credentials/tunneld-rules
	printf 'via http://parent:secret@127.0.0.1:3128 to x.example\n' >"$file"
	chmod 644 "$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: rules file $file: holds a parent's password but is readable by group or others (chmod go= it, or hand it over with LoadCredential=)" ]
	chmod 600 "$file"
	run --separate-stderr "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 0 ]
	[ "$output" = "tunneld: $file OK: 1 rules, 0 groups, 1 parents" ]
	# A relative path is looked up in $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= hands it over.
	run --separate-stderr env CREDENTIALS_DIRECTORY="$BATS_TEST_TMPDIR/credentials" "$TUNNELD" --rules tunneld-rules --check
	[ "$status" -eq 0 ]
	[ "$output" = "tunneld: tunneld-rules OK: 1 rules, 0 groups, 1 parents" ]
	# Without a password the mode does not matter.
	printf 'via http://127.0.0.1:3128 to x.example\n' >"$file"
	chmod 644 "$file"
	run "$TUNNELD" --rules "$file" --check
	[ "$status" -eq 0 ]
}

@test "a parent's password reaches no error message, no record and no --explain output" {
	local file=$BATS_TEST_TMPDIR/rules
	for scheme in HTTP https Socks5; do
		printf 'via %s://alice:S3cretPW@127.0.0.1:3128 to *\n' "$scheme" >"$file"
		chmod 600 "$file"
		run --separate-stderr "$TUNNELD" --rules "$file" --check
		[ "$status" -eq 2 ]
		[ "$stderr" = "tunneld: $file:1:5: expected a parent as http://HOST:PORT or socks5://HOST:PORT, found the scheme '$scheme'" ]
	done
	printf 'via http://alice:S3cretPW@127.0.0.1:3128 to *\nvia socks5://bob:pw%%40x@127.0.0.1:1080 to *.example\n' >"$file"
	chmod 600 "$file"
	run "$TUNNELD" --rules "$file" --explain to=a.example:443
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "before any lookup: via, sent via a parent by a rule, line 1: via http://alice:***@127.0.0.1:3128 to *" ]
	! grep -q "S3cretPW\|pw%40x" <<<"$output" || false
}

@test "a lookup that times out leaves the parent hop its own connect timeout; a stop signal in the lookup names no rule" {
	local script=$BATS_TEST_TMPDIR/in-namespace
	start_target echo
	cat >"$script" <<-'SCRIPT'
		set -eu
		ip link set lo up
		printf 'nameserver 127.0.0.1\noptions timeout:30 attempts:1\n' >"$DIR/resolv.conf"
		mount --bind "$DIR/resolv.conf" /etc/resolv.conf
		python3 "$PEERS/dns.py" 192.0.2.1 "$DIR/dns.log" never &
		# The parent: answers CONNECT with 200, then says who it is.
		printf '#!/bin/sh\nprintf "HTTP/1.1 200 Connection established\\r\\n\\r\\nparent here\\n"\nsleep 2\n' >"$DIR/parent.sh"
		chmod +x "$DIR/parent.sh"
		socat TCP-LISTEN:3129,bind=127.0.0.1,reuseaddr,fork EXEC:"$DIR/parent.sh" &
		printf 'deny to 10.0.0.0/8\nvia http://127.0.0.1:3129 to *\n' >"$DIR/rules"
		systemd-socket-activate --listen=127.0.0.1:3128 --accept --inetd \
			"$TUNNELD" --log=stderr --rules "$DIR/rules" --connect-timeout=1 2>>"$LOG" &
		# dns.py listens on TCP :53 too, so a count of listeners can be met before 3128 is up.
		for _ in $(seq 100); do
			ss -Hltn 'sport = :3128' | grep -q . && ss -Hltn 'sport = :3129' | grep -q . &&
				grep -qx ready "$DIR/dns.log" 2>/dev/null && break
			sleep 0.1
		done
		printf 'CONNECT partner.example:443 HTTP/1.1\r\n\r\n' | timeout 10 nc -q 3 127.0.0.1 3128 >"$DIR/reply" || true
		# A stop signal while the lookup hangs.
		printf 'CONNECT other.example:443 HTTP/1.1\r\n\r\n' | timeout 10 "$TUNNELD" --log=stderr --rules "$DIR/rules" \
			--connect-timeout=30 2>>"$LOG" >/dev/null &
		for _ in $(seq 100); do grep -q "query other.example" "$DIR/dns.log" && break; sleep 0.1; done
		kill -TERM $!
		wait $! || true
		kill $(jobs -p) 2>/dev/null || true
	SCRIPT
	DIR=$BATS_TEST_TMPDIR PEERS=$PEERS TUNNELD=$TUNNELD LOG=$LOG timeout -k 1 60 unshare --net --mount bash "$script"
	[ "$(head -n 1 "$BATS_TEST_TMPDIR/reply" | tr -d '\r')" = "HTTP/1.1 200 Connection established" ]
	grep -qx "parent here" "$BATS_TEST_TMPDIR/reply"
	grep -qE -- "-> partner.example:443 status=200 up=0 down=12 duration_ms=[0-9]+ via=http://127.0.0.1:3129 rule=2$" "$LOG"
	grep -qE -- "-> other.example:443 status=- up=0 down=0 duration_ms=[0-9]+ reason=stopped by signal while resolving$" "$LOG"
}

@test "a parent's interim 1xx answers are skipped; --check and --explain are found under getopt's abbreviations; IPv6 special ranges are not public" {
	make_parent_dir interim.test
	start_hostile_parent INTERIM_PORT 'printf "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n\r\nhello\n"; sleep 2'
	printf 'via http://127.0.0.1:%s to interim.test\n' "$INTERIM_PORT" >"$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	run raw_request 'CONNECT interim.test:443 HTTP/1.1\r\n\r\n'
	[[ $output == "HTTP/1.1 200 Connection established"*hello ]] || { echo "$output"; false; }
	wait_log "-> interim.test:443 status=200 up=0 down=6 duration_ms=[0-9]+ via=http://127.0.0.1:$INTERIM_PORT rule=1$"

	# getopt_long takes any unambiguous prefix; so do the offline modes.
	run timeout 5 "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --chec </dev/zero
	[ "$output" = "tunneld: $BATS_TEST_TMPDIR/rules OK: 1 rules, 0 groups, 1 parents" ]
	run timeout 5 "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --expl to=interim.test:443 </dev/zero
	[ "${lines[-2]}" = "verdict: via http://127.0.0.1:$INTERIM_PORT, line 1" ]

	printf 'allow to public port 443\ndeny\n' >"$BATS_TEST_TMPDIR/public"
	for special in '[2001:2::f7f7:f7f7]' '[2001:10::1]' '[3fff::1]' '[2001:db8::1]' '[fd00::1]' 198.18.0.1 100.64.0.1 192.0.0.8; do
		run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/public" --explain "to=$special:443"
		[ "${lines[-1]}" = "verdict: deny, line 2" ] || { echo "$special: $output"; false; }
	done
	for global in '[2a00:1450::1]' 8.8.8.8 '[64:ff9b::808:808]'; do
		run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/public" --explain "to=$global:443"
		[ "${lines[-1]}" = "verdict: allow, line 1" ] || { echo "$global: $output"; false; }
	done
}

@test "a compiled image: --compile writes it whole by rename, tunnels and --explain read it, a damaged or foreign one is refused, a password keeps it 0600" {
	start_target echo
	printf '# the echo target\nallow to 127.0.0.1 port %s\ndeny\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/rules"
	local image=$BATS_TEST_TMPDIR/rules.image
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --compile "$image"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "tunneld: $BATS_TEST_TMPDIR/rules OK: 2 rules, 0 groups, 0 parents" ]
	[ "${lines[1]}" = "tunneld: compiled into $image" ]
	[ "$(stat -c %a "$image")" = 444 ]
	[ "$(head -c 16 "$image")" = "tunneld rules 1" ]
	# No temporary file is left beside it.
	[ "$(find "$BATS_TEST_TMPDIR" -name 'rules.image*' | wc -l)" -eq 1 ]
	run "$TUNNELD" --rules "$image" --check
	[ "$status" -eq 0 ]
	[ "$output" = "tunneld: $image OK: 2 rules, 0 groups, 0 parents (compiled)" ]
	# --explain shows the line's text, which the image carries.
	run "$TUNNELD" --rules "$image" --explain to=127.0.0.1:"$TARGET_PORT"
	[ "$status" -eq 0 ]
	[[ $output == *"127.0.0.1: allow, allowed by a rule, line 2: allow to 127.0.0.1 port $TARGET_PORT"* ]]
	[ "${lines[-1]}" = "verdict: allow, line 2" ]

	start_proxy --rules "$image"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nping"
	[[ $output == "HTTP/1.1 200 Connection established"*ping ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+ rule=2$"
	run raw_request "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden"* ]]
	wait_log "-> 127.0.0.1:1 status=403 .* rule=3"

	# Recompiled while the proxy serves: the next connection sees the new rules.
	printf 'deny to 127.0.0.1\n' >"$BATS_TEST_TMPDIR/rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --compile "$image" >/dev/null
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden"* ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=403 .* rule=1"

	# Cut short, one byte changed in its table, from another build, or compiled again: refused, each saying why.
	head -c 100 "$image" >"$BATS_TEST_TMPDIR/short.image"
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/short.image" --check
	[ "$status" -eq 2 ]
	[[ $stderr == "tunneld: compiled rules $BATS_TEST_TMPDIR/short.image: damaged ("*" bytes, the header says "*")" ]]
	# The first rule's verb made 9: after the 88-byte header, its line, first value and value count.
	cp "$image" "$BATS_TEST_TMPDIR/verb.image"
	printf '\011' | dd of="$BATS_TEST_TMPDIR/verb.image" bs=1 seek=98 conv=notrunc status=none
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/verb.image" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: compiled rules $BATS_TEST_TMPDIR/verb.image: damaged (checksum)" ]
	# Its text changed (the table is whole): connections would keep the table, --check says they differ.
	cp "$image" "$BATS_TEST_TMPDIR/text.image"
	printf 'x' | dd of="$BATS_TEST_TMPDIR/text.image" bs=1 seek=$(($(stat -c %s "$image") - 2)) conv=notrunc status=none
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/text.image" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: compiled rules $BATS_TEST_TMPDIR/text.image: its table is not its text's; compile the text again" ]
	cp "$image" "$BATS_TEST_TMPDIR/foreign.image"
	printf '\377' | dd of="$BATS_TEST_TMPDIR/foreign.image" bs=1 seek=20 conv=notrunc status=none
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/foreign.image" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: compiled rules $BATS_TEST_TMPDIR/foreign.image: made by another build of tunneld; compile it again" ]
	run --separate-stderr "$TUNNELD" --rules "$image" --compile "$BATS_TEST_TMPDIR/again.image"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $image: already compiled; compile its text" ]
	# A connection given a damaged image is answered 500, and the log says why.
	start_proxy --rules "$BATS_TEST_TMPDIR/verb.image"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ "${lines[0]}" = $'HTTP/1.1 500 Internal Server Error\r' ]
	wait_log "tunneld: compiled rules $BATS_TEST_TMPDIR/verb.image: damaged \\(checksum\\)"
	wait_log "status=500 .*reason=compiled rules $BATS_TEST_TMPDIR/verb.image: damaged \\(checksum\\)$"

	# A broken text writes nothing, and leaves the image in place as it was.
	local before
	before=$(sha256sum <"$image")
	printf 'allow to x prt 1\n' >"$BATS_TEST_TMPDIR/rules"
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --compile "$image"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $BATS_TEST_TMPDIR/rules:1:12: expected user, group, from, to, port, protocol or outgoing, found 'prt'" ]
	[ "$(sha256sum <"$image")" = "$before" ]

	# A parent's password: the image is made 0600, and refused once group or others may read it.
	printf 'via http://parent:secret@127.0.0.1:3128 to x.example\n' >"$BATS_TEST_TMPDIR/rules"
	chmod 600 "$BATS_TEST_TMPDIR/rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --compile "$image" >/dev/null
	[ "$(stat -c %a "$image")" = 400 ]
	run "$TUNNELD" --rules "$image" --explain to=x.example:443
	[[ $output == *"via http://parent:***@127.0.0.1:3128 to x.example"* ]]
	[[ $output != *secret* ]]
	chmod 644 "$image"
	run --separate-stderr "$TUNNELD" --rules "$image" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: rules file $image: holds a parent's password but is readable by group or others (chmod go= it, or hand it over with LoadCredential=)" ]
}

@test "compiled images, review regressions: the login flag in the header, modes, what --compile replaces, a password on a long line" {
	# The header says no login while a parent has one: refused, so a world-readable password is never used.
	printf 'via http://pu:secretpw@127.0.0.1:3128 to partner.example\ndeny\n' >"$BATS_TEST_TMPDIR/p.rules"
	chmod 600 "$BATS_TEST_TMPDIR/p.rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/p.rules" --compile "$BATS_TEST_TMPDIR/p.image" >/dev/null
	printf '\000' | dd of="$BATS_TEST_TMPDIR/p.image" bs=1 seek=72 conv=notrunc status=none
	chmod 644 "$BATS_TEST_TMPDIR/p.image"
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/p.image" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: compiled rules $BATS_TEST_TMPDIR/p.image: damaged (logins)" ]

	# An image is no more readable than its text.
	printf 'allow to 127.0.0.1 port 1 # a private note\n' >"$BATS_TEST_TMPDIR/private.rules"
	chmod 600 "$BATS_TEST_TMPDIR/private.rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/private.rules" --compile "$BATS_TEST_TMPDIR/private.image" >/dev/null
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/private.image")" = 400 ]
	# The text's mode less any write or execute bit (tunneld(8) "Compiled rules"): 0640 gives 0440, 0755 gives 0444.
	chmod 640 "$BATS_TEST_TMPDIR/private.rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/private.rules" --compile "$BATS_TEST_TMPDIR/private.image" >/dev/null
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/private.image")" = 440 ]
	chmod 755 "$BATS_TEST_TMPDIR/private.rules"
	"$TUNNELD" --rules "$BATS_TEST_TMPDIR/private.rules" --compile "$BATS_TEST_TMPDIR/private.image" >/dev/null
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/private.image")" = 444 ]
	chmod 600 "$BATS_TEST_TMPDIR/private.rules"

	# --compile replaces nothing but an image: not its own text, nor another file.
	local before
	before=$(sha256sum <"$BATS_TEST_TMPDIR/private.rules")
	run --separate-stderr "$TUNNELD" --rules "$BATS_TEST_TMPDIR/private.rules" --compile "$BATS_TEST_TMPDIR/private.rules"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $BATS_TEST_TMPDIR/private.rules: exists and is not a compiled image; not replaced" ]
	[ "$(sha256sum <"$BATS_TEST_TMPDIR/private.rules")" = "$before" ]

	# A password on a line too long to show whole with *** is cut, never shown (text and image alike).
	local line
	line="via http://u:p@127.0.0.1:3128 to partner.example #"
	line+=$(head -c $((4096 - ${#line})) /dev/zero | tr '\0' x)
	[ "${#line}" -eq 4096 ]
	printf '%s\n' "$line" >"$BATS_TEST_TMPDIR/long.rules"
	chmod 600 "$BATS_TEST_TMPDIR/long.rules"
	run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/long.rules" --explain to=partner.example:443
	[[ $output == *"via http://u:***"* ]]
	[[ $output != *"u:p@"* ]]
}

# big_and_small_images DIR PORT: DIR/big.image, 1,000 rules of which the last allows 127.0.0.1 PORT, and
# DIR/small.image, one rule that denies it; a copy of the big one is DIR/live.image.
big_and_small_images() {
	local dir=$1 i
	{
		for i in $(seq 999); do echo "deny user user$i to public port $((1000 + i))"; done
		echo "allow to 127.0.0.1 port $2"
	} >"$dir/big.rules"
	printf 'deny to 127.0.0.1\n' >"$dir/small.rules"
	"$TUNNELD" --rules "$dir/big.rules" --compile "$dir/big.image" >/dev/null
	"$TUNNELD" --rules "$dir/small.rules" --compile "$dir/small.image" >/dev/null
	[ "$(stat -c %s "$dir/small.image")" -lt $(($(stat -c %s "$dir/big.image") / 4)) ]
	cp "$dir/big.image" "$dir/live.image"
	chmod 644 "$dir/live.image"
}

# a_tunneld_waits_for_its_client: the proxy's newest tunneld process has read its options and waits in poll().
a_tunneld_waits_for_its_client() {
	local pid
	pid=$(pgrep -n -P "$PROXY_PID") || return 1
	[ "$(ps -o ppid= "$pid" | tr -d ' ')" != 1 ] && grep -q poll "/proc/$pid/wchan"
}

@test "an image rewritten in place (cp, shorter) while a connection holds it: the rules as it read them, no SIGBUS" {
	start_target echo
	big_and_small_images "$BATS_TEST_TMPDIR" "$TARGET_PORT"
	start_proxy --rules "$BATS_TEST_TMPDIR/live.image"
	local connection answer
	exec {connection}<>"/dev/tcp/127.0.0.1/$PROXY_PORT" # not fd 3: bats reports through it
	wait_for "the connection's tunneld" a_tunneld_waits_for_its_client
	cp "$BATS_TEST_TMPDIR/small.image" "$BATS_TEST_TMPDIR/live.image"
	printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nping' "$TARGET_PORT" >&"$connection"
	read -r -t 10 answer <&"$connection"
	exec {connection}<&-
	[[ $answer == "HTTP/1.1 200 Connection established"* ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=200 up=4 down=[0-9]+ duration_ms=[0-9]+ rule=1000( |$)"
	# The next connection reads the new image whole.
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden"* ]]
	wait_log "-> 127.0.0.1:$TARGET_PORT status=403 .* rule=1 reason=denied by a rule$"
	# One that grew, or was cut short, is refused: 500, with a record.
	cat "$BATS_TEST_TMPDIR/small.image" /dev/zero 2>/dev/null | head -c $(($(stat -c %s "$BATS_TEST_TMPDIR/small.image") + 8)) >"$BATS_TEST_TMPDIR/live.image"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ ${lines[0]} == "HTTP/1.1 500 Internal Server Error"* ]]
	wait_log "status=500 .*reason=compiled rules $BATS_TEST_TMPDIR/live.image: damaged \\([0-9]+ bytes, the header says [0-9]+\\)$"
	[ "$(grep -c ' -> ' "$LOG")" -eq 3 ]
}

@test "an image rewritten in place (cp, shorter) under the acceptor: each tunnel keeps the rules the acceptor read, no SIGBUS, until a reload" {
	start_target echo
	big_and_small_images "$BATS_TEST_TMPDIR" "$TARGET_PORT"
	ACCEPTOR=1 start_proxy --rules "$BATS_TEST_TMPDIR/live.image"
	[ "$(printf first | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = first ]
	cp "$BATS_TEST_TMPDIR/small.image" "$BATS_TEST_TMPDIR/live.image"
	local n
	for n in 1 2 3; do
		[ "$(printf "after$n" | timeout 10 nc -N -X connect -x "127.0.0.1:$PROXY_PORT" 127.0.0.1 "$TARGET_PORT")" = "after$n" ]
	done
	wait_for "four records" eval '[ "$(grep -c "status=200 .* rule=1000$" "$LOG")" -eq 4 ]'
	kill -HUP "$PROXY_PID" # the acceptor: systemd-socket-activate became it
	wait_log "acceptor: reloaded"
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden"* ]]
}

@test "a localhost name is judged as loopback, never handed to a parent; another name is, and --explain says the parent judges it" {
	start_target echo
	# The parent: another tunneld, on this host, that may reach loopback.
	start_proxy "${LOOPBACK_POLICY[@]}"
	local parent=$PROXY_PORT
	printf 'via http://127.0.0.1:%s to *\n' "$parent" >"$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	local name
	for name in localhost LocalHost. db.localhost; do
		run raw_request "CONNECT $name:$TARGET_PORT HTTP/1.1\r\n\r\n"
		[[ ${lines[0]} == "HTTP/1.1 403 Forbidden"* ]]
		wait_log "-> $name:$TARGET_PORT status=403 .* reason=no rule matches$"
	done
	! grep -q "CONNECT localhost\|-> localhost:.*status=200" "$LOG" || false
	run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --explain "to=localhost:$TARGET_PORT"
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = "localhost names this host's loopback (RFC 6761): judged as 127.0.0.1 and ::1, never sent to a parent" ]
	[ "${lines[-1]}" = "verdict: deny, no rule matches" ]
	# Nor when a rule sends loopback itself to a parent, nor when the local resolver maps the name elsewhere.
	printf 'via http://127.0.0.1:%s to 127.0.0.0/8, ::1\nallow to 127.0.0.0/8, ::1 port 1-65535\nvia http://127.0.0.1:%s to public\n' \
		"$parent" "$parent" >"$BATS_TEST_TMPDIR/loopback.rules"
	printf '127.0.0.1 localhost\n192.0.2.1 far.localhost\n' >"$BATS_TEST_TMPDIR/hosts"
	run unshare --mount sh -c 'mount --bind "$1" /etc/hosts && exec "$2" --rules "$3" --explain to=localhost:"$4"' \
		sh "$BATS_TEST_TMPDIR/hosts" "$TUNNELD" "$BATS_TEST_TMPDIR/loopback.rules" "$TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "verdict: allow, line 2" ]
	run unshare --mount sh -c 'mount --bind "$1" /etc/hosts && exec "$2" --rules "$3" --explain to=far.localhost:443' \
		sh "$BATS_TEST_TMPDIR/hosts" "$TUNNELD" "$BATS_TEST_TMPDIR/loopback.rules"
	[ "$status" -eq 1 ]
	[[ "${lines[-1]}" == "verdict: deny"* ]]
	run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --explain to=db.partner.example:22
	[ "$status" -eq 0 ]
	[ "${lines[-2]}" = "verdict: via http://127.0.0.1:$parent, line 1" ]
	[ "${lines[-1]}" = "the parent resolves db.partner.example: where it leads, and whether that is allowed, is the parent's policy (the built-in denies apply here to addresses only)" ]
}

@test "a name that does not resolve, under rules that need its addresses, is a DNS failure (502 dns_error, its rcode), not a refusal; --explain says the same" {
	no_name_resolves
	printf 'allow to 127.0.0.1 port 8443\ndeny\n' >"$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	run raw_request 'CONNECT nosuchhost.invalid:8443 HTTP/1.1\r\n\r\n'
	[ "${lines[0]}" = $'HTTP/1.1 502 Bad Gateway\r' ]
	[[ $output == *$'Proxy-Status: tunneld; error=dns_error; rcode="NXDOMAIN"; details='* ]]
	wait_log "-> nosuchhost.invalid:8443 status=502 up=0 down=0 duration_ms=[0-9]+ reason=host name does not resolve$"
	grep -q 'nosuchhost.invalid' "$DNS_LOG"
	# A name a rule refuses without its addresses is still a refusal, and asks no resolver.
	printf 'deny to *.invalid\nallow to 127.0.0.1 port 8443\n' >"$BATS_TEST_TMPDIR/rules"
	: >"$DNS_LOG"
	run raw_request 'CONNECT other.invalid:8443 HTTP/1.1\r\n\r\n'
	[ "${lines[0]}" = $'HTTP/1.1 403 Forbidden\r' ]
	! grep -q 'other.invalid' "$DNS_LOG" || false
	printf 'allow to 127.0.0.1 port 8443\ndeny\n' >"$BATS_TEST_TMPDIR/rules"
	run unshare --mount sh -c 'mount --bind "$1" /etc/resolv.conf && exec "$2" --rules "$3" --explain to=nosuchhost.invalid:8443' \
		sh "$RESOLV_CONF" "$TUNNELD" "$BATS_TEST_TMPDIR/rules"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "verdict: host name does not resolve (the rules need the name's addresses, and the lookup found none: 502, as a tunnel would answer)" ]
}
