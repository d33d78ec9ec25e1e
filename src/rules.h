/*
 * rules: who may reach what, from a file a person can read aloud
 * (tunneld(8) "RULES"). One rule a line, first match wins:
 *
 *	group ops = alice bob
 *	allow group ops to *.internal port 22
 *	allow from 10.1.0.0/16 to public port 443
 *	via http://proxy.partner.example:3128 to partner.example, *.partner.example
 *	deny
 *
 * The parser and the judge are pure: text in, a table out; a table and a
 * request in, a verdict out. No I/O (rules_file.h reads the file), so both can be
 * fuzzed and explained without a connection.
 */
#ifndef TUNNELD_RULES_H
#define TUNNELD_RULES_H

#include "outgoing.h"
#include "policy.h"
#include "request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RULES_FILE_MAX_BYTES ((size_t)1024 * 1024)
#define RULES_LINE_MAX_BYTES 4096
#define RULES_MAX 8192
#define RULE_ITEMS_MAX 65536
#define RULES_TEXT_MAX_BYTES ((size_t)512 * 1024)
#define RULES_GROUPS_MAX 256
#define RULES_PARENTS_MAX 64
#define RULES_ERRORS_MAX 16
#define RULES_ERROR_MAX_BYTES 256
#define PARENT_LOGIN_MAX_BYTES 255   /* RFC 1929's limit, which Basic then also has */
#define PARENT_DISPLAY_MAX_BYTES (HOST_MAX_BYTES + 24)
#define RULES_READ_BUFFER_BYTES (2 * RULES_LINE_MAX_BYTES + 2) /* a file is read through it, never held whole */

enum rule_verb { RULE_VERB_ALLOW, RULE_VERB_DENY, RULE_VERB_VIA };

enum parent_scheme { PARENT_HTTP, PARENT_SOCKS5 };

/* An upstream proxy a via rule sends tunnels through. */
struct parent {
	enum parent_scheme scheme;
	enum host_kind host_kind;
	char host[HOST_MAX_BYTES + 2];      /* as connected: no brackets */
	unsigned port;
	bool has_login;
	char user[PARENT_LOGIN_MAX_BYTES + 1];
	char password[PARENT_LOGIN_MAX_BYTES + 1];
	char display[PARENT_DISPLAY_MAX_BYTES]; /* "http://host:port", never the login: for records */
};

enum rule_item_kind {
	ITEM_USER,        /* who: a user name */
	ITEM_GROUP,       /* who: a group's members */
	ITEM_SOURCE_NET,  /* from: the client's network */
	ITEM_DEST_NAME,   /* to: a name, *.domain or an IP literal, as asked */
	ITEM_DEST_NET,    /* to: an address range, judged on each address */
	ITEM_DEST_PUBLIC, /* to: an address that is globally reachable */
	ITEM_DEST_ANY,    /* to: * */
	ITEM_PORT,
};

/* Compact, because every connection builds the table anew: its pages are most of the cost. */
struct rule_net {
	uint8_t family;           /* AF_INET or AF_INET6 */
	uint8_t prefix;
	uint8_t address[16];
};

struct rule_item {
	uint8_t kind;             /* enum rule_item_kind */
	union {
		uint32_t name;    /* offset into rules->text, NUL-terminated */
		uint32_t group;
		uint32_t net;     /* index into rules->nets */
		struct port_range ports;
	} u;
};

#define RULE_PROTOCOL_HTTP 1u
#define RULE_PROTOCOL_SOCKS5 2u
#define RULE_PROTOCOL_JUMP 4u   /* tunneld --jump: sshd's forced command */

struct rule {
	uint32_t line;
	uint32_t first_item;
	uint16_t item_count;
	uint8_t verb;             /* enum rule_verb */
	uint8_t parent;           /* for via: index into rules->parents */
	uint8_t protocols;        /* RULE_PROTOCOL_* bits; 0: any */
	bool has_who, has_from, has_to, has_port;
	bool outgoing_same;       /* "outgoing same": the address the client reached */
	uint8_t outgoing_nets;    /* "outgoing ADDRESS[,ADDRESS]": 0 to 2 addresses, one per family, */
	uint32_t outgoing_first_net; /* at nets[outgoing_first_net] on, as /32 and /128 */
};

struct rules_group {
	uint32_t name;            /* offset into text */
	uint32_t first_member;    /* offsets into text, in member_offsets */
	uint32_t member_count;
};

/* Where rules_parse() and rules_load() write a text file's table. */
struct rules_tables {
	struct rule rules[RULES_MAX];
	struct rule_item items[RULE_ITEMS_MAX];
	struct rule_net nets[RULE_ITEMS_MAX];
	struct rules_group groups[RULES_GROUPS_MAX];
	uint32_t member_offsets[RULE_ITEMS_MAX];
	struct parent parents[RULES_PARENTS_MAX];
	char text[RULES_TEXT_MAX_BYTES];
};

/*
 * A table: its arrays are in tables when parsed from text, or in a
 * compiled image read from its file (rules_image.h).
 */
struct rules {
	unsigned rule_count;
	struct rule *rules;
	uint32_t item_count;
	struct rule_item *items;
	uint32_t net_count;
	struct rule_net *nets;
	unsigned group_count;
	struct rules_group *groups;
	uint32_t member_count;
	uint32_t *member_offsets;
	unsigned parent_count;
	struct parent *parents;
	bool has_login;           /* some parent's password is in the file */
	bool compiled;            /* the arrays are an image's */
	uint32_t text_len;
	char *text;
	const char *source;       /* the text parsed, when there is any to keep (rules_parse(), an image), or NULL */
	size_t source_len;
	const char *path;         /* rules_load()'s file */
	struct rules_tables tables;
};

struct rules_errors {
	unsigned count;           /* every error found; the first RULES_ERRORS_MAX are kept */
	char messages[RULES_ERRORS_MAX][RULES_ERROR_MAX_BYTES];
};

/*
 * Parses text (len bytes, need not end in NUL) into rules, emptied first.
 * Each error is kept as "NAME:LINE:COL: what was expected, found what";
 * parsing goes on after an error, so one run names them all. Returns the
 * number of errors: 0 means the table is complete.
 */
unsigned rules_parse(struct rules *rules, const char *text, size_t len, const char *name,
		     struct rules_errors *errors);

/*
 * The same, for a text read a piece at a time (rules_file.c): begin, then
 * feed each piece read, which parses its complete lines (all of it when
 * final) and returns the bytes it took; a line too long for the caller's
 * buffer is given whole to rules_text_line(), which says so.
 */
struct rules_text {
	struct rules *rules;
	struct rules_errors *errors;
	const char *name;
	unsigned line_number;
};
void rules_text_begin(struct rules_text *text, struct rules *rules, const char *name, struct rules_errors *errors);
size_t rules_text_feed(struct rules_text *text, const char *buffer, size_t len, bool final);
void rules_text_line(struct rules_text *text, const char *line, size_t len);

/* One more error, kept while there is room ("NAME:..." as the caller words it); the error count. */
unsigned __attribute__((format(printf, 2, 3))) rules_error(struct rules_errors *errors, const char *format, ...);

/* A file (mode) holding a parent's password must not be readable by group or others: the error count after saying so. */
unsigned rules_refuse_exposed_secret(const struct rules *rules, unsigned mode, const char *path,
				     struct rules_errors *errors);

/* Who asks for what, as far as it is known. */
struct rules_subject {
	const char *user;         /* NULL: no login */
	bool has_source;
	int source_family;        /* AF_INET or AF_INET6 */
	uint8_t source[16];
	unsigned protocol;        /* RULE_PROTOCOL_HTTP, _SOCKS5 or _JUMP */
	const char *host;         /* as asked: a name or an IP literal without brackets */
	bool host_is_ip_literal;
	bool host_is_loopback_name; /* policy_is_loopback_name(): judged as 127.0.0.1 and ::1, never sent via a parent */
	unsigned port;
};

enum rules_action {
	RULES_ALLOW,
	RULES_DENY,
	RULES_VIA,
	RULES_NEEDS_ADDRESSES,    /* before DNS only: the addresses decide */
};

struct rules_verdict {
	enum rules_action action;
	int rule;                 /* index of the deciding rule, or -1 (none matched, or a built-in deny) */
	const char *why;          /* static text, for the record and --explain */
};

/*
 * Before any lookup: what the name alone decides. RULES_NEEDS_ADDRESSES
 * means resolve, then judge each address; RULES_ALLOW is never returned
 * for a name, since the built-in denies still need its addresses.
 */
enum rules_action rules_judge_request(const struct rules *rules, const struct policy *policy,
				      const struct rules_subject *subject, struct rules_verdict *verdict);

/*
 * One resolved address (or, address NULL, none: the lookup failed). An
 * IPv6 address that carries an IPv4 address must be allowed in both forms,
 * and an allowed address in a built-in deny needs a rule whose range names
 * it at least as narrowly.
 */
enum rules_action rules_judge_address(const struct rules *rules, const struct policy *policy,
				      const struct rules_subject *subject, const struct sockaddr *address,
				      struct rules_verdict *verdict);

/* The source line of rule index (for records and --explain), or 0. */
unsigned rules_line(const struct rules *rules, int rule);

/* Where rule (an index, or -1) says its tunnels leave from, into out: false when it says nothing. */
bool rules_outgoing(const struct rules *rules, int rule, struct outgoing *out);

/* Does any rule say where its tunnels leave from? The sandbox lets bind(2) through only then. */
bool rules_name_outgoing(const struct rules *rules);

#define RULES_USER_NAME_MAX_BYTES 64
/* Could a rule name this user: letters, digits and - . _ @ +, 1 to 64 bytes? */
bool rules_is_user_name(const char *text);


#endif
