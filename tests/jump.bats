#!/usr/bin/env bats
# tunneld as an SSH jump host (tunneld(8) "AS AN SSH JUMP HOST"): a
# throwaway sshd on loopback is the bastion, with tunneld --jump as its
# forced command in both of the man page's forms (Match + ForceCommand, and
# restrict,command= in authorized_keys); a second sshd is the target. The
# client side is what a person types: ssh, scp and rsync with the bastion
# as ProxyCommand in an ssh_config.

load helpers
load manager

teardown() {
	stop_manager
	stop_all
}

# start_target_sshd: the target, an sshd of its own. Sets TARGET_SSHD_PORT.
start_target_sshd() {
	start_sshd "$BATS_TEST_TMPDIR/target"
	TARGET_SSHD_PORT=$SSHD_PORT
}

# jump_rules: a rules file ($RULES) letting alice (or root, the login name)
# reach the target sshd, and no one anything else.
jump_rules() {
	RULES=$BATS_TEST_TMPDIR/rules
	cat >"$RULES" <<-RULES
		group jumpers = alice root
		allow group jumpers protocol jump to 127.0.0.1 port $TARGET_SSHD_PORT
		deny
	RULES
}

# start_bastion_forced ARGS...: the bastion, forcing `tunneld --jump ARGS` on
# root's logins in a Match block, as the man page's first form.
start_bastion_forced() {
	start_sshd "$BATS_TEST_TMPDIR/bastion" "Match User root
	ForceCommand $(printf '%q ' "$TUNNELD" --jump "$@")
	AllowTcpForwarding no
	PermitTTY no
	X11Forwarding no"
	BASTION_PORT=$SSHD_PORT
	BASTION_KEY=$BATS_TEST_TMPDIR/bastion/client_key
}

# start_bastion_keys KEY_OPTIONS NAME...: the bastion with a key of its own
# for each NAME, forced to `tunneld --jump --user NAME $JUMP_ARGS` by
# KEY_OPTIONS,command="..." in authorized_keys, as the man page's second
# form (one shared account, root here). NAME's key is bastion/NAME_key.
start_bastion_keys() {
	local key_options=$1 dir=$BATS_TEST_TMPDIR/bastion-keys name
	shift
	start_sshd "$dir"
	BASTION_PORT=$SSHD_PORT
	: >"$dir/authorized_keys.new"
	for name in "$@"; do
		ssh-keygen -q -t ed25519 -N '' -f "$dir/${name}_key"
		printf '%s,command="%s" %s\n' "$key_options" "$(printf '%q ' "$TUNNELD" --jump --user "$name" "${JUMP_ARGS[@]}")" \
			"$(cat "$dir/${name}_key.pub")" >>"$dir/authorized_keys.new"
	done
	mv "$dir/authorized_keys.new" "$dir/authorized_keys" # sshd reads it at each login
}

# client_config KEY: an ssh_config ($SSH_CONFIG) as a person's: Host bastion
# logs in with KEY, Host target is reached through it by ProxyCommand.
client_config() {
	SSH_CONFIG=$BATS_TEST_TMPDIR/ssh_config
	cat >"$SSH_CONFIG" <<-CONFIG
		Host *
		    User root
		    BatchMode yes
		    StrictHostKeyChecking no
		    UserKnownHostsFile /dev/null
		    LogLevel ERROR
		    ConnectTimeout 10
		Host bastion
		    HostName 127.0.0.1
		    Port $BASTION_PORT
		    IdentityFile $1
		Host target
		    HostName 127.0.0.1
		    Port $TARGET_SSHD_PORT
		    IdentityFile $BATS_TEST_TMPDIR/target/client_key
		    ProxyCommand ssh -F $SSH_CONFIG -T bastion %h:%p
	CONFIG
}

# to_bastion ARGS...: ssh -T to the bastion, ARGS its command, nothing on stdin.
to_bastion() {
	timeout 30 ssh -F "$SSH_CONFIG" -T bastion "$@" </dev/null
}

# What a person is told of any error in the forced command's own configuration.
MISCONFIGURED="500 Internal Server Error: the proxy's configuration has an error; its log says which"

# tunneld_lines TEXT: the lines of TEXT that tunneld wrote (ssh's own are not).
tunneld_lines() {
	grep '^tunneld: ' <<<"$1" || true
}

@test "Match + ForceCommand: ssh through the jump runs a command on the target; the record names root (the login), SSH_CLIENT's address, the target, protocol=jump, bytes and rule; nothing reaches the person" {
	start_target_sshd
	jump_rules
	start_bastion_forced --rules "$RULES" --log=file:"$LOG"
	client_config "$BASTION_KEY"
	run --separate-stderr timeout 60 ssh -F "$SSH_CONFIG" target 'echo ran-on-$(hostname)'
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "ran-on-$(hostname)" ]
	[ -z "$(tunneld_lines "$stderr")" ]
	wait_log "^127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:$TARGET_SSHD_PORT status=200 up=[1-9][0-9]+ down=[1-9][0-9]+ duration_ms=[0-9]+ protocol=jump rule=2 user=root$"
	# The client is the inner ssh's own connection to the bastion, as sshd's SSH_CLIENT says.
	[ "$(wc -l <"$LOG")" -eq 1 ]
}

@test "scp and rsync -e ssh through the jump carry 10 MiB each way, sha256 equal" {
	start_target_sshd
	jump_rules
	start_bastion_forced --rules "$RULES" --log=file:"$LOG"
	client_config "$BASTION_KEY"
	make_file "$BATS_TEST_TMPDIR/payload" 10
	local want remote=$BATS_TEST_TMPDIR/remote
	want=$(sha_of "$BATS_TEST_TMPDIR/payload")
	mkdir -p "$remote"
	timeout 120 scp -F "$SSH_CONFIG" "$BATS_TEST_TMPDIR/payload" "target:$remote/by-scp"
	[ "$(sha_of "$remote/by-scp")" = "$want" ]
	timeout 120 scp -F "$SSH_CONFIG" "target:$remote/by-scp" "$BATS_TEST_TMPDIR/back-by-scp"
	[ "$(sha_of "$BATS_TEST_TMPDIR/back-by-scp")" = "$want" ]
	timeout 120 rsync -e "ssh -F $SSH_CONFIG" "$BATS_TEST_TMPDIR/payload" "target:$remote/by-rsync"
	[ "$(sha_of "$remote/by-rsync")" = "$want" ]
	timeout 120 rsync -e "ssh -F $SSH_CONFIG" "target:$remote/by-rsync" "$BATS_TEST_TMPDIR/back-by-rsync"
	[ "$(sha_of "$BATS_TEST_TMPDIR/back-by-rsync")" = "$want" ]
	# Each of the four a record, 10 MiB going the way the file went.
	wait_for "four records" test "$(grep -c ' status=200 ' "$LOG")" -eq 4
	[ "$(grep -cE ' status=200 up=1[0-9]{7} ' "$LOG")" -eq 2 ]
	[ "$(grep -cE ' status=200 up=[0-9]+ down=1[0-9]{7} ' "$LOG")" -eq 2 ]
}

@test "authorized_keys restrict,command= with --user: alice is let through; bob's key is refused by the rules, bob sees one line saying what a CONNECT would, and ssh fails" {
	start_target_sshd
	jump_rules
	JUMP_ARGS=(--rules "$RULES" --log=file:"$LOG")
	start_bastion_keys restrict alice bob
	client_config "$BATS_TEST_TMPDIR/bastion-keys/alice_key"
	run --separate-stderr timeout 60 ssh -F "$SSH_CONFIG" target 'echo alice-was-here'
	[ "$status" -eq 0 ]
	[ "$output" = alice-was-here ]
	wait_log "-> 127\.0\.0\.1:$TARGET_SSHD_PORT status=200 .* protocol=jump rule=2 user=alice$"
	client_config "$BATS_TEST_TMPDIR/bastion-keys/bob_key"
	run --separate-stderr timeout 60 ssh -F "$SSH_CONFIG" target 'echo bob-was-here'
	[ "$status" -eq 255 ]
	[ -z "$output" ]
	local refusal="tunneld: 127.0.0.1:$TARGET_SSHD_PORT: 403 Forbidden: not allowed by the rules"
	[ "$(tunneld_lines "$stderr")" = "$refusal" ]
	# Asked directly, the exit status is the refusal's (1), and the line the same: no rule number, no rule text.
	run --separate-stderr to_bastion "127.0.0.1:$TARGET_SSHD_PORT"
	[ "$status" -eq 1 ]
	[ "$(tunneld_lines "$stderr")" = "$refusal" ]
	[ "$(grep -c "status=403 up=0 down=0 duration_ms=[0-9]* protocol=jump rule=3 user=bob reason=denied by a rule$" "$LOG")" -eq 2 ]
}

@test "hostile commands for the target (shell lines, userinfo, a bare host, megabytes, sftp, scp, none) are refused with one line and exit 2, and nothing is connected" {
	start_target_sshd
	jump_rules
	start_bastion_forced --rules "$RULES" --log=file:"$LOG"
	client_config "$BASTION_KEY"
	local port=$TARGET_SSHD_PORT command long
	long="$(head -c 70000 /dev/zero | tr '\0' a).example:22"
	for command in "127.0.0.1:$port; id" "127.0.0.1:$port && id" "127.0.0.1:$port id" '$(id):22' '`id`:22' \
		"root@127.0.0.1:$port" 127.0.0.1 "[::1]:$port:2" "127.0.0.1:${port}x" "127.0.0.1:$port " \
		"127.0.0.1:$port"$'\n'x "$long"; do
		run --separate-stderr to_bastion "$command"
		[ "$status" -eq 2 ] || { echo "'${command:0:60}': exit $status, $stderr"; return 1; }
		[[ "$(tunneld_lines "$stderr")" =~ ^tunneld:\ [^$'\n']+:\ 400\ Bad\ Request:\ not\ a\ target,\ HOST:PORT:\ [^$'\n']+$ ]] ||
			{ echo "'${command:0:60}': $stderr"; return 1; }
		[ -z "$output" ]
	done
	# The escaped command, as the person sees it: a space is \x20, a newline \x0a.
	run --separate-stderr to_bastion "127.0.0.1:$port; id"
	[ "$(tunneld_lines "$stderr")" = "tunneld: 127.0.0.1:$port;\\x20id: 400 Bad Request: not a target, HOST:PORT: port missing or not a decimal number" ]
	# No command at all, sftp (a subsystem) and scp's own protocol (a command line).
	run --separate-stderr to_bastion
	[ "$status" -eq 2 ]
	[ "$(tunneld_lines "$stderr")" = "tunneld: 400 Bad Request: no target: name it as ssh's command, HOST:PORT (ssh -T bastion db1.internal:22)" ]
	run timeout 30 sftp -F "$SSH_CONFIG" -b /dev/null bastion
	[ "$status" -ne 0 ]
	run --separate-stderr timeout 30 scp -O -F "$SSH_CONFIG" "$RULES" bastion:/tmp/copied
	[ "$status" -ne 0 ]
	[[ "$(tunneld_lines "$stderr")" == "tunneld: scp\\x20-t\\x20/tmp/copied: 400 Bad Request: not a target, HOST:PORT: "* ]]
	# A record each, every one refused before any connection: no status=200, no peer.
	wait_for "every record" test "$(wc -l <"$LOG")" -eq 16
	[ "$(grep -c ' status=400 up=0 down=0 duration_ms=[0-9]* protocol=jump user=root reason=' "$LOG")" -eq 16 ]
	grep -q -- '-> internal-sftp status=400 ' "$LOG"
	grep -q -- '-> aaaa' "$LOG"
	[ "$(awk '{ print length($0) }' "$LOG" | sort -n | tail -n 1)" -lt 1200 ] # the megabyte name is cut in the record
}

@test "ssh -t is refused: by sshd under PermitTTY no (ssh quits, saying so); where a key may have a pty, by tunneld with one line on the terminal and exit 2" {
	start_target_sshd
	jump_rules
	start_bastion_forced --rules "$RULES" --log=file:"$LOG"
	client_config "$BASTION_KEY"
	# An explicit pty that sshd refuses is fatal to ssh itself: no stream is relayed to it.
	run timeout 30 ssh -F "$SSH_CONFIG" -tt bastion "127.0.0.1:$TARGET_SSHD_PORT" </dev/null
	[ "$status" -eq 255 ]
	[[ "$output" == *"PTY allocation request failed"* ]]
	[[ "$output" != *SSH-2.0* ]]
	stop_all
	: >"$LOG"
	# A key with command= and no restrict may get a pty: tunneld says no, on the person's terminal.
	JUMP_ARGS=(--rules "$RULES" --log=file:"$LOG")
	start_bastion_keys 'no-agent-forwarding' alice
	client_config "$BATS_TEST_TMPDIR/bastion-keys/alice_key"
	run timeout 30 ssh -F "$SSH_CONFIG" -tt bastion "127.0.0.1:$TARGET_SSHD_PORT" </dev/null
	[ "$status" -eq 2 ]
	echo "$output"
	[[ "$output" == *"tunneld: 127.0.0.1:$TARGET_SSHD_PORT: 400 Bad Request: a terminal is no byte stream: run ssh with -T"* ]]
	[[ "$output" != *SSH-2.0* ]]
	wait_log "-> 127\.0\.0\.1:$TARGET_SSHD_PORT status=400 up=0 down=0 duration_ms=[0-9]+ protocol=jump user=alice reason=a terminal is no byte stream"
}

# jump_on_pipes COMMAND ARGS...: tunneld --jump as sshd would run it, on two
# pipes, $SSH_ORIGINAL_COMMAND set to COMMAND, SSH_CLIENT a client's; stdin
# is $JUMP_INPUT (default nothing).
jump_on_pipes() {
	local command=$1
	shift
	printf '%s' "${JUMP_INPUT:-}" | SSH_ORIGINAL_COMMAND=$command SSH_CLIENT='192.0.2.7 50123 22' \
		timeout 20 "$TUNNELD" --jump --log=file:"$LOG" "$@" | cat
	return "${PIPESTATUS[1]}"
}

@test "the exit status says how a jump ended: 0 tunnelled, 1 refused, 2 usage, 3 unreachable, 4 timed out; the person's line says what a CONNECT's answer would" {
	start_target echo
	local policy=(--allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32)
	JUMP_INPUT=ping run --separate-stderr jump_on_pipes "127.0.0.1:$TARGET_PORT" "${policy[@]}"
	[ "$status" -eq 0 ]
	[ "$output" = ping ]
	[ -z "$stderr" ]
	wait_log "^192\.0\.2\.7:50123 -> 127\.0\.0\.1:$TARGET_PORT status=200 up=4 down=4 duration_ms=[0-9]+ protocol=jump user=root$"
	run --separate-stderr jump_on_pipes "127.0.0.1:$TARGET_PORT" --allow-dest=127.0.0.1/32
	[ "$status" -eq 1 ]
	[ "$stderr" = "tunneld: 127.0.0.1:$TARGET_PORT: 403 Forbidden: port not allowed" ]
	run --separate-stderr jump_on_pipes "127.0.0.2:$TARGET_PORT" "${policy[@]}"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "tunneld: 127.0.0.2:$TARGET_PORT: 403 Forbidden: "* ]]
	run --separate-stderr jump_on_pipes "127.0.0.1 $TARGET_PORT" "${policy[@]}"
	[ "$status" -eq 2 ]
	run --separate-stderr jump_on_pipes "127.0.0.1:$TARGET_PORT" --jump-typo
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $MISCONFIGURED" ]
	local closed
	closed=$(free_port)
	run --separate-stderr jump_on_pipes "127.0.0.1:$closed" --allow-port="$closed" --allow-dest=127.0.0.1/32
	[ "$status" -eq 3 ]
	[ "$stderr" = "tunneld: 127.0.0.1:$closed: 502 Bad Gateway: connection refused by the target" ]
	# A target whose listen queue is full drops the SYNs: the connect times out (4).
	start_target blackhole
	run --separate-stderr jump_on_pipes "127.0.0.1:$TARGET_PORT" --allow-port="$TARGET_PORT" \
		--allow-dest=127.0.0.1/32 --connect-timeout=1
	[ "$status" -eq 4 ]
	echo "$stderr"
	[ "$stderr" = "tunneld: 127.0.0.1:$TARGET_PORT: 504 Gateway Timeout: connection to the target timed out" ]
	grep -q " -> 127\.0\.0\.1:$TARGET_PORT status=504 .* protocol=jump user=root reason=" "$LOG"
	# In a network of its own, no resolver answers (3).
	run --separate-stderr unshare --net env SSH_ORIGINAL_COMMAND=nowhere.invalid:22 timeout 20 "$TUNNELD" --jump \
		--log=file:"$LOG" --allow-port=22 </dev/null
	[ "$status" -eq 3 ]
	[[ "$stderr" == "tunneld: nowhere.invalid:22: 502 Bad Gateway: "* ]]
	grep -q ' -> nowhere\.invalid:22 status=502 .* protocol=jump user=root reason=' "$LOG"
}

@test "a jump ends with its record at the idle timeout, at a stop signal, and when either side ends" {
	start_target echo
	local policy=(--allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32)
	mkfifo "$BATS_TEST_TMPDIR/in"
	exec {held}<>"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env SSH_ORIGINAL_COMMAND="127.0.0.1:$TARGET_PORT" timeout 20 "$TUNNELD" --jump \
		--log=file:"$LOG" --idle-timeout=1 "${policy[@]}" <"$BATS_TEST_TMPDIR/in"
	[ "$status" -eq 0 ]
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=200 up=0 down=0 duration_ms=[0-9]+ protocol=jump user=root reason=idle timeout$"
	# A stop signal, once the tunnel is up (the target has its connection).
	start_bg sh -c 'exec env SSH_ORIGINAL_COMMAND="$1" "$2" --jump --log=file:"$3" --allow-port="$4" \
		--allow-dest=127.0.0.1/32 <"$5" >/dev/null' sh "127.0.0.1:$TARGET_PORT" "$TUNNELD" "$LOG" "$TARGET_PORT" \
		"$BATS_TEST_TMPDIR/in"
	local pid
	pid=$(tail -n 1 "$PIDS_FILE")
	wait_for "the tunnel to the target" sh -c "ss -Htnp state established \"dport = :$TARGET_PORT\" | grep -q 'pid=$pid,'"
	local took
	took=$(stop_and_time "$pid" "-> 127\.0\.0\.1:$TARGET_PORT status=200 up=0 down=0 duration_ms=[0-9]+ protocol=jump user=root reason=stopped by signal$")
	[ "$took" -le "$STOP_BOUND_MS" ]
	exec {held}>&-
	# The client's end (EOF on stdin) and the target's (a target that closes).
	JUMP_INPUT=bye run jump_on_pipes "127.0.0.1:$TARGET_PORT" "${policy[@]}"
	[ "$status" -eq 0 ]
	[ "$output" = bye ]
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=200 up=3 down=3 duration_ms=[0-9]+ protocol=jump user=root$"
}

@test "a rule's protocol jump matches a jump and nothing else; --check knows a jump has a user; --explain protocol=jump agrees" {
	start_target echo
	cat >"$BATS_TEST_TMPDIR/rules" <<-RULES
		allow user carol protocol http to 127.0.0.1 port $TARGET_PORT
		allow user carol protocol jump to 127.0.0.1 port $TARGET_PORT
		deny
	RULES
	run --separate-stderr "$TUNNELD" --jump --user carol --rules "$BATS_TEST_TMPDIR/rules" --check
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ "$output" == *"OK: 3 rules, 0 groups, 0 parents" ]]
	run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --explain user=carol protocol=jump to="127.0.0.1:$TARGET_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"verdict: allow, line 2" ]]
	run "$TUNNELD" --rules "$BATS_TEST_TMPDIR/rules" --explain user=carol protocol=socks5 to="127.0.0.1:$TARGET_PORT"
	[ "$status" -eq 1 ]
	[[ "$output" == *"verdict: deny, line 3" ]]
	JUMP_INPUT=hi run jump_on_pipes "127.0.0.1:$TARGET_PORT" --user carol --rules "$BATS_TEST_TMPDIR/rules"
	[ "$status" -eq 0 ]
	[ "$output" = hi ]
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=200 up=2 down=2 duration_ms=[0-9]+ protocol=jump rule=2 user=carol$"
	# Without --user the login name is the user: root, whom no rule names.
	run --separate-stderr jump_on_pipes "127.0.0.1:$TARGET_PORT" --rules "$BATS_TEST_TMPDIR/rules"
	[ "$status" -eq 1 ]
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=403 .* protocol=jump rule=3 user=root reason=denied by a rule$"
}

@test "--jump refuses what has no place in a jump, and a fixed target refuses another asked for" {
	local combination
	for combination in "--auth-file=/dev/null" "--proxy-protocol" "--protocols=http" "a:1 b:2"; do
		# shellcheck disable=SC2086
		run --separate-stderr "$TUNNELD" --jump $combination </dev/null
		[ "$status" -eq 2 ] || { echo "$combination: $status"; return 1; }
		[[ "$stderr" == "tunneld: "* ]]
	done
	run --separate-stderr "$TUNNELD" --user alice </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: --user names the user of a --jump; a CONNECT's user is the one it logs in as (--auth-file)" ]
	run --separate-stderr "$TUNNELD" --jump --user 'bad name' </dev/null
	[ "$status" -eq 2 ]
	# An operand fixes the target: asked for nothing, or for it, it is served; another is refused.
	start_target echo
	JUMP_INPUT=x run jump_on_pipes "127.0.0.1:$TARGET_PORT" --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32 \
		"127.0.0.1:$TARGET_PORT"
	[ "$status" -eq 0 ]
	[ "$output" = x ]
	run --separate-stderr jump_on_pipes "db1.internal:22" --allow-port="$TARGET_PORT" --allow-dest=127.0.0.1/32 \
		"127.0.0.1:$TARGET_PORT"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: db1.internal:22: 400 Bad Request: this login's forced command names its target: run ssh with no command, or with that target" ]
	run "$TUNNELD" --help
	[[ "$output" == *"--jump [HOST:PORT]"* ]]
	[[ "$output" == *"--user NAME"* ]]
}

@test "under a real systemd manager: sshd as a unit, the jump's record in the journal (protocol, user, client, target), none of it on ssh's stderr" {
	start_target_sshd
	jump_rules
	local dir=$BATS_TEST_TMPDIR/bastion
	sshd_config_for "$dir" "Match User root
	ForceCommand $(printf '%q ' "$TUNNELD" --jump --rules "$RULES")
	AllowTcpForwarding no
	PermitTTY no"
	BASTION_PORT=$SSHD_PORT
	cat >"$BATS_TEST_TMPDIR/bastion-sshd.service" <<-UNIT
		[Service]
		ExecStart=/usr/sbin/sshd -D -e -f $dir/sshd_config
		RuntimeDirectory=sshd
	UNIT
	start_manager "$BATS_TEST_TMPDIR/bastion-sshd.service"
	in_manager systemctl start bastion-sshd.service
	wait_for "the bastion as a unit" port_open "$BASTION_PORT"
	client_config "$dir/client_key"
	run --separate-stderr timeout 60 ssh -F "$SSH_CONFIG" target 'echo through-the-unit'
	[ "$status" -eq 0 ]
	[ "$output" = through-the-unit ]
	[ -z "$(tunneld_lines "$stderr")" ]
	wait_for "the record in the journal" records_at_least 1
	tunneld_records cat
	tunneld_records cat | grep -qE "^127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:$TARGET_SSHD_PORT status=200 up=[1-9][0-9]+ down=[1-9][0-9]+ duration_ms=[0-9]+ protocol=jump rule=2 user=root$"
	[ "$(journal_field 0 TUNNELD_PROTOCOL)" = jump ]
	[ "$(journal_field 0 TUNNELD_USER)" = root ]
	[[ "$(journal_field 0 TUNNELD_CLIENT)" =~ ^127\.0\.0\.1:[0-9]+$ ]]
	[ "$(journal_field 0 TUNNELD_TARGET)" = "127.0.0.1:$TARGET_SSHD_PORT" ]
	[ "$(journal_field 0 TUNNELD_RULE)" = 2 ]
}

# jump_with_syslog COMMAND ARGS...: jump_on_pipes with --log=syslog, the
# syslog lines in $SYSLOG, which the caller sets (tests/peers/with-syslog).
jump_with_syslog() {
	local command=$1
	shift
	SSH_ORIGINAL_COMMAND=$command SSH_CLIENT='192.0.2.7 50123 22' \
		timeout 20 "$PEERS/with-syslog" "$SYSLOG" "$TUNNELD" --jump --log=syslog "$@" </dev/null
}

@test "what the forced command's configuration gets wrong stays in the log: a broken rules file, a bad option, an unusable log file, --log=stderr; the person is told one 500 line" {
	SYSLOG=$BATS_TEST_TMPDIR/syslog
	printf 'allow to 127.0.0.1 port 22 frobnicate\ndeny user alice to secret.internal\n' >"$BATS_TEST_TMPDIR/rules"
	run --separate-stderr jump_with_syslog 127.0.0.1:22 --rules "$BATS_TEST_TMPDIR/rules"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: 127.0.0.1:22: $MISCONFIGURED" ]
	grep -q "rules:1:[0-9]*: expected user, group, from, to, port, protocol or outgoing, found 'frobnicate'" "$SYSLOG"
	run --separate-stderr jump_with_syslog 127.0.0.1:22 --allow-port=22 --jump-typo
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $MISCONFIGURED" ]
	grep -q "unknown option '--jump-typo'" "$SYSLOG"
	run --separate-stderr jump_with_syslog 127.0.0.1:22 --log=file:/nonexistent/tunneld.log
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $MISCONFIGURED" ]
	grep -q "cannot open log file /nonexistent/tunneld.log" "$SYSLOG"
	run --separate-stderr jump_with_syslog 127.0.0.1:22 --log=stderr
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: $MISCONFIGURED" ]
	grep -q -- "--jump and --log=stderr" "$SYSLOG"
	# A fixed target that is no target is the forced command's error too, and --check says so.
	run --separate-stderr "$TUNNELD" --jump --allow-port=22 --check 'db1.internal;id'
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: --jump 'db1.internal;id': not a target, HOST:PORT: port required in the authority" ]
}

@test "a login's userinfo (user:password@) is never shown, not even in a refusal before the target parses" {
	start_target echo
	run --separate-stderr jump_on_pipes 'alice:hunter2@db1.internal:22' --allow-port="$TARGET_PORT" \
		--allow-dest=127.0.0.1/32 "127.0.0.1:$TARGET_PORT"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: db1.internal:22: 400 Bad Request: this login's forced command names its target: run ssh with no command, or with that target" ]
	run --separate-stderr jump_on_pipes 'alice:hunter2@db1.internal:22' --allow-port=22
	[ "$status" -eq 2 ]
	[[ "$stderr" == "tunneld: db1.internal:22: 400 Bad Request: "* ]]
	# And on a terminal (script(1) gives the jump a pty).
	run env SSH_ORIGINAL_COMMAND='alice:hunter2@db1.internal:22' timeout 20 script -qec \
		"$(printf '%q ' "$TUNNELD" --jump --log=file:"$LOG" --allow-port=22)" /dev/null
	[[ "$output" == *"tunneld: db1.internal:22: 400 Bad Request: a terminal is no byte stream"* ]]
	wait_for "three records" test "$(wc -l <"$LOG")" -eq 3
	[ "$(grep -c -- '-> db1\.internal:22 status=400 ' "$LOG")" -eq 3 ]
	! grep -q hunter2 "$LOG" || false
	[[ "$output" != *hunter2* ]]
}

@test "a closed fd 0 or 1 is no client: tunneld ends before it connects, so the target's bytes never go back to the target" {
	[[ "$TUNNELD" != *valgrind* ]] || skip "valgrind opens its own files at the lowest free numbers: tunneld never sees fd 0 or 1 closed"
	start_target echo
	# exec in sh, so that nothing of the test's own takes the closed number first.
	local closes
	for closes in '<&-' '</dev/null >&-'; do
		run --separate-stderr sh -c "exec env SSH_ORIGINAL_COMMAND=127.0.0.1:\$1 timeout 20 \"\$2\" --jump --log=file:\"\$3\" \
			--allow-port=\$1 --allow-dest=127.0.0.1/32 $closes" sh "$TARGET_PORT" "$TUNNELD" "$LOG"
		[ "$status" -eq 2 ] || { echo "$closes: $status $stderr"; return 1; }
	done
	# A CONNECT on fd 0 with fd 1 closed: its 200 would have gone to the target.
	run --separate-stderr sh -c 'printf "CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" "$1" | timeout 20 "$2" --log=stderr \
		--allow-port="$1" --allow-dest=127.0.0.1/32 >&-' sh "$TARGET_PORT" "$TUNNELD"
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: fd 0 or 1 was closed: there is no client to serve (an activator hands it over on both)" ]
	! grep -q 'status=200' "$LOG" || false
}

@test "the source is SSH_CLIENT's address even with a link-local scope; an SSH_CLIENT naming none is refused, not judged as from nowhere" {
	start_target echo
	cat >"$BATS_TEST_TMPDIR/rules" <<-RULES
		deny from fe80::/10, 192.0.2.0/24
		allow to 127.0.0.1 port $TARGET_PORT
		deny
	RULES
	local client
	for client in 'fe80::1%eth0 50000 22' '192.0.2.9 50000 22'; do
		run --separate-stderr env SSH_CLIENT="$client" SSH_ORIGINAL_COMMAND="127.0.0.1:$TARGET_PORT" REMOTE_ADDR=10.9.9.9 \
			timeout 20 "$TUNNELD" --jump --log=file:"$LOG" --rules "$BATS_TEST_TMPDIR/rules" </dev/null
		[ "$status" -eq 1 ] || { echo "$client: $status $stderr"; return 1; }
	done
	grep -q '^\[fe80::1\]:50000 -> 127\.0\.0\.1:[0-9]* status=403 .* rule=1 ' "$LOG"
	grep -q '^192\.0\.2\.9:50000 -> 127\.0\.0\.1:[0-9]* status=403 .* rule=1 ' "$LOG"
	for client in 'garbage 1 2' '1.2.3 50000 22' ''; do
		run --separate-stderr env SSH_CLIENT="$client" SSH_ORIGINAL_COMMAND="127.0.0.1:$TARGET_PORT" REMOTE_ADDR=10.9.9.9 \
			timeout 20 "$TUNNELD" --jump --log=file:"$LOG" --rules "$BATS_TEST_TMPDIR/rules" </dev/null
		[ "$status" -eq 2 ] || { echo "'$client': $status $stderr"; return 1; }
		[ "$stderr" = "tunneld: 127.0.0.1:$TARGET_PORT: $MISCONFIGURED" ]
	done
	[ "$(grep -c 'status=500 .* reason=$SSH_CLIENT names no address' "$LOG")" -eq 3 ]
}

@test "a uid with no name in the user database is refused (500), not judged as nobody" {
	[[ "$TUNNELD" != *valgrind* ]] || skip "valgrind's wrapper cannot be copied where another uid may run it"
	start_target echo
	printf 'deny user mallory\nallow to 127.0.0.1 port %s\ndeny\n' "$TARGET_PORT" >"$BATS_TEST_TMPDIR/rules"
	chmod 644 "$BATS_TEST_TMPDIR/rules"
	local copy rules
	copy=$(shared_copy "$TUNNELD")
	rules=$(shared_copy "$BATS_TEST_TMPDIR/rules")
	if getent passwd 54321 >/dev/null; then skip "uid 54321 has a name here"; fi
	run --separate-stderr env SSH_ORIGINAL_COMMAND="127.0.0.1:$TARGET_PORT" timeout 20 "$PEERS/with-syslog" \
		"$BATS_TEST_TMPDIR/syslog" setpriv --reuid=54321 --regid=54321 --clear-groups "$copy" --jump --log=syslog \
		--rules "$rules" </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "tunneld: 127.0.0.1:$TARGET_PORT: $MISCONFIGURED" ]
	grep -q "status=500 .* protocol=jump reason=uid 54321 has no name in the user database: give --user$" "$BATS_TEST_TMPDIR/syslog"
}

@test "a stop signal before the tunnel is open tells the person, and exits 5" {
	start_target blackhole
	sh -c 'SSH_ORIGINAL_COMMAND="$1" "$2" --jump --log=file:"$3" --allow-port="$4" --allow-dest=127.0.0.1/32 \
		</dev/null 2>"$5" & echo $! >"$6"; wait $!; echo $? >"$7"' sh "127.0.0.1:$TARGET_PORT" "$TUNNELD" "$LOG" \
		"$TARGET_PORT" "$BATS_TEST_TMPDIR/stderr" "$BATS_TEST_TMPDIR/pid" "$BATS_TEST_TMPDIR/rc" 3>&- &
	wait_for "the jump's pid" test -s "$BATS_TEST_TMPDIR/pid"
	local pid
	pid=$(cat "$BATS_TEST_TMPDIR/pid")
	wait_for "its connect under way" sh -c "ss -Htnp \"dport = :$TARGET_PORT\" | grep -q 'pid=$pid,'"
	kill -TERM "$pid"
	wait_for "its exit" test -s "$BATS_TEST_TMPDIR/rc"
	[ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 5 ]
	[ "$(cat "$BATS_TEST_TMPDIR/stderr")" = "tunneld: 127.0.0.1:$TARGET_PORT: stopped by signal while connecting" ]
	wait_log "-> 127\.0\.0\.1:$TARGET_PORT status=- up=0 down=0 duration_ms=[0-9]+ protocol=jump user=root reason=stopped by signal while connecting$"
}
