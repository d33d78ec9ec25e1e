/*
 * policy: ports, host patterns and destination rules.
 *
 * Destination rules are longest-prefix-match (tunneld(8) "Destination rules"):
 * among the rules that contain an address the most specific decides; at
 * equal length an explicit rule beats a built-in one and deny beats allow.
 * An IPv6 address that carries an IPv4 address (mapped, compatible, SIIT,
 * NAT64, 6to4, Teredo) is judged in both forms and denied if either is denied, so that "64:ff9b::127.0.0.1" or "2002:7f00:1::1" cannot slip
 * past 127.0.0.0/8, nor a DNS64 answer past an IPv4 --deny-dest.
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

/* Where IPv6 carries IPv4: prefix, its length, the bit the IPv4 address starts at. */
static const struct {
	const char *prefix;
	unsigned prefix_len;
	unsigned ipv4_at;
	bool obfuscated;
} builtin_embeddings[] = {
	{ "::ffff:0:0", 96, 96, false },      /* IPv4-mapped, RFC 4291 §2.5.5.2 */
	{ "::", 96, 96, false },              /* IPv4-compatible, RFC 4291 §2.5.5.1 */
	{ "::ffff:0:0:0", 96, 96, false },    /* SIIT, RFC 2765 §2.1 */
	{ "64:ff9b::", 96, 96, false },       /* NAT64 well-known prefix, RFC 6052 §2.1 */
	/*
	 * NAT64 local use, RFC 8215: read as the /96 prefixes that sites carve
	 * from it; a site that uses another length says so with --nat64-prefix.
	 */
	{ "64:ff9b:1::", 48, 96, false },
	{ "2002::", 16, 16, false },          /* 6to4, RFC 3056 §2 */
	{ "2001::", 32, 96, true },           /* Teredo's client, RFC 4380 §4 */
};

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Zeroes the bits past prefix, so that "10.1.2.3/8" means 10.0.0.0/8, as ip(8) reads it. */
static void mask_host_bits(uint8_t *address, unsigned prefix)
{
	unsigned full_bytes = prefix / 8;

	if (full_bytes >= 16)
		return;
	if (prefix % 8 != 0)
		address[full_bytes++] &= (uint8_t)(0xff00u >> (prefix % 8));
	memset(address + full_bytes, 0, 16 - full_bytes);
}

/* "address/len" into address and *prefix, len at most max_prefix; 0, or -1 with *why set. */
static int parse_cidr(const char *cidr, int family, uint8_t *address, unsigned *prefix, const char **why)
{
	char text[INET6_ADDRSTRLEN + 8];
	unsigned max_prefix = family == AF_INET ? 32 : 128;
	size_t cidr_len = strlen(cidr);
	long length;

	if (cidr_len >= sizeof(text)) {
		*why = "malformed CIDR";
		return -1;
	}
	memcpy(text, cidr, cidr_len + 1);
	char *slash = strchr(text, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(family, text, address) != 1) {
		*why = "malformed CIDR address";
		return -1;
	}
	if (slash == NULL)
		length = max_prefix;
	else if (parse_decimal(slash + 1, 0, max_prefix, &length) < 0) {
		*why = "malformed CIDR prefix length";
		return -1;
	}
	*prefix = (unsigned)length;
	return 0;
}

int policy_parse_net(const char *cidr, int *family, uint8_t *address, unsigned *prefix, const char **why)
{
	const char *why_v6;

	memset(address, 0, 16);
	if (parse_cidr(cidr, AF_INET, address, prefix, why) == 0)
		*family = AF_INET;
	else if (parse_cidr(cidr, AF_INET6, address, prefix, &why_v6) == 0)
		*family = AF_INET6;
	else {
		/* The IPv4 reading's complaint is about the prefix when the address was IPv4. */
		if (strchr(cidr, ':') != NULL)
			*why = why_v6;
		return -1;
	}
	if (*family == AF_INET6 && *prefix >= 96 && memcmp(address, v4_mapped_prefix, 12) == 0) {
		memmove(address, address + 12, 4);
		memset(address + 4, 0, 12);
		*family = AF_INET;
		*prefix -= 96;
	}
	mask_host_bits(address, *prefix);
	return 0;
}

static int add_rule(struct policy *policy, const char *cidr, enum rule_action action, bool builtin, const char **why)
{
	struct dest_rule rule = { .action = action, .builtin = builtin };

	if (policy->rule_count >= sizeof(policy->rules) / sizeof(policy->rules[0])) {
		*why = "too many destination rules";
		return -1;
	}
	if (policy_parse_net(cidr, &rule.family, rule.address, &rule.prefix, why) < 0)
		return -1;
	policy->rules[policy->rule_count++] = rule;
	return 0;
}

/* prefix: 16 bytes in network byte order. */
static int add_embedding(struct policy *policy, const uint8_t *prefix, unsigned prefix_len, unsigned ipv4_at,
			 bool obfuscated)
{
	if (policy->embedding_count >= EMBEDDINGS_MAX)
		return -1;
	struct embedding *embedding = &policy->embeddings[policy->embedding_count];
	memcpy(embedding->prefix, prefix, sizeof(embedding->prefix));
	mask_host_bits(embedding->prefix, prefix_len);
	embedding->prefix_len = prefix_len;
	embedding->ipv4_at = ipv4_at;
	embedding->obfuscated = obfuscated;
	policy->embedding_count++;
	return 0;
}

void policy_init(struct policy *policy)
{
	const char *why;

	policy->port_ranges[0] = (struct port_range){ 443, 443 };
	policy->port_range_count = 1;
	for (size_t i = 0; i < sizeof(builtin_denies) / sizeof(builtin_denies[0]); i++)
		(void)add_rule(policy, builtin_denies[i], RULE_DENY, true, &why);
	for (size_t i = 0; i < sizeof(builtin_embeddings) / sizeof(builtin_embeddings[0]); i++) {
		uint8_t prefix[16];
		if (inet_pton(AF_INET6, builtin_embeddings[i].prefix, prefix) == 1)
			(void)add_embedding(policy, prefix, builtin_embeddings[i].prefix_len,
					    builtin_embeddings[i].ipv4_at, builtin_embeddings[i].obfuscated);
	}
}

int policy_add_nat64_prefix(struct policy *policy, const char *cidr, const char **why)
{
	uint8_t address[16];
	unsigned prefix;

	if (parse_cidr(cidr, AF_INET6, address, &prefix, why) < 0)
		return -1;
	if (prefix != 32 && prefix != 40 && prefix != 48 && prefix != 56 && prefix != 64 && prefix != 96) {
		*why = "NAT64 prefix length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)";
		return -1;
	}
	if (add_embedding(policy, address, prefix, prefix, false) < 0) {
		*why = "too many NAT64 prefixes";
		return -1;
	}
	return 0;
}

int policy_add_dest_rule(struct policy *policy, const char *cidr, enum rule_action action, const char **why)
{
	return add_rule(policy, cidr, action, false, why);
}

/* A port, 1-65535, from text up to end; the rules file parses thousands per connection: no strtol. */
static int parse_port(const char *text, const char *end, long *port)
{
	long value = 0;

	if (text == end || end - text > 5)
		return -1;
	for (; text < end; text++) {
		if (*text < '0' || *text > '9')
			return -1;
		value = value * 10 + (*text - '0');
	}
	if (value < 1 || value > 65535)
		return -1;
	*port = value;
	return 0;
}

int policy_parse_port_range(const char *item, struct port_range *range)
{
	const char *end = item + strlen(item);
	const char *dash = strchr(item, '-');
	long first, last;

	if (parse_port(item, dash != NULL ? dash : end, &first) < 0 ||
	    (dash != NULL ? parse_port(dash + 1, end, &last) : (last = first, 0)) < 0 || last < first)
		return -1;
	*range = (struct port_range){ (uint16_t)first, (uint16_t)last };
	return 0;
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
		struct port_range range;
		if (policy_parse_port_range(item, &range) < 0) {
			*why = "malformed port list (want 1-65535, ranges as 8000-8999, or *)";
			return -1;
		}
		if (policy->port_range_count >= PORT_RANGES_MAX) {
			*why = "too many port ranges";
			return -1;
		}
		policy->port_ranges[policy->port_range_count++] = range;
	}
	return 0;
}

int policy_check_host_pattern(const char *pattern, const char **why)
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
	return 0;
}

int policy_add_host_pattern(struct policy *policy, const char *pattern, const char **why)
{
	if (policy_check_host_pattern(pattern, why) < 0)
		return -1;
	if (policy->host_pattern_count >= HOST_PATTERNS_MAX) {
		*why = "too many host patterns";
		return -1;
	}
	memcpy(policy->host_patterns[policy->host_pattern_count++], pattern, strlen(pattern) + 1);
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

bool policy_host_matches(const char *pattern, const char *host, bool host_is_ip_literal)
{
	size_t host_len = name_length(host);

	if (host_is_ip_literal)
		return ip_literals_equal(host, pattern);
	if (strncmp(pattern, "*.", 2) == 0) {
		/* "*.example.com" matches any depth below example.com, not example.com itself. */
		const char *suffix = pattern + 1;
		size_t suffix_len = name_length(suffix);
		return host_len > suffix_len && strncasecmp(host + host_len - suffix_len, suffix, suffix_len) == 0;
	}
	return name_length(pattern) == host_len && strncasecmp(host, pattern, host_len) == 0;
}

bool policy_is_loopback_name(const char *host)
{
	size_t len = name_length(host);
	static const char suffix[] = ".localhost";
	size_t suffix_len = sizeof(suffix) - 1;

	return (len == suffix_len - 1 && strncasecmp(host, suffix + 1, len) == 0) ||
	       (len > suffix_len && strncasecmp(host + len - suffix_len, suffix, suffix_len) == 0);
}

bool policy_host_allowed(const struct policy *policy, const char *host, bool host_is_ip_literal)
{
	if (policy->host_pattern_count == 0)
		return true;
	for (unsigned i = 0; i < policy->host_pattern_count; i++)
		if (policy_host_matches(policy->host_patterns[i], host, host_is_ip_literal))
			return true;
	return false;
}

/* Is address within prefix/length? Both in network byte order, prefix masked. */
bool policy_prefix_contains(const uint8_t *prefix, unsigned length, const uint8_t *address)
{
	unsigned full_bytes = length / 8;
	unsigned rest_bits = length % 8;

	if (memcmp(prefix, address, full_bytes) != 0)
		return false;
	if (rest_bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest_bits);
	return (address[full_bytes] & mask) == prefix[full_bytes];
}

static bool rule_contains(const struct dest_rule *rule, int family, const uint8_t *address)
{
	return rule->family == family && policy_prefix_contains(rule->address, rule->prefix, address);
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

/* The verdict of the longest-prefix rule that contains address (family's bytes). */
static bool address_allowed(const struct policy *policy, int family, const uint8_t *address)
{
	const struct dest_rule *best = NULL;

	for (unsigned i = 0; i < policy->rule_count; i++) {
		const struct dest_rule *rule = &policy->rules[i];
		if (rule_contains(rule, family, address) && rule_beats(rule, best))
			best = rule;
	}
	return best == NULL || best->action == RULE_ALLOW;
}

/* RFC 6052 §2.2: the IPv4 octets from bit ipv4_at on, skipping octet 8 (bits 64-71, "u"). */
static void extract_ipv4(const struct embedding *embedding, const uint8_t *v6, uint8_t *v4)
{
	size_t at = embedding->ipv4_at / 8;
	for (size_t i = 0; i < 4; i++, at++) {
		if (at == 8)
			at++;
		v4[i] = embedding->obfuscated ? (uint8_t)~v6[at] : v6[at];
	}
}

bool policy_embedded_ipv4(const struct policy *policy, const uint8_t *v6, uint8_t *v4)
{
	/* :: and ::1 lie in ::/96 but are IPv6's own (RFC 4291 §2.5.2, §2.5.3): they carry no IPv4. */
	if (memcmp(v6, in6addr_any.s6_addr, 16) == 0 || memcmp(v6, in6addr_loopback.s6_addr, 16) == 0)
		return false;
	/*
	 * Where the IPv4 address sits: the most specific prefix that contains
	 * the address says, and a site's --nat64-prefix (added last) wins over
	 * a built-in prefix of equal length.
	 */
	const struct embedding *carrier = NULL;
	for (unsigned i = 0; i < policy->embedding_count; i++) {
		const struct embedding *embedding = &policy->embeddings[i];
		if (policy_prefix_contains(embedding->prefix, embedding->prefix_len, v6) &&
		    (carrier == NULL || embedding->prefix_len >= carrier->prefix_len))
			carrier = embedding;
	}
	if (carrier == NULL)
		return false;
	extract_ipv4(carrier, v6, v4);
	return true;
}

bool policy_address_allowed(const struct policy *policy, const struct sockaddr *address)
{
	uint8_t v4[4];

	if (address->sa_family == AF_INET)
		return address_allowed(policy, AF_INET,
				       (const uint8_t *)&((const struct sockaddr_in *)(const void *)address)->sin_addr);
	if (address->sa_family != AF_INET6)
		return false;
	const uint8_t *v6 = ((const struct sockaddr_in6 *)(const void *)address)->sin6_addr.s6_addr;
	if (!address_allowed(policy, AF_INET6, v6))
		return false;
	return !policy_embedded_ipv4(policy, v6, v4) || address_allowed(policy, AF_INET, v4);
}

int policy_builtin_deny(const struct policy *policy, int family, const uint8_t *address, const struct dest_rule **deny)
{
	*deny = NULL;
	for (unsigned i = 0; i < policy->rule_count; i++) {
		const struct dest_rule *rule = &policy->rules[i];
		if (rule->builtin && rule->action == RULE_DENY && rule_contains(rule, family, address) &&
		    (*deny == NULL || rule->prefix > (*deny)->prefix))
			*deny = rule;
	}
	return *deny != NULL ? (int)(*deny)->prefix : -1;
}

/*
 * Not globally reachable (the IANA special-purpose registries, RFC 6890):
 * the built-in denies' ranges, private and shared space, documentation,
 * benchmarking, reserved. Embedded IPv4 is judged in its IPv4 form by the caller.
 */
static const char *const non_public_ranges[] = {
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
	"224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "fc00::/7", "fe80::/10",
	"fec0::/10", "ff00::/8",
};

bool policy_address_is_public(int family, const uint8_t *address)
{
	enum { RANGES = sizeof(non_public_ranges) / sizeof(non_public_ranges[0]) };
	static struct {
		int family;
		uint8_t address[16];
		unsigned prefix;
	} ranges[RANGES];
	static bool parsed;
	const char *why;

	/* Parsed once: a rules file may ask this for every rule and every address. */
	for (size_t i = 0; !parsed && i < RANGES; i++)
		(void)policy_parse_net(non_public_ranges[i], &ranges[i].family, ranges[i].address, &ranges[i].prefix, &why);
	parsed = true;
	for (size_t i = 0; i < RANGES; i++)
		if (ranges[i].family == family && policy_prefix_contains(ranges[i].address, ranges[i].prefix, address))
			return false;
	return true;
}
