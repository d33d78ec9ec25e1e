/*
 * response: every answer tunneld gives on the wire, in one table
 * (status, reason phrase, RFC 9209 Proxy-Status error, extra fields).
 */
#ifndef TUNNELD_RESPONSE_H
#define TUNNELD_RESPONSE_H

#include <stddef.h>

enum failure {
	FAILURE_NONE,
	FAILURE_BAD_REQUEST,
	FAILURE_METHOD_NOT_ALLOWED,
	FAILURE_VERSION_NOT_SUPPORTED,
	FAILURE_PORT_DENIED,
	FAILURE_HOST_DENIED,
	FAILURE_DESTINATION_DENIED,
	FAILURE_AUTH_REQUIRED,
	FAILURE_HEADER_TIMEOUT,
	FAILURE_HEAD_TOO_LARGE,
	FAILURE_DNS_ERROR,
	FAILURE_DNS_TIMEOUT,
	FAILURE_CONNECTION_REFUSED,
	FAILURE_UNROUTABLE,      /* no route to the network */
	FAILURE_HOST_UNREACHABLE, /* the network has no such host */
	FAILURE_CONNECT_TIMEOUT,
	FAILURE_DESTINATION_UNAVAILABLE,
	FAILURE_RULE_DENIED,     /* the rules file refused the request */
	FAILURE_PARENT_REFUSED,  /* the parent proxy answered, and not with success */
	FAILURE_PARENT_BROKEN,   /* the parent proxy's answer was not its protocol */
	FAILURE_MISCONFIGURED,   /* a file the options name (rules, passwords) cannot be used */
	FAILURE_COUNT
};

#define RESPONSE_MAX_BYTES 1024
#define RESPONSE_ESTABLISHED "HTTP/1.1 200 Connection established\r\n\r\n"

int failure_status(enum failure failure);

/*
 * Formats the complete response for a failure into out (RESPONSE_MAX_BYTES).
 * why is one line of plain text for the body and the Proxy-Status details;
 * dns_rcode, if not NULL, goes into Proxy-Status rcode, and received_status,
 * if not 0, into received-status (a parent proxy's answer, RFC 9209 §2.1.3).
 * Returns its length.
 */
size_t response_format(char *out, enum failure failure, const char *why, const char *dns_rcode, int received_status);

#endif
