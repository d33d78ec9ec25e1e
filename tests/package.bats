#!/usr/bin/env bats
# The Debian package (README, "Install from the package"): make deb builds it
# from the tree, lintian-clean, with every file where Debian puts it and
# nothing that listens on its own.

load helpers

@test "make deb: a lintian-clean package; binary, units, man page and examples in place; the socket not enabled" {
	# Built once, in the plain pass: the package does not contain the binary under test.
	[ -z "${SANITIZER_LOG_DIR:-}" ] || skip "the package is built in the plain pass"
	[[ "$TUNNELD" != *valgrind* ]] || skip "the package is built in the plain pass"
	run make -C "$TOP" --no-print-directory deb
	echo "$output" | tail -20
	[ "$status" -eq 0 ]
	local deb=$TOP/build/deb/tunneld_0.1.0_amd64.deb
	dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$BATS_TEST_TMPDIR/files"
	for file in /usr/sbin/tunneld /lib/systemd/system/tunneld.socket /lib/systemd/system/tunneld@.service \
		/lib/systemd/system/tunneld-acceptor.socket /lib/systemd/system/tunneld-acceptor.service \
		/usr/share/man/man8/tunneld.8.gz /usr/share/doc/tunneld/copyright \
		/usr/share/doc/tunneld/examples/tunneld.xinetd \
		/usr/share/doc/tunneld/examples/fail2ban/filter.d/tunneld.conf \
		/usr/share/doc/tunneld/examples/fail2ban/jail.d/tunneld.local \
		/usr/share/doc/tunneld/examples/tunneld.rules; do
		grep -qx "$file" "$BATS_TEST_TMPDIR/files" || { echo "missing $file" >&2; return 1; }
	done
	# Nothing live outside the package's own paths: no xinetd entry, no fail2ban jail, no /etc at all.
	! grep -q '^/etc/' "$BATS_TEST_TMPDIR/files" || false
	local root=$BATS_TEST_TMPDIR/root
	dpkg-deb -x "$deb" "$root"
	grep -qx 'ExecStart=/usr/sbin/tunneld --allow-port=443' "$root/lib/systemd/system/tunneld@.service"
	grep -Eq '^\s*server\s*=\s*/usr/sbin/tunneld$' "$root/usr/share/doc/tunneld/examples/tunneld.xinetd"
	grep -Eq '^\s*disable\s*=\s*yes$' "$root/usr/share/doc/tunneld/examples/tunneld.xinetd"
	"$root/usr/sbin/tunneld" --version | grep -qx 'tunneld 0.1.0'
	# The maintainer scripts start nothing, and enable the socket only on an upgrade where the admin had.
	dpkg-deb -e "$deb" "$BATS_TEST_TMPDIR/control"
	! grep -q 'deb-systemd-invoke' "$BATS_TEST_TMPDIR/control/postinst" || false
	# Nor stop it for an upgrade, which would leave the admin's proxy off (seen on a booted system).
	! grep -q 'deb-systemd-invoke stop' "$BATS_TEST_TMPDIR/control/preinst" || false
	run awk '/was-enabled .tunneld(-acceptor)?.socket./ { admin = NR } /deb-systemd-helper enable/ && !(admin && NR - admin <= 2) { print }' \
		"$BATS_TEST_TMPDIR/control/postinst"
	[ "$output" = "" ]
	grep -q "was-enabled 'tunneld.socket'" "$BATS_TEST_TMPDIR/control/postinst"
	grep -q 'deb-systemd-helper purge' "$BATS_TEST_TMPDIR/control/postrm"
}

# in_booted COMMAND...: COMMAND in every namespace of the booted system, as root there.
in_booted() {
	nsenter -t "$BOOTED_PID1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# socket_journal_has TEXT: the booted system's journal of tunneld.socket has a line with TEXT.
socket_journal_has() {
	in_booted journalctl -u tunneld.socket -o cat | grep -qF -e "$1"
}

booted_ready() {
	case $(in_booted systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; esac
	return 1
}

# edit_unit UNIT FILE: `systemctl edit UNIT` as a person runs it, on a terminal (script(1)
# gives it one; systemctl edit wants one), FILE's text written by the editor.
edit_unit() {
	cp "$2" "$BATS_TEST_TMPDIR/exchange/edit"
	printf '#!/bin/sh\ncat /srv/exchange/edit >"$1"\n' >"$BATS_TEST_TMPDIR/exchange/editor"
	chmod +x "$BATS_TEST_TMPDIR/exchange/editor"
	local command
	command=$(printf '%q ' nsenter -t "$BOOTED_PID1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		SYSTEMD_EDITOR=/srv/exchange/editor systemctl edit "$1")
	timeout 30 script -qec "$command" /dev/null </dev/null >/dev/null
	in_booted systemctl cat "$1" | grep -qF "$(tail -n 1 "$2")"
}

teardown() {
	if [ -n "${BOOTED_PID1:-}" ]; then
		in_booted systemctl poweroff >/dev/null 2>&1 || true
		wait_for "the booted system to power off" sh -c "! kill -0 $BOOTED_NSPAWN 2>/dev/null"
	fi
	stop_all
}

# boot_with_package: a booted Debian 12 (the tests' cached root, a throwaway
# overlay, the host's network, so its loopback) with the package installed as
# the README says. Sets BOOTED_PID1, BOOTED_NSPAWN; /srv/exchange in it is
# $BATS_TEST_TMPDIR/exchange here.
boot_with_package() {
	local deb=$TOP/build/deb/tunneld_0.1.0_amd64.deb
	[ -f "$deb" ] || make -C "$TOP" --no-print-directory deb >/dev/null
	run "$TOP/scripts/booted-root" "$TOP/build/booted-root"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	local exchange=$BATS_TEST_TMPDIR/exchange
	mkdir -p "$exchange"
	cp "$deb" "$exchange/"
	start_bg sh -c 'exec "$@" >"$0" 2>&1' "$BATS_TEST_TMPDIR/console" systemd-nspawn -q -b --register=no --keep-unit \
		--volatile=overlay -D "$TOP/build/booted-root" --machine="tunneld-test-$$" --bind="$exchange:/srv/exchange"
	BOOTED_NSPAWN=$(tail -n 1 "$PIDS_FILE")
	# nspawn's first child may be a helper on its way out: PID 1 is the one that is systemd.
	wait_for "systemd in the container" sh -c "pgrep -P $BOOTED_NSPAWN -x 'systemd|init' >/dev/null"
	BOOTED_PID1=$(pgrep -P "$BOOTED_NSPAWN" -x 'systemd|init' | head -n 1)
	WAIT_TENTHS=300 wait_for "the booted system" booted_ready
	run in_booted sh -c 'cd /srv/exchange && apt-get install -y -q ./tunneld_0.1.0_amd64.deb'
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
}

# booted_records N: the booted system's journal holds N tunneld connection records.
booted_records() {
	[ "$(in_booted journalctl -t tunneld -o cat | grep -c ' -> ')" -ge "$1" ]
}

# booted_journal_has TEXT: a tunneld line of the booted system's journal has TEXT.
booted_journal_has() {
	in_booted journalctl -t tunneld -o cat | grep -qF -e "$1"
}

# the_users_file: README "Configure", Passwords, as written (the password given on stdin).
the_users_file() {
	in_booted install -d -m 755 /etc/tunneld
	printf 'wonder land\n' | in_booted sh -c 'umask 077 && htpasswd -i -B -c /etc/tunneld/users alice'
	[ "$(in_booted stat -c %a /etc/tunneld/users)" = 600 ]
}

# listen_on PORT SOCKET: README "Configure": the socket on one address, the list emptied first.
listen_on() {
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$1" >"$BATS_TEST_TMPDIR/socket.conf"
	edit_unit "$2" "$BATS_TEST_TMPDIR/socket.conf"
}

@test "on a booted Debian 12: install the package, the README's steps with a password, upgrade, rules, purge" {
	[ -z "${SANITIZER_LOG_DIR:-}" ] || skip "the package is built in the plain pass"
	[[ "$TUNNELD" != *valgrind* ]] || skip "the package is built in the plain pass"
	# A newer build of the same package, for the upgrade.
	mkdir -p "$BATS_TEST_TMPDIR/exchange"
	dpkg-deb -R "$TOP/build/deb/tunneld_0.1.0_amd64.deb" "$BATS_TEST_TMPDIR/newer" 2>/dev/null ||
		{ make -C "$TOP" --no-print-directory deb >/dev/null && dpkg-deb -R "$TOP/build/deb/tunneld_0.1.0_amd64.deb" "$BATS_TEST_TMPDIR/newer"; }
	sed -i 's/^Version: .*/Version: 0.1.0+rebuild1/' "$BATS_TEST_TMPDIR/newer/DEBIAN/control"
	dpkg-deb -b "$BATS_TEST_TMPDIR/newer" "$BATS_TEST_TMPDIR/exchange/tunneld_0.1.0+rebuild1_amd64.deb" >/dev/null
	boot_with_package
	# A fresh install listens nowhere.
	[ "$(in_booted systemctl is-enabled tunneld.socket)" = disabled ]
	[ "$(in_booted systemctl is-active tunneld.socket)" = inactive ]

	# README, "Install" and "Configure", as written but for the address, the port and the policy.
	start_target http
	local http_port=$TARGET_PORT port
	port=$(free_port)
	listen_on "$port" tunneld.socket
	the_users_file
	printf '[Service]\nLoadCredential=users:/etc/tunneld/users\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --allow-dest=127.0.0.1/32 --auth-file=users\n' \
		"$TARGET_PORT" >"$BATS_TEST_TMPDIR/service.conf"
	edit_unit tunneld@.service "$BATS_TEST_TMPDIR/service.conf"
	in_booted systemctl enable --now tunneld.socket
	wait_for "tunneld.socket on $port" port_listening "$port"
	# Only the address given: the list was emptied first.
	[ "$(in_booted systemctl show -P Listen tunneld.socket)" = "127.0.0.1:$port (Stream)" ]
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:guess' \
		"http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	wait_for "2 records" booted_records 2
	run in_booted journalctl -t tunneld -o cat
	echo "$output"
	[[ "$output" =~ 127\.0\.0\.1:[0-9]+\ -\>\ 127\.0\.0\.1:$TARGET_PORT\ status=200\ .*\ user=alice ]]
	[[ "$output" =~ status=407\ .*\ user=alice\ reason=wrong\ password ]]
	# A sandbox this kernel refuses in part is said in the records' fields, never as an error line per tunnel.
	[ -z "$(in_booted journalctl -t tunneld -p err -o cat | grep 'sandbox:')" ]

	# An upgrade keeps the admin's drop-ins and the enabled socket, and serves on.
	run in_booted sh -c 'cd /srv/exchange && apt-get install -y -q ./tunneld_0.1.0+rebuild1_amd64.deb'
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	[ "$(in_booted dpkg-query -W -f='${Version}' tunneld)" = 0.1.0+rebuild1 ]
	[ "$(in_booted systemctl is-enabled tunneld.socket)" = enabled ]
	in_booted systemctl cat tunneld@.service | grep -q '^LoadCredential=users:/etc/tunneld/users$'
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ] || { in_booted systemctl status tunneld.socket; in_booted journalctl -n 30 --no-pager; return 1; }

	# README "Configure", Rules, and tunneld(8) "Changing the rules safely": the shipped example checks
	# clean; a rules file with a parent's password, 0600, handed over with LoadCredential=; the socket
	# checks it first with the service's own options.
	in_booted sh -c 'zcat -f /usr/share/doc/tunneld/examples/tunneld.rules* >/etc/tunneld/example.rules'
	run in_booted /usr/sbin/tunneld --rules /etc/tunneld/example.rules --auth-file /etc/tunneld/users --check
	[ "$output" = "tunneld: /etc/tunneld/example.rules OK: 4 rules, 1 groups, 1 parents" ]
	start_target http
	local via_port=$TARGET_PORT
	start_listener microsocks SOCKS_PORT sh -c 'exec microsocks -i 127.0.0.1 -p "$PORT" -u parent -P parent-pw'
	printf 'group readers = alice
via socks5://parent:parent-pw@127.0.0.1:%s to 127.0.0.1/32 port %s
allow group readers to 127.0.0.1/32 port %s
deny
' \
		"$SOCKS_PORT" "$via_port" "$http_port" >"$BATS_TEST_TMPDIR/rules"
	in_booted sh -c 'umask 077 && cat >/etc/tunneld/rules.new' <"$BATS_TEST_TMPDIR/rules"
	in_booted sh -c '/usr/sbin/tunneld --rules /etc/tunneld/rules.new --auth-file /etc/tunneld/users --check && mv /etc/tunneld/rules.new /etc/tunneld/rules'
	[ "$(in_booted stat -c %a /etc/tunneld/rules)" = 600 ]
	printf '[Service]\nLoadCredential=users:/etc/tunneld/users\nLoadCredential=rules:/etc/tunneld/rules\nExecStart=\nExecStart=/usr/sbin/tunneld --rules rules --auth-file users\n' \
		>"$BATS_TEST_TMPDIR/service.conf"
	edit_unit tunneld@.service "$BATS_TEST_TMPDIR/service.conf"
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\nExecStartPre=/usr/sbin/tunneld --rules /etc/tunneld/rules --auth-file /etc/tunneld/users --check\n' \
		"$port" >"$BATS_TEST_TMPDIR/socket.conf"
	edit_unit tunneld.socket "$BATS_TEST_TMPDIR/socket.conf"
	in_booted systemctl restart tunneld.socket
	wait_for "tunneld.socket on $port" port_listening "$port"
	# The check is the service's own options: no warning that its rules' users could never match.
	! in_booted journalctl -u tunneld.socket -o cat | grep -q 'warning' || false
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$http_port/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$via_port/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	wait_for "the rules' records" sh -c "nsenter -t $BOOTED_PID1 -a journalctl -t tunneld -o cat | grep -q ' via=socks5://127.0.0.1:$SOCKS_PORT rule=2 user=alice'"
	run in_booted journalctl -t tunneld -o cat
	[[ "$output" =~ \ -\>\ 127\.0\.0\.1:$http_port\ status=200\ .*\ rule=3\ user=alice ]]
	! grep -q parent-pw <<<"$output" || false

	# A name that does not resolve, where the rules need its addresses: the DNS failure, not a refusal.
	no_name_resolves
	in_booted sh -c 'cp /etc/resolv.conf /etc/resolv.conf.before && printf "nameserver 127.0.53.53\n" >/etc/resolv.conf'
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' \
		"http://nosuchhost.invalid:$http_port/"
	[ "$output" = 502 ]
	wait_for "the DNS record" booted_journal_has "-> nosuchhost.invalid:$http_port status=502 "
	in_booted mv /etc/resolv.conf.before /etc/resolv.conf

	# Broken while the socket serves: each connection is answered 500, and the record names the credential.
	in_booted sh -c 'printf "allow to 127.0.0.1/32 prot 80\n" >/etc/tunneld/rules'
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' \
		"http://127.0.0.1:$http_port/"
	[ "$output" = 500 ]
	wait_for "the 500's record" booted_journal_has \
		"status=500 up=0 down=0 duration_ms="
	booted_journal_has "reason=credential rules (LoadCredential=rules:...):1:23: expected user, group, from, to, port, protocol or outgoing, found 'prot'"
	# And the socket does not come back, its journal saying where the error is.
	run in_booted systemctl restart tunneld.socket
	[ "$status" -ne 0 ]
	# journald may still be reading the check's output when systemctl returns.
	wait_for "the check's error in the socket's journal" socket_journal_has \
		"tunneld: /etc/tunneld/rules:1:23: expected user, group, from, to, port, protocol or outgoing, found 'prot'"

	# Stop, disable, purge: nothing of the package's is left.
	in_booted systemctl disable --now tunneld.socket
	run in_booted apt-get purge -y -q tunneld
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	run in_booted sh -c 'ls -d /usr/sbin/tunneld /lib/systemd/system/tunneld* /usr/share/doc/tunneld \
		/usr/share/man/man8/tunneld.8.gz /etc/systemd/system/*/tunneld* /var/lib/systemd/deb-systemd-helper-enabled/*tunneld* \
		/var/lib/dpkg/info/tunneld.* 2>/dev/null'
	[ "$output" = "" ]
	! port_listening "$port" || false
}

@test "on a booted Debian 12: the README's acceptor, reloads that apply every edit, a credential's reload refused, a bad configuration refused at start" {
	[ -z "${SANITIZER_LOG_DIR:-}" ] || skip "the package is built in the plain pass"
	[[ "$TUNNELD" != *valgrind* ]] || skip "the package is built in the plain pass"
	boot_with_package
	start_target http
	local port
	port=$(free_port)
	listen_on "$port" tunneld-acceptor.socket
	the_users_file

	# README, "The ways it is used", One acceptor, as written but for the policy.
	in_booted adduser --system --group --no-create-home tunneld-acceptor >/dev/null
	in_booted chown tunneld-acceptor /etc/tunneld/users
	printf '[Service]\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --allow-dest=127.0.0.1/32 --auth-file=/etc/tunneld/users --max-tunnels=256 --max-tunnels-per-source=32 --exit-idle-time=600\n' \
		"$TARGET_PORT" >"$BATS_TEST_TMPDIR/acceptor.conf"
	edit_unit tunneld-acceptor.service "$BATS_TEST_TMPDIR/acceptor.conf"
	in_booted systemctl disable --now tunneld.socket
	in_booted systemctl enable --now tunneld-acceptor.socket
	wait_for "tunneld-acceptor.socket on $port" port_listening "$port"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	[ "$(in_booted systemctl is-active tunneld-acceptor.service)" = active ]
	[ "$(in_booted systemctl show -P User tunneld-acceptor.service)" = tunneld-acceptor ]
	local acceptor
	acceptor=$(in_booted systemctl show -P MainPID tunneld-acceptor.service)
	# alice's password changes; the reload applies it, and systemctl reload returns once it has.
	printf 'through the looking glass\n' | in_booted htpasswd -i -B /etc/tunneld/users alice
	in_booted systemctl reload tunneld-acceptor.service
	booted_journal_has 'acceptor: reloaded; 0 tunnels carried on'
	[ "$(in_booted systemctl show -P MainPID tunneld-acceptor.service)" = "$acceptor" ]
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' \
		"http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:through the looking glass' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]

	# The password file as a credential instead: a reload cannot see an edit, so it is refused, saying so; a restart applies it.
	printf '[Service]\nLoadCredential=users:/etc/tunneld/users\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --allow-dest=127.0.0.1/32 --auth-file=users --max-tunnels=256 --max-tunnels-per-source=32 --exit-idle-time=600\n' \
		"$TARGET_PORT" >"$BATS_TEST_TMPDIR/acceptor.conf"
	edit_unit tunneld-acceptor.service "$BATS_TEST_TMPDIR/acceptor.conf"
	in_booted systemctl restart tunneld-acceptor.service
	printf 'wonder land\n' | in_booted htpasswd -i -B /etc/tunneld/users alice
	run in_booted systemctl reload tunneld-acceptor.service
	[ "$status" -ne 0 ]
	booted_journal_has 'acceptor: reload refused: users is a credential (LoadCredential=), which systemd copies only when the service starts'
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' \
		"http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	in_booted systemctl restart tunneld-acceptor.service
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]

	# A file the service may not read: start fails with tunneld's message and a hint, once, not in a loop.
	in_booted sh -c 'cp /etc/tunneld/users /etc/tunneld/root-only && chmod 600 /etc/tunneld/root-only'
	printf '[Service]\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --auth-file=/etc/tunneld/root-only\n' \
		"$TARGET_PORT" >"$BATS_TEST_TMPDIR/acceptor.conf"
	edit_unit tunneld-acceptor.service "$BATS_TEST_TMPDIR/acceptor.conf"
	run in_booted systemctl restart tunneld-acceptor.service
	[ "$status" -ne 0 ]
	wait_for "the message" booted_journal_has \
		"cannot read auth file /etc/tunneld/root-only: Permission denied (the service's user may not read it: hand it over with LoadCredential=, tunneld(8) EXAMPLES)"
	[ "$(in_booted systemctl show -P NRestarts tunneld-acceptor.service)" = 0 ]
	[ "$(in_booted systemctl show -P Result tunneld-acceptor.service)" = exit-code ]
	# A kernel that refuses part of the sandbox is said by the acceptor alone, once each, at notice.
	run sh -c "nsenter -t $BOOTED_PID1 -a journalctl -t tunneld -o cat | grep 'sandbox:' | grep -v '^acceptor: sandbox: '"
	[ -z "$output" ] || { echo "$output"; false; }
	[ -z "$(in_booted journalctl -t tunneld -p err -o cat | grep 'sandbox:')" ]
	in_booted systemctl disable --now tunneld-acceptor.socket tunneld-acceptor.service
}
