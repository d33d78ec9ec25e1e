/*
 * route: where a request goes, and the connection there (tunneld(8)
 * "Destination rules", "RULES"): by the options (ports, hosts, the
 * destination rules over every address), or by the rules file (direct to
 * the addresses a rule allows, or through the parent a via rule names).
 * Every refusal ends the tunnel here; a target that answers is returned.
 */
#include "route.h"

#include "clock.h"
#include "connector.h"
#include "rules_file.h"
#include "title.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/*
 * Where a tunnel leaves from (tunneld(8) "Leaving from an address"):
 * chosen, with "same" made the address the client reached; a client on
 * no IP socket reached none, and then no address of the target is tried.
 */
static struct outgoing leaving_from(const struct tunnel *tunnel, const struct outgoing *chosen)
{
	static struct outgoing reached;
	static int reached_known; /* 0: not asked yet; 1: reached; -1: the client is on no IP socket */
	struct outgoing resolved = *chosen;

	if (!chosen->set || !chosen->same)
		return resolved;
	if (reached_known == 0)
		reached_known = outgoing_of_client(chosen, tunnel->client.in, &reached) == 0 ? 1 : -1;
	return reached_known > 0 ? reached : (struct outgoing){ .set = true };
}

/* The record's local=: the address and port a tunnel that chose where to leave from left from. */
static void note_local(struct tunnel *tunnel, int target, const struct outgoing *chosen)
{
	static char local[INET6_ADDRSTRLEN + 16];
	struct sockaddr_storage address;
	socklen_t len = sizeof(address);

	if (!chosen->set || getsockname(target, (struct sockaddr *)&address, &len) < 0)
		return;
	log_format_address((struct sockaddr *)&address, local, sizeof(local));
	tunnel->hop.local = local;
}

/* A refusal for want of an address to leave from says so when it was "same" and the client reached none. */
static const char *leaving_why(const struct tunnel *tunnel, const struct connect_outcome *outcome,
			       const struct outgoing *chosen)
{
	struct outgoing resolved = leaving_from(tunnel, chosen);

	if (outcome->failure == FAILURE_NO_OUTGOING && chosen->same && !resolved.has_v4 && !resolved.has_v6)
		return "outgoing same: the client reached no IP address of this host (it is not on a TCP socket)";
	return outcome->why;
}

struct options_judge {
	const struct policy *policy;
	struct outgoing from;
};

static bool options_allow_address(const void *context, const struct sockaddr *address, struct outgoing *from)
{
	const struct options_judge *judge = context;

	*from = judge->from;
	return policy_address_allowed(judge->policy, address);
}

/* --allow-port, --allow-host, then every address against the destination rules. */
static int open_by_options(struct tunnel *tunnel, const struct request *request, const char *user, int64_t deadline_ms)
{
	const struct options *options = tunnel->options;
	struct connect_outcome outcome;
	struct options_judge judge = { .policy = &options->policy, .from = leaving_from(tunnel, &options->outgoing) };

	if (!policy_port_allowed(&options->policy, request->port))
		tunnel_refuse(tunnel, FAILURE_PORT_DENIED, "port not allowed", NULL, NULL, request->authority, user);
	if (!policy_host_allowed(&options->policy, request->host, request->host_kind != HOST_NAME))
		tunnel_refuse(tunnel, FAILURE_HOST_DENIED, "host not allowed", NULL, NULL, request->authority, user);
	struct addrinfo *addresses = NULL;
	int target = -1;
	if (connector_resolve(request, deadline_ms, &addresses, &outcome) == 0) {
		title_phase("connecting");
		target = connector_connect(addresses, options_allow_address, &judge, deadline_ms, &outcome);
		freeaddrinfo(addresses);
	}
	if (target < 0 && outcome.failure == FAILURE_NONE)
		tunnel_abandon(tunnel, outcome.why, request->authority, user);
	if (target < 0)
		tunnel_refuse(tunnel, outcome.failure, leaving_why(tunnel, &outcome, &options->outgoing), NULL,
			      outcome.dns_rcode, request->authority, user);
	note_local(tunnel, target, &options->outgoing);
	return target;
}

bool parse_source(const char *text, int *family, uint8_t *address)
{
	char host[INET6_ADDRSTRLEN + 16];

	log_host_of(text, host, sizeof(host));
	if (inet_pton(AF_INET, host, address) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, host, address) == 1)
		*family = AF_INET6;
	else
		return false;
	return true;
}


/* A rule's outgoing, or else --outgoing-address's. */
static const struct outgoing *chosen_by(const struct tunnel *tunnel, int rule, struct outgoing *space)
{
	return rules_outgoing(tunnel->rules, rule, space) ? space : &tunnel->options->outgoing;
}

struct rules_judge {
	const struct judged_request *judged;
	const struct tunnel *tunnel;
};

/* An address the rules allow, left from where the rule that allows it says. */
static bool rules_allow_address(const void *context, const struct sockaddr *address, struct outgoing *from)
{
	const struct rules_judge *judge = context;
	const struct judged_request *judged = judge->judged;
	struct rules_verdict verdict;
	struct outgoing space;

	if (rules_judge_address(judged->rules, judged->policy, &judged->subject, address, &verdict) != RULES_ALLOW)
		return false;
	*from = leaving_from(judge->tunnel, chosen_by(judge->tunnel, verdict.rule, &space));
	return true;
}


static void explain_line(const struct rules *rules, bool explaining, const char *what,
			 const struct rules_verdict *verdict)
{
	static const char *const words[] = { [RULES_ALLOW] = "allow", [RULES_DENY] = "deny", [RULES_VIA] = "via",
					     [RULES_NEEDS_ADDRESSES] = "the addresses decide" };
	char text[RULES_LINE_MAX_BYTES + 1];

	if (!explaining)
		return;
	if (verdict->action == RULES_NEEDS_ADDRESSES) {
		(void)printf("%s: the addresses decide\n", what);
		return;
	}
	rules_line_text(rules, rules_line(rules, verdict->rule), text, sizeof(text));
	if (verdict->rule >= 0)
		(void)printf("%s: %s, %s, line %u: %s\n", what, words[verdict->action], verdict->why,
			     rules_line(rules, verdict->rule), text);
	else
		(void)printf("%s: %s, %s\n", what, words[verdict->action], verdict->why);
}

void route_by_rules(const struct judged_request *judged, const struct request *request, int64_t deadline_ms,
			   struct route *route, bool explaining)
{
	const struct rules_subject *subject = &judged->subject;
	struct rules_verdict verdict;
	bool have_allow = false, have_via = false, have_deny = false;
	struct rules_verdict first_allow = { 0 }, first_via = { 0 }, first_deny = { 0 };

	*route = (struct route){ .failure = FAILURE_NONE };
	enum rules_action action = rules_judge_request(judged->rules, judged->policy, subject, &route->verdict);
	explain_line(judged->rules, explaining, "before any lookup", &route->verdict);
	if (action == RULES_DENY || action == RULES_VIA) {
		route->action = action;
		route->failure = FAILURE_RULE_DENIED;
		return;
	}
	if (connector_resolve(request, deadline_ms, &route->addresses, &route->lookup) < 0) {
		route->addresses = NULL;
		if (explaining)
			(void)printf("lookup: %s\n", route->lookup.why);
		if (route->lookup.failure == FAILURE_NONE) { /* stopped: no rule decided anything */
			route->action = RULES_DENY;
			route->failure = FAILURE_NONE;
			route->verdict.rule = -1;
			return;
		}
		route->action = rules_judge_address(judged->rules, judged->policy, subject, NULL, &route->verdict);
		explain_line(judged->rules, explaining, "without an address", &route->verdict);
		if (route->action == RULES_VIA) /* a name only the parent knows */
			return;
		/*
		 * Allowed or denied without one, the rules asked for the addresses
		 * (rules_judge_request() decides first what needs none): the lookup's
		 * failure is the answer, not the rule that a missing address let match.
		 */
		route->action = RULES_NEEDS_ADDRESSES;
		route->failure = route->lookup.failure;
		route->verdict = (struct rules_verdict){ .action = RULES_NEEDS_ADDRESSES, .rule = -1,
							  .why = route->lookup.why };
		return;
	}
	for (struct addrinfo *ai = route->addresses; ai != NULL; ai = ai->ai_next) {
		switch (rules_judge_address(judged->rules, judged->policy, subject, ai->ai_addr, &verdict)) {
		case RULES_ALLOW:
			if (!have_allow)
				first_allow = verdict;
			have_allow = true;
			break;
		case RULES_VIA:
			if (!have_via)
				first_via = verdict;
			have_via = true;
			break;
		case RULES_DENY:
		case RULES_NEEDS_ADDRESSES:
			if (!have_deny)
				first_deny = verdict;
			have_deny = true;
			break;
		}
		if (explaining) {
			char text[INET6_ADDRSTRLEN] = "-";
			explain_line(judged->rules, explaining, address_text(ai->ai_addr, text, sizeof(text)) != NULL ? text : "-",
				     &verdict);
		}
	}
	/* Any address allowed: connect to those; else a via rule; else every address is denied. */
	if (have_allow) {
		route->action = RULES_ALLOW;
		route->verdict = first_allow;
		return;
	}
	freeaddrinfo(route->addresses);
	route->addresses = NULL;
	route->action = have_via ? RULES_VIA : RULES_DENY;
	route->verdict = have_via ? first_via : first_deny;
	route->failure = FAILURE_DESTINATION_DENIED;
}

static void describe_subject(const struct client *client, const struct request *request, const char *user,
			     struct rules_subject *subject)
{
	*subject = (struct rules_subject){ .user = user, .host = request->host,
					   .host_is_ip_literal = request->host_kind != HOST_NAME,
					   .host_is_loopback_name = policy_is_loopback_name(request->host), .port = request->port,
					   .protocol = client->protocol == PROTOCOL_SOCKS5 ? RULE_PROTOCOL_SOCKS5
							     : client->protocol == PROTOCOL_JUMP ? RULE_PROTOCOL_JUMP
												 : RULE_PROTOCOL_HTTP };
	subject->has_source = parse_source(client->address, &subject->source_family, subject->source);
}

/*
 * Through the parent of rule, or a refusal in the parent's words. The hop
 * has a connect timeout of its own: a lookup of the target that timed out
 * before the rules chose the parent has not used it up.
 */
static int open_via(struct tunnel *tunnel, int rule, const struct request *request, const char *user)
{
	int64_t deadline_ms = clock_now_ms() + (int64_t)tunnel->options->connect_timeout_seconds * 1000;
	static char reason[128];
	const struct parent *parent = &tunnel->rules->parents[tunnel->rules->rules[rule].parent];
	struct upstream_outcome outcome;

	struct outgoing space;
	const struct outgoing *chosen = chosen_by(tunnel, rule, &space);
	struct outgoing from = leaving_from(tunnel, chosen);

	tunnel->hop.rule = rule;
	tunnel->hop.via = parent->display;
	title_phase("connecting via a parent");
	int target = upstream_open(parent, request, &from, deadline_ms, &outcome);
	if (target >= 0) {
		note_local(tunnel, target, chosen);
		return target;
	}
	if (outcome.failure == FAILURE_NO_OUTGOING)
		outcome.why = leaving_why(tunnel, &(struct connect_outcome){ .failure = outcome.failure, .why = outcome.why },
					  chosen);
	if (outcome.failure == FAILURE_NONE)
		tunnel_abandon(tunnel, outcome.why, request->authority, user);
	const char *log_reason = outcome.why;
	if (outcome.received_status > 0 || outcome.received_reply >= 0) {
		tunnel->hop.received_status = outcome.received_status;
		if (outcome.received_status > 0)
			(void)snprintf(reason, sizeof(reason), "%s: HTTP %d", outcome.why, outcome.received_status);
		else
			(void)snprintf(reason, sizeof(reason), "%s: SOCKS5 reply 0x%02x", outcome.why, outcome.received_reply);
		log_reason = reason;
	}
	tunnel_refuse(tunnel, outcome.failure, outcome.why, log_reason, outcome.dns_rcode, request->authority, user);
}

static int open_by_rules(struct tunnel *tunnel, const struct request *request, const char *user, int64_t deadline_ms)
{
	static struct judged_request judged;
	struct route route;
	struct connect_outcome outcome;

	judged.rules = tunnel->rules;
	judged.policy = &tunnel->options->policy;
	describe_subject(&tunnel->client, request, user, &judged.subject);
	route_by_rules(&judged, request, deadline_ms, &route, false);
	tunnel->hop.rule = route.verdict.rule;
	switch (route.action) {
	case RULES_VIA:
		return open_via(tunnel, route.verdict.rule, request, user);
	case RULES_NEEDS_ADDRESSES: /* the rules need the addresses, and the lookup has none */
		tunnel_refuse(tunnel, route.lookup.failure, route.lookup.why, NULL, route.lookup.dns_rcode, request->authority,
			      user);
	case RULES_DENY:
		if (route.failure == FAILURE_NONE)
			tunnel_abandon(tunnel, route.lookup.why, request->authority, user);
		tunnel_refuse(tunnel, route.failure, "not allowed by the rules", route.verdict.why, NULL, request->authority,
			      user);
	case RULES_ALLOW:
		break;
	}
	struct rules_judge judge = { .judged = &judged, .tunnel = tunnel };
	title_phase("connecting");
	int target = connector_connect(route.addresses, rules_allow_address, &judge, deadline_ms, &outcome);
	freeaddrinfo(route.addresses);
	if (target < 0 && outcome.failure == FAILURE_NONE)
		tunnel_abandon(tunnel, outcome.why, request->authority, user);
	if (target < 0) {
		struct outgoing space;
		tunnel_refuse(tunnel, outcome.failure,
			      leaving_why(tunnel, &outcome, chosen_by(tunnel, route.verdict.rule, &space)), NULL,
			      outcome.dns_rcode, request->authority, user);
	}
	/* The record names the rule that allowed the address connected, of those the race could pick. */
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	struct rules_verdict verdict;
	if (getpeername(target, (struct sockaddr *)&peer, &peer_len) == 0 &&
	    rules_judge_address(tunnel->rules, judged.policy, &judged.subject, (struct sockaddr *)&peer, &verdict) ==
		    RULES_ALLOW)
		tunnel->hop.rule = verdict.rule;
	struct outgoing space;
	note_local(tunnel, target, chosen_by(tunnel, tunnel->hop.rule, &space));
	return target;
}


int route_and_connect(struct tunnel *tunnel, const struct request *request, const char *user)
{
	int64_t deadline_ms = clock_now_ms() + (int64_t)tunnel->options->connect_timeout_seconds * 1000;

	title_phase("resolving");
	if (tunnel->options->rules_path != NULL)
		return open_by_rules(tunnel, request, user, deadline_ms);
	return open_by_options(tunnel, request, user, deadline_ms);
}
