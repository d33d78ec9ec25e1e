/*
 * route: where a request goes and the connection there (src/route.c), and
 * the rules file's decision step by step, which --explain prints.
 */
#ifndef TUNNELD_ROUTE_H
#define TUNNELD_ROUTE_H

#include "connector.h"
#include "rules.h"
#include "tunnel.h"

#include <stdbool.h>
#include <stdint.h>

/* The connected target's socket; a refusal, by the policy or by the network, ends the tunnel. */
int route_and_connect(struct tunnel *tunnel, const struct request *request, const char *user);

struct judged_request {
	const struct rules *rules;
	const struct policy *policy;
	struct rules_subject subject;
};

/* Where the rules send a request: to some of its addresses, via a parent, or nowhere. */
struct route {
	enum rules_action action;     /* RULES_ALLOW, RULES_VIA or RULES_DENY */
	struct rules_verdict verdict; /* the deciding one */
	enum failure failure;         /* RULES_DENY: how to answer; RULES_ALLOW: FAILURE_NONE, or the lookup's failure */
	struct connect_outcome lookup;
	struct addrinfo *addresses;   /* RULES_ALLOW with a lookup that worked: the caller frees them */
};

/*
 * The rules file's decision (tunneld(8) "RULES"), the same for a tunnel and
 * for --explain, which sees each step on stdout. A name is looked up only
 * when the rules need its addresses.
 */
void route_by_rules(const struct judged_request *judged, const struct request *request, int64_t deadline_ms,
		    struct route *route, bool explaining);

/* The host of "host:port", "[v6]:port" or a bare host into address: true if it is an IP address. */
bool parse_source(const char *text, int *family, uint8_t *address);

#endif
