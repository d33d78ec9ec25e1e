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

@test "on a booted Debian 12: install the package, the README's steps with a password, upgrade, the acceptor, purge" {
	[ -z "${SANITIZER_LOG_DIR:-}" ] || skip "the package is built in the plain pass"
	[[ "$TUNNELD" != *valgrind* ]] || skip "the package is built in the plain pass"
	local deb=$TOP/build/deb/tunneld_0.1.0_amd64.deb
	[ -f "$deb" ] || make -C "$TOP" --no-print-directory deb >/dev/null
	run "$TOP/scripts/booted-root" "$TOP/build/booted-root"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	local exchange=$BATS_TEST_TMPDIR/exchange
	mkdir -p "$exchange"
	cp "$deb" "$exchange/"
	# A newer build of the same package, for the upgrade.
	dpkg-deb -R "$deb" "$BATS_TEST_TMPDIR/newer"
	sed -i 's/^Version: .*/Version: 0.1.0+rebuild1/' "$BATS_TEST_TMPDIR/newer/DEBIAN/control"
	dpkg-deb -b "$BATS_TEST_TMPDIR/newer" "$exchange/tunneld_0.1.0+rebuild1_amd64.deb" >/dev/null
	# Booted on the cached root with a throwaway overlay; the host's network, so its loopback.
	start_bg sh -c 'exec "$@" >"$0" 2>&1' "$BATS_TEST_TMPDIR/console" systemd-nspawn -q -b --register=no --keep-unit \
		--volatile=overlay -D "$TOP/build/booted-root" --machine="tunneld-test-$$" --bind="$exchange:/srv/exchange"
	BOOTED_NSPAWN=$(tail -n 1 "$PIDS_FILE")
	# nspawn's first child may be a helper on its way out: PID 1 is the one that is systemd.
	wait_for "systemd in the container" sh -c "pgrep -P $BOOTED_NSPAWN -x 'systemd|init' >/dev/null"
	BOOTED_PID1=$(pgrep -P "$BOOTED_NSPAWN" -x 'systemd|init' | head -n 1)
	WAIT_TENTHS=300 wait_for "the booted system" booted_ready

	run in_booted sh -c 'cd /srv/exchange && apt-get install -y -q ./tunneld_0.1.0_amd64.deb'
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	# A fresh install listens nowhere.
	[ "$(in_booted systemctl is-enabled tunneld.socket)" = disabled ]
	[ "$(in_booted systemctl is-active tunneld.socket)" = inactive ]

	# README, "Install for real" and "Proxy authentication", verbatim but for the port and the policy.
	start_target http
	local http_port=$TARGET_PORT port
	port=$(free_port)
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$port" >"$BATS_TEST_TMPDIR/socket.conf"
	edit_unit tunneld.socket "$BATS_TEST_TMPDIR/socket.conf"
	in_booted install -d -m 700 /etc/tunneld
	printf 'wonder land\n' | in_booted htpasswd -i -B -c /etc/tunneld/users alice
	printf '[Service]\nLoadCredential=users:/etc/tunneld/users\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --allow-dest=127.0.0.1/32 --auth-file=users\n' \
		"$TARGET_PORT" >"$BATS_TEST_TMPDIR/service.conf"
	edit_unit tunneld@.service "$BATS_TEST_TMPDIR/service.conf"
	in_booted systemctl enable --now tunneld.socket
	wait_for "tunneld.socket on $port" port_listening "$port"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ]
	run curl -s --max-time 10 -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$port" -U 'alice:guess' \
		"http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = 407 ]
	booted_records() { [ "$(in_booted journalctl -t tunneld -o cat | grep -c ' -> ')" -ge "$1" ]; }
	wait_for "2 records" booted_records 2
	run in_booted journalctl -t tunneld -o cat
	echo "$output"
	[[ "$output" =~ 127\.0\.0\.1:[0-9]+\ -\>\ 127\.0\.0\.1:$TARGET_PORT\ status=200\ .*\ user=alice ]]
	[[ "$output" =~ status=407\ .*\ user=alice\ reason=wrong\ password ]]

	# An upgrade keeps the admin's drop-ins and the enabled socket, and serves on.
	run in_booted sh -c 'cd /srv/exchange && apt-get install -y -q ./tunneld_0.1.0+rebuild1_amd64.deb'
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	[ "$(in_booted dpkg-query -W -f='${Version}' tunneld)" = 0.1.0+rebuild1 ]
	[ "$(in_booted systemctl is-enabled tunneld.socket)" = enabled ]
	in_booted systemctl cat tunneld@.service | grep -q '^LoadCredential=users:/etc/tunneld/users$'
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$TARGET_PORT/"
	[ "$output" = "hello through the tunnel" ] || { in_booted systemctl status tunneld.socket; in_booted journalctl -n 30 --no-pager; return 1; }

	# tunneld(8) "Changing the rules safely": the shipped example checks clean; a rules file
	# with a parent's password, 0600, handed over with LoadCredential=; the socket checks it first.
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
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\nExecStartPre=/usr/sbin/tunneld --rules /etc/tunneld/rules --check\n' \
		"$port" >"$BATS_TEST_TMPDIR/socket.conf"
	edit_unit tunneld.socket "$BATS_TEST_TMPDIR/socket.conf"
	in_booted systemctl restart tunneld.socket
	wait_for "tunneld.socket on $port" port_listening "$port"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$http_port/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" -U 'alice:wonder land' "http://127.0.0.1:$via_port/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	wait_for "the rules' records" sh -c "nsenter -t $BOOTED_PID1 -a journalctl -t tunneld -o cat | grep -q ' via=socks5://127.0.0.1:$SOCKS_PORT rule=2 user=alice'"
	run in_booted journalctl -t tunneld -o cat
	[[ "$output" =~ \ -\>\ 127\.0\.0\.1:$http_port\ status=200\ .*\ rule=3\ user=alice ]]
	! grep -q parent-pw <<<"$output" || false
	# A broken rules file: the socket does not come back, and its journal says where the error is.
	in_booted sh -c 'printf "allow to 127.0.0.1/32 prot 80\n" >/etc/tunneld/rules'
	run in_booted systemctl restart tunneld.socket
	[ "$status" -ne 0 ]
	# journald may still be reading the check's output when systemctl returns.
	wait_for "the check's error in the socket's journal" socket_journal_has \
		"tunneld: /etc/tunneld/rules:1:23: expected user, group, from, to, port or protocol, found 'prot'"

	# README, "One acceptor instead of a unit per tunnel": the Accept=no pair, on the same port.
	in_booted systemctl disable --now tunneld.socket
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$port" >"$BATS_TEST_TMPDIR/acceptor-socket.conf"
	edit_unit tunneld-acceptor.socket "$BATS_TEST_TMPDIR/acceptor-socket.conf"
	printf '[Service]\nExecStart=\nExecStart=/usr/sbin/tunneld --allow-port=%s --allow-dest=127.0.0.1/32 --exit-idle-time=600\n' \
		"$http_port" >"$BATS_TEST_TMPDIR/acceptor.conf"
	edit_unit tunneld-acceptor.service "$BATS_TEST_TMPDIR/acceptor.conf"
	in_booted systemctl enable --now tunneld-acceptor.socket
	wait_for "tunneld-acceptor.socket on $port" port_listening "$port"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" "http://127.0.0.1:$http_port/"
	[ "$output" = "hello through the tunnel" ] || { in_booted journalctl -n 30 --no-pager; return 1; }
	[ "$(in_booted systemctl is-active tunneld-acceptor.service)" = active ]
	local acceptor
	acceptor=$(in_booted systemctl show -P MainPID tunneld-acceptor.service)
	in_booted systemctl reload tunneld-acceptor.service
	wait_for "the reload" sh -c "nsenter -t $BOOTED_PID1 -a journalctl -t tunneld -o cat | grep -qx 'acceptor: reloaded; 0 tunnels carried on'"
	run curl -sS --max-time 10 -p -x "http://127.0.0.1:$port" "http://127.0.0.1:$http_port/"
	[ "$output" = "hello through the tunnel" ]
	[ "$(in_booted systemctl show -P MainPID tunneld-acceptor.service)" = "$acceptor" ]
	# Its two records are the only ones to that port with no user.
	acceptor_records() {
		[ "$(in_booted journalctl -t tunneld -o cat | grep -E -- "-> 127\.0\.0\.1:$http_port status=200 " | grep -vc ' user=')" -ge 2 ]
	}
	wait_for "the acceptor's records" acceptor_records
	in_booted systemctl disable --now tunneld-acceptor.socket tunneld-acceptor.service

	# Stop, disable, purge: nothing of the package's is left.
	run in_booted apt-get purge -y -q tunneld
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	run in_booted sh -c 'ls -d /usr/sbin/tunneld /lib/systemd/system/tunneld* /usr/share/doc/tunneld \
		/usr/share/man/man8/tunneld.8.gz /etc/systemd/system/*/tunneld* /var/lib/systemd/deb-systemd-helper-enabled/*tunneld* \
		/var/lib/dpkg/info/tunneld.* 2>/dev/null'
	[ "$output" = "" ]
	! port_listening "$port" || false
}
