/*
 * client: the client's connection as this process holds it: where its
 * descriptors come from (fds 0 and 1, or systemd's), their flags, given
 * back before exit, who the client is for the record, and every read and
 * write to it, each against a deadline (tunneld(8) "DESCRIPTION").
 */
#include "client.h"

#include "acceptor.h"
#include "clock.h"
#include "log.h"
#include "relay.h"
#include "signals.h"
#include "systemd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_AFTER_ERROR_MS 1000   /* read-and-discard after a refusal, so no RST eats it... */
#define LINGER_DISCARD_MAX_BYTES ((size_t)64 * 1024) /* ...but a flood is not read to its end */

/*
 * systemd's native passing. Accept=yes without StandardInput=socket: one
 * connected stream socket as fd 3, which serves as the client. Accept=no:
 * listening stream sockets from fd 3 on, and tunneld becomes the acceptor
 * (src/acceptor.h); their count is returned. libsystemd is opened only when
 * LISTEN_FDS is set.
 */
int client_adopt_passed_sockets(struct client *client, bool *unusable)
{
	*unusable = false;
	if (getenv("LISTEN_FDS") == NULL)
		return 0;
	int count = systemd_listen_fds(1);
	if (count == 1 && systemd_is_socket(3, AF_UNSPEC, SOCK_STREAM, 0) > 0) {
		client->in = 3;
		client->out = 3;
		return 0;
	}
	*unusable = count > 0; /* until each proves to be a listening stream socket */
	if (count < 1 || count > ACCEPTOR_MAX_LISTENERS)
		return 0;
	for (int fd = 3; fd < 3 + count; fd++)
		if (systemd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			return 0;
	*unusable = false;
	return count;
}

/*
 * O_NONBLOCK lets one poll() loop serve both directions without a blocked
 * write stalling the other. It is a flag of the open file, which an ssh pipe
 * shares with its owner, so it is given back before exit. fds 0 and 1 are
 * often one open file (inetd, systemd, stunnel): both are read before either
 * is changed, or fd 1 would "save" the flag set through fd 0.
 */
void client_make_nonblocking(struct client *client)
{
	int on = 1;
	/* Urgent data is an ordinary byte, from the head on (tunneld(8) "The relay"); not a socket: ENOTSOCK. */
	(void)setsockopt(client->in, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on));
	client->saved_in_flags = fcntl(client->in, F_GETFL);
	if (client->out != client->in)
		client->saved_out_flags = fcntl(client->out, F_GETFL);
	if (client->saved_in_flags >= 0)
		(void)fcntl(client->in, F_SETFL, client->saved_in_flags | O_NONBLOCK);
	if (client->saved_out_flags >= 0)
		(void)fcntl(client->out, F_SETFL, client->saved_out_flags | O_NONBLOCK);
}

void client_restore_flags(const struct client *client)
{
	if (client->saved_in_flags >= 0)
		(void)fcntl(client->in, F_SETFL, client->saved_in_flags);
	if (client->saved_out_flags >= 0)
		(void)fcntl(client->out, F_SETFL, client->saved_out_flags);
}

/* Environment values are the activator's, but they end up in log lines: keep them to address characters. */
static bool is_address_text(const char *text)
{
	size_t len = strlen(text);
	return len > 0 && len < INET6_ADDRSTRLEN && strspn(text, "0123456789abcdefABCDEF.:") == len;
}

static bool is_port_text(const char *port)
{
	return port != NULL && *port != '\0' && strlen(port) <= 5 && strspn(port, "0123456789") == strlen(port);
}

/* "host:port", "[v6]:port", or the host alone when the port is unknown. */
static void format_host_port(const char *host, const char *port, char *out, size_t size)
{
	bool v6 = strchr(host, ':') != NULL;
	(void)snprintf(out, size, "%s%s%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "", is_port_text(port) ? ":" : "",
		       is_port_text(port) ? port : "");
}

/* An IP address without its port, as text in out. */
const char *address_text(const struct sockaddr *address, char *out, size_t size)
{
	const void *bytes = address->sa_family == AF_INET6
				    ? (const void *)&((const struct sockaddr_in6 *)(const void *)address)->sin6_addr
				    : (const void *)&((const struct sockaddr_in *)(const void *)address)->sin_addr;
	return inet_ntop(address->sa_family, bytes, out, (socklen_t)size);
}

/* The address a socket is connected to, without its port, as text in out; NULL if it has none. */
const char *peer_of(int fd, char *out, size_t size)
{
	struct sockaddr_storage peer = { 0 };
	socklen_t peer_len = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0)
		return NULL;
	return address_text((struct sockaddr *)&peer, out, size);
}

/*
 * One poll() asks about all three: a closed one says POLLNVAL. So does one
 * opened O_PATH, which poll() cannot see: fcntl() then has the last word.
 */
static bool standard_fd_closed(const struct pollfd *asked, int fd)
{
	if (asked[0].fd != -1 && (asked[fd].revents & POLLNVAL) == 0)
		return false;
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

unsigned client_reserve_standard_fds(void)
{
	struct pollfd asked[3] = { { .fd = STDIN_FILENO }, { .fd = STDOUT_FILENO }, { .fd = STDERR_FILENO } };
	unsigned closed = 0;

	if (poll(asked, 3, 0) < 0)
		asked[0].fd = -1; /* ask each alone */
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		if (!standard_fd_closed(asked, fd))
			continue;
		closed |= 1u << fd;
		/* The lowest free number is this one: every lower one is open by now. */
		int null = open("/dev/null", O_RDWR | O_NOCTTY);
		if (null != fd) {
			/* No /dev/null (a chroot without it): nothing may ever take the number, so end here. */
			_exit(EXIT_FAILURE);
		}
	}
	return closed;
}

bool client_address_from_ssh(const char *ssh_client, char *out, size_t size)
{
	/* An address, a scope ("%eth0": sshd's getnameinfo() adds a link-local one's), the ports. */
	char ssh_host[INET6_ADDRSTRLEN + 32], ssh_port[8];

	if (ssh_client == NULL || sscanf(ssh_client, "%70s %7s", ssh_host, ssh_port) != 2)
		return false;
	ssh_host[strcspn(ssh_host, "%")] = '\0'; /* the rules judge the address; a scope is no part of it */
	if (!is_address_text(ssh_host))
		return false;
	format_host_port(ssh_host, ssh_port, out, size);
	return true;
}

/* $SSH_CLIENT into client->address; false if it names no address. */
static bool identify_by_ssh(struct client *client)
{
	return client_address_from_ssh(getenv("SSH_CLIENT"), client->address, sizeof(client->address));
}

/* The first of these that applies names the client (tunneld(8) "LOGGING"). */
void client_identify(struct client *client, bool ssh_first)
{
	const char *host = getenv("REMOTE_ADDR");
	struct sockaddr_storage peer = { 0 };
	socklen_t peer_len = sizeof(peer);
	char peer_text[sizeof(client->address)] = "-";
	char peer_host[INET6_ADDRSTRLEN] = "";

	if (ssh_first && identify_by_ssh(client))
		return;
	if (getpeername(client->in, (struct sockaddr *)&peer, &peer_len) == 0) {
		if (address_text((struct sockaddr *)&peer, peer_host, sizeof(peer_host)) == NULL)
			peer_host[0] = '\0';
		log_format_address((struct sockaddr *)&peer, peer_text, sizeof(peer_text));
	}
	if (host == NULL || !is_address_text(host))
		host = getenv("REMOTE_HOST");
	if (host != NULL && is_address_text(host)) {
		const char *port = getenv("REMOTE_PORT");
		/* xinetd sets no REMOTE_PORT; where its host is the socket's peer, the peer has the port. */
		if (!is_port_text(port) && strcmp(host, peer_host) == 0)
			(void)snprintf(client->address, sizeof(client->address), "%s", peer_text);
		else
			format_host_port(host, port, client->address, sizeof(client->address));
		return;
	}
	if (identify_by_ssh(client))
		return;
	(void)snprintf(client->address, sizeof(client->address), "%s", peer_text);
}

/* Writes all of buf to the client within the deadline; 0 or -1. */
int client_write(const struct client *client, const char *buf, size_t len, int64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n = write(client->out, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd pfd = { .fd = client->out, .events = POLLOUT };
		if (clock_poll_timeout(deadline_ms) == 0 || signals_stop_requested())
			return -1;
		(void)signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms));
	}
	return 0;
}

/*
 * Ends the client connection after a refusal: our side is shut, and what the
 * client still sends is read and dropped for a moment, because closing a
 * socket with unread input sends a RST that can destroy the response before
 * the client has read it. Nothing of it is parsed (no smuggling), and a
 * client still pushing after LINGER_DISCARD_MAX_BYTES gets its reset.
 */
void client_close_gracefully(const struct client *client)
{
	char discard[4096];
	int64_t deadline_ms = clock_now_ms() + LINGER_AFTER_ERROR_MS;
	size_t discarded = 0;

	acceptor_tunnel_ended(); /* answered: what follows is no tunnel an acceptor should count */
	relay_end_output(client->out, client->saved_out_flags);
	while (!signals_stop_requested() && discarded < LINGER_DISCARD_MAX_BYTES &&
	       clock_poll_timeout(deadline_ms) > 0) {
		struct pollfd pfd = { .fd = client->in, .events = POLLIN };
		if (signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms)) <= 0)
			continue;
		ssize_t n = read(client->in, discard, sizeof(discard));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			discarded += (size_t)n;
	}
}

/*
 * Reads whatever the client has sent by the deadline into buf[*len, size);
 * 1 when bytes came, 0 on timeout, -1 on EOF or error with *why set.
 */
int client_read_by(const struct client *client, int64_t deadline_ms, char *buf, size_t size, size_t *len,
		   const char **why)
{
	for (;;) {
		struct pollfd pfd = { .fd = client->in, .events = POLLIN };
		if (signals_stop_requested()) {
			*why = "stopped by signal while reading the head";
			return -1;
		}
		int ready = signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms));
		if (ready == 0)
			return 0;
		if (ready < 0)
			continue;
		ssize_t n = read(client->in, buf + *len, size - *len);
		if (n > 0) {
			*len += (size_t)n;
			return 1;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			*why = "client read failed while reading the head";
		else
			*why = *len == 0 ? "client closed without a request" : "client closed in the middle of the head";
		return -1;
	}
}

void client_set_nodelay(const struct client *client)
{
	int on = 1;
	/* Fails harmlessly with ENOTSOCK or EOPNOTSUPP on pipes and unix sockets. */
	(void)setsockopt(client->out, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

