/*
 * policy: who may be reached. Ports, host patterns and destination CIDR
 * rules (tunneld(8) "OPTIONS", "Destination rules"). Pure functions over a
 * fixed-size struct: no I/O.
 */
#ifndef TUNNELD_POLICY_H
#define TUNNELD_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PORT_RANGES_MAX 64
#define DEST_RULES_MAX 128  /* explicit rules; the built-ins come on top */
#define HOST_PATTERNS_MAX 64
#define HOST_PATTERN_MAX_BYTES 254
#define EMBEDDINGS_MAX 24   /* IPv6 prefixes that carry IPv4: the well-known ones and --nat64-prefix */

struct port_range {
	uint16_t first, last;
};

enum rule_action { RULE_ALLOW, RULE_DENY };

struct dest_rule {
	int family;              /* AF_INET or AF_INET6; v4-mapped rules are stored as AF_INET */
	uint8_t address[16];     /* network byte order, masked to prefix */
	unsigned prefix;
	enum rule_action action;
	bool builtin;
};

/*
 * An IPv6 prefix whose addresses carry an IPv4 address, found at bit
 * ipv4_at as RFC 6052 §2.2 places it (skipping bits 64-71), and stored
 * inverted where obfuscated is set (Teredo's client, RFC 4380 §4).
 */
struct embedding {
	uint8_t prefix[16];
	unsigned prefix_len;
	unsigned ipv4_at;
	bool obfuscated;
};

struct policy {
	bool any_port;
	bool ports_given;        /* the first -p replaces the default 443 */
	unsigned port_range_count;
	struct port_range port_ranges[PORT_RANGES_MAX];
	unsigned rule_count;
	struct dest_rule rules[DEST_RULES_MAX + 16];
	unsigned host_pattern_count;
	char host_patterns[HOST_PATTERNS_MAX][HOST_PATTERN_MAX_BYTES + 1];
	unsigned embedding_count;
	struct embedding embeddings[EMBEDDINGS_MAX];
};

/*
 * Built-in denies and the default port 443, into a zeroed policy (static
 * storage: its unused tables then never become resident memory).
 */
void policy_init(struct policy *policy);

/* Option parsers: 0, or -1 with *why set to a static message. */
int policy_add_ports(struct policy *policy, const char *list, const char **why);
int policy_add_dest_rule(struct policy *policy, const char *cidr, enum rule_action action, const char **why);
int policy_add_host_pattern(struct policy *policy, const char *pattern, const char **why);
/* A site's own NAT64 prefix, "2001:db8:64::/96": its length one of RFC 6052's 32 40 48 56 64 96. */
int policy_add_nat64_prefix(struct policy *policy, const char *cidr, const char **why);

bool policy_port_allowed(const struct policy *policy, unsigned port);
/* host is as parsed from the request: a name, or an IP literal without brackets. */
bool policy_host_allowed(const struct policy *policy, const char *host, bool host_is_ip_literal);
/*
 * The destination rules for one address. An IPv6 address that carries an
 * IPv4 address is judged in both forms, and denied if either is denied.
 */
bool policy_address_allowed(const struct policy *policy, const struct sockaddr *address);

#endif
