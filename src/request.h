/*
 * request: the CONNECT head parser. Bytes in, struct out; no I/O, no
 * allocation, so it can be fuzzed and unit-tested without sockets.
 */
#ifndef TUNNELD_REQUEST_H
#define TUNNELD_REQUEST_H

#include <stddef.h>

#define HEAD_MAX_BYTES 8192   /* request line + fields + empty line */
#define HEAD_MAX_FIELDS 100
#define HOST_MAX_BYTES 253    /* RFC 1035 name, without the trailing dot */
#define AUTHORITY_MAX_BYTES 262 /* "[" 39-char IPv6 "]:" 5 digits, or a name + ":" port */
#define CREDENTIALS_MAX_BYTES 1024

enum request_verdict {
	REQUEST_INCOMPLETE,      /* no empty line yet and still under the limits */
	REQUEST_OK,
	REQUEST_BAD,             /* 400 */
	REQUEST_METHOD_NOT_ALLOWED, /* 405 */
	REQUEST_VERSION_NOT_SUPPORTED, /* 505 */
	REQUEST_TOO_LARGE,       /* 431 */
};

enum host_kind { HOST_NAME, HOST_IPV4, HOST_IPV6 };

struct request {
	enum host_kind host_kind;
	char host[HOST_MAX_BYTES + 2];      /* as connected: no brackets, trailing dot kept */
	unsigned port;
	char authority[AUTHORITY_MAX_BYTES + 1]; /* as the client wrote it less userinfo, for the log */
	int version_minor;
	/* Proxy-Authorization value, trimmed; empty when absent. */
	char credentials[CREDENTIALS_MAX_BYTES + 1];
	size_t head_bytes;        /* bytes of the head, early tunnel data follows */
	const char *why;          /* static text for the log and the body on failure */
};

/*
 * Parses the head at the start of buf. REQUEST_INCOMPLETE means: read more
 * (the caller stops at HEAD_MAX_BYTES, which then is REQUEST_TOO_LARGE).
 */
enum request_verdict request_parse(const char *buf, size_t len, struct request *req);

/* Parses host:port (tunneld(8) "The request"); 0 on success, -1 with req->why set. */
int request_parse_authority(const char *text, size_t len, struct request *req);

#endif
