/*
 * client: the client's connection (tunneld(8) "DESCRIPTION"): fds 0 and 1,
 * one socket or two pipes, or the socket systemd passed; their flags given
 * back before exit; its address for the record; and every read and write,
 * each against a deadline, so that no client can hold a phase.
 */
#ifndef TUNNELD_CLIENT_H
#define TUNNELD_CLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

enum protocol { PROTOCOL_HTTP, PROTOCOL_SOCKS5, PROTOCOL_JUMP };

struct client {
	int in;
	int out;
	int saved_in_flags;      /* the file status flags to give back, or -1 */
	int saved_out_flags;
	char address[INET6_ADDRSTRLEN + 16];
	enum protocol protocol;  /* what the client speaks: how a refusal is answered */
	int socks5_reply;        /* the SOCKS5 REP it was sent, or -1 */
};

#define CLIENT_ON_STDIO                                                                                  \
	{ .in = STDIN_FILENO, .out = STDOUT_FILENO, .saved_in_flags = -1, .saved_out_flags = -1,        \
	  .socks5_reply = -1 }

#define CLIENT_CLOSED_IN 1u
#define CLIENT_CLOSED_OUT 2u
#define CLIENT_CLOSED_ERR 4u

/*
 * Fds 0 to 2 that were closed at exec, each given /dev/null now, before
 * anything opens a socket: a target connected on a closed fd 0 or 1 would
 * otherwise be taken for the client, and its bytes sent back to it. Says
 * which were closed (CLIENT_CLOSED_*).
 */
unsigned client_reserve_standard_fds(void);

/*
 * systemd's native passing: one connected stream socket as fd 3 becomes
 * the client; listening sockets from fd 3 on are counted and returned, for
 * the acceptor. *unusable: LISTEN_FDS named sockets of neither kind.
 */
int client_adopt_passed_sockets(struct client *client, bool *unusable);

/*
 * Names the client: PROXY header aside, the first of $REMOTE_ADDR,
 * $REMOTE_HOST, $SSH_CLIENT, the peer; with ssh_first (a jump, whose
 * activator is sshd), $SSH_CLIENT before the others.
 */
void client_identify(struct client *client, bool ssh_first);

/* $SSH_CLIENT's "address port port" as "address:port" in out; false when it holds no address. */
bool client_address_from_ssh(const char *ssh_client, char *out, size_t size);

/* O_NONBLOCK on both fds (saved first), and urgent data inline (tunneld(8) "The relay"). */
void client_make_nonblocking(struct client *client);
void client_restore_flags(const struct client *client);

/* All of buf to the client by the deadline; 0 or -1. */
int client_write(const struct client *client, const char *buf, size_t len, int64_t deadline_ms);

/*
 * What the client has sent by the deadline, into buf[*len, size): 1 when
 * bytes came, 0 on timeout, -1 on its end or an error, with *why.
 */
int client_read_by(const struct client *client, int64_t deadline_ms, char *buf, size_t size, size_t *len,
		   const char **why);

/* After a refusal: our side shut, what the client still sends read and dropped for a moment, unparsed. */
void client_close_gracefully(const struct client *client);

void client_set_nodelay(const struct client *client);

/* An IP address without its port, as text; NULL if it is no IP address. */
const char *address_text(const struct sockaddr *address, char *out, size_t size);

/* The address a socket is connected to, without its port, as text; NULL if it has none. */
const char *peer_of(int fd, char *out, size_t size);

#endif
