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

@test "the rules table through real tunnels: users, groups, networks, names, CIDRs, public, ports, protocols, first match; --explain agrees in every case" {
	make_users "$BATS_TEST_TMPDIR/users" alice bob carol dave erin
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
	CASES
	cut -d' ' -f1-4 "$BATS_TEST_TMPDIR/cases" >"$BATS_TEST_TMPDIR/requests"
	run timeout -k 1 120 unshare --net --mount "$RULES_TABLE/run" "$TUNNELD" "$BATS_TEST_TMPDIR/rules" \
		"$BATS_TEST_TMPDIR/users" "$BATS_TEST_TMPDIR/requests" "$LOG"
	echo "$output"
	[ "$status" -eq 0 ]
	local number=0 protocol user from to verdict line
	while read -r protocol user from to verdict line; do
		number=$((number + 1))
		grep -qx "$number tunnel=$verdict rule=$line explain=$verdict line=$line" <<<"$output" ||
			{ echo "case $number ($protocol $user from $from to $to): want $verdict by line $line"; false; }
	done <"$BATS_TEST_TMPDIR/cases"
	[ "$number" -eq 19 ]
	[ "$(grep -c ' tunnel=' <<<"$output")" -eq 19 ]
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
	check_error 'via ftp://proxy:21 to x\n' 1:5 "expected a parent as http://HOST:PORT or socks5://HOST:PORT, found 'ftp://proxy:21'"
	check_error 'via http://proxy to x\n' 1:5 "expected the parent's HOST:PORT after the scheme (port required in the authority)"
	check_error 'via http://u:p%%zz@proxy:3128\n' 1:5 "expected the parent's login as user:password@ (at most 255 bytes each, %XX for special characters, no control characters)"
	check_error 'allow from 10.0.0.0/8 to 10.0.0.0/33\n' 1:26 "expected an address or a network as 10.0.0.0/8, found '10.0.0.0/33' (malformed CIDR prefix length)"
	check_error 'allow from office\n' 1:12 "expected a network as 10.0.0.0/8 or 2001:db8::/32, found 'office' (malformed CIDR address)"
	check_error 'allow group ops\ngroup ops = alice\n' 1:13 "unknown group 'ops' (define it above: group ops = USER ...)"
	check_error 'group ops = alice\ngroup ops = bob\n' 2:7 "group 'ops' is already defined"
	check_error 'group ops alice\n' 1:11 "expected '=' after the group's name, found alice"
	check_error 'group ops =\n' 1:12 "expected the group's members after '='"
	check_error 'allow to x to y\n' 1:12 "'to' is already given in this rule: list its values with commas"
	check_error 'allow protocol gopher\n' 1:16 "expected http or socks5, found 'gopher'"
	check_error 'allow to bad_name! port 1\n' 1:10 "expected a host name, *.domain, an address, a network, public or *, found 'bad_name!'"
	check_error 'allow to x\n\tdeny ports 22\n' 2:7 "expected user, group, from, to, port or protocol, found 'ports'"
	check_error 'allow to caf\xc3\xa9.example\n' 1:13 "unexpected byte 0xc3 (the file is plain ASCII)"
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

	make_users "$BATS_TEST_TMPDIR/users" alice
	run --separate-stderr "$TUNNELD" --rules "$RULES_TABLE/bastion.rules" --auth-file "$BATS_TEST_TMPDIR/users" --check
	[ "$status" -eq 0 ]
	[ "$output" = "tunneld: $RULES_TABLE/bastion.rules OK: 9 rules, 1 groups, 0 parents" ]
	[ -z "$stderr" ]
	# Rules that name users but no --auth-file: they can never match, and --check says so.
	run --separate-stderr "$TUNNELD" --rules "$RULES_TABLE/bastion.rules" --check
	[ "$status" -eq 0 ]
	[[ $stderr == *"bastion.rules:3: warning: this rule names users, but without --auth-file no request has a user"* ]]

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

@test "a broken rules file: each connection is closed unanswered and the log names file, line and column" {
	printf 'allow to *.example port 443\nallow to x prt 1\n' >"$BATS_TEST_TMPDIR/rules"
	start_proxy --rules "$BATS_TEST_TMPDIR/rules"
	run raw_request 'CONNECT a.example:443 HTTP/1.1\r\n\r\n'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	wait_log "tunneld: $BATS_TEST_TMPDIR/rules:2:12: expected user, group, from, to, port or protocol, found 'prt'"
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
	[ "${#lines[@]}" -eq 3 ]
	# localhost is matched by name, but its address is in a built-in deny the rule does not name.
	run "$TUNNELD" --rules "$file" --explain to=localhost:8080
	[ "$status" -eq 1 ]
	[[ $output == *"127.0.0.1: deny, address in a built-in deny range that the matching rule does not name, line 2: allow to localhost port 8000-8999"* ]]
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
