/*
 * negotiate: from the client's first byte to its request (src/negotiate.c),
 * and the answer that opens the tunnel.
 */
#ifndef TUNNELD_NEGOTIATE_H
#define TUNNELD_NEGOTIATE_H

#include "request.h"
#include "tunnel.h"

/*
 * What every tunnel writes first (the request, the head's first bytes) lies
 * together: an idle tunnel's memory is the pages it wrote.
 */
struct head {
	size_t len;
	struct request request;
	char bytes[HEAD_MAX_BYTES];
};

/*
 * Reads up to the request, in whichever protocol the client speaks, and
 * returns it, with *user the SOCKS5 login's user (NULL for HTTP: see
 * authenticate()). Anything else (a health check, a client gone, a
 * malformed request, a protocol not served) ends the tunnel here.
 */
const struct request *read_request(struct tunnel *tunnel, struct head *head, const char **user);

/* HTTP's Proxy-Authorization: the user it names when it is good; otherwise 407, and the tunnel ends. */
const char *authenticate(struct tunnel *tunnel, const struct request *request);

/* 200, or SOCKS5's success naming the outbound socket's address; 0 or -1. */
int answer_established(struct tunnel *tunnel, int target);

#endif
