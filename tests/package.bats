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
		/usr/share/man/man8/tunneld.8.gz /usr/share/doc/tunneld/copyright \
		/usr/share/doc/tunneld/examples/tunneld.xinetd \
		/usr/share/doc/tunneld/examples/fail2ban/filter.d/tunneld.conf \
		/usr/share/doc/tunneld/examples/fail2ban/jail.d/tunneld.local; do
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
	run awk '/was-enabled .tunneld.socket./ { admin = NR } /deb-systemd-helper enable/ && !(admin && NR - admin <= 2) { print }' \
		"$BATS_TEST_TMPDIR/control/postinst"
	[ "$output" = "" ]
	grep -q "was-enabled 'tunneld.socket'" "$BATS_TEST_TMPDIR/control/postinst"
	grep -q 'deb-systemd-helper purge' "$BATS_TEST_TMPDIR/control/postrm"
}
