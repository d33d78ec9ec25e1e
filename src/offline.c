/*
 * offline: tunneld for a person at a shell (tunneld(8) "OPTIONS", --check
 * and --explain): no connection, no log sink; what it says goes to stdout
 * and stderr, and the exit status is the verdict.
 */
#include "offline.h"

#include "client.h"
#include "clock.h"
#include "connector.h"
#include "response.h"
#include "route.h"
#include "rules_file.h"
#include "sandbox.h"
#include "signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every address to leave from, of the option and of each rule, is this host's: else each is said, and exit 2. */
void offline_check_outgoing(const struct options *options, const struct rules *rules)
{
	char why[INET6_ADDRSTRLEN + 96];
	unsigned errors = 0;

	if (outgoing_check(&options->outgoing, why, sizeof(why)) < 0) {
		(void)fprintf(stderr, "tunneld: --outgoing-address: %s\n", why);
		errors++;
	}
	for (unsigned i = 0; options->rules_path != NULL && i < rules->rule_count; i++) {
		struct outgoing outgoing;
		if (rules_outgoing(rules, (int)i, &outgoing) && outgoing_check(&outgoing, why, sizeof(why)) < 0) {
			(void)fprintf(stderr, "tunneld: %s:%u: %s\n", options->rules_path, rules->rules[i].line, why);
			errors++;
		}
	}
	if (errors > 0)
		exit(EXIT_USAGE);
}

/*
 * Where an allowed tunnel would leave from, when something says; false
 * when that leaves none of addresses (those looked up, or NULL: a parent's
 * name) with an address of its family to leave from: the tunnel's 502.
 */
static bool explain_outgoing(const struct options *options, const struct rules *rules, int rule,
			     const struct addrinfo *addresses, const struct policy *allowing)
{
	struct outgoing outgoing;
	char text[OUTGOING_TEXT_MAX_BYTES];
	bool by_rule = rules_outgoing(rules, rule, &outgoing);

	if (!by_rule)
		outgoing = options->outgoing;
	if (!outgoing.set)
		return true;
	outgoing_format(&outgoing, text, sizeof(text));
	if (by_rule)
		(void)printf("leaves from: %s%s, line %u\n", text, outgoing.same ? " (the address the client reached)" : "",
			     rules_line(rules, rule));
	else
		(void)printf("leaves from: %s%s (--outgoing-address)\n", text,
			     outgoing.same ? ", the address the client reached" : "");
	if (outgoing.same || addresses == NULL)
		return true;
	for (const struct addrinfo *ai = addresses; ai != NULL; ai = ai->ai_next)
		if ((allowing == NULL || policy_address_allowed(allowing, ai->ai_addr)) && outgoing_serves(&outgoing, ai->ai_addr))
			return true;
	(void)printf("but the outgoing address has none of the target's address families: a tunnel gets %d "
		     "(destination_ip_unroutable)\n",
		     failure_status(FAILURE_NO_OUTGOING));
	return false;
}

void offline_check(const struct options *options, const struct rules *rules)
{
	char gaps[SANDBOX_WHY_MAX_BYTES];

	signals_finishing();
	/* On stdout, with "OK": for a person; an acceptor's reload check, which closes stdout, says nothing. */
	if (sandbox_probe(gaps, sizeof(gaps)))
		(void)printf("tunneld: note: %s: tunnels run without it (tunneld(8) \"Sandbox\")\n", gaps);
	offline_check_outgoing(options, rules);
	if (options->rules_path == NULL) {
		(void)printf("tunneld: options OK (no rules file)\n");
		exit(EXIT_SUCCESS);
	}
	unsigned users = 0;
	for (unsigned i = 0; i < rules->rule_count; i++)
		if (rules->rules[i].has_who && !options->auth_enabled && !options->jump && users++ == 0)
			(void)fprintf(stderr,
				      "tunneld: %s:%u: warning: this rule names users, but without --auth-file (or --jump) no "
				      "request has a user, so it never matches\n",
				      options->rules_path, rules->rules[i].line);
	(void)printf("tunneld: %s OK: %u rules, %u groups, %u parents%s%s\n", options->rules_path, rules->rule_count,
		     rules->group_count, rules->parent_count, rules->rule_count == 0 ? " (every request is denied)" : "",
		     rules->compiled ? " (compiled)" : "");
	if (options->compile_to != NULL)
		(void)printf("tunneld: compiled into %s\n", options->compile_to);
	exit(EXIT_SUCCESS);
}

/* user=NAME from=ADDRESS to=HOST:PORT protocol=http|socks5|jump */
void offline_explain(const struct options *options, const struct rules *rules, int count, char **words)
{
	static struct request request;
	static struct judged_request judged;
	const char *to = NULL, *from = "-", *protocol = "http";
	bool allowed = false;

	judged.rules = rules;
	judged.policy = &options->policy;
	judged.subject.protocol = RULE_PROTOCOL_HTTP;
	for (int i = 0; i < count; i++) {
		const char *value = strchr(words[i], '=');
		size_t key_len = value != NULL ? (size_t)(value - words[i]) : 0;
		if (value == NULL)
			exit_usage("--explain: expected user=, from=, to= or protocol=, found '%s'", words[i]);
		value++;
		if (key_len == 4 && strncmp(words[i], "user", 4) == 0 && *value != '\0')
			judged.subject.user = value;
		else if (key_len == 4 && strncmp(words[i], "from", 4) == 0) {
			judged.subject.has_source =
				parse_source(value, &judged.subject.source_family, judged.subject.source);
			if (!judged.subject.has_source)
				exit_usage("--explain: from=%s: expected an IP address", value);
			from = value;
		} else if (key_len == 2 && strncmp(words[i], "to", 2) == 0)
			to = value;
		else if (key_len == 8 && strncmp(words[i], "protocol", 8) == 0 &&
			 (strcmp(value, "http") == 0 || strcmp(value, "socks5") == 0 || strcmp(value, "jump") == 0)) {
			protocol = value;
			judged.subject.protocol = value[0] == 'h'   ? RULE_PROTOCOL_HTTP
						  : value[0] == 's' ? RULE_PROTOCOL_SOCKS5
								    : RULE_PROTOCOL_JUMP;
		} else
			exit_usage("--explain: expected user=NAME, from=ADDRESS, to=HOST:PORT or protocol=http|socks5|jump, "
				   "found '%s'",
				   words[i]);
	}
	if (to == NULL)
		exit_usage("--explain: say where to, as to=HOST:PORT");
	if (request_parse_authority(to, strlen(to), &request) < 0)
		exit_usage("--explain: to=%s: %s", to, request.why);
	judged.subject.host = request.host;
	judged.subject.host_is_ip_literal = request.host_kind != HOST_NAME;
	judged.subject.host_is_loopback_name = policy_is_loopback_name(request.host);
	judged.subject.port = request.port;
	(void)printf("request: user=%s from=%s protocol=%s to=%s\n",
		     judged.subject.user != NULL ? judged.subject.user : "-", from, protocol, request.authority);
	if (judged.subject.host_is_loopback_name)
		(void)printf("%s names this host's loopback (RFC 6761): judged as 127.0.0.1 and ::1, never sent to a parent\n",
			     request.host);
	int64_t deadline_ms = clock_now_ms() + (int64_t)options->connect_timeout_seconds * 1000;
	if (options->rules_path != NULL) {
		struct route route;
		route_by_rules(&judged, &request, deadline_ms, &route, true);
		unsigned line = rules_line(rules, route.verdict.rule);
		switch (route.action) {
		case RULES_ALLOW:
			(void)printf("verdict: allow, line %u\n", line);
			allowed = explain_outgoing(options, rules, route.verdict.rule, route.addresses, NULL);
			break;
		case RULES_NEEDS_ADDRESSES:
			(void)printf("verdict: %s (the rules need the name's addresses, and the lookup found none: %d, as "
				     "a tunnel would answer)\n",
				     route.lookup.why, failure_status(route.lookup.failure));
			break;
		case RULES_VIA:
			allowed = true;
			(void)printf("verdict: via %s, line %u\n", rules->parents[rules->rules[route.verdict.rule].parent].display,
				     line);
			(void)explain_outgoing(options, rules, route.verdict.rule, NULL, NULL);
			if (!judged.subject.host_is_ip_literal)
				(void)printf("the parent resolves %s: where it leads, and whether that is allowed, is the parent's "
					     "policy (the built-in denies apply here to addresses only)\n",
					     request.host);
			break;
		case RULES_DENY:
			if (line > 0)
				(void)printf("verdict: deny, line %u\n", line);
			else
				(void)printf("verdict: deny, %s\n", route.verdict.why);
			break;
		}
		if (route.addresses != NULL)
			freeaddrinfo(route.addresses);
	} else {
		bool port = policy_port_allowed(&options->policy, request.port);
		bool host = policy_host_allowed(&options->policy, request.host, request.host_kind != HOST_NAME);
		struct addrinfo *addresses = NULL;
		struct connect_outcome lookup;
		(void)printf("port: %s (--allow-port)\n", port ? "allowed" : "not allowed");
		(void)printf("host: %s (--allow-host)\n", host ? "allowed" : "not allowed");
		if (port && host && connector_resolve(&request, deadline_ms, &addresses, &lookup) < 0)
			(void)printf("lookup: %s\n", lookup.why);
		for (struct addrinfo *ai = addresses; ai != NULL; ai = ai->ai_next) {
			char text[INET6_ADDRSTRLEN] = "-";
			bool address_allowed = policy_address_allowed(&options->policy, ai->ai_addr);
			(void)printf("%s: %s (destination rules)\n", address_text(ai->ai_addr, text, sizeof(text)) != NULL ? text : "-",
				     address_allowed ? "allow" : "deny");
			allowed = allowed || address_allowed;
		}
		(void)printf("verdict: %s\n", allowed ? "allow" : "deny");
		if (allowed)
			allowed = explain_outgoing(options, rules, -1, addresses, &options->policy);
		if (addresses != NULL)
			freeaddrinfo(addresses);
	}
	signals_finishing();
	(void)fflush(stdout);
	exit(allowed ? EXIT_SUCCESS : EXIT_FAILURE);
}

