/* options: see options.h. */
#include "options.h"

#include "number.h"
#include "offline.h"
#include "rules_file.h"
#include "rules_image.h"
#include "signals.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TUNNELD_VERSION
#define TUNNELD_VERSION "0.1.0"
#endif

#define TIMEOUT_MAX_SECONDS 86400
#define DEFAULT_HEADER_TIMEOUT_SECONDS 10
#define DEFAULT_CONNECT_TIMEOUT_SECONDS 10
#define DEFAULT_MAX_TUNNELS 256            /* as tunneld.socket's MaxConnections= */
#define DEFAULT_MAX_TUNNELS_PER_SOURCE 32  /* and MaxConnectionsPerSource= */

static void usage(FILE *stream)
{
	(void)fprintf(stream,
		      "usage: tunneld [options]\n"
		      "One HTTP CONNECT or SOCKS5 tunnel on stdin/stdout, for systemd Accept=yes, inetd, ssh or stunnel.\n"
		      "\n"
		      "  -p, --allow-port LIST       ports CONNECT may reach: 22,443,8000-8999 or * (default 443)\n"
		      "  -a, --allow-dest CIDR       destinations to permit, over the built-in denies\n"
		      "  -d, --deny-dest CIDR        destinations to refuse\n"
		      "  -H, --allow-host PATTERN    host names to permit: name or *.domain (default any)\n"
		      "  -A, --auth-file FILE        require Basic proxy auth against htpasswd-style FILE\n"
		      "  -t, --header-timeout SEC    time to receive the request head (default 10)\n"
		      "  -c, --connect-timeout SEC   time to resolve and connect (default 10)\n"
		      "  -i, --idle-timeout SEC      close a tunnel idle this long, 0 = never (default 0)\n"
		      "  -l, --log TARGET            auto, journal, syslog, stderr, none or file:/path (default auto)\n"
		      "  -F, --log-format FORMAT     tunneld or squid (Squid's access.log line; default tunneld)\n"
		      "      --log-open              a record when a tunnel opens too; both carry the tunnel's id\n"
		      "  -P, --proxy-protocol        the connection starts with a PROXY v1 or v2 header\n"
		      "  -S, --protocols LIST        protocols served: http, socks5 or http,socks5 (default both)\n"
		      "  -N, --nat64-prefix CIDR     this site's NAT64 prefix: judge its addresses as IPv4 too\n"
		      "  -R, --rules FILE            who may reach what, first match wins (instead of -p -a -d -H)\n"
		      "      --outgoing-address ADDRESS[,ADDRESS] | same\n"
		      "                              leave from this address (one per family), or the one the client reached\n"
		      "      --check                 check the options and the rules file, then exit\n"
		      "      --explain WORD...       say what the rules decide for user= from= to=HOST:PORT protocol=\n"
		      "      --compile IMAGE         check the rules file and write its compiled image, for --rules IMAGE\n"
		      "      --jump [HOST:PORT]      sshd's forced command: stdin/stdout are the stream to HOST:PORT, or to\n"
		      "                              $SSH_ORIGINAL_COMMAND's; no request is read (tunneld(8) \"As an SSH jump host\")\n"
		      "      --user NAME             with --jump: the user the rules judge and the record names (default: login)\n"
		      "Handed a listening socket (systemd Accept=no), tunneld accepts and forks a process per tunnel:\n"
		      "      --max-tunnels N         tunnels at once; more are turned away (default 256)\n"
		      "      --max-tunnels-per-source N  tunnels at once from one address, 0 = any (default 32)\n"
		      "      --exit-idle-time SEC    exit after this long with no tunnel, 0 = never (default 0)\n"
		      "      --reload PID            ask the acceptor PID to reload, wait for its answer (ExecReload=)\n"
		      "  -h, --help                  this text\n"
		      "  -V, --version               the version\n"
		      "\n"
		      "See tunneld(8).\n");
}

static int parse_seconds(const char *text, int min, int max, int *out)
{
	long value;
	if (parse_decimal(text, min, max, &value) < 0)
		return -1;
	*out = (int)value;
	return 0;
}

/* "http", "socks5", or both, comma-separated. */
static int parse_protocols(const char *list, struct options *options)
{
	char copy[64];
	char *saveptr = NULL;

	if (strlen(list) >= sizeof(copy))
		return -1;
	memcpy(copy, list, strlen(list) + 1);
	options->serve_http = options->serve_socks5 = false;
	for (char *name = strtok_r(copy, ",", &saveptr); name != NULL; name = strtok_r(NULL, ",", &saveptr)) {
		if (strcmp(name, "http") == 0)
			options->serve_http = true;
		else if (strcmp(name, "socks5") == 0)
			options->serve_socks5 = true;
		else
			return -1;
	}
	return options->serve_http || options->serve_socks5 ? 0 : -1;
}

void exit_usage(const char *format, ...)
{
	va_list args;

	signals_finishing(); /* a log sink that blocks cannot hold this exit either */
	va_start(args, format);
	log_verrorf(format, args);
	va_end(args);
	if (log_stderr_is_persons()) /* a jump's: the forced command is the admin's; the person is told no more */
		log_tell_person("-", "500 Internal Server Error: the proxy's configuration has an error; its log says which");
	exit(EXIT_USAGE);
}

enum { OPTION_CHECK = 256, OPTION_EXPLAIN, OPTION_COMPILE, OPTION_MAX_TUNNELS, OPTION_MAX_TUNNELS_PER_SOURCE,
       OPTION_EXIT_IDLE_TIME, OPTION_RELOAD, OPTION_JUMP, OPTION_USER, OPTION_OUTGOING,
       OPTION_LOG_OPEN };

static const struct option long_options[] = {
	{ "allow-port", required_argument, NULL, 'p' },
	{ "allow-dest", required_argument, NULL, 'a' },
	{ "deny-dest", required_argument, NULL, 'd' },
	{ "allow-host", required_argument, NULL, 'H' },
	{ "auth-file", required_argument, NULL, 'A' },
	{ "header-timeout", required_argument, NULL, 't' },
	{ "connect-timeout", required_argument, NULL, 'c' },
	{ "idle-timeout", required_argument, NULL, 'i' },
	{ "log", required_argument, NULL, 'l' },
	{ "log-format", required_argument, NULL, 'F' },
	{ "log-open", no_argument, NULL, OPTION_LOG_OPEN },
	{ "proxy-protocol", no_argument, NULL, 'P' },
	{ "nat64-prefix", required_argument, NULL, 'N' },
	{ "protocols", required_argument, NULL, 'S' },
	{ "rules", required_argument, NULL, 'R' },
	{ "check", no_argument, NULL, OPTION_CHECK },
	{ "explain", no_argument, NULL, OPTION_EXPLAIN },
	{ "compile", required_argument, NULL, OPTION_COMPILE },
	{ "max-tunnels", required_argument, NULL, OPTION_MAX_TUNNELS },
	{ "max-tunnels-per-source", required_argument, NULL, OPTION_MAX_TUNNELS_PER_SOURCE },
	{ "exit-idle-time", required_argument, NULL, OPTION_EXIT_IDLE_TIME },
	{ "reload", required_argument, NULL, OPTION_RELOAD },
	{ "jump", no_argument, NULL, OPTION_JUMP },
	{ "user", required_argument, NULL, OPTION_USER },
	{ "outgoing-address", required_argument, NULL, OPTION_OUTGOING },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};


static bool is_offline_option(int value)
{
	return value == OPTION_CHECK || value == OPTION_EXPLAIN || value == OPTION_COMPILE || value == OPTION_RELOAD;
}

static bool is_jump_option(int value)
{
	return value == OPTION_JUMP;
}

/*
 * Does argv name an option that wanted() picks, spelled as getopt_long()
 * takes it: whole, or a prefix no other long option shares?
 */
static bool argv_names(int argc, char **argv, bool (*wanted)(int value))
{
	const struct option *options = long_options;

	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *name = argv[i] + 2;
		size_t len = strcspn(name, "=");
		const struct option *match = NULL;
		unsigned matches = 0;
		if (strncmp(argv[i], "--", 2) != 0 || len == 0)
			continue;
		for (const struct option *option = options; option->name != NULL; option++) {
			if (strncmp(option->name, name, len) != 0)
				continue;
			if (strlen(option->name) == len) { /* an exact match is never ambiguous */
				match = option;
				matches = 1;
				break;
			}
			match = option;
			matches++;
		}
		if (matches == 1 && wanted(match->val))
			return true;
	}
	return false;
}

bool options_offline_wanted(int argc, char **argv)
{
	return argv_names(argc, argv, is_offline_option);
}

bool options_jump_wanted(int argc, char **argv)
{
	return argv_names(argc, argv, is_jump_option);
}

/* Every error is told, as --check tells them. */
static void log_rules_errors(const struct rules_errors *errors)
{
	for (unsigned i = 0; i < errors->count && i < RULES_ERRORS_MAX; i++)
		log_error(errors->messages[i]);
	if (errors->count > RULES_ERRORS_MAX) {
		char more[64];
		(void)snprintf(more, sizeof(more), "and %u more errors", errors->count - RULES_ERRORS_MAX);
		log_error(more);
	}
}

/*
 * A file the options name (the rules, the passwords) that cannot be used.
 * Offline and in an acceptor that ends the process with EXIT_USAGE: a
 * person, or systemd, is there to be told. A connection answers its client
 * first (500 with proxy_configuration_error, SOCKS5 general failure), the
 * first error in its record, then exits with EXIT_USAGE too.
 */
static bool file_errors_are_fatal(const struct options_reader *reader)
{
	if (reader->offline || reader->acceptor)
		signals_finishing(); /* the process ends: a log sink that blocks cannot hold that exit either */
	return reader->offline || reader->acceptor;
}

/* After the errors are logged. */
static void file_unusable(struct options *options, bool fatal, const char *first_error)
{
	if (fatal)
		exit(EXIT_USAGE);
	if (options->configuration_error[0] == '\0')
		(void)snprintf(options->configuration_error, sizeof(options->configuration_error), "%s", first_error);
}

/*
 * --jump: one stream, its target named up front. What is read from a
 * client (a PROXY header, a protocol, a login) has no place in it, and sshd
 * has already said who the user is.
 */
static void check_jump(int argc, char **argv, struct options *options, const char *auth_file,
		       const struct options_reader *reader)
{
	if (reader->acceptor)
		exit_usage("--jump serves the one stream on stdin and stdout, not a listening socket (Accept=no)");
	if (auth_file != NULL)
		exit_usage("--jump and --auth-file: sshd has authenticated the user (name it with --user, or it is the "
			   "login name)");
	if (options->proxy_protocol)
		exit_usage("--jump and --proxy-protocol: a jump reads nothing before its stream");
	if (options->protocols_option)
		exit_usage("--jump and --protocols: a jump reads no request, in any protocol");
	if (options->log_target == LOG_TARGET_STDERR)
		exit_usage("--jump and --log=stderr: a jump's stderr is ssh's, which the person reads; log to the journal, "
			   "syslog or a file");
	if (optind < argc) {
		static struct request fixed;
		options->jump_target = argv[optind++];
		if (request_parse_authority(options->jump_target, strlen(options->jump_target), &fixed) < 0)
			exit_usage("--jump '%s': not a target, HOST:PORT: %s", options->jump_target, fixed.why);
	}
}

void options_parse(int argc, char **argv, struct options *options, struct rules *rules,
		   const struct options_reader *reader)
{
	const char *why = NULL;
	const char *auth_file = NULL;
	int option;

	policy_init(&options->policy);
	options->header_timeout_seconds = DEFAULT_HEADER_TIMEOUT_SECONDS;
	options->connect_timeout_seconds = DEFAULT_CONNECT_TIMEOUT_SECONDS;
	options->idle_timeout_seconds = 0;
	options->log_target = LOG_TARGET_AUTO;
	options->serve_http = true;
	options->serve_socks5 = true;
	options->acceptor.max_tunnels = DEFAULT_MAX_TUNNELS;
	options->acceptor.max_tunnels_per_source = DEFAULT_MAX_TUNNELS_PER_SOURCE;

	opterr = 0; /* getopt's own message would go to fd 2, which may be the client */
	while ((option = getopt_long(argc, argv, ":p:a:d:H:A:t:c:i:l:F:PN:S:R:hV", long_options, NULL)) != -1) {
		if (options->destination_option == NULL)
			options->destination_option = option == 'p'   ? "--allow-port"
						      : option == 'a' ? "--allow-dest"
						      : option == 'd' ? "--deny-dest"
						      : option == 'H' ? "--allow-host"
								      : NULL;
		switch (option) {
		case 'p':
			if (policy_add_ports(&options->policy, optarg, &why) < 0)
				exit_usage("bad --allow-port '%s': %s", optarg, why);
			break;
		case 'a':
		case 'd':
			if (policy_add_dest_rule(&options->policy, optarg, option == 'a' ? RULE_ALLOW : RULE_DENY, &why) < 0)
				exit_usage("bad --%s '%s': %s", option == 'a' ? "allow-dest" : "deny-dest", optarg, why);
			break;
		case 'H':
			if (policy_add_host_pattern(&options->policy, optarg, &why) < 0)
				exit_usage("bad --allow-host '%s': %s", optarg, why);
			break;
		case 'A':
			auth_file = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, 1, TIMEOUT_MAX_SECONDS, &options->header_timeout_seconds) < 0)
				exit_usage("bad --header-timeout '%s': want whole seconds, 1-86400", optarg);
			break;
		case 'c':
			if (parse_seconds(optarg, 1, TIMEOUT_MAX_SECONDS, &options->connect_timeout_seconds) < 0)
				exit_usage("bad --connect-timeout '%s': want whole seconds, 1-86400", optarg);
			break;
		case 'i':
			if (parse_seconds(optarg, 0, TIMEOUT_MAX_SECONDS, &options->idle_timeout_seconds) < 0)
				exit_usage("bad --idle-timeout '%s': want whole seconds, 0-86400", optarg);
			break;
		case 'l': {
			char message[512];
			if (log_parse_target(optarg, &options->log_target) < 0)
				exit_usage("bad --log '%s': want auto, journal, syslog, stderr, none or file:/path", optarg);
			if (!reader->offline &&
			    log_setup(options->log_target, reader->client_in, reader->client_out, message, sizeof(message)) < 0)
				exit_usage("%s", message);
			break;
		}
		case 'F':
			if (log_parse_format(optarg, &options->log_format) < 0)
				exit_usage("bad --log-format '%s': want tunneld or squid", optarg);
			log_set_format(options->log_format);
			break;
		case 'P':
			options->proxy_protocol = true;
			break;
		case 'N':
			if (policy_add_nat64_prefix(&options->policy, optarg, &why) < 0)
				exit_usage("bad --nat64-prefix '%s': %s", optarg, why);
			break;
		case 'S':
			options->protocols_option = true;
			if (parse_protocols(optarg, options) < 0)
				exit_usage("bad --protocols '%s': want http, socks5 or http,socks5", optarg);
			break;
		case 'R':
			options->rules_path = optarg;
			break;
		case OPTION_CHECK:
			break; /* options_offline_wanted() saw it: without --explain, main() checks and exits */
		case OPTION_EXPLAIN:
			options->explain = true;
			break;
		case OPTION_COMPILE:
			options->compile_to = optarg;
			break;
		case OPTION_MAX_TUNNELS:
		case OPTION_MAX_TUNNELS_PER_SOURCE: {
			long count;
			bool total = option == OPTION_MAX_TUNNELS;
			if (parse_decimal(optarg, total ? 1 : 0, ACCEPTOR_TUNNELS_LIMIT, &count) < 0)
				exit_usage("bad --%s '%s': want a whole number, %d-%d",
					   total ? "max-tunnels" : "max-tunnels-per-source", optarg, total ? 1 : 0,
					   ACCEPTOR_TUNNELS_LIMIT);
			*(total ? &options->acceptor.max_tunnels : &options->acceptor.max_tunnels_per_source) =
				(unsigned)count;
			break;
		}
		case OPTION_RELOAD:
			signals_finishing();
			exit(acceptor_request_reload(optarg));
		case OPTION_LOG_OPEN:
			options->log_open = true;
			break;
		case OPTION_JUMP:
			options->jump = true;
			break;
		case OPTION_USER:
			if (!rules_is_user_name(optarg))
				exit_usage("bad --user '%s': want letters, digits and - . _ @ +, at most %d bytes", optarg,
					   RULES_USER_NAME_MAX_BYTES);
			options->jump_user = optarg;
			break;
		case OPTION_OUTGOING:
			if (options->outgoing.set) /* one would silently replace the other: list both families in one */
				exit_usage("--outgoing-address given twice: give both families once, ADDRESS,ADDRESS");
			if (outgoing_parse(optarg, &options->outgoing, &why) < 0)
				exit_usage("bad --outgoing-address '%s': %s", optarg, why);
			break;
		case OPTION_EXIT_IDLE_TIME:
			if (parse_seconds(optarg, 0, TIMEOUT_MAX_SECONDS, &options->acceptor.exit_idle_seconds) < 0)
				exit_usage("bad --exit-idle-time '%s': want whole seconds, 0-86400", optarg);
			break;
		case 'h':
			signals_finishing(); /* stdout may be a pipe nobody reads */
			usage(stdout);
			exit(EXIT_SUCCESS);
		case 'V':
			signals_finishing();
			(void)printf("tunneld %s\n", TUNNELD_VERSION);
			exit(EXIT_SUCCESS);
		case ':':
			exit_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			exit_usage("unknown option '%s': see tunneld --help", argv[optind - 1]);
		}
	}
	if (options->jump && !options->explain)
		check_jump(argc, argv, options, auth_file, reader);
	else if (options->jump_user != NULL && !options->explain)
		exit_usage("--user names the user of a --jump; a CONNECT's user is the one it logs in as (--auth-file)");
	if (optind < argc && !options->explain)
		exit_usage("unexpected argument '%s': see tunneld --help", argv[optind]);
	if (options->rules_path != NULL && options->destination_option != NULL)
		exit_usage("%s and --rules: the rules file replaces --allow-port, --allow-dest, --deny-dest and "
			   "--allow-host; write them as rules (tunneld(8) \"RULES\")",
			   options->destination_option);
	options->acceptor.files[0] = options->rules_path;
	options->acceptor.files[1] = auth_file;
	if (auth_file != NULL) {
		char message[512];
		if (auth_load(&options->auth, auth_file, message, sizeof(message)) == 0) {
			options->auth_enabled = true;
		} else {
			bool fatal = file_errors_are_fatal(reader);
			log_error(message);
			file_unusable(options, fatal, message);
		}
	}
	if (options->compile_to != NULL && (options->rules_path == NULL || options->explain))
		exit_usage("--compile: give the rules file with --rules, and no --explain");
	if (options->rules_path != NULL) {
		static struct rules_errors errors;
		static struct rules trial;
		unsigned error_count = 0;
		/* An image is written only for a file that passes every check, the outgoing addresses' too. */
		if (options->compile_to != NULL && (error_count = rules_load(&trial, options->rules_path, &errors)) == 0)
			offline_check_outgoing(options, &trial);
		if (error_count == 0)
			error_count = options->compile_to != NULL
					      ? rules_compile(rules, options->rules_path, options->compile_to, &errors)
					      : rules_load(rules, options->rules_path, &errors);
		if (error_count == 0 && reader->offline)
			error_count = rules_image_check_source(rules, options->rules_path, &errors);
		if (error_count > 0) {
			bool fatal = file_errors_are_fatal(reader);
			log_rules_errors(&errors);
			file_unusable(options, fatal, errors.messages[0]);
		}
	}
}

