/*
 * jump: tunneld as sshd's forced command (tunneld(8) "AS AN SSH JUMP
 * HOST", src/jump.c). No request is read: stdin and stdout are the stream
 * from its first byte, and the target is named before it starts.
 */
#ifndef TUNNELD_JUMP_H
#define TUNNELD_JUMP_H

#include "failure.h"
#include "request.h"
#include "tunnel.h"

#include <stdbool.h>

#define JUMP_EXIT_STOPPED 5 /* a stop signal came before the tunnel was open */

/* What is learnt before the sandbox, for jump_request() to judge after it. */
struct jump_session {
	char login[256];        /* the uid's login name, or empty: the user when no --user names one */
	bool on_terminal;       /* fd 0 or 1 is a terminal (a pty): no byte stream */
	bool unreadable_source; /* $SSH_CLIENT is set and names no address the rules could judge */
};

/*
 * Before the sandbox: the login name looked up (the user database may
 * want files or sockets the sandbox shuts), the terminal and $SSH_CLIENT
 * looked at, and the log kept off ssh's stderr, which is the person's.
 */
void jump_prepare(struct tunnel *tunnel, struct jump_session *session);

/*
 * The target, from the command line or else $SSH_ORIGINAL_COMMAND (the
 * ssh client's own text), parsed into request exactly as a CONNECT
 * authority is; and *user. Anything else ends the tunnel with a line to
 * the person: a terminal, a target other than the fixed one, none, or
 * text that is not HOST:PORT (exit status 2); a user or a source that
 * cannot be named (500, exit status 2).
 */
const struct request *jump_request(struct tunnel *tunnel, struct request *request,
				   const struct jump_session *session, const char **user);

/* A refused jump's exit status (tunneld(8) "EXIT STATUS"): 1 refused, 2 usage, 3 unreachable, 4 timed out. */
int jump_exit_status(enum failure failure);

#endif
