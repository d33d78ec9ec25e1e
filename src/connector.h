/*
 * connector: resolve the requested host and connect to it, checking every
 * address against the destination rules first (SPEC §5, §6).
 */
#ifndef TUNNELD_CONNECTOR_H
#define TUNNELD_CONNECTOR_H

#include <stdint.h>

#include "policy.h"
#include "request.h"
#include "response.h"

#define HAPPY_EYEBALLS_DELAY_MS 250   /* RFC 8305 §5 "Connection Attempt Delay" */
#define CONNECT_ADDRESSES_MAX 32      /* addresses tried per request, at most */

struct connect_outcome {
	enum failure failure;
	const char *why;        /* static text when failure != FAILURE_NONE */
	const char *dns_rcode;  /* for dns_error, or NULL */
};

/*
 * Returns a connected, non-blocking TCP socket, or -1 with outcome filled.
 * deadline_ms (clock_now_ms() time) bounds resolution and connecting together.
 */
int connector_open(const struct request *request, const struct policy *policy, int64_t deadline_ms,
		   struct connect_outcome *outcome);

#endif
