/*
 * failure: why a request gets no tunnel, as one word each: what the
 * parsers, the policy and the connector say, and what the wire table
 * (response.h) and the SOCKS5 replies (socks5.h) each turn into their own
 * answer. A header of its own, so that no parser needs the wire table.
 */
#ifndef TUNNELD_FAILURE_H
#define TUNNELD_FAILURE_H

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
	FAILURE_NO_OUTGOING,     /* no address to leave from for any address of the target's families */
	FAILURE_OUTGOING_UNUSABLE, /* the address to leave from is not this host's */
	FAILURE_COUNT
};

#endif
