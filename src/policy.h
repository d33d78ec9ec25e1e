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

/* The pieces the rules file (rules.h) is judged with. */

/* "address/len" or an address (v4-mapped read as IPv4), masked to its prefix; 0, or -1 with *why set. */
int policy_parse_net(const char *cidr, int *family, uint8_t *address, unsigned *prefix, const char **why);
/* "443" or "8000-8999" into range: 0, or -1. */
int policy_parse_port_range(const char *item, struct port_range *range);
int policy_check_host_pattern(const char *pattern, const char **why);
bool policy_host_matches(const char *pattern, const char *host, bool host_is_ip_literal);

/*
 * "localhost", or a name under .localhost, with or without the final dot:
 * by RFC 6761 §6.3 it is this host's loopback wherever it is resolved, so
 * it is judged as loopback's addresses and never handed to a parent.
 */
bool policy_is_loopback_name(const char *host);
/* Is address within prefix/length? Both in network byte order, prefix masked. */
bool policy_prefix_contains(const uint8_t *prefix, unsigned length, const uint8_t *address);
/* The IPv4 address an IPv6 address carries, into v4: true if it carries one. */
bool policy_embedded_ipv4(const struct policy *policy, const uint8_t *v6, uint8_t *v4);
/* The prefix length of the narrowest built-in deny containing address (*deny set), or -1. */
int policy_builtin_deny(const struct policy *policy, int family, const uint8_t *address, const struct dest_rule **deny);
/* Globally reachable: none of RFC 6890's special-purpose ranges. */
bool policy_address_is_public(int family, const uint8_t *address);

#endif
