/*
 * policy: ports, host patterns and destination rules.
 *
 * Destination rules are longest-prefix-match (SPEC §5): among the rules that
 * contain an address the most specific decides; at equal length an explicit
 * rule beats a built-in one and deny beats allow. IPv4-mapped IPv6 addresses
 * are judged as IPv4, both when they are the address and when they are
 * written in a rule, so "::ffff:127.0.0.1" cannot slip past 127.0.0.0/8.
 */
#include "policy.h"

#include "number.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const builtin_denies[] = {
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "fe80::/10", "ff00::/8",
};

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int add_rule(struct policy *policy, const char *cidr, enum rule_action action, bool builtin, const char **why)
{
	char text[INET6_ADDRSTRLEN + 8];
	struct dest_rule rule = { .action = action, .builtin = builtin };
	long prefix;
	unsigned max_prefix;

	if (policy->rule_count >= sizeof(policy->rules) / sizeof(policy->rules[0])) {
		*why = "too many destination rules";
		return -1;
	}
	size_t cidr_len = strlen(cidr);
	if (cidr_len >= sizeof(text)) {
		*why = "malformed CIDR";
		return -1;
	}
	memcpy(text, cidr, cidr_len + 1);
	char *slash = strchr(text, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, text, rule.address) == 1) {
		rule.family = AF_INET;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, text, rule.address) == 1) {
		rule.family = AF_INET6;
		max_prefix = 128;
	} else {
		*why = "malformed CIDR address";
		return -1;
	}
	if (slash == NULL)
		prefix = max_prefix;
	else if (parse_decimal(slash + 1, 0, max_prefix, &prefix) < 0) {
		*why = "malformed CIDR prefix length";
		return -1;
	}
	rule.prefix = (unsigned)prefix;
	if (rule.family == AF_INET6 && rule.prefix >= 96 && memcmp(rule.address, v4_mapped_prefix, 12) == 0) {
		memmove(rule.address, rule.address + 12, 4);
		memset(rule.address + 4, 0, 12);
		rule.family = AF_INET;
		rule.prefix -= 96;
	}
	/* Mask host bits so that "10.1.2.3/8" means 10.0.0.0/8, as ip(8) reads it. */
	for (unsigned bit = rule.prefix; bit < 128; bit++)
		rule.address[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	policy->rules[policy->rule_count++] = rule;
	return 0;
}

void policy_init(struct policy *policy)
{
	const char *why;

	policy->port_ranges[0] = (struct port_range){ 443, 443 };
	policy->port_range_count = 1;
	for (size_t i = 0; i < sizeof(builtin_denies) / sizeof(builtin_denies[0]); i++)
		(void)add_rule(policy, builtin_denies[i], RULE_DENY, true, &why);
}

int policy_add_dest_rule(struct policy *policy, const char *cidr, enum rule_action action, const char **why)
{
	return add_rule(policy, cidr, action, false, why);
}

int policy_add_ports(struct policy *policy, const char *list, const char **why)
{
	char copy[1024];
	char *saveptr = NULL;
	size_t list_len = strlen(list);

	if (!policy->ports_given) {
		policy->ports_given = true;
		policy->port_range_count = 0;
	}
	if (strcmp(list, "*") == 0) {
		policy->any_port = true;
		return 0;
	}
	if (list_len >= sizeof(copy) || list_len == 0 || list[0] == ',' || list[list_len - 1] == ',' ||
	    strstr(list, ",,") != NULL) {
		*why = "malformed port list";
		return -1;
	}
	memcpy(copy, list, list_len + 1);
	for (char *item = strtok_r(copy, ",", &saveptr); item != NULL; item = strtok_r(NULL, ",", &saveptr)) {
		long first, last;
		char *dash = strchr(item, '-');
		if (dash != NULL)
			*dash = '\0';
		if (parse_decimal(item, 1, 65535, &first) < 0 ||
		    (dash != NULL ? parse_decimal(dash + 1, first, 65535, &last) : (last = first, 0)) < 0) {
			*why = "malformed port list (want 1-65535, ranges as 8000-8999, or *)";
			return -1;
		}
		if (policy->port_range_count >= PORT_RANGES_MAX) {
			*why = "too many port ranges";
			return -1;
		}
		policy->port_ranges[policy->port_range_count++] = (struct port_range){ (uint16_t)first, (uint16_t)last };
	}
	return 0;
}

int policy_add_host_pattern(struct policy *policy, const char *pattern, const char **why)
{
	size_t len = strlen(pattern);
	const char *name = strncmp(pattern, "*.", 2) == 0 ? pattern + 2 : pattern;

	if (len == 0 || len > HOST_PATTERN_MAX_BYTES) {
		*why = "host pattern empty or too long";
		return -1;
	}
	if (*name == '\0' || strchr(name, '*') != NULL) {
		*why = "host pattern must be a name, an IP address, or *.domain";
		return -1;
	}
	if (policy->host_pattern_count >= HOST_PATTERNS_MAX) {
		*why = "too many host patterns";
		return -1;
	}
	memcpy(policy->host_patterns[policy->host_pattern_count++], pattern, len + 1);
	return 0;
}

bool policy_port_allowed(const struct policy *policy, unsigned port)
{
	if (policy->any_port)
		return true;
	for (unsigned i = 0; i < policy->port_range_count; i++)
		if (port >= policy->port_ranges[i].first && port <= policy->port_ranges[i].last)
			return true;
	return false;
}

/* Names compare without a trailing dot: "example.com." is example.com. */
static size_t name_length(const char *name)
{
	size_t len = strlen(name);
	return len > 0 && name[len - 1] == '.' ? len - 1 : len;
}

static bool ip_literals_equal(const char *a, const char *b)
{
	uint8_t address_a[16], address_b[16];

	if (inet_pton(AF_INET, a, address_a) == 1)
		return inet_pton(AF_INET, b, address_b) == 1 && memcmp(address_a, address_b, 4) == 0;
	if (inet_pton(AF_INET6, a, address_a) == 1)
		return inet_pton(AF_INET6, b, address_b) == 1 && memcmp(address_a, address_b, 16) == 0;
	return false;
}

bool policy_host_allowed(const struct policy *policy, const char *host, bool host_is_ip_literal)
{
	size_t host_len = name_length(host);

	if (policy->host_pattern_count == 0)
		return true;
	for (unsigned i = 0; i < policy->host_pattern_count; i++) {
		const char *pattern = policy->host_patterns[i];
		if (host_is_ip_literal) {
			if (ip_literals_equal(host, pattern))
				return true;
			continue;
		}
		if (strncmp(pattern, "*.", 2) == 0) {
			/* "*.example.com" matches any depth below example.com, not example.com itself. */
			const char *suffix = pattern + 1;
			size_t suffix_len = name_length(suffix);
			if (host_len > suffix_len && strncasecmp(host + host_len - suffix_len, suffix, suffix_len) == 0)
				return true;
		} else if (name_length(pattern) == host_len && strncasecmp(host, pattern, host_len) == 0) {
			return true;
		}
	}
	return false;
}

static bool rule_contains(const struct dest_rule *rule, int family, const uint8_t *address)
{
	unsigned full_bytes = rule->prefix / 8;
	unsigned rest_bits = rule->prefix % 8;

	if (rule->family != family || memcmp(rule->address, address, full_bytes) != 0)
		return false;
	if (rest_bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest_bits);
	return (address[full_bytes] & mask) == rule->address[full_bytes];
}

/* Does candidate win over the current best among rules containing an address? */
static bool rule_beats(const struct dest_rule *candidate, const struct dest_rule *best)
{
	if (best == NULL || candidate->prefix > best->prefix)
		return true;
	if (candidate->prefix < best->prefix)
		return false;
	if (candidate->builtin != best->builtin)
		return !candidate->builtin;
	return candidate->action == RULE_DENY && best->action == RULE_ALLOW;
}

bool policy_address_allowed(const struct policy *policy, const struct sockaddr *address)
{
	uint8_t bytes[16];
	int family;
	const struct dest_rule *best = NULL;

	if (address->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(bytes, &((const struct sockaddr_in *)(const void *)address)->sin_addr, 4);
	} else if (address->sa_family == AF_INET6) {
		const uint8_t *v6 = ((const struct sockaddr_in6 *)(const void *)address)->sin6_addr.s6_addr;
		if (memcmp(v6, v4_mapped_prefix, 12) == 0) {
			family = AF_INET;
			memcpy(bytes, v6 + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(bytes, v6, 16);
		}
	} else {
		return false;
	}
	for (unsigned i = 0; i < policy->rule_count; i++) {
		const struct dest_rule *rule = &policy->rules[i];
		if (rule_contains(rule, family, bytes) && rule_beats(rule, best))
			best = rule;
	}
	return best == NULL || best->action == RULE_ALLOW;
}
