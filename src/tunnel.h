/*
 * tunnel: one connection's state, which tunneld.c's main() carries through
 * the phases of its life, and every way that life ends (src/ending.c):
 * finished with its record, abandoned, or refused in the client's own
 * protocol. Each of those is the one way out: the client's flags given
 * back, the record written, the process gone.
 */
#ifndef TUNNELD_TUNNEL_H
#define TUNNELD_TUNNEL_H

#include "client.h"
#include "failure.h"
#include "log.h"
#include "options.h"
#include "rules.h"
#include "socks5.h"

#include <stddef.h>
#include <stdint.h>

/* The way to the target the policy chose, for the response and the record. */
struct hop {
	int rule;                /* the deciding rule of the rules file, or -1 */
	const char *via;         /* the parent proxy's URL less its login, or NULL: direct */
	int received_status;     /* an HTTP parent's refusal, for Proxy-Status */
	const char *local;       /* where it left from, when an outgoing address chose it; or NULL */
};

struct tunnel {
	struct client client;
	const struct options *options;
	const struct rules *rules;    /* the rules file's table (empty without --rules) */
	int64_t start_ms;
	struct hop hop;
	const char *sandbox_gaps;     /* what this kernel refused of the sandbox, for the record; or NULL */
	int exit_status;              /* EXIT_SUCCESS, or EXIT_USAGE after a file that cannot be used */
	char id[33];                  /* with --log-open, what both records carry; or empty */
};

long tunnel_elapsed_ms(const struct tunnel *tunnel);

/* With --log-open: the tunnel's id, 128 random bits in hex; before the sandbox, which refuses getrandom(2). */
void tunnel_take_id(struct tunnel *tunnel);

/* With --log-open, once the client has its 200 or SOCKS5 success: the open record (no bytes, no duration). */
void tunnel_record_open(const struct tunnel *tunnel, const char *target, const char *user, const char *peer);

/* The one way out: the client's flags given back, then record (NULL: none, a balancer's health check), then _exit. */
void __attribute__((noreturn)) tunnel_end(struct tunnel *tunnel, const struct connection_record *record);

/* Ended before any answer: the record says reason. */
void __attribute__((noreturn)) tunnel_abandon(struct tunnel *tunnel, const char *reason, const char *target,
					      const char *user);

/*
 * Refused on the wire, in the client's protocol (tunneld(8) "Responses",
 * "SOCKS5"). why is what the client is told; log_reason, if not NULL, what
 * only the record says; dns_rcode, if not NULL, goes into Proxy-Status.
 */
void __attribute__((noreturn)) tunnel_refuse(struct tunnel *tunnel, enum failure failure, const char *why,
					     const char *log_reason, const char *dns_rcode, const char *target,
					     const char *user);

/* A SOCKS5 request refused with reply; the record's status is what HTTP would have answered for failure. */
void __attribute__((noreturn)) tunnel_refuse_socks5(struct tunnel *tunnel, enum socks5_reply reply,
						    enum failure failure, const char *why, const char *target,
						    const char *user);

/* Closed with no answer (a protocol not served): gracefully, and a record with no status. */
void __attribute__((noreturn)) tunnel_close_unanswered(struct tunnel *tunnel, const char *reason);

/* Refused before there is a request: answer (len 0: none), and a record with failure's status. */
void __attribute__((noreturn)) tunnel_refuse_negotiation(struct tunnel *tunnel, const void *answer, size_t len,
							 enum failure failure, const char *why, const char *user);

#endif
