/*
 * response: every answer tunneld gives on the wire, in one table
 * (status, reason phrase, RFC 9209 Proxy-Status error, extra fields).
 */
#ifndef TUNNELD_RESPONSE_H
#define TUNNELD_RESPONSE_H

#include "failure.h"

#include <stddef.h>


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

/*
 * The same answer as one line for a person (a jump's stderr): "403
 * Forbidden: why", with " (rcode)" for a DNS failure. What it tells is what
 * the response would.
 */
void response_describe(char *out, size_t size, enum failure failure, const char *why, const char *dns_rcode);

#endif
