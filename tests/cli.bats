#!/usr/bin/env bats
# tunneld(8) "OPTIONS", "EXIT STATUS": the command line.

load helpers

@test "--help and -h print the usage on stdout and exit 0" {
	run --separate-stderr "$TUNNELD" --help
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: tunneld [options]"* ]]
	for option in --allow-port --allow-dest --deny-dest --allow-host --header-timeout --connect-timeout --idle-timeout --log --help --version; do
		[[ "$output" == *"$option"* ]] || { echo "missing $option" >&2; return 1; }
	done
	run "$TUNNELD" -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: tunneld [options]"* ]]
}

@test "--version and -V print the version on stdout and exit 0" {
	run --separate-stderr "$TUNNELD" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^tunneld\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run "$TUNNELD" -V
	[ "$status" -eq 0 ]
}

@test "a bad option or value exits 2 with a message on the log, and the client gets nothing" {
	local bad=(--bogus "--allow-port=0" "--allow-port=70000" "--allow-port=5-1" "--allow-port=1,,2" "--allow-dest=10.0.0.0/33"
		"--deny-dest=nonsense" "--header-timeout=0" "--connect-timeout=1.5" "--idle-timeout=-1" "--log=file" "--allow-host=a*b" extra-argument)
	for option in "${bad[@]}"; do
		run --separate-stderr "$TUNNELD" --log=stderr "$option" </dev/null
		[ "$status" -eq 2 ] || { echo "$option: status $status" >&2; return 1; }
		[ -z "$output" ]
		[[ "$stderr" == "tunneld: "* ]] || { echo "$option: $stderr" >&2; return 1; }
	done
	run --separate-stderr "$TUNNELD" --header-timeout </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == "tunneld: option '--header-timeout' needs a value" ]]
}

@test "a client behind a bad configuration gets no 200, only a closed connection" {
	start_target echo
	start_proxy --allow-port=nonsense
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\n"
	[ -z "$output" ]
	wait_log "tunneld: bad --allow-port 'nonsense'"
}

@test "short options work like the long ones" {
	start_target echo
	start_proxy -p "$TARGET_PORT" -a 127.0.0.1/32 -d 10.0.0.0/8 -H 127.0.0.1 -t 5 -c 5 -i 5 -l stderr
	run raw_request "CONNECT 127.0.0.1:$TARGET_PORT HTTP/1.1\r\n\r\nshort"
	[[ "$output" == "HTTP/1.1 200"*"short" ]]
}

@test "every reference to the man page in the code and the tests names a section it has" {
	run "$PYTHON" - "$TOP" <<'PY'
import re, subprocess, sys
top = sys.argv[1]
man = open(top + "/man/tunneld.8").read()
sections = set(re.findall(r'^\.S[hs] (.+)$', man, re.M))
files = subprocess.run(["git", "-C", top, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
found, bad = 0, []
for name in files:
    if name.endswith((".md", ".8")) or name.startswith("fuzz/corpus/"):
        continue
    text = open(top + "/" + name, errors="replace").read()
    if re.search(r'SPEC\s*§', text):
        bad.append("%s: cites a SPEC that is not in the repository" % name)
    for match in re.finditer(r'tunneld\(8\)((?:,? "[^"\n]+")+)', text):
        for section in re.findall(r'"([^"]+)"', match.group(1)):
            found += 1
            if section not in sections:
                bad.append("%s: tunneld(8) has no section %r" % (name, section))
print("\n".join(bad) if bad else "%d references, all found" % found)
PY
	[[ "$output" =~ ^[0-9]+\ references,\ all\ found$ ]]
	[ "${output%% *}" -ge 15 ]
}

@test "no test asserts with a bare '! cmd', which errexit ignores and so can never fail" {
	# Only a function may end with one: there it is the return status.
	run awk '
		FNR == 1 { in_test = 0 }
		/^@test / { in_test = 1 }
		/^}/ { in_test = 0 }
		in_test && /^[ \t]*! / && !/\|\| false$/ { print FILENAME ":" FNR ": " $0 }
	' "$TOP"/tests/*.bats
	[ "$output" = "" ]
	# The check itself can fail: it finds the form it forbids.
	printf '@test "x" {\n\t! false\n}\n' >"$BATS_TEST_TMPDIR/bare.bats"
	run awk '/^[ \t]*! / && !/\|\| false$/' "$BATS_TEST_TMPDIR/bare.bats"
	[ "$output" = "	! false" ]
}

@test "--help into a pipe nobody reads: a stop signal still ends tunneld" {
	run timeout 20 "$PYTHON" "$PEERS/stuck-sink.py" 1 never 'b""' "$TUNNELD" --help
	echo "${lines[0]}" >&3
	[[ "${lines[0]}" =~ ^gone\ after\ ([0-9]+)\ ms,\ exit\ (0|-14)$ ]]
	[ "${BASH_REMATCH[1]}" -lt 1000 ]
}

@test "a standard descriptor opened O_PATH is open, not closed: tunneld runs (poll() cannot see it, fcntl() can)" {
	run "$PYTHON" -c '
import os, sys
fd = os.open("/dev/null", os.O_PATH)
os.dup2(fd, 2)
os.close(fd)
os.execv(sys.argv[1], [sys.argv[1], "--check", "--allow-port=443"])' "$TUNNELD"
	[ "$status" -eq 0 ]
	[[ "$output" == *"options OK"* ]]
}
