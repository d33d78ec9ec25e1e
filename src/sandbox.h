/*
 * sandbox: what a tunnel process may still do once its options are read,
 * entered before the first byte from the client (tunneld(8) "Sandbox").
 * The same protection a per-instance unit sandbox gives, paid once by the
 * process in microseconds instead of by PID 1 at every connection.
 */
#ifndef TUNNELD_SANDBOX_H
#define TUNNELD_SANDBOX_H

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SANDBOX_WHY_MAX_BYTES 160

struct sandbox_report {
	bool no_new_privs;
	bool seccomp;             /* the system call allow-list is in force */
	int landlock_abi;         /* 0: the kernel has no Landlock, or refused it */
	char why[SANDBOX_WHY_MAX_BYTES]; /* what could not be put in place, for one log line; empty when all was */
};

/*
 * Enters the sandbox: rlimits (no core, a few files), no_new_privs, Landlock
 * (reading only what the resolver and the lazily loaded libraries need),
 * then the seccomp allow-list; bind(2) only if may_bind (an outgoing
 * address is configured). Irreversible. What the kernel lacks is
 * skipped and said in report->why; the tunnel is served regardless.
 */
void sandbox_enter(struct sandbox_report *report, bool may_bind);

/*
 * What sandbox_enter() would not put in place here, in why (the same words
 * as report->why), without entering anything: for an acceptor, which says
 * it once for all its tunnels, and for --check. False when nothing is missing.
 */
bool sandbox_probe(char *why, size_t size);

/*
 * Once the target is connected, on every thread: no new socket but AF_UNIX
 * (the journal's datagram), no connect() (log_connect_ahead() first), no new
 * thread, no further filter. Only after sandbox_enter() put its filter in
 * place (report->seccomp); false when the kernel refused it.
 */
bool sandbox_tighten_after_connect(void);

/*
 * Accept=no (acceptor.c): the forker, a process that enters the sandbox once
 * and forks every tunnel from there, each a child of the acceptor still:
 * clone(2) with exactly these flags, which its filter allows it alone.
 */
#define SANDBOX_FORKER_CLONE_FLAGS (CLONE_PARENT | SIGCHLD)

/*
 * The forker's sandbox: a tunnel's, and also recvmsg(2) (the connections it
 * is handed), a clone with SANDBOX_FORKER_CLONE_FLAGS, and signals to any
 * process. What it entered is what sandbox_enter() then reports in each
 * tunnel it forks, without entering anything again.
 */
void sandbox_enter_forker(struct sandbox_report *report, bool may_bind);

/*
 * In a tunnel the forker forked, first: takes back what only the forker
 * may do, so that the tunnel has what sandbox_enter() would give it, call
 * for call. False when the kernel refused it: the tunnel must not go on.
 */
bool sandbox_tighten_forked(void);

/*
 * Whether a forker may serve: its tunnels take back its rights with
 * seccomp(2), which a process may lack while filters work through prctl(2)
 * (valgrind does not know the call). Without it the acceptor forks each
 * tunnel itself, and each enters its own sandbox.
 */
bool sandbox_forker_possible(void);

/*
 * Landlock's rules hold the files they name, not their paths: a file
 * replaced (a new /etc/resolv.conf) is one the forker's tunnels cannot
 * read. Noted when a forker enters its sandbox; changed means start another.
 */
#define SANDBOX_FILES_NOTED 11
struct sandbox_file {
	dev_t device;
	ino_t inode; /* 0: not there */
};
struct sandbox_files {
	struct sandbox_file noted[SANDBOX_FILES_NOTED];
};
void sandbox_files_note(struct sandbox_files *files);
bool sandbox_files_changed(const struct sandbox_files *files);

#endif
