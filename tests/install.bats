#!/usr/bin/env bats
# make install and make install-xinetd: what lands where (tunneld(8) "FILES").

load helpers

# installed_files ROOT: the regular files under ROOT, relative, sorted.
installed_files() {
	(cd "$1" && find . -type f | sort)
}

@test "make install: binary, man page and units under PREFIX, local units where systemd reads them, no xinetd entry" {
	local root=$BATS_TEST_TMPDIR/root
	make -C "$TOP" --no-print-directory install DESTDIR="$root" >/dev/null
	[ "$(installed_files "$root")" = "./usr/local/lib/systemd/system/tunneld-acceptor.service
./usr/local/lib/systemd/system/tunneld-acceptor.socket
./usr/local/lib/systemd/system/tunneld.socket
./usr/local/lib/systemd/system/tunneld@.service
./usr/local/sbin/tunneld
./usr/local/share/man/man8/tunneld.8" ]
	grep -qx 'ExecStart=/usr/local/sbin/tunneld --allow-port=443' "$root/usr/local/lib/systemd/system/tunneld@.service"
	grep -qx 'ExecStart=/usr/local/sbin/tunneld --allow-port=443 --max-tunnels=256 --max-tunnels-per-source=32 --exit-idle-time=600' \
		"$root/usr/local/lib/systemd/system/tunneld-acceptor.service"
	# systemd looks there for units of the local administrator.
	systemd-analyze unit-paths | grep -qx /usr/local/lib/systemd/system
}

@test "make install PREFIX=/usr: the units go to the distribution's unit directory" {
	local root=$BATS_TEST_TMPDIR/root unit_dir
	unit_dir=$(pkg-config --variable=systemdsystemunitdir systemd)
	make -C "$TOP" --no-print-directory install PREFIX=/usr DESTDIR="$root" >/dev/null
	[ "$(installed_files "$root")" = ".$unit_dir/tunneld-acceptor.service
.$unit_dir/tunneld-acceptor.socket
.$unit_dir/tunneld.socket
.$unit_dir/tunneld@.service
./usr/sbin/tunneld
./usr/share/man/man8/tunneld.8" ]
	grep -qx 'ExecStart=/usr/sbin/tunneld --allow-port=443' "$root$unit_dir/tunneld@.service"
	grep -q '^ExecStart=/usr/sbin/tunneld ' "$root$unit_dir/tunneld-acceptor.service"
}

@test "make install-xinetd: the entry, disabled, so that it cannot fight tunneld.socket for the port" {
	local root=$BATS_TEST_TMPDIR/root
	make -C "$TOP" --no-print-directory install-xinetd DESTDIR="$root" >/dev/null
	[ "$(installed_files "$root")" = "./etc/xinetd.d/tunneld" ]
	grep -Eqx '\s*disable\s*=\s*yes' "$root/etc/xinetd.d/tunneld"
	grep -Eqx '\s*server\s*=\s*/usr/local/sbin/tunneld' "$root/etc/xinetd.d/tunneld"
}
