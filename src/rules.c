/*
 * rules: the rules file's parser (tunneld(8) "RULES"); rules_judge.c
 * judges requests by what it parsed, or by an image (rules_image.c).
 *
 * A line is a verb and matchers: "allow", "deny" or "via URL", then any of
 * user, group, from, to, port and protocol, each with a comma-separated
 * list. Different matchers must all match; the values of one are
 * alternatives; a rule without a matcher matches everything. Groups are
 * defined in the file, above their first use. The first rule that matches
 * decides, and a request no rule matches is denied.
 */
#include "rules.h"


#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKEN_MAX_BYTES 1024

/* Where the parser is: one line of the file. */
struct cursor {
	struct rules *rules;
	struct rules_errors *errors;
	const char *name;
	const char *line;
	size_t len;
	size_t at;
	unsigned number;
	bool failed;          /* the rest of this line is not parsed */
};

static void __attribute__((format(printf, 3, 4))) error_at(struct cursor *cursor, size_t at, const char *format, ...)
{
	struct rules_errors *errors = cursor->errors;
	va_list args;

	va_start(args, format);
	cursor->failed = true;
	if (errors->count++ < RULES_ERRORS_MAX) {
		char *out = errors->messages[errors->count - 1];
		int used = snprintf(out, RULES_ERROR_MAX_BYTES, "%s:%u:%zu: ", cursor->name, cursor->number, at + 1);
		if (used >= 0 && used < RULES_ERROR_MAX_BYTES)
			/* clang-tidy 14's analyzer loses va_start when it inlines a variadic callee. */
			(void)vsnprintf(out + used, RULES_ERROR_MAX_BYTES - (size_t)used, format, // NOLINT(clang-analyzer-valist.Uninitialized)
					args);
	}
	va_end(args);
}

enum byte_class { BYTE_FOREIGN, BYTE_IN_WORD, BYTE_DELIMITER }; /* zero, the table before it is built, is no class */

/* A table, as every byte of every line comes through here: words are printable ASCII. */
static uint8_t byte_classes[256];

static void classify_bytes(void)
{
	for (unsigned c = 0; c < 256; c++)
		byte_classes[c] = c > 0x20 && c < 0x7f ? BYTE_IN_WORD : BYTE_FOREIGN;
	for (const char *delimiter = " \t,#="; *delimiter != '\0'; delimiter++)
		byte_classes[(unsigned char)*delimiter] = BYTE_DELIMITER;
}

static enum byte_class class_of(char c)
{
	return (enum byte_class)byte_classes[(unsigned char)c];
}

static void skip_blanks(struct cursor *cursor)
{
	while (cursor->at < cursor->len && (cursor->line[cursor->at] == ' ' || cursor->line[cursor->at] == '\t'))
		cursor->at++;
}

/* Nothing more on the line but blanks and a comment. */
static bool at_end(struct cursor *cursor)
{
	skip_blanks(cursor);
	return cursor->at >= cursor->len || cursor->line[cursor->at] == '#';
}

static bool next_is(struct cursor *cursor, char c)
{
	skip_blanks(cursor);
	return cursor->at < cursor->len && cursor->line[cursor->at] == c;
}

/*
 * The next word into out; its column in *column. "=" is a word of its own.
 * Returns its length, 0 when there is none (end of line, ',' or '#').
 */
static size_t next_word(struct cursor *cursor, char *out, size_t size, size_t *column)
{
	out[0] = '\0';
	skip_blanks(cursor);
	*column = cursor->at;
	size_t start = cursor->at;
	if (cursor->at < cursor->len && cursor->line[cursor->at] == '=') {
		cursor->at++;
	} else {
		size_t at = cursor->at;
		while (at < cursor->len && class_of(cursor->line[at]) == BYTE_IN_WORD)
			at++;
		cursor->at = at;
	}
	if (cursor->at < cursor->len && class_of(cursor->line[cursor->at]) == BYTE_FOREIGN) {
		error_at(cursor, cursor->at, "unexpected byte 0x%02x (words are printable ASCII)",
			 (unsigned char)cursor->line[cursor->at]);
		return 0;
	}
	size_t len = cursor->at - start;
	if (len >= size) {
		error_at(cursor, start, "word longer than %zu bytes", size - 1);
		return 0;
	}
	memcpy(out, cursor->line + start, len);
	out[len] = '\0';
	return len;
}

/* What was found where something else was expected, for an error message. */
static const char *found(struct cursor *cursor, const char *word)
{
	if (*word != '\0')
		return word;
	if (cursor->at >= cursor->len)
		return "end of line";
	switch (cursor->line[cursor->at]) {
	case ',':
		return "','";
	case '#':
		return "a comment";
	default:
		return "'='";
	}
}

static uint32_t store_text(struct cursor *cursor, size_t column, const char *text)
{
	struct rules *rules = cursor->rules;
	size_t len = strlen(text);

	if (len + 1 > RULES_TEXT_MAX_BYTES - rules->text_len) {
		error_at(cursor, column, "more names than tunneld keeps (%zu bytes of them)", RULES_TEXT_MAX_BYTES);
		return 0;
	}
	uint32_t offset = rules->text_len;
	memcpy(rules->text + offset, text, len + 1);
	rules->text_len += (uint32_t)(len + 1);
	return offset;
}

static struct rule_item *new_item(struct cursor *cursor, size_t column, enum rule_item_kind kind)
{
	struct rules *rules = cursor->rules;

	if (rules->item_count >= RULE_ITEMS_MAX) {
		error_at(cursor, column, "more than %d values in the file", RULE_ITEMS_MAX);
		return NULL;
	}
	struct rule_item *item = &rules->items[rules->item_count++];
	memset(item, 0, sizeof(*item));
	item->kind = (uint8_t)kind;
	return item;
}

/* Users, group and host names: letters, digits and - . _ @ (user names as htpasswd files have them). */
static bool is_name_text(const char *text, const char *extra)
{
	for (const char *c = text; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      strchr("-._", *c) != NULL || (extra != NULL && strchr(extra, *c) != NULL)))
			return false;
	return true;
}

bool rules_is_user_name(const char *text)
{
	return text[0] != '\0' && strlen(text) <= RULES_USER_NAME_MAX_BYTES && is_name_text(text, "@+");
}

static int find_group(const struct rules *rules, const char *name)
{
	for (unsigned i = 0; i < rules->group_count; i++)
		if (strcmp(rules->text + rules->groups[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void add_user(struct cursor *cursor, const char *word, size_t column)
{
	if (!is_name_text(word, "@+")) {
		error_at(cursor, column, "expected a user name (letters, digits, - . _ @ +), found '%s'", word);
		return;
	}
	struct rule_item *item = new_item(cursor, column, ITEM_USER);
	if (item != NULL)
		item->u.name = store_text(cursor, column, word);
}

static void add_group(struct cursor *cursor, const char *word, size_t column)
{
	int group = find_group(cursor->rules, word);
	if (group < 0) {
		error_at(cursor, column, "unknown group '%s' (define it above: group %s = USER ...)", word, word);
		return;
	}
	struct rule_item *item = new_item(cursor, column, ITEM_GROUP);
	if (item != NULL)
		item->u.group = (unsigned)group;
}

/* A network into rules->nets for an item of kind; 0, or -1 with the error given. */
static int add_net(struct cursor *cursor, const char *word, size_t column, enum rule_item_kind kind, const char *expected)
{
	struct rules *rules = cursor->rules;
	const char *why = "malformed";
	int family;
	unsigned prefix;
	uint8_t address[16];

	if (policy_parse_net(word, &family, address, &prefix, &why) < 0) {
		error_at(cursor, column, "expected %s, found '%s' (%s)", expected, word, why);
		return -1;
	}
	if (rules->net_count >= RULE_ITEMS_MAX) {
		error_at(cursor, column, "more than %d networks in the file", RULE_ITEMS_MAX);
		return -1;
	}
	struct rule_item *item = new_item(cursor, column, kind);
	if (item == NULL)
		return -1;
	struct rule_net *net = &rules->nets[rules->net_count];
	net->family = (uint8_t)family;
	net->prefix = (uint8_t)prefix;
	memcpy(net->address, address, sizeof(net->address));
	item->u.net = rules->net_count++;
	return 0;
}

static void add_source(struct cursor *cursor, const char *word, size_t column)
{
	(void)add_net(cursor, word, column, ITEM_SOURCE_NET, "a network as 10.0.0.0/8 or 2001:db8::/32");
}

static bool looks_like_address(const char *word)
{
	return strchr(word, ':') != NULL || strchr(word, '/') != NULL ||
	       strspn(word, "0123456789.") == strlen(word);
}

static void add_destination(struct cursor *cursor, const char *word, size_t column)
{
	struct rule_item *item;
	const char *why = "malformed";

	if (strcmp(word, "*") == 0 || strcmp(word, "public") == 0) {
		(void)new_item(cursor, column, word[0] == '*' ? ITEM_DEST_ANY : ITEM_DEST_PUBLIC);
		return;
	}
	if (looks_like_address(word)) {
		(void)add_net(cursor, word, column, ITEM_DEST_NET, "an address or a network as 10.0.0.0/8");
		return;
	}
	const char *name = strncmp(word, "*.", 2) == 0 ? word + 2 : word;
	if (policy_check_host_pattern(word, &why) < 0 || !is_name_text(name, NULL) || name[0] == '.' ||
	    strstr(name, "..") != NULL) {
		error_at(cursor, column, "expected a host name, *.domain, an address, a network, public or *, found '%s'",
			 word);
		return;
	}
	item = new_item(cursor, column, ITEM_DEST_NAME);
	if (item != NULL)
		item->u.name = store_text(cursor, column, word);
}

static void add_port(struct cursor *cursor, const char *word, size_t column)
{
	struct port_range range = { 1, 65535 };
	if (strcmp(word, "*") != 0 && policy_parse_port_range(word, &range) < 0) {
		error_at(cursor, column, "expected a port 1-65535, a range as 8000-8999, or *, found '%s'", word);
		return;
	}
	struct rule_item *item = new_item(cursor, column, ITEM_PORT);
	if (item != NULL)
		item->u.ports = range;
}

static void add_protocol(struct cursor *cursor, const char *word, size_t column, struct rule *rule)
{
	if (strcmp(word, "http") == 0)
		rule->protocols = (uint8_t)(rule->protocols | RULE_PROTOCOL_HTTP);
	else if (strcmp(word, "socks5") == 0)
		rule->protocols = (uint8_t)(rule->protocols | RULE_PROTOCOL_SOCKS5);
	else if (strcmp(word, "jump") == 0)
		rule->protocols = (uint8_t)(rule->protocols | RULE_PROTOCOL_JUMP);
	else
		error_at(cursor, column, "expected http, socks5 or jump, found '%s'", word);
}

/*
 * "outgoing same", or "outgoing ADDRESS[, ADDRESS]", one per family
 * (tunneld(8) "Leaving from an address"): kept as /32 and /128 networks,
 * one after the other.
 */
static void parse_outgoing(struct cursor *cursor, struct rule *rule)
{
	struct rules *rules = cursor->rules;
	char word[TOKEN_MAX_BYTES];
	size_t column;
	bool has_v4 = false, has_v6 = false;

	rule->outgoing_first_net = rules->net_count;
	for (;;) {
		struct outgoing one;
		const char *why;
		if (next_word(cursor, word, sizeof(word), &column) == 0) {
			if (!cursor->failed)
				error_at(cursor, column, "expected an address to leave from, or same, after 'outgoing', found %s",
					 found(cursor, word));
			return;
		}
		bool alone = rule->outgoing_nets == 0 && !rule->outgoing_same;
		why = NULL;
		if (strcmp(word, "same") == 0 && alone) {
			rule->outgoing_same = true;
		} else if (!rule->outgoing_same && strcmp(word, "same") != 0 && outgoing_parse(word, &one, &why) == 0 &&
			   !(one.has_v4 && has_v4) && !(one.has_v6 && has_v6)) {
			if (rules->net_count >= RULE_ITEMS_MAX) {
				error_at(cursor, column, "more than %d networks in the file", RULE_ITEMS_MAX);
				return;
			}
			struct rule_net *net = &rules->nets[rules->net_count++];
			memset(net, 0, sizeof(*net));
			net->family = (uint8_t)(one.has_v4 ? AF_INET : AF_INET6);
			net->prefix = (uint8_t)(one.has_v4 ? 32 : 128);
			memcpy(net->address, one.has_v4 ? (const void *)&one.v4 : (const void *)&one.v6, one.has_v4 ? 4 : 16);
			has_v4 = has_v4 || one.has_v4;
			has_v6 = has_v6 || one.has_v6;
			rule->outgoing_nets++;
		} else {
			error_at(cursor, column,
				 "expected an IPv4 address, an IPv6 address (at most one of each) or same alone, found '%s'%s%s",
				 word, why != NULL ? ": " : "", why != NULL ? why : "");
			return;
		}
		if (cursor->failed || !next_is(cursor, ','))
			return;
		cursor->at++;
	}
}

/* A comma-separated list after keyword, each value given to add. */
static void parse_list(struct cursor *cursor, const char *keyword, const char *what,
		       void (*add)(struct cursor *, const char *, size_t), struct rule *rule)
{
	char word[TOKEN_MAX_BYTES];
	size_t column;

	for (;;) {
		if (next_word(cursor, word, sizeof(word), &column) == 0) {
			if (!cursor->failed)
				error_at(cursor, column, "expected %s after '%s', found %s", what, keyword,
					 found(cursor, word));
			return;
		}
		if (add != NULL)
			add(cursor, word, column);
		else
			add_protocol(cursor, word, column, rule);
		if (cursor->failed || !next_is(cursor, ','))
			return;
		cursor->at++;
	}
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* URL userinfo part, %XX decoded, into out; no control bytes. 0, or -1. */
static int percent_decode(const char *text, size_t len, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)text[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int high = hex_value(text[i + 1]);
			int low = hex_value(text[i + 2]);
			if (high < 0 || low < 0)
				return -1;
			c = high * 16 + low;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || n + 1 >= size)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* "http://[user:password@]host:port" or "socks5://..." into parent; 0, or -1 with an error given. */
static int parse_parent(struct cursor *cursor, const char *url, size_t column, struct parent *parent)
{
	const char *rest;
	struct request authority = { 0 }; /* whole: what follows the host's NUL is copied, and an image keeps it */

	memset(parent, 0, sizeof(*parent));
	if (strncmp(url, "http://", 7) == 0) {
		parent->scheme = PARENT_HTTP;
		rest = url + 7;
	} else if (strncmp(url, "socks5://", 9) == 0 || strncmp(url, "socks5h://", 10) == 0) {
		parent->scheme = PARENT_SOCKS5;
		rest = strchr(url, '/') + 2;
	} else {
		/* Never the word itself: it may hold a login. */
		const char *separator = strstr(url, "://");
		static const char scheme_characters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";
		if (separator != NULL && separator > url && strspn(url, scheme_characters) == (size_t)(separator - url))
			error_at(cursor, column,
				 "expected a parent as http://HOST:PORT or socks5://HOST:PORT, found the scheme '%.*s'",
				 (int)(separator - url), url);
		else
			error_at(cursor, column, "expected a parent as http://HOST:PORT or socks5://HOST:PORT");
		return -1;
	}
	const char *at_sign = strrchr(rest, '@');
	if (at_sign != NULL) {
		const char *colon = memchr(rest, ':', (size_t)(at_sign - rest));
		size_t user_len = (size_t)((colon != NULL ? colon : at_sign) - rest);
		if (user_len == 0 || percent_decode(rest, user_len, parent->user, sizeof(parent->user)) < 0 ||
		    strchr(parent->user, ':') != NULL ||
		    (colon != NULL &&
		     percent_decode(colon + 1, (size_t)(at_sign - colon - 1), parent->password, sizeof(parent->password)) < 0)) {
			error_at(cursor, column,
				 "expected the parent's login as user:password@ (at most %d bytes each, %%XX for "
				 "special characters, no control characters)",
				 PARENT_LOGIN_MAX_BYTES);
			return -1;
		}
		parent->has_login = true;
		rest = at_sign + 1;
	}
	size_t rest_len = strlen(rest);
	if (rest_len > 0 && rest[rest_len - 1] == '/')
		rest_len--; /* "http://proxy:3128/" as URLs are often written */
	if (request_parse_authority(rest, rest_len, &authority) < 0) {
		error_at(cursor, column, "expected the parent's HOST:PORT after the scheme (%s)", authority.why);
		return -1;
	}
	parent->host_kind = authority.host_kind;
	memcpy(parent->host, authority.host, sizeof(parent->host));
	parent->port = authority.port;
	(void)snprintf(parent->display, sizeof(parent->display), "%s://%s%s%s:%u",
		       parent->scheme == PARENT_HTTP ? "http" : "socks5", parent->host_kind == HOST_IPV6 ? "[" : "",
		       parent->host, parent->host_kind == HOST_IPV6 ? "]" : "", parent->port);
	return 0;
}

static bool same_parent(const struct parent *a, const struct parent *b)
{
	return a->scheme == b->scheme && a->port == b->port && a->has_login == b->has_login &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->user, b->user) == 0 && strcmp(a->password, b->password) == 0;
}

static unsigned add_parent(struct cursor *cursor, const struct parent *parent, size_t column)
{
	struct rules *rules = cursor->rules;

	for (unsigned i = 0; i < rules->parent_count; i++)
		if (same_parent(&rules->parents[i], parent))
			return i;
	if (rules->parent_count >= RULES_PARENTS_MAX) {
		error_at(cursor, column, "more than %d different parents", RULES_PARENTS_MAX);
		return 0;
	}
	rules->parents[rules->parent_count] = *parent;
	rules->has_login = rules->has_login || parent->has_login;
	return rules->parent_count++;
}

/* "group NAME = USER USER, USER" */
static void parse_group(struct cursor *cursor)
{
	struct rules *rules = cursor->rules;
	char word[TOKEN_MAX_BYTES];
	size_t column;

	if (next_word(cursor, word, sizeof(word), &column) == 0 || strcmp(word, "=") == 0 || !is_name_text(word, NULL)) {
		if (!cursor->failed)
			error_at(cursor, column, "expected a group name (letters, digits, - . _) after 'group', found %s",
				 found(cursor, word));
		return;
	}
	if (find_group(rules, word) >= 0) {
		error_at(cursor, column, "group '%s' is already defined", word);
		return;
	}
	if (rules->group_count >= RULES_GROUPS_MAX) {
		error_at(cursor, column, "more than %d groups", RULES_GROUPS_MAX);
		return;
	}
	struct rules_group group = { .name = store_text(cursor, column, word), .first_member = rules->member_count };
	if (next_word(cursor, word, sizeof(word), &column) == 0 || strcmp(word, "=") != 0) {
		if (!cursor->failed)
			error_at(cursor, column, "expected '=' after the group's name, found %s", found(cursor, word));
		return;
	}
	while (!at_end(cursor)) {
		if (next_is(cursor, ',')) {
			cursor->at++;
			continue;
		}
		if (next_word(cursor, word, sizeof(word), &column) == 0 || !is_name_text(word, "@+")) {
			if (!cursor->failed)
				error_at(cursor, column, "expected a user name (letters, digits, - . _ @ +), found %s",
					 found(cursor, word));
			return;
		}
		if (rules->member_count >= RULE_ITEMS_MAX) {
			error_at(cursor, column, "more than %d group members", RULE_ITEMS_MAX);
			return;
		}
		rules->member_offsets[rules->member_count++] = store_text(cursor, column, word);
		group.member_count++;
	}
	if (group.member_count == 0) {
		error_at(cursor, cursor->at, "expected the group's members after '='");
		return;
	}
	if (!cursor->failed)
		rules->groups[rules->group_count++] = group;
}

static void parse_rule(struct cursor *cursor, enum rule_verb verb, size_t verb_column)
{
	struct rules *rules = cursor->rules;
	struct rule rule;
	memset(&rule, 0, sizeof(rule)); /* its padding too: tables are compared whole (fuzz/rules_fuzzer.c) */
	rule.verb = (uint8_t)verb;
	rule.line = cursor->number;
	rule.first_item = rules->item_count;
	uint32_t first_net = rules->net_count;
	char word[TOKEN_MAX_BYTES];
	size_t column;
	bool seen_user = false, seen_group = false;

	if (rules->rule_count >= RULES_MAX) {
		error_at(cursor, verb_column, "more than %d rules", RULES_MAX);
		return;
	}
	if (verb == RULE_VERB_VIA) {
		struct parent parent;
		if (next_word(cursor, word, sizeof(word), &column) == 0) {
			if (!cursor->failed)
				error_at(cursor, column, "expected a parent as http://HOST:PORT or socks5://HOST:PORT after "
					 "'via', found %s", found(cursor, word));
			return;
		}
		if (parse_parent(cursor, word, column, &parent) < 0)
			return;
		rule.parent = (uint8_t)add_parent(cursor, &parent, column);
	}
	while (!cursor->failed && !at_end(cursor)) {
		if (next_word(cursor, word, sizeof(word), &column) == 0) {
			if (!cursor->failed)
				error_at(cursor, column, "expected user, group, from, to, port, protocol or outgoing, found %s",
					 found(cursor, word));
			break;
		}
		if (strcmp(word, "outgoing") == 0) {
			if (verb == RULE_VERB_DENY) {
				error_at(cursor, column, "'outgoing' on a deny rule: a refused tunnel leaves from nowhere");
				break;
			}
			if (rule.outgoing_same || rule.outgoing_nets > 0) {
				error_at(cursor, column, "'outgoing' is already given in this rule: list its addresses with commas");
				break;
			}
			parse_outgoing(cursor, &rule);
			continue;
		}
		bool *seen;
		if (strcmp(word, "user") == 0)
			seen = &seen_user;
		else if (strcmp(word, "group") == 0)
			seen = &seen_group;
		else if (strcmp(word, "from") == 0)
			seen = &rule.has_from;
		else if (strcmp(word, "to") == 0)
			seen = &rule.has_to;
		else if (strcmp(word, "port") == 0)
			seen = &rule.has_port;
		else if (strcmp(word, "protocol") == 0)
			seen = NULL;
		else {
			error_at(cursor, column, "expected user, group, from, to, port, protocol or outgoing, found '%s'", word);
			break;
		}
		if ((seen != NULL && *seen) || (seen == NULL && rule.protocols != 0)) {
			error_at(cursor, column, "'%s' is already given in this rule: list its values with commas", word);
			break;
		}
		if (seen != NULL)
			*seen = true;
		if (seen == &seen_user)
			parse_list(cursor, "user", "a user name", add_user, &rule);
		else if (seen == &seen_group)
			parse_list(cursor, "group", "a group name", add_group, &rule);
		else if (seen == &rule.has_from)
			parse_list(cursor, "from", "a network", add_source, &rule);
		else if (seen == &rule.has_to)
			parse_list(cursor, "to", "a destination", add_destination, &rule);
		else if (seen == &rule.has_port)
			parse_list(cursor, "port", "a port", add_port, &rule);
		else
			parse_list(cursor, "protocol", "http, socks5 or jump", NULL, &rule);
		if (!cursor->failed && next_is(cursor, '=')) {
			error_at(cursor, cursor->at, "expected a matcher, found '='");
			break;
		}
	}
	if (cursor->failed) {
		rules->item_count = rule.first_item;
		rules->net_count = first_net;
		return;
	}
	rule.has_who = seen_user || seen_group;
	rule.item_count = (uint16_t)(rules->item_count - rule.first_item); /* a line holds fewer than 2,048 */
	rules->rules[rules->rule_count++] = rule;
}

static void parse_line(struct cursor *cursor)
{
	char word[TOKEN_MAX_BYTES];
	size_t column;

	if (at_end(cursor))
		return;
	if (next_word(cursor, word, sizeof(word), &column) == 0) {
		if (!cursor->failed)
			error_at(cursor, column, "expected allow, deny, via or group, found %s", found(cursor, word));
		return;
	}
	if (strcmp(word, "allow") == 0)
		parse_rule(cursor, RULE_VERB_ALLOW, column);
	else if (strcmp(word, "deny") == 0)
		parse_rule(cursor, RULE_VERB_DENY, column);
	else if (strcmp(word, "via") == 0)
		parse_rule(cursor, RULE_VERB_VIA, column);
	else if (strcmp(word, "group") == 0)
		parse_group(cursor);
	else
		error_at(cursor, column, "expected allow, deny, via or group, found '%s'", word);
}

/* An empty table in rules' own storage: every entry is written whole before it is counted, so the counts are all there is. */
static void empty(struct rules *rules)
{
	rules->rules = rules->tables.rules;
	rules->items = rules->tables.items;
	rules->nets = rules->tables.nets;
	rules->groups = rules->tables.groups;
	rules->member_offsets = rules->tables.member_offsets;
	rules->parents = rules->tables.parents;
	rules->text = rules->tables.text;
	rules->compiled = false;
	rules->rule_count = rules->group_count = rules->parent_count = 0;
	rules->item_count = rules->net_count = rules->member_count = rules->text_len = 0;
	rules->has_login = false;
}

static void parse_one_line(struct cursor *cursor, const char *line, size_t len)
{
	if (byte_classes['a'] != BYTE_IN_WORD)
		classify_bytes();
	cursor->line = line;
	cursor->len = len;
	cursor->at = 0;
	cursor->number++;
	cursor->failed = false;
	if (cursor->len > 0 && cursor->line[cursor->len - 1] == '\r')
		cursor->len--;
	if (cursor->len > RULES_LINE_MAX_BYTES)
		error_at(cursor, RULES_LINE_MAX_BYTES, "line longer than %d bytes", RULES_LINE_MAX_BYTES);
	else
		parse_line(cursor);
}

/* The complete lines of text (all of it when final); returns the bytes taken. */
static size_t parse_lines(struct cursor *cursor, const char *text, size_t len, bool final)
{
	size_t start = 0;

	while (start < len) {
		const char *newline = memchr(text + start, '\n', len - start);
		if (newline == NULL && !final)
			break;
		size_t end = newline != NULL ? (size_t)(newline - text) : len;
		parse_one_line(cursor, text + start, end - start);
		start = end < len ? end + 1 : len;
	}
	return start;
}

unsigned rules_parse(struct rules *rules, const char *text, size_t len, const char *name, struct rules_errors *errors)
{
	struct cursor cursor = { .rules = rules, .errors = errors, .name = name };

	errors->count = 0;
	empty(rules);
	rules->source = text;
	rules->source_len = len;
	(void)parse_lines(&cursor, text, len, true);
	return errors->count;
}

void rules_text_begin(struct rules_text *text, struct rules *rules, const char *name, struct rules_errors *errors)
{
	*text = (struct rules_text){ .rules = rules, .errors = errors, .name = name };
	errors->count = 0;
	empty(rules);
	rules->source = NULL;
}

size_t rules_text_feed(struct rules_text *text, const char *buffer, size_t len, bool final)
{
	struct cursor cursor = { .rules = text->rules, .errors = text->errors, .name = text->name,
				 .number = text->line_number };
	size_t taken = parse_lines(&cursor, buffer, len, final);
	text->line_number = cursor.number;
	return taken;
}

void rules_text_line(struct rules_text *text, const char *line, size_t len)
{
	struct cursor cursor = { .rules = text->rules, .errors = text->errors, .name = text->name,
				 .number = text->line_number };
	parse_one_line(&cursor, line, len);
	text->line_number = cursor.number;
}

unsigned rules_error(struct rules_errors *errors, const char *format, ...)
{
	va_list args;

	va_start(args, format);
	if (errors->count++ < RULES_ERRORS_MAX)
		(void)vsnprintf(errors->messages[errors->count - 1], RULES_ERROR_MAX_BYTES, format, // NOLINT(clang-analyzer-valist.Uninitialized)
				args);
	va_end(args);
	return errors->count;
}

unsigned rules_refuse_exposed_secret(const struct rules *rules, unsigned mode, const char *path,
				     struct rules_errors *errors)
{
	/* A password readable by every local user is no secret: refuse the file until it is one. */
	if (errors->count == 0 && rules->has_login && (mode & (S_IRWXG | S_IRWXO)) != 0)
		(void)rules_error(errors, "rules file %s: holds a parent's password but is readable by group or others "
			   "(chmod go= it, or hand it over with LoadCredential=)", path);
	return errors->count;
}
