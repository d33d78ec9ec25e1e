/*
 * socks5: the negotiation parser (RFC 1928 §3-§6, RFC 1929 §2).
 *
 * As for HTTP, nothing the grammar does not allow is repaired: a reserved
 * byte that is not zero, an empty name or a port of 0 is malformed. The
 * request's address becomes authority text ("a.b.c.d:p", "[v6]:p",
 * "name:p") and goes through request_parse_authority(), so a name that is
 * an IP literal is judged as one, and a name with bytes no DNS name has is
 * refused, whichever protocol carried it.
 */
#include "socks5.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define ATYP_IPV4 0x01
#define ATYP_DOMAIN 0x03
#define ATYP_IPV6 0x04
#define CMD_CONNECT 0x01

static enum socks5_verdict bad(const char **why_out, const char *why)
{
	*why_out = why;
	return SOCKS5_BAD;
}

enum socks5_verdict socks5_parse_greeting(const uint8_t *buf, size_t len, struct socks5_greeting *greeting)
{
	*greeting = (struct socks5_greeting){ 0 };
	if (len < 2)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_VERSION)
		return bad(&greeting->why, "not a SOCKS5 greeting");
	if (buf[1] == 0)
		return bad(&greeting->why, "SOCKS5 greeting offers no method");
	size_t methods = buf[1];
	if (len < 2 + methods)
		return SOCKS5_INCOMPLETE;
	for (size_t i = 0; i < methods; i++) {
		greeting->offers_none |= buf[2 + i] == SOCKS5_METHOD_NONE;
		greeting->offers_login |= buf[2 + i] == SOCKS5_METHOD_LOGIN;
	}
	greeting->bytes = 2 + methods;
	return SOCKS5_OK;
}

/* One length-prefixed field of the login at *at: 0, 1 for more bytes, -1 if it holds a NUL. */
static int take_login_field(const uint8_t *buf, size_t len, size_t *at, char *out)
{
	if (*at >= len)
		return 1;
	size_t field_len = buf[*at];
	if (len - *at - 1 < field_len)
		return 1;
	if (memchr(buf + *at + 1, '\0', field_len) != NULL)
		return -1;
	memcpy(out, buf + *at + 1, field_len);
	out[field_len] = '\0';
	*at += 1 + field_len;
	return 0;
}

enum socks5_verdict socks5_parse_login(const uint8_t *buf, size_t len, struct socks5_login *login)
{
	size_t at = 1;

	login->user[0] = login->password[0] = '\0';
	login->bytes = 0;
	login->why = NULL;
	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_LOGIN_VERSION)
		return bad(&login->why, "not a SOCKS5 username/password message");
	int status = take_login_field(buf, len, &at, login->user);
	if (status == 0 && login->user[0] == '\0')
		return bad(&login->why, "SOCKS5 login with an empty user name");
	if (status == 0)
		status = take_login_field(buf, len, &at, login->password);
	if (status > 0)
		return SOCKS5_INCOMPLETE;
	if (status < 0)
		return bad(&login->why, "SOCKS5 login holds a NUL byte");
	login->bytes = at;
	return SOCKS5_OK;
}

/* DST.ADDR and DST.PORT at buf as "host:port" text; its length, 0 if incomplete. */
static size_t address_text(const uint8_t *buf, size_t len, uint8_t atyp, char *text, size_t size, size_t *used)
{
	char host[INET6_ADDRSTRLEN];
	size_t address_len;

	switch (atyp) {
	case ATYP_IPV4:
		address_len = 4;
		break;
	case ATYP_IPV6:
		address_len = 16;
		break;
	default: /* ATYP_DOMAIN: a length byte, then the name */
		if (len < 1)
			return 0;
		address_len = 1 + (size_t)buf[0];
		break;
	}
	if (len < address_len + 2)
		return 0;
	unsigned port = (unsigned)buf[address_len] << 8 | buf[address_len + 1];
	*used = address_len + 2;
	if (atyp == ATYP_DOMAIN)
		return (size_t)snprintf(text, size, "%.*s:%u", (int)buf[0], (const char *)buf + 1, port);
	(void)inet_ntop(atyp == ATYP_IPV4 ? AF_INET : AF_INET6, buf, host, sizeof(host));
	return (size_t)snprintf(text, size, atyp == ATYP_IPV4 ? "%s:%u" : "[%s]:%u", host, port);
}

enum socks5_verdict socks5_parse_request(const uint8_t *buf, size_t len, struct request *req)
{
	char authority[1 + 255 + 1 + 5 + 1];
	size_t used = 0;

	*req = (struct request){ .why = NULL };
	if (len < 4)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_VERSION || buf[2] != 0)
		return bad(&req->why, "malformed SOCKS5 request");
	if (buf[3] != ATYP_IPV4 && buf[3] != ATYP_DOMAIN && buf[3] != ATYP_IPV6) {
		req->why = "SOCKS5 address type not supported";
		return SOCKS5_UNSUPPORTED_ADDRESS;
	}
	size_t text_len = address_text(buf + 4, len - 4, buf[3], authority, sizeof(authority), &used);
	if (text_len == 0)
		return SOCKS5_INCOMPLETE;
	req->head_bytes = 4 + used;
	if (buf[3] == ATYP_DOMAIN && buf[4] == 0)
		return bad(&req->why, "SOCKS5 request with an empty host name");
	/* A NUL would end the text early and let a different name pass for this one. */
	if (buf[3] == ATYP_DOMAIN && memchr(buf + 5, '\0', buf[4]) != NULL)
		return bad(&req->why, "SOCKS5 host name holds a NUL byte");
	/* The command is judged after the address so that the record can name the target. */
	int parsed = request_parse_authority(authority, text_len, req);
	if (buf[1] != CMD_CONNECT) {
		req->why = buf[1] == 0x02 ? "SOCKS5 BIND is not supported"
			   : buf[1] == 0x03 ? "SOCKS5 UDP ASSOCIATE is not supported"
					    : "unknown SOCKS5 command";
		return SOCKS5_UNSUPPORTED_COMMAND;
	}
	if (parsed < 0)
		return SOCKS5_BAD;
	return SOCKS5_OK;
}

enum socks5_reply socks5_reply_for(enum failure failure)
{
	switch (failure) {
	case FAILURE_NONE:
		return SOCKS5_SUCCEEDED;
	case FAILURE_PORT_DENIED:
	case FAILURE_HOST_DENIED:
	case FAILURE_DESTINATION_DENIED:
	case FAILURE_RULE_DENIED:
	case FAILURE_AUTH_REQUIRED:
		return SOCKS5_NOT_ALLOWED;
	case FAILURE_UNROUTABLE:
	case FAILURE_NO_OUTGOING:
		return SOCKS5_NETWORK_UNREACHABLE;
	/* A timeout is a host that did not answer: 0x06 would say an IP TTL ran out, which is not what happened. */
	case FAILURE_HOST_UNREACHABLE:
	case FAILURE_DNS_ERROR:
	case FAILURE_DNS_TIMEOUT:
	case FAILURE_CONNECT_TIMEOUT:
		return SOCKS5_HOST_UNREACHABLE;
	case FAILURE_CONNECTION_REFUSED:
		return SOCKS5_CONNECTION_REFUSED;
	case FAILURE_METHOD_NOT_ALLOWED:
		return SOCKS5_COMMAND_NOT_SUPPORTED;
	case FAILURE_BAD_REQUEST:
	case FAILURE_VERSION_NOT_SUPPORTED:
	case FAILURE_HEADER_TIMEOUT:
	case FAILURE_HEAD_TOO_LARGE:
	case FAILURE_DESTINATION_UNAVAILABLE:
	case FAILURE_PARENT_REFUSED: /* what the parent said is in the record */
	case FAILURE_PARENT_BROKEN:
	case FAILURE_MISCONFIGURED:
	case FAILURE_OUTGOING_UNUSABLE:
	case FAILURE_COUNT:
		break;
	}
	return SOCKS5_GENERAL_FAILURE;
}

size_t socks5_format_reply(uint8_t *out, enum socks5_reply reply, const struct sockaddr *bound)
{
	size_t n = 0;

	out[n++] = SOCKS5_VERSION;
	out[n++] = (uint8_t)reply;
	out[n++] = 0;
	if (bound != NULL && bound->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)bound;
		out[n++] = ATYP_IPV6;
		memcpy(out + n, &v6->sin6_addr, 16);
		n += 16;
		memcpy(out + n, &v6->sin6_port, 2);
	} else {
		struct sockaddr_in none = { .sin_family = AF_INET };
		const struct sockaddr_in *v4 = bound != NULL && bound->sa_family == AF_INET
						       ? (const struct sockaddr_in *)(const void *)bound
						       : &none;
		out[n++] = ATYP_IPV4;
		memcpy(out + n, &v4->sin_addr, 4);
		n += 4;
		memcpy(out + n, &v4->sin_port, 2);
	}
	return n + 2;
}
