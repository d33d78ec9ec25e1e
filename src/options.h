/*
 * options: the command line, read once, in one getopt_long() switch, each
 * value range-checked, then the combinations refused, then the files the
 * options name read (tunneld(8) "OPTIONS"). A bad option ends the process
 * with EXIT_USAGE; a file that cannot be used ends it too offline or in an
 * acceptor, and is kept for the connection to answer otherwise.
 */
#ifndef TUNNELD_OPTIONS_H
#define TUNNELD_OPTIONS_H

#include "acceptor.h"
#include "auth.h"
#include "log.h"
#include "policy.h"
#include "rules.h"

#include <stdbool.h>

#define EXIT_USAGE 2 /* bad option or configuration: the client got no 200 */

struct options {
	bool auth_enabled;
	int header_timeout_seconds;
	int connect_timeout_seconds;
	int idle_timeout_seconds;
	enum log_target log_target;
	enum log_format log_format;
	bool log_open;           /* --log-open: a record when the tunnel opens, and an id in both */
	bool proxy_protocol;
	bool serve_http;
	bool serve_socks5;
	bool protocols_option;   /* --protocols was given */
	const char *rules_path;  /* --rules: read and parsed at every start, into the rules given */
	bool explain;            /* --explain, with words after the options */
	const char *compile_to;  /* --compile: where the rules file's image goes */
	const char *destination_option; /* the first of -p -a -d -H given, which --rules replaces */
	bool jump;               /* --jump: no request; the target is jump_target (tunneld(8) "AS AN SSH JUMP HOST") */
	const char *jump_target; /* the operand, or NULL: $SSH_ORIGINAL_COMMAND */
	const char *jump_user;   /* --user, or NULL: the login name */
	struct outgoing outgoing; /* --outgoing-address: where tunnels leave from, unless a rule says */
	struct acceptor_limits acceptor; /* used only when handed a listening socket (Accept=no) */
	/* The large tables last: each tunnel writes the fields above, and an idle one's memory is the pages it wrote. */
	struct policy policy;
	struct auth auth;
	/* A file the options name that cannot be used: its first error, for a connection to answer with; or empty. */
	char configuration_error[512];
};

/* Who reads the options: a person (--check, --explain, --compile), an acceptor, or one connection on client_in/out. */
struct options_reader {
	bool offline;
	bool acceptor;
	int client_in;
	int client_out;
};

/* Does argv ask for --check, --explain, --compile or --reload, spelled as getopt_long() takes them? */
bool options_offline_wanted(int argc, char **argv);

/* Does argv ask for --jump? Before the options are read: from then on, fd 2 is the person's. */
bool options_jump_wanted(int argc, char **argv);

/*
 * Reads argv into options and the rules file, if one is named, into rules.
 * --help, --version and --reload end the process here; so does a bad
 * option (EXIT_USAGE, the message logged).
 */
void options_parse(int argc, char **argv, struct options *options, struct rules *rules,
		   const struct options_reader *reader);

/* A usage error: said on the log, and the process ends with EXIT_USAGE. */
void __attribute__((noreturn, format(printf, 1, 2))) exit_usage(const char *format, ...);

#endif
