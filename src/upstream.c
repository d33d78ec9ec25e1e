/*
 * upstream: CONNECT (RFC 9110 §9.3.6) or SOCKS5 (RFC 1928, RFC 1929) to a
 * parent proxy, then nothing: the relay takes the socket.
 *
 * Every byte of the parent's answer is hostile: it is read only as far as
 * the answer goes (an HTTP head a byte at a time, a SOCKS5 reply by its
 * declared length), within the connect deadline, and only its status is
 * kept; nothing the parent wrote reaches the client but the tunnel itself.
 */
#include "upstream.h"

#include "clock.h"
#include "signals.h"
#include "socks5.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define UPSTREAM_INTERIM_MAX 8

static int fail(struct upstream_outcome *outcome, enum failure failure, const char *why)
{
	outcome->failure = failure;
	outcome->why = why;
	return -1;
}

enum upstream_verdict upstream_parse_http_head(const char *buf, size_t len, int *status)
{
	/* "HTTP/1.1 200" and a space or the line's end: RFC 9112 §4. */
	if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
		return UPSTREAM_BAD;
	if (len < 5 && memcmp(buf, "HTTP/", len) != 0)
		return UPSTREAM_BAD;
	if (len >= 12) {
		if (buf[5] != '1' || buf[6] != '.' || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ' ||
		    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9')
			return UPSTREAM_BAD;
		if (len >= 13 && buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
			return UPSTREAM_BAD;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			return UPSTREAM_BAD;
	bool complete = (len >= 3 && memcmp(buf + len - 3, "\n\r\n", 3) == 0) ||
			(len >= 2 && memcmp(buf + len - 2, "\n\n", 2) == 0);
	if (!complete)
		return UPSTREAM_INCOMPLETE;
	if (len < 14)
		return UPSTREAM_BAD;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return UPSTREAM_OK;
}

enum upstream_verdict upstream_socks5_reply_length(const uint8_t *buf, size_t len, size_t *total)
{
	if (len >= 1 && buf[0] != SOCKS5_VERSION)
		return UPSTREAM_BAD;
	if (len >= 3 && buf[2] != 0)
		return UPSTREAM_BAD;
	if (len < 4)
		return UPSTREAM_INCOMPLETE;
	switch (buf[3]) {
	case 0x01:
		*total = 4 + 4 + 2;
		return UPSTREAM_OK;
	case 0x04:
		*total = 4 + 16 + 2;
		return UPSTREAM_OK;
	case 0x03:
		if (len < 5)
			return UPSTREAM_INCOMPLETE;
		*total = 5 + (size_t)buf[4] + 2;
		return UPSTREAM_OK;
	default:
		return UPSTREAM_BAD;
	}
}

/* Waits for fd to be ready for events by the deadline: 1, 0 on timeout, -1 on a stop signal. */
static int await(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		if (signals_stop_requested())
			return -1;
		if (clock_poll_timeout(deadline_ms) == 0)
			return 0;
		if (signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms)) > 0)
			return 1;
	}
}

/* Writes all of len; 0, or -1 with outcome filled. */
static int send_all(int fd, const void *data, size_t len, int64_t deadline_ms, struct upstream_outcome *outcome)
{
	const char *at = data;

	while (len > 0) {
		ssize_t n = send(fd, at, len, MSG_NOSIGNAL);
		if (n > 0) {
			at += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy closed the connection");
		int ready = await(fd, POLLOUT, deadline_ms);
		if (ready < 0)
			return fail(outcome, FAILURE_NONE, "stopped by signal while talking to the parent proxy");
		if (ready == 0)
			return fail(outcome, FAILURE_CONNECT_TIMEOUT, "the parent proxy did not answer in time");
	}
	return 0;
}

/* Reads exactly len bytes (never more: what follows is the tunnel's); 0, or -1 with outcome filled. */
static int read_exactly(int fd, void *buf, size_t len, int64_t deadline_ms, struct upstream_outcome *outcome)
{
	char *at = buf;

	while (len > 0) {
		ssize_t n = read(fd, at, len);
		if (n > 0) {
			at += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy closed the connection before answering");
		int ready = await(fd, POLLIN, deadline_ms);
		if (ready < 0)
			return fail(outcome, FAILURE_NONE, "stopped by signal while talking to the parent proxy");
		if (ready == 0)
			return fail(outcome, FAILURE_CONNECT_TIMEOUT, "the parent proxy did not answer in time");
	}
	return 0;
}

static size_t base64_encode(const uint8_t *in, size_t len, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t block = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			block |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			block |= in[i + 2];
		out[n++] = alphabet[(block >> 18) & 63];
		out[n++] = alphabet[(block >> 12) & 63];
		out[n++] = alphabet[(block >> 6) & 63];
		out[n++] = alphabet[block & 63];
		if (i + 2 >= len)
			out[n - 1] = '=';
		if (i + 1 >= len)
			out[n - 2] = '=';
	}
	out[n] = '\0';
	return n;
}

/* "host:port" or "[v6]:port" as connected: built from the parsed request, not the client's text. */
static void format_authority(const struct request *request, char *out, size_t size)
{
	bool v6 = request->host_kind == HOST_IPV6;
	(void)snprintf(out, size, "%s%s%s:%u", v6 ? "[" : "", request->host, v6 ? "]" : "", request->port);
}

static int connect_http(int fd, const struct parent *parent, const struct request *request, int64_t deadline_ms,
			struct upstream_outcome *outcome)
{
	char authority[AUTHORITY_MAX_BYTES + 8];
	char login[2 * PARENT_LOGIN_MAX_BYTES + 2];
	char encoded[((sizeof(login) + 2) / 3) * 4 + 1];
	char message[2 * sizeof(authority) + sizeof(encoded) + 128];
	char head[UPSTREAM_HEAD_MAX_BYTES];
	size_t head_len = 0;
	int status = 0;
	unsigned interim_heads = 0;

	format_authority(request, authority, sizeof(authority));
	int len = snprintf(message, sizeof(message), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", authority, authority);
	if (parent->has_login) {
		int login_len = snprintf(login, sizeof(login), "%s:%s", parent->user, parent->password);
		base64_encode((const uint8_t *)login, (size_t)login_len, encoded);
		explicit_bzero(login, sizeof(login));
		len += snprintf(message + len, sizeof(message) - (size_t)len, "Proxy-Authorization: Basic %s\r\n", encoded);
		explicit_bzero(encoded, sizeof(encoded));
	}
	len += snprintf(message + len, sizeof(message) - (size_t)len, "\r\n");
	int sent = send_all(fd, message, (size_t)len, deadline_ms, outcome);
	explicit_bzero(message, sizeof(message));
	if (sent < 0)
		return -1;
	for (;;) {
		if (head_len == sizeof(head))
			return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy's response head is too large");
		if (read_exactly(fd, head + head_len, 1, deadline_ms, outcome) < 0)
			return -1;
		head_len++;
		switch (upstream_parse_http_head(head, head_len, &status)) {
		case UPSTREAM_INCOMPLETE:
			continue;
		case UPSTREAM_BAD:
			return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy's answer is not HTTP");
		case UPSTREAM_OK:
			break;
		}
		/* 1xx heads are interim (RFC 9110 §15.2): the answer is the head after them. */
		if (status >= 100 && status <= 199 && interim_heads++ < UPSTREAM_INTERIM_MAX) {
			head_len = 0;
			continue;
		}
		break;
	}
	if (status >= 200 && status <= 299)
		return 0;
	outcome->received_status = status;
	return fail(outcome, FAILURE_PARENT_REFUSED, "the parent proxy refused the tunnel");
}

static int connect_socks5(int fd, const struct parent *parent, const struct request *request, int64_t deadline_ms,
			  struct upstream_outcome *outcome)
{
	uint8_t message[3 + 2 * (1 + PARENT_LOGIN_MAX_BYTES) + 16];
	uint8_t answer[4 + 1 + 255 + 2];
	size_t len = 0, total = 0;

	message[len++] = SOCKS5_VERSION;
	if (parent->has_login) {
		message[len++] = 2;
		message[len++] = SOCKS5_METHOD_NONE;
		message[len++] = SOCKS5_METHOD_LOGIN;
	} else {
		message[len++] = 1;
		message[len++] = SOCKS5_METHOD_NONE;
	}
	if (send_all(fd, message, len, deadline_ms, outcome) < 0 || read_exactly(fd, answer, 2, deadline_ms, outcome) < 0)
		return -1;
	if (answer[0] != SOCKS5_VERSION)
		return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy's answer is not SOCKS5");
	if (answer[1] == SOCKS5_METHOD_LOGIN && parent->has_login) {
		size_t user_len = strlen(parent->user), password_len = strlen(parent->password);
		len = 0;
		message[len++] = SOCKS5_LOGIN_VERSION;
		message[len++] = (uint8_t)user_len;
		memcpy(message + len, parent->user, user_len);
		len += user_len;
		message[len++] = (uint8_t)password_len;
		memcpy(message + len, parent->password, password_len);
		len += password_len;
		int sent = send_all(fd, message, len, deadline_ms, outcome);
		explicit_bzero(message, sizeof(message));
		if (sent < 0 || read_exactly(fd, answer, 2, deadline_ms, outcome) < 0)
			return -1;
		if (answer[0] != SOCKS5_LOGIN_VERSION)
			return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy's answer is not SOCKS5");
		if (answer[1] != 0)
			return fail(outcome, FAILURE_PARENT_REFUSED, "the parent proxy refused our login");
	} else if (answer[1] == SOCKS5_METHOD_UNACCEPTABLE) {
		return fail(outcome, FAILURE_PARENT_REFUSED, "the parent proxy accepts none of our SOCKS5 methods");
	} else if (answer[1] != SOCKS5_METHOD_NONE) {
		return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy chose a SOCKS5 method we did not offer");
	}

	len = 0;
	message[len++] = SOCKS5_VERSION;
	message[len++] = 0x01; /* CONNECT */
	message[len++] = 0x00;
	if (request->host_kind == HOST_NAME) {
		size_t name_len = strlen(request->host);
		message[len++] = 0x03;
		message[len++] = (uint8_t)name_len;
		memcpy(message + len, request->host, name_len);
		len += name_len;
	} else {
		int family = request->host_kind == HOST_IPV4 ? AF_INET : AF_INET6;
		message[len++] = family == AF_INET ? 0x01 : 0x04;
		if (inet_pton(family, request->host, message + len) != 1)
			return fail(outcome, FAILURE_BAD_REQUEST, "target address unreadable");
		len += family == AF_INET ? 4 : 16;
	}
	message[len++] = (uint8_t)(request->port >> 8);
	message[len++] = (uint8_t)(request->port & 0xff);
	if (send_all(fd, message, len, deadline_ms, outcome) < 0)
		return -1;
	size_t got = 0;
	enum upstream_verdict verdict;
	while ((verdict = upstream_socks5_reply_length(answer, got, &total)) == UPSTREAM_INCOMPLETE) {
		if (read_exactly(fd, answer + got, 1, deadline_ms, outcome) < 0)
			return -1;
		got++;
	}
	if (verdict == UPSTREAM_BAD)
		return fail(outcome, FAILURE_PARENT_BROKEN, "the parent proxy's answer is not SOCKS5");
	if (read_exactly(fd, answer + got, total - got, deadline_ms, outcome) < 0)
		return -1;
	if (answer[1] == SOCKS5_SUCCEEDED)
		return 0;
	outcome->received_reply = answer[1];
	return fail(outcome, FAILURE_PARENT_REFUSED, "the parent proxy refused the tunnel");
}

/* Any address of the parent, left from where the tunnel leaves from (context). */
static bool any_address(const void *context, const struct sockaddr *address, struct outgoing *from)
{
	(void)address;
	*from = *(const struct outgoing *)context;
	return true; /* the parent is the administrator's choice, not the client's */
}

/* What connecting to the parent failed with, in words about the parent. */
static const char *parent_connect_why(enum failure failure)
{
	switch (failure) {
	case FAILURE_DNS_ERROR:
		return "the parent proxy's name does not resolve";
	case FAILURE_DNS_TIMEOUT:
		return "resolving the parent proxy's name timed out";
	case FAILURE_CONNECTION_REFUSED:
		return "connection refused by the parent proxy";
	case FAILURE_CONNECT_TIMEOUT:
		return "connection to the parent proxy timed out";
	default:
		return "the parent proxy is unreachable";
	}
}

int upstream_open(const struct parent *parent, const struct request *request, const struct outgoing *from,
		  int64_t deadline_ms, struct upstream_outcome *outcome)
{
	struct request hop = { .host_kind = parent->host_kind, .port = parent->port };
	struct connect_outcome connected;

	*outcome = (struct upstream_outcome){ .failure = FAILURE_NONE, .received_reply = -1 };
	memcpy(hop.host, parent->host, sizeof(hop.host));
	int fd = connector_open(&hop, any_address, from, deadline_ms, &connected);
	if (fd < 0) {
		outcome->failure = connected.failure;
		outcome->dns_rcode = connected.dns_rcode;
		bool ours = connected.failure == FAILURE_NONE || connected.failure == FAILURE_NO_OUTGOING ||
			    connected.failure == FAILURE_OUTGOING_UNUSABLE; /* a stop, or where we leave from */
		outcome->why = ours ? connected.why : parent_connect_why(connected.failure);
		return -1;
	}
	int status = parent->scheme == PARENT_HTTP ? connect_http(fd, parent, request, deadline_ms, outcome)
						   : connect_socks5(fd, parent, request, deadline_ms, outcome);
	if (status < 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}
