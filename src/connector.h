/*
 * connector: resolve the requested host and connect to it, checking every
 * address against the destination rules first
 * (tunneld(8) "Destination rules", "Connecting").
 */
#ifndef TUNNELD_CONNECTOR_H
#define TUNNELD_CONNECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <netdb.h>
#include <sys/socket.h>

#include "failure.h"
#include "outgoing.h"
#include "request.h"

#define HAPPY_EYEBALLS_DELAY_MS 250   /* RFC 8305 §5 "Connection Attempt Delay" */
#define CONNECT_ADDRESSES_MAX 32      /* addresses tried per request, at most */
#define CONNECTOR_LOOKUPS_MAX 2       /* name lookups per process: the target's and a parent's */

struct connect_outcome {
	enum failure failure;   /* FAILURE_NONE with why set: stopped by a signal, nothing to answer */
	const char *why;        /* static text */
	const char *dns_rcode;  /* for dns_error, or NULL */
};

/*
 * May the connector try this address, and from where? context is the
 * caller's; *from starts unset (the kernel chooses), and the judge sets it
 * to leave from an address (with "same" already made one). An address of
 * a family *from has none for is not tried.
 */
typedef bool (*connector_judge)(const void *context, const struct sockaddr *address, struct outgoing *from);

/*
 * Returns a connected, non-blocking TCP socket, or -1 with outcome filled.
 * deadline_ms (clock_now_ms() time) bounds resolution and connecting together;
 * a stop signal (signals.h) ends either at once.
 *
 * The rule for memory shared with the resolver thread: anything handed to
 * getaddrinfo_a() (the gaicb, its hints, name and service strings) outlives
 * the call that made it, because a lookup that is already running cannot be
 * cancelled and writes its answer whenever it comes. Such memory is never on
 * a stack and never freed or reused; hence at most CONNECTOR_LOOKUPS_MAX
 * name lookups per process: the target's, and a parent proxy's.
 *
 * judge(context, address) says which addresses may be tried; the ones it
 * refuses are never connected to.
 */
int connector_open(const struct request *request, connector_judge judge, const void *context, int64_t deadline_ms,
		   struct connect_outcome *outcome);

/* The two halves of connector_open(), for a caller that judges the addresses first. */
int connector_resolve(const struct request *request, int64_t deadline_ms, struct addrinfo **addresses,
		      struct connect_outcome *outcome);
/* Connects to the addresses judge allows; addresses stay the caller's to freeaddrinfo(). */
int connector_connect(struct addrinfo *addresses, connector_judge judge, const void *context, int64_t deadline_ms,
		      struct connect_outcome *outcome);

#endif
