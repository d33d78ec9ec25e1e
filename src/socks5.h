/*
 * socks5: the SOCKS5 negotiation parser (RFC 1928, with RFC 1929's
 * username/password), the three messages a client sends before its tunnel
 * data: greeting, login, request. Pure: bytes in, struct out, no I/O, no
 * allocation; fuzzed. The request fills the same struct request as an HTTP
 * CONNECT, through the same authority parser, so both protocols name and
 * judge a target alike.
 */
#ifndef TUNNELD_SOCKS5_H
#define TUNNELD_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "request.h"
#include "failure.h"

#define SOCKS5_VERSION 0x05
#define SOCKS5_LOGIN_VERSION 0x01         /* RFC 1929 §2 */
#define SOCKS5_METHOD_NONE 0x00
#define SOCKS5_METHOD_LOGIN 0x02
#define SOCKS5_METHOD_UNACCEPTABLE 0xff
#define SOCKS5_LOGIN_FIELD_MAX_BYTES 255
#define SOCKS5_REPLY_MAX_BYTES 22         /* VER REP RSV ATYP, 16 address bytes, port */

/* RFC 1928 §6 REP */
enum socks5_reply {
	SOCKS5_SUCCEEDED = 0x00,
	SOCKS5_GENERAL_FAILURE = 0x01,
	SOCKS5_NOT_ALLOWED = 0x02,
	SOCKS5_NETWORK_UNREACHABLE = 0x03,
	SOCKS5_HOST_UNREACHABLE = 0x04,
	SOCKS5_CONNECTION_REFUSED = 0x05,
	SOCKS5_TTL_EXPIRED = 0x06,
	SOCKS5_COMMAND_NOT_SUPPORTED = 0x07,
	SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
};

enum socks5_verdict {
	SOCKS5_INCOMPLETE,          /* a prefix of a valid message: read more */
	SOCKS5_OK,
	SOCKS5_BAD,                 /* malformed: why is set */
	SOCKS5_UNSUPPORTED_COMMAND, /* BIND, UDP ASSOCIATE or unknown: reply 0x07 */
	SOCKS5_UNSUPPORTED_ADDRESS, /* unknown ATYP: reply 0x08 */
};

struct socks5_greeting {
	bool offers_none;
	bool offers_login;
	size_t bytes;               /* of the greeting; the next message follows */
	const char *why;
};

struct socks5_login {
	char user[SOCKS5_LOGIN_FIELD_MAX_BYTES + 1];
	char password[SOCKS5_LOGIN_FIELD_MAX_BYTES + 1];
	size_t bytes;
	const char *why;
};

/* VER NMETHODS METHODS: at least one method. */
enum socks5_verdict socks5_parse_greeting(const uint8_t *buf, size_t len, struct socks5_greeting *greeting);

/* VER ULEN UNAME PLEN PASSWD; a name or password holding a NUL is malformed. */
enum socks5_verdict socks5_parse_login(const uint8_t *buf, size_t len, struct socks5_login *login);

/*
 * VER CMD RSV ATYP DST.ADDR DST.PORT into req (host, port, authority and
 * head_bytes, the request's length); req->why on anything but SOCKS5_OK.
 */
enum socks5_verdict socks5_parse_request(const uint8_t *buf, size_t len, struct request *req);

/* The REP for an outcome that the HTTP path answers with failure's status. */
enum socks5_reply socks5_reply_for(enum failure failure);

/*
 * A reply into out (SOCKS5_REPLY_MAX_BYTES) naming bound, the outbound
 * socket's address, or 0.0.0.0:0 when bound is NULL. Returns its length.
 */
size_t socks5_format_reply(uint8_t *out, enum socks5_reply reply, const struct sockaddr *bound);

#endif
