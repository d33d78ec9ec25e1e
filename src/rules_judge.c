/*
 * rules_judge: a request judged by the rules (tunneld(8) "RULES"), from
 * the table rules.c parsed or rules_image.c mapped: the first rule that
 * matches decides, and a request no rule matches is denied.
 *
 * A name is judged before any lookup as far as the rules allow: when the
 * rule that decides by name comes before every rule that needs an address,
 * no lookup is made for a refusal, nor for a via rule (the parent
 * resolves). Otherwise each resolved address is judged on its own.
 */
#include "rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool net_contains(const struct rule_net *net, int family, const uint8_t *address)
{
	return (int)net->family == family && policy_prefix_contains(net->address, net->prefix, address);
}

static bool in_group(const struct rules *rules, unsigned group, const char *user)
{
	const struct rules_group *members = &rules->groups[group];
	for (uint32_t i = 0; i < members->member_count; i++)
		if (strcmp(rules->text + rules->member_offsets[members->first_member + i], user) == 0)
			return true;
	return false;
}

/* The matchers that do not look at the destination's address: who, from, port, protocol. */
static bool subject_matches(const struct rules *rules, const struct rule *rule, const struct rules_subject *subject)
{
	bool who = !rule->has_who, from = !rule->has_from, port = !rule->has_port;
	uint8_t source[16];
	int source_family = subject->source_family;

	if (rule->protocols != 0 && (rule->protocols & subject->protocol) == 0)
		return false;
	memcpy(source, subject->source, sizeof(source));
	/* A dual-stack socket names an IPv4 client as ::ffff:a.b.c.d: it is judged as the IPv4 address it is. */
	if (source_family == AF_INET6 && memcmp(source, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		memmove(source, source + 12, 4);
		source_family = AF_INET;
	}
	for (uint32_t i = 0; i < rule->item_count; i++) {
		const struct rule_item *item = &rules->items[rule->first_item + i];
		switch ((enum rule_item_kind)item->kind) {
		case ITEM_USER:
			who = who || (subject->user != NULL && strcmp(rules->text + item->u.name, subject->user) == 0);
			break;
		case ITEM_GROUP:
			who = who || (subject->user != NULL && in_group(rules, item->u.group, subject->user));
			break;
		case ITEM_SOURCE_NET:
			from = from || (subject->has_source && net_contains(&rules->nets[item->u.net], source_family, source));
			break;
		case ITEM_PORT:
			port = port || (subject->port >= item->u.ports.first && subject->port <= item->u.ports.last);
			break;
		case ITEM_DEST_NAME:
		case ITEM_DEST_NET:
		case ITEM_DEST_PUBLIC:
		case ITEM_DEST_ANY:
			break;
		}
	}
	return who && from && port;
}

struct destination_match {
	bool by_name;         /* a name, *.domain, IP literal or * matched, or the rule has no "to" */
	bool by_address;      /* a network or public matched the address */
	bool needs_address;   /* the rule has networks or public: an address could match */
	int naming_prefix;    /* the longest network that contains the address, or -1 */
};

/* address NULL: not known (before the lookup, a failed lookup, or a via rule for a name). */
static void match_destination(const struct rules *rules, const struct rule *rule, const struct rules_subject *subject,
			      int family, const uint8_t *address, struct destination_match *match)
{
	*match = (struct destination_match){ .by_name = !rule->has_to, .naming_prefix = -1 };
	for (uint32_t i = 0; i < rule->item_count; i++) {
		const struct rule_item *item = &rules->items[rule->first_item + i];
		switch ((enum rule_item_kind)item->kind) {
		case ITEM_DEST_ANY:
			match->by_name = true;
			break;
		case ITEM_DEST_NAME:
			match->by_name = match->by_name ||
					 policy_host_matches(rules->text + item->u.name, subject->host,
							     subject->host_is_ip_literal);
			break;
		case ITEM_DEST_NET:
			match->needs_address = true;
			if (address != NULL && net_contains(&rules->nets[item->u.net], family, address)) {
				match->by_address = true;
				if ((int)rules->nets[item->u.net].prefix > match->naming_prefix)
					match->naming_prefix = (int)rules->nets[item->u.net].prefix;
			}
			break;
		case ITEM_DEST_PUBLIC:
			match->needs_address = true;
			match->by_address = match->by_address || (address != NULL && policy_address_is_public(family, address));
			break;
		case ITEM_USER:
		case ITEM_GROUP:
		case ITEM_SOURCE_NET:
		case ITEM_PORT:
			break;
		}
	}
}

static enum rules_action decide(struct rules_verdict *verdict, enum rules_action action, int rule, const char *why)
{
	*verdict = (struct rules_verdict){ .action = action, .rule = rule, .why = why };
	return action;
}

static enum rules_action action_of(enum rule_verb verb)
{
	switch (verb) {
	case RULE_VERB_ALLOW:
		return RULES_ALLOW;
	case RULE_VERB_VIA:
		return RULES_VIA;
	case RULE_VERB_DENY:
		break;
	}
	return RULES_DENY;
}

/*
 * The rules for one form of an address (family, address), or for none
 * (address NULL). A name that goes via a parent is never judged by our
 * lookup's addresses: the parent resolves it.
 */
static enum rules_action judge_form(const struct rules *rules, const struct policy *policy, const struct rules_subject *subject,
		       int family, const uint8_t *address, struct rules_verdict *verdict)
{
	for (unsigned i = 0; i < rules->rule_count; i++) {
		const struct rule *rule = &rules->rules[i];
		struct destination_match match;
		bool via_a_name = rule->verb == RULE_VERB_VIA && !subject->host_is_ip_literal;
		/* A localhost name is this host's, wherever it resolves: never a parent's to reach. */
		if ((rule->verb == RULE_VERB_VIA && subject->host_is_loopback_name) || !subject_matches(rules, rule, subject))
			continue;
		match_destination(rules, rule, subject, family, via_a_name ? NULL : address, &match);
		if (!match.by_name && !match.by_address)
			continue;
		if (rule->verb == RULE_VERB_DENY)
			return decide(verdict, RULES_DENY, (int)i, "denied by a rule");
		const struct dest_rule *builtin;
		if (address != NULL && !via_a_name && policy_builtin_deny(policy, family, address, &builtin) > match.naming_prefix)
			return decide(verdict, RULES_DENY, (int)i,
				      "address in a built-in deny range that the matching rule does not name");
		return decide(verdict, action_of(rule->verb), (int)i,
			      rule->verb == RULE_VERB_VIA ? "sent via a parent by a rule" : "allowed by a rule");
	}
	return decide(verdict, RULES_DENY, -1, "no rule matches");
}

/* Worst first: a form denied denies the address; a form sent via a parent keeps it from a direct connection. */
static int severity(enum rules_action action)
{
	switch (action) {
	case RULES_DENY:
		return 2;
	case RULES_VIA:
		return 1;
	case RULES_ALLOW:
	case RULES_NEEDS_ADDRESSES:
		break;
	}
	return 0;
}

enum rules_action rules_judge_address(const struct rules *rules, const struct policy *policy,
				      const struct rules_subject *subject, const struct sockaddr *address,
				      struct rules_verdict *verdict)
{
	uint8_t v4[4];

	if (address == NULL)
		return judge_form(rules, policy, subject, AF_UNSPEC, NULL, verdict);
	if (address->sa_family == AF_INET)
		return judge_form(rules, policy, subject, AF_INET,
				  (const uint8_t *)&((const struct sockaddr_in *)(const void *)address)->sin_addr, verdict);
	if (address->sa_family != AF_INET6)
		return decide(verdict, RULES_DENY, -1, "not an IP address");
	const uint8_t *v6 = ((const struct sockaddr_in6 *)(const void *)address)->sin6_addr.s6_addr;
	/* ::ffff:a.b.c.d is the IPv4 address itself (RFC 4291 §2.5.5.2), as a rule's network of that form is. */
	if (memcmp(v6, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0)
		return judge_form(rules, policy, subject, AF_INET, v6 + 12, verdict);
	judge_form(rules, policy, subject, AF_INET6, v6, verdict);
	if (policy_embedded_ipv4(policy, v6, v4)) {
		struct rules_verdict as_ipv4;
		judge_form(rules, policy, subject, AF_INET, v4, &as_ipv4);
		if (severity(as_ipv4.action) > severity(verdict->action))
			*verdict = as_ipv4;
	}
	return verdict->action;
}

enum rules_action rules_judge_request(const struct rules *rules, const struct policy *policy,
				      const struct rules_subject *subject, struct rules_verdict *verdict)
{
	bool address_rule_before = false, address_allow_before = false;

	if (subject->host_is_loopback_name) {
		/* Its addresses are known without a lookup: judged as both, the worse verdict standing. */
		struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		struct rules_verdict as_v6;
		(void)rules_judge_address(rules, policy, subject, (const struct sockaddr *)&v4, verdict);
		(void)rules_judge_address(rules, policy, subject, (const struct sockaddr *)&v6, &as_v6);
		if (severity(as_v6.action) > severity(verdict->action))
			*verdict = as_v6;
		if (verdict->action == RULES_ALLOW)
			verdict->action = RULES_NEEDS_ADDRESSES;
		return verdict->action;
	}
	if (subject->host_is_ip_literal) {
		/* The address is known: judge it, as the connection will. */
		struct sockaddr_storage literal = { 0 };
		struct sockaddr_in *v4 = (struct sockaddr_in *)&literal;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&literal;
		if (inet_pton(AF_INET, subject->host, &v4->sin_addr) == 1)
			literal.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, subject->host, &v6->sin6_addr) == 1)
			literal.ss_family = AF_INET6;
		else
			return decide(verdict, RULES_DENY, -1, "not an IP address");
		if (rules_judge_address(rules, policy, subject, (const struct sockaddr *)&literal, verdict) == RULES_ALLOW)
			verdict->action = RULES_NEEDS_ADDRESSES;
		return verdict->action;
	}
	for (unsigned i = 0; i < rules->rule_count; i++) {
		const struct rule *rule = &rules->rules[i];
		struct destination_match match;
		if (!subject_matches(rules, rule, subject))
			continue;
		match_destination(rules, rule, subject, AF_UNSPEC, NULL, &match);
		if (!match.by_name) {
			if (match.needs_address && rule->verb != RULE_VERB_VIA) {
				address_rule_before = true;
				address_allow_before = address_allow_before || rule->verb == RULE_VERB_ALLOW;
			}
			continue;
		}
		if (rule->verb == RULE_VERB_DENY && !address_allow_before)
			return decide(verdict, RULES_DENY, (int)i, "denied by a rule");
		if (rule->verb == RULE_VERB_VIA && !address_rule_before)
			return decide(verdict, RULES_VIA, (int)i, "sent via a parent by a rule");
		return decide(verdict, RULES_NEEDS_ADDRESSES, (int)i, "the addresses decide");
	}
	if (!address_allow_before)
		return decide(verdict, RULES_DENY, -1, "no rule matches");
	return decide(verdict, RULES_NEEDS_ADDRESSES, -1, "the addresses decide");
}

bool rules_name_outgoing(const struct rules *rules)
{
	for (uint32_t i = 0; i < rules->rule_count; i++)
		if (rules->rules[i].outgoing_same || rules->rules[i].outgoing_nets > 0)
			return true;
	return false;
}

bool rules_outgoing(const struct rules *rules, int rule_index, struct outgoing *out)
{
	if (rule_index < 0 || (unsigned)rule_index >= rules->rule_count)
		return false;
	const struct rule *rule = &rules->rules[rule_index];
	if (!rule->outgoing_same && rule->outgoing_nets == 0)
		return false;
	*out = (struct outgoing){ .set = true, .same = rule->outgoing_same };
	for (uint32_t i = 0; i < rule->outgoing_nets; i++) {
		const struct rule_net *net = &rules->nets[rule->outgoing_first_net + i];
		if (net->family == AF_INET) {
			memcpy(&out->v4, net->address, sizeof(out->v4));
			out->has_v4 = true;
		} else {
			memcpy(&out->v6, net->address, sizeof(out->v6));
			out->has_v6 = true;
		}
	}
	return true;
}

unsigned rules_line(const struct rules *rules, int rule)
{
	return rule >= 0 && (unsigned)rule < rules->rule_count ? rules->rules[rule].line : 0;
}
