/*
 * jump: tunneld as sshd's forced command (tunneld(8) "As an SSH jump
 * host", src/jump.c). No request is read: stdin and stdout are the stream
 * from its first byte, and the target is named before it starts.
 */
#ifndef TUNNELD_JUMP_H
#define TUNNELD_JUMP_H

#include "failure.h"
#include "request.h"
#include "tunnel.h"

#include <stddef.h>

/* The login name (of the process's uid), or empty: the user when no --user names one. */
struct jump_login {
	char name[256];
};

/*
 * Before the sandbox: a terminal refused (a pty is no byte stream), the
 * login name looked up (the user database may want files or sockets the
 * sandbox shuts), and the log kept off ssh's stderr, which is the person's.
 */
void jump_prepare(struct tunnel *tunnel, struct jump_login *login);

/*
 * The target, from the command line or else $SSH_ORIGINAL_COMMAND (the
 * ssh client's own text), parsed into request exactly as a CONNECT
 * authority is; and *user. Anything else ends the tunnel with a line to
 * the person and exit status 2.
 */
const struct request *jump_request(struct tunnel *tunnel, struct request *request, const struct jump_login *login,
				   const char **user);

/* A refused jump's exit status (tunneld(8) "EXIT STATUS"): 1 refused, 2 usage, 3 unreachable, 4 timed out. */
int jump_exit_status(enum failure failure);

#endif
