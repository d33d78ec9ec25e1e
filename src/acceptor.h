/*
 * acceptor: the Accept=no mode (tunneld(8) "ACCEPTOR"). Handed listening
 * sockets, tunneld accepts and forks; each child returns from acceptor_run()
 * to serve its one connection by the one-shot path, and the acceptor itself
 * never reads a byte of tunnel data.
 */
#ifndef TUNNELD_ACCEPTOR_H
#define TUNNELD_ACCEPTOR_H

#include <signal.h>
#include <stdbool.h>

#define ACCEPTOR_MAX_LISTENERS 16
#define ACCEPTOR_TUNNELS_LIMIT 65536

struct acceptor_limits {
	unsigned max_tunnels;            /* in total: over this a connection is turned away */
	unsigned max_tunnels_per_source; /* from one IP address; 0: no limit */
	int exit_idle_seconds;           /* with no tunnel and no connection this long, exit; 0: never */
	const char *files[2];            /* what the options name (rules, passwords), or NULL: pinned for a reload */
	bool may_bind;                   /* the sandbox's bind(2): an outgoing address is configured */
};

/*
 * Serves the listening sockets first_fd .. first_fd + count - 1 until told to
 * stop, restart or go idle, and then exits. Returns only in a child, with
 * the accepted connection's fd, the listeners closed, and the signal mask
 * and dispositions as original_mask and the caller's signals_setup() had
 * them. argv re-executes the acceptor on reload (SIGHUP).
 */
int acceptor_run(int first_fd, int count, const struct acceptor_limits *limits, char **argv,
		 const sigset_t *original_mask);

/*
 * In a tunnel the acceptor forked: its tunnel has ended (what is left is
 * the record and the exit), so its slot is free for the limits. Once; does
 * nothing in a process the acceptor did not fork.
 */
void acceptor_tunnel_ended(void);

/*
 * `tunneld --reload PID`, for the unit's ExecReload=: asks the acceptor PID
 * to reload and waits for its answer, so that systemctl reload returns when
 * the reload is done and fails when it was refused. The exit status: 0
 * reloaded, 1 refused or no answer, 2 not a pid.
 */
int acceptor_request_reload(const char *pid_text);

#endif
