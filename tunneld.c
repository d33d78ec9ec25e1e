/*
 * tunneld: a one-shot HTTP CONNECT tunnel helper.
 *
 * An activator (systemd Accept=yes, xinetd, ssh, stunnel, socat) hands this
 * process ONE client connection on fds 0 and 1. It reads one CONNECT request
 * (HTTP, or SOCKS5 when the first byte says so), checks it against the
 * policy, connects to the target, answers 200 (or SOCKS5's success) and
 * relays until both directions are done, then logs one record and exits.
 * One process per connection: no state is shared between tunnels, and a
 * crash or a leak ends with its connection.
 *
 * This file reads as that life, top to bottom. The stages are in src/:
 * proxy_protocol, request and socks5 (the parsers), auth and policy (who may ask
 * for what), connector (resolve and connect), relay (the poll loop),
 * response (the wire table), log, signals.
 *
 * Two rules hold everywhere: every wait is a signals_poll(), so a stop
 * signal ends any phase at once (signals.h); memory handed to the resolver
 * thread is never on a stack nor freed (connector.h). Every way out is
 * finish(), and the man page, tunneld(8), is the contract the code cites.
 */
#include "src/acceptor.h"
#include "src/auth.h"
#include "src/clock.h"
#include "src/config_file.h"
#include "src/connector.h"
#include "src/log.h"
#include "src/number.h"
#include "src/policy.h"
#include "src/proxy_protocol.h"
#include "src/relay.h"
#include "src/request.h"
#include "src/response.h"
#include "src/rules.h"
#include "src/rules_image.h"
#include "src/sandbox.h"
#include "src/signals.h"
#include "src/socks5.h"
#include "src/systemd.h"
#include "src/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TUNNELD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TUNNELD_ASAN)
#define TUNNELD_ASAN 1
#endif
#ifdef TUNNELD_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#ifndef TUNNELD_VERSION
#define TUNNELD_VERSION "0.1.0"
#endif

#define EXIT_USAGE 2                 /* bad option or configuration: the client got no 200 */
#define TIMEOUT_MAX_SECONDS 86400
#define DEFAULT_HEADER_TIMEOUT_SECONDS 10
#define DEFAULT_CONNECT_TIMEOUT_SECONDS 10
#define DEFAULT_MAX_TUNNELS 256            /* as tunneld.socket's MaxConnections= */
#define DEFAULT_MAX_TUNNELS_PER_SOURCE 32  /* and MaxConnectionsPerSource= */
#define LINGER_AFTER_ERROR_MS 1000   /* read-and-discard after a refusal, so no RST eats it... */
#define LINGER_DISCARD_MAX_BYTES ((size_t)64 * 1024) /* ...but a flood is not read to its end */
#define RESPONSE_WRITE_TIMEOUT_MS 5000
#define TLS_HANDSHAKE_RECORD 0x16    /* first byte of a TLS ClientHello record */

struct options {
	struct policy policy;
	bool auth_enabled;
	struct auth auth;
	int header_timeout_seconds;
	int connect_timeout_seconds;
	int idle_timeout_seconds;
	enum log_target log_target;
	enum log_format log_format;
	bool proxy_protocol;
	bool serve_http;
	bool serve_socks5;
	const char *rules_path;  /* --rules: read and parsed at every start, into rules below */
	bool explain;            /* --explain, with words after the options */
	const char *compile_to;  /* --compile: where the rules file's image goes */
	const char *destination_option; /* the first of -p -a -d -H given, which --rules replaces */
	struct acceptor_limits acceptor; /* used only when handed a listening socket (Accept=no) */
};

static struct rules rules;

enum protocol { PROTOCOL_HTTP, PROTOCOL_SOCKS5 };

/* The client connection: fds and the flags to give back (tunneld(8) "DESCRIPTION"). */
struct client {
	int in;
	int out;
	int saved_in_flags;
	int saved_out_flags;
	char address[INET6_ADDRSTRLEN + 16];
	enum protocol protocol;  /* what the client speaks: how a refusal is answered */
	int socks5_reply;        /* the SOCKS5 REP it was sent, or -1 */
};

static struct client client = { .in = STDIN_FILENO, .out = STDOUT_FILENO, .saved_in_flags = -1,
				 .saved_out_flags = -1, .socks5_reply = -1 };

/*
 * What of the sandbox this kernel refused: a known condition (a container
 * that forbids Landlock), said in each record's journal fields, or once by
 * an acceptor for all its tunnels, never as a line of its own per tunnel.
 */
static struct sandbox_report sandbox;
static bool sandbox_gaps_told;

/* The way to the target the policy chose, for the response and the record. */
static struct {
	int rule;                /* the deciding rule of the rules file, or -1 */
	const char *via;         /* the parent proxy's URL less its login, or NULL: direct */
	int received_status;     /* an HTTP parent's refusal, for Proxy-Status */
} hop = { .rule = -1 };

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
		      "  -P, --proxy-protocol        the connection starts with a PROXY v1 or v2 header\n"
		      "  -S, --protocols LIST        protocols served: http, socks5 or http,socks5 (default both)\n"
		      "  -N, --nat64-prefix CIDR     this site's NAT64 prefix: judge its addresses as IPv4 too\n"
		      "  -R, --rules FILE            who may reach what, first match wins (instead of -p -a -d -H)\n"
		      "      --check                 check the options and the rules file, then exit\n"
		      "      --explain WORD...       say what the rules decide for user= from= to=HOST:PORT protocol=\n"
		      "      --compile IMAGE         check the rules file and write its compiled image, for --rules IMAGE\n"
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

/* --check and --explain talk to a person on stderr and stdout: no connection, no log sink. */
static bool offline_mode;

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
 * Offline and in the acceptor that ends the process with EXIT_USAGE: a
 * person, or systemd, is there to be told. A connection answers its client
 * first (500 with proxy_configuration_error, SOCKS5 general failure), the
 * first error in its record, then exits with EXIT_USAGE too.
 */
static char configuration_error[RULES_ERROR_MAX_BYTES];
static int exit_status = EXIT_SUCCESS;
static bool serving_as_acceptor; /* handed listening sockets: no client yet to answer */

static void before_logging_file_errors(void)
{
	if (offline_mode || serving_as_acceptor)
		signals_finishing(); /* the process ends: a log sink that blocks cannot hold that exit either */
}

/* After the errors are logged. */
static void file_unusable(const char *first_error)
{
	if (offline_mode || serving_as_acceptor)
		exit(EXIT_USAGE);
	if (configuration_error[0] == '\0')
		(void)snprintf(configuration_error, sizeof(configuration_error), "%s", first_error);
	exit_status = EXIT_USAGE;
}

static void __attribute__((noreturn, format(printf, 1, 2))) exit_usage(const char *format, ...)
{
	va_list args;

	signals_finishing(); /* a log sink that blocks cannot hold this exit either */
	va_start(args, format);
	log_verrorf(format, args);
	va_end(args);
	exit(EXIT_USAGE);
}

enum { OPTION_CHECK = 256, OPTION_EXPLAIN, OPTION_COMPILE, OPTION_MAX_TUNNELS, OPTION_MAX_TUNNELS_PER_SOURCE,
       OPTION_EXIT_IDLE_TIME, OPTION_RELOAD };

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
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};


/*
 * Does argv ask for --check or --explain, spelled as getopt_long() takes
 * them: whole, or any prefix no other long option shares?
 */
static bool wants_offline_mode(int argc, char **argv, const struct option *options)
{
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
		if (matches == 1 && (match->val == OPTION_CHECK || match->val == OPTION_EXPLAIN ||
				     match->val == OPTION_COMPILE || match->val == OPTION_RELOAD))
			return true;
	}
	return false;
}

static void parse_options(int argc, char **argv, struct options *options)
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
			if (!offline_mode && log_setup(options->log_target, client.in, client.out, message, sizeof(message)) < 0)
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
			if (parse_protocols(optarg, options) < 0)
				exit_usage("bad --protocols '%s': want http, socks5 or http,socks5", optarg);
			break;
		case 'R':
			options->rules_path = optarg;
			break;
		case OPTION_CHECK:
			break; /* wants_offline_mode() saw it: without --explain, main() checks and exits */
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
			before_logging_file_errors();
			log_error(message);
			file_unusable(message);
		}
	}
	if (options->compile_to != NULL && (options->rules_path == NULL || options->explain))
		exit_usage("--compile: give the rules file with --rules, and no --explain");
	if (options->rules_path != NULL) {
		static struct rules_errors errors;
		unsigned error_count = options->compile_to != NULL
					       ? rules_compile(&rules, options->rules_path, options->compile_to, &errors)
					       : rules_load(&rules, options->rules_path, &errors);
		if (error_count == 0 && offline_mode)
			error_count = rules_image_check_source(&rules, options->rules_path, &errors);
		if (error_count > 0) {
			before_logging_file_errors();
			log_rules_errors(&errors);
			file_unusable(errors.messages[0]);
		}
	}
}

/*
 * systemd's native passing. Accept=yes without StandardInput=socket: one
 * connected stream socket as fd 3, which serves as the client. Accept=no:
 * listening stream sockets from fd 3 on, and tunneld becomes the acceptor
 * (src/acceptor.h); their count is returned. libsystemd is opened only when
 * LISTEN_FDS is set.
 */
static int adopt_passed_sockets(bool *unusable)
{
	*unusable = false;
	if (getenv("LISTEN_FDS") == NULL)
		return 0;
	int count = systemd_listen_fds(1);
	if (count == 1 && systemd_is_socket(3, AF_UNSPEC, SOCK_STREAM, 0) > 0) {
		client.in = 3;
		client.out = 3;
		return 0;
	}
	*unusable = count > 0; /* until each proves to be a listening stream socket */
	if (count < 1 || count > ACCEPTOR_MAX_LISTENERS)
		return 0;
	for (int fd = 3; fd < 3 + count; fd++)
		if (systemd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			return 0;
	*unusable = false;
	return count;
}

/*
 * O_NONBLOCK lets one poll() loop serve both directions without a blocked
 * write stalling the other. It is a flag of the open file, which an ssh pipe
 * shares with its owner, so it is given back before exit. fds 0 and 1 are
 * often one open file (inetd, systemd, stunnel): both are read before either
 * is changed, or fd 1 would "save" the flag set through fd 0.
 */
static void make_client_nonblocking(void)
{
	int on = 1;
	/* Urgent data is an ordinary byte, from the head on (tunneld(8) "The relay"); not a socket: ENOTSOCK. */
	(void)setsockopt(client.in, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on));
	client.saved_in_flags = fcntl(client.in, F_GETFL);
	if (client.out != client.in)
		client.saved_out_flags = fcntl(client.out, F_GETFL);
	if (client.saved_in_flags >= 0)
		(void)fcntl(client.in, F_SETFL, client.saved_in_flags | O_NONBLOCK);
	if (client.saved_out_flags >= 0)
		(void)fcntl(client.out, F_SETFL, client.saved_out_flags | O_NONBLOCK);
}

static void restore_client_flags(void)
{
	if (client.saved_in_flags >= 0)
		(void)fcntl(client.in, F_SETFL, client.saved_in_flags);
	if (client.saved_out_flags >= 0)
		(void)fcntl(client.out, F_SETFL, client.saved_out_flags);
}

/* Environment values are the activator's, but they end up in log lines: keep them to address characters. */
static bool is_address_text(const char *text)
{
	size_t len = strlen(text);
	return len > 0 && len < INET6_ADDRSTRLEN && strspn(text, "0123456789abcdefABCDEF.:") == len;
}

static bool is_port_text(const char *port)
{
	return port != NULL && *port != '\0' && strlen(port) <= 5 && strspn(port, "0123456789") == strlen(port);
}

/* "host:port", "[v6]:port", or the host alone when the port is unknown. */
static void format_host_port(const char *host, const char *port, char *out, size_t size)
{
	bool v6 = strchr(host, ':') != NULL;
	(void)snprintf(out, size, "%s%s%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "", is_port_text(port) ? ":" : "",
		       is_port_text(port) ? port : "");
}

/* An IP address without its port, as text in out. */
static const char *address_text(const struct sockaddr *address, char *out, size_t size)
{
	const void *bytes = address->sa_family == AF_INET6
				    ? (const void *)&((const struct sockaddr_in6 *)(const void *)address)->sin6_addr
				    : (const void *)&((const struct sockaddr_in *)(const void *)address)->sin_addr;
	return inet_ntop(address->sa_family, bytes, out, (socklen_t)size);
}

/* The address a socket is connected to, without its port, as text in out; NULL if it has none. */
static const char *peer_of(int fd, char *out, size_t size)
{
	struct sockaddr_storage peer = { 0 };
	socklen_t peer_len = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0)
		return NULL;
	return address_text((struct sockaddr *)&peer, out, size);
}

/* The first of these that applies names the client (tunneld(8) "LOGGING"). */
static void identify_client(void)
{
	const char *host = getenv("REMOTE_ADDR");
	const char *ssh_client = getenv("SSH_CLIENT");
	struct sockaddr_storage peer = { 0 };
	socklen_t peer_len = sizeof(peer);
	char peer_text[sizeof(client.address)] = "-";
	char peer_host[INET6_ADDRSTRLEN] = "";

	if (peer_of(client.in, peer_host, sizeof(peer_host)) == NULL)
		peer_host[0] = '\0';
	if (getpeername(client.in, (struct sockaddr *)&peer, &peer_len) == 0)
		log_format_address((struct sockaddr *)&peer, peer_text, sizeof(peer_text));
	if (host == NULL || !is_address_text(host))
		host = getenv("REMOTE_HOST");
	if (host != NULL && is_address_text(host)) {
		const char *port = getenv("REMOTE_PORT");
		/* xinetd sets no REMOTE_PORT; where its host is the socket's peer, the peer has the port. */
		if (!is_port_text(port) && strcmp(host, peer_host) == 0)
			(void)snprintf(client.address, sizeof(client.address), "%s", peer_text);
		else
			format_host_port(host, port, client.address, sizeof(client.address));
		return;
	}
	if (ssh_client != NULL) {
		char ssh_host[INET6_ADDRSTRLEN], ssh_port[8];
		if (sscanf(ssh_client, "%45s %7s", ssh_host, ssh_port) == 2 && is_address_text(ssh_host)) {
			format_host_port(ssh_host, ssh_port, client.address, sizeof(client.address));
			return;
		}
	}
	(void)snprintf(client.address, sizeof(client.address), "%s", peer_text);
}

/* Writes all of buf to the client within the deadline; 0 or -1. */
static int write_to_client(const char *buf, size_t len, int64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n = write(client.out, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd pfd = { .fd = client.out, .events = POLLOUT };
		if (clock_poll_timeout(deadline_ms) == 0 || signals_stop_requested())
			return -1;
		(void)signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms));
	}
	return 0;
}

/*
 * Ends the client connection after a refusal: our side is shut, and what the
 * client still sends is read and dropped for a moment, because closing a
 * socket with unread input sends a RST that can destroy the response before
 * the client has read it. Nothing of it is parsed (no smuggling), and a
 * client still pushing after LINGER_DISCARD_MAX_BYTES gets its reset.
 */
static void close_client_gracefully(void)
{
	char discard[4096];
	int64_t deadline_ms = clock_now_ms() + LINGER_AFTER_ERROR_MS;
	size_t discarded = 0;

	acceptor_tunnel_ended(); /* answered: what follows is no tunnel an acceptor should count */
	relay_end_output(client.out, client.saved_out_flags);
	while (!signals_stop_requested() && discarded < LINGER_DISCARD_MAX_BYTES &&
	       clock_poll_timeout(deadline_ms) > 0) {
		struct pollfd pfd = { .fd = client.in, .events = POLLIN };
		if (signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms)) <= 0)
			continue;
		ssize_t n = read(client.in, discard, sizeof(discard));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			discarded += (size_t)n;
	}
}

struct head {
	char bytes[HEAD_MAX_BYTES];
	size_t len;
	struct request request;
};

enum head_outcome { HEAD_PARSED, HEAD_REFUSED, HEAD_ABANDONED, HEAD_HEALTH_CHECK };

/*
 * Reads whatever the client has sent by the deadline into buf[*len, size);
 * 1 when bytes came, 0 on timeout, -1 on EOF or error with *why set.
 */
static int read_client_by(int64_t deadline_ms, char *buf, size_t size, size_t *len, const char **why)
{
	for (;;) {
		struct pollfd pfd = { .fd = client.in, .events = POLLIN };
		if (signals_stop_requested()) {
			*why = "stopped by signal while reading the head";
			return -1;
		}
		int ready = signals_poll(&pfd, 1, clock_poll_timeout(deadline_ms));
		if (ready == 0)
			return 0;
		if (ready < 0)
			continue;
		ssize_t n = read(client.in, buf + *len, size - *len);
		if (n > 0) {
			*len += (size_t)n;
			return 1;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			*why = "client read failed while reading the head";
		else
			*why = *len == 0 ? "client closed without a request" : "client closed in the middle of the head";
		return -1;
	}
}

/*
 * The PROXY header (tunneld(8) "OPTIONS", --proxy-protocol), within the header deadline. It names the client
 * for the log and nothing else; bytes read past it are the request's.
 */
static enum head_outcome read_proxy_header(struct head *head, int64_t deadline_ms, const char **why)
{
	char buf[PROXY_HEADER_MAX_BYTES];
	size_t len = 0;
	struct proxy_header header;

	for (;;) {
		int status = read_client_by(deadline_ms, buf, sizeof(buf), &len, why);
		if (status == 0)
			*why = "no complete PROXY header within the header timeout";
		if (status <= 0)
			return HEAD_ABANDONED;
		switch (proxy_protocol_parse((const uint8_t *)buf, len, &header)) {
		case PROXY_INCOMPLETE:
			if (len < sizeof(buf))
				continue;
			*why = "PROXY header larger than 536 bytes";
			return HEAD_ABANDONED;
		case PROXY_INVALID:
			*why = header.why;
			return HEAD_ABANDONED;
		case PROXY_LOCAL:
			return HEAD_HEALTH_CHECK;
		case PROXY_OK:
			break;
		}
		if (header.has_source)
			log_format_raw_address(header.family, header.source_address, header.source_port, client.address,
					   sizeof(client.address));
		head->len = len - header.length;
		memcpy(head->bytes, buf + header.length, head->len);
		return HEAD_PARSED;
	}
}

/*
 * Reads until the head is complete, too large, or the header timeout. Extra
 * bytes read past the head are kept: they are tunnel data. Bytes already in
 * head (after a PROXY header) are parsed before waiting for more.
 */
static enum head_outcome read_head(struct head *head, int64_t deadline_ms, enum failure *failure, const char **why)
{
	while (head->len == 0 || (unsigned char)head->bytes[0] != TLS_HANDSHAKE_RECORD) {
		enum request_verdict verdict = head->len == 0 ? REQUEST_INCOMPLETE
							       : request_parse(head->bytes, head->len, &head->request);
		switch (verdict) {
		case REQUEST_INCOMPLETE: {
			int status = read_client_by(deadline_ms, head->bytes, sizeof(head->bytes), &head->len, why);
			if (status < 0)
				return HEAD_ABANDONED;
			if (status == 0) {
				*failure = FAILURE_HEADER_TIMEOUT;
				*why = head->len == 0 ? "no request within the header timeout"
						      : "request head not complete within the header timeout";
				return HEAD_REFUSED;
			}
			continue;
		}
		case REQUEST_OK:
			return HEAD_PARSED;
		case REQUEST_BAD:
			*failure = FAILURE_BAD_REQUEST;
			break;
		case REQUEST_METHOD_NOT_ALLOWED:
			*failure = FAILURE_METHOD_NOT_ALLOWED;
			break;
		case REQUEST_VERSION_NOT_SUPPORTED:
			*failure = FAILURE_VERSION_NOT_SUPPORTED;
			break;
		case REQUEST_TOO_LARGE:
			*failure = FAILURE_HEAD_TOO_LARGE;
			break;
		}
		*why = head->request.why;
		return HEAD_REFUSED;
	}
	*why = "client spoke TLS to this plain-HTTP proxy; TLS to the proxy needs a terminator "
	       "(stunnel, HAProxy) in front of tunneld";
	return HEAD_ABANDONED;
}

static long elapsed_ms(int64_t start_ms)
{
	return (long)(clock_now_ms() - start_ms);
}

/*
 * The one way out: the client's file flags given back, then the record
 * (none for a balancer's health check), then exit. The flags go first: a
 * syslog socket opened by the log could take a closed fd 1's number.
 */
static void __attribute__((noreturn)) finish(const struct connection_record *record)
{
	acceptor_tunnel_ended();
	signals_finishing();
	restore_client_flags();
	if (record != NULL) {
		struct connection_record full = *record;
		full.protocol = client.protocol == PROTOCOL_SOCKS5 ? "socks5" : "http";
		full.socks5_reply = client.socks5_reply;
		full.via = hop.via;
		full.rule_line = rules_line(&rules, hop.rule);
		full.sandbox = sandbox.why[0] != '\0' && !sandbox_gaps_told ? sandbox.why : NULL;
		log_connection(&full);
	}
	signals_finished();
	/* Nothing is left to flush (records are written with write(2)), and
	 * exit(3) would run the destructors of every library the process has
	 * loaded, libsystemd's compressors and crypto among them: in a child of
	 * the acceptor each one touches pages its fork has not mapped, about a
	 * third of a tunnel's page faults. */
#ifdef TUNNELD_ASAN
	__lsan_do_leak_check(); /* which exit(3) would have run */
#endif
	_exit(exit_status);
}

/* What the record of a tunnel that got no further than reason says. */
static void __attribute__((noreturn)) abandon(const char *reason, const char *target, const char *user,
					      int64_t start_ms)
{
	finish(&(struct connection_record){ .client = client.address, .target = target, .user = user,
					    .duration_ms = elapsed_ms(start_ms), .reason = reason });
}

/* Sends answer (len 0: none), ends the connection gracefully and finishes with record. */
static void __attribute__((noreturn)) answer_then_finish(const void *answer, size_t len,
							 const struct connection_record *record)
{
	if (len > 0)
		(void)write_to_client(answer, len, clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS);
	close_client_gracefully();
	finish(record);
}

/*
 * A SOCKS5 request refused with reply; the record's status is what the
 * HTTP path would have answered for failure (tunneld(8) "SOCKS5").
 */
static void __attribute__((noreturn)) refuse_socks5(enum socks5_reply reply, enum failure failure, const char *why,
						    const char *target, const char *user, int64_t start_ms)
{
	uint8_t answer[SOCKS5_REPLY_MAX_BYTES];
	size_t len = socks5_format_reply(answer, reply, NULL);

	client.socks5_reply = (int)reply;
	answer_then_finish(answer, len,
			   &(struct connection_record){ .client = client.address, .target = target, .user = user,
							.status = failure_status(failure),
							.duration_ms = elapsed_ms(start_ms), .reason = why });
}

/*
 * Refuses the request on the wire, in the client's protocol, and finishes.
 * why is what the client is told; log_reason, if not NULL, what only the
 * log is told.
 */
static void __attribute__((noreturn)) refuse_logging(enum failure failure, const char *why, const char *log_reason,
						     const char *dns_rcode, const char *target, const char *user,
						     int64_t start_ms)
{
	char response[RESPONSE_MAX_BYTES];
	const char *reason = log_reason != NULL ? log_reason : why;

	if (client.protocol == PROTOCOL_SOCKS5)
		refuse_socks5(socks5_reply_for(failure), failure, reason, target, user, start_ms);
	size_t len = response_format(response, failure, why, dns_rcode, hop.received_status);
	answer_then_finish(response, len,
			   &(struct connection_record){ .client = client.address, .target = target, .user = user,
							.status = failure_status(failure),
							.duration_ms = elapsed_ms(start_ms), .reason = reason });
}

static void __attribute__((noreturn)) refuse(enum failure failure, const char *why, const char *dns_rcode,
					     const char *target, const char *user, int64_t start_ms)
{
	refuse_logging(failure, why, NULL, dns_rcode, target, user, start_ms);
}

/*
 * What the log says of credentials that were not good. It names a known
 * user who failed, never a password, nor a name that is not in the file (it
 * may be a password typed into the wrong box).
 */
static const char *auth_failure_reason(enum auth_verdict verdict)
{
	switch (verdict) {
	case AUTH_MISSING:
		return "no proxy credentials";
	case AUTH_MALFORMED:
		return "malformed Proxy-Authorization"; /* SOCKS5 logins too long for it never get here */
	case AUTH_UNKNOWN_USER:
		return "unknown user";
	case AUTH_WRONG_PASSWORD:
		return "wrong password";
	case AUTH_UNAVAILABLE:
		return "crypt(3) unavailable";
	case AUTH_GRANTED:
	case AUTH_STOPPED:
		break;
	}
	return "stopped by signal while checking credentials";
}

/* 407 unless the HTTP credentials are good; the user they name, if good. */
static const char *authenticate(const struct auth *auth, const struct request *request, int64_t start_ms)
{
	const char *user = NULL;
	enum auth_verdict verdict = auth_check(auth, request->credentials, &user);

	if (verdict == AUTH_GRANTED)
		return user;
	if (verdict == AUTH_STOPPED)
		abandon(auth_failure_reason(verdict), request->authority, NULL, start_ms);
	refuse_logging(FAILURE_AUTH_REQUIRED, "proxy authentication required", auth_failure_reason(verdict), NULL,
		       request->authority, verdict == AUTH_UNKNOWN_USER ? NULL : user, start_ms);
}

/* A refusal before the request: answer, and a record with status (HTTP's word for it). */
static void __attribute__((noreturn)) refuse_negotiation(const void *answer, size_t len, enum failure failure,
							 const char *why, const char *user, int64_t start_ms)
{
	answer_then_finish(answer, len,
			   &(struct connection_record){ .client = client.address, .target = "-", .user = user,
							.status = failure_status(failure),
							.duration_ms = elapsed_ms(start_ms), .reason = why });
}

/*
 * More SOCKS5 bytes before the deadline, or the end: a client that closed
 * is abandoned; one that is too slow gets timeout_answer (len 0: none),
 * which is the reply timeout_reply if that is not -1, and a 408 record
 * saying why.
 */
static void await_socks5_bytes(struct head *head, int64_t deadline_ms, const void *timeout_answer, size_t len,
			       int timeout_reply, const char *timeout_why, const char *user, int64_t start_ms)
{
	const char *why = NULL;
	int status = read_client_by(deadline_ms, head->bytes, sizeof(head->bytes), &head->len, &why);

	if (status < 0)
		abandon(why, "-", user, start_ms);
	if (status == 0) {
		client.socks5_reply = timeout_reply;
		refuse_negotiation(timeout_answer, len, FAILURE_HEADER_TIMEOUT, timeout_why, user, start_ms);
	}
}

/*
 * SOCKS5 up to the request (tunneld(8) "SOCKS5"): greeting, method choice,
 * the login when --auth-file is given, then the request, all within the
 * header timeout. A message may come with the ones after it (a client that
 * does not wait for answers) or a byte at a time. Returns the user; every
 * refusal ends here, with the best answer the protocol has at that point.
 * Afterwards head->request is what an HTTP CONNECT would have given, and
 * its head_bytes counts every negotiation byte: what follows is tunnel data.
 */
static const char *negotiate_socks5(struct head *head, const struct options *options, int64_t deadline_ms,
				    int64_t start_ms)
{
	static const uint8_t no_acceptable_method[] = { SOCKS5_VERSION, SOCKS5_METHOD_UNACCEPTABLE };
	static const uint8_t login_failed[] = { SOCKS5_LOGIN_VERSION, 0x01 };
	static const uint8_t login_succeeded[] = { SOCKS5_LOGIN_VERSION, 0x00 };
	static struct socks5_login login; /* holds a password until it is checked, then zeroed */
	const uint8_t *bytes = (const uint8_t *)head->bytes;
	uint8_t general_failure[SOCKS5_REPLY_MAX_BYTES];
	struct socks5_greeting greeting;
	const char *user = NULL;
	enum socks5_verdict verdict;
	size_t at = 0;

	while ((verdict = socks5_parse_greeting(bytes, head->len, &greeting)) == SOCKS5_INCOMPLETE)
		await_socks5_bytes(head, deadline_ms, NULL, 0, -1, "SOCKS5 greeting not complete within the header timeout",
				   NULL, start_ms);
	if (verdict != SOCKS5_OK)
		refuse_negotiation(no_acceptable_method, sizeof(no_acceptable_method), FAILURE_BAD_REQUEST,
				   greeting.why, NULL, start_ms);
	at = greeting.bytes;
	if (configuration_error[0] != '\0' && !greeting.offers_none)
		refuse_negotiation(no_acceptable_method, sizeof(no_acceptable_method), FAILURE_MISCONFIGURED,
				   configuration_error, NULL, start_ms);
	if (options->auth_enabled && !greeting.offers_login)
		refuse_negotiation(no_acceptable_method, sizeof(no_acceptable_method), FAILURE_AUTH_REQUIRED,
				   "no proxy credentials: SOCKS5 client does not offer username/password", NULL,
				   start_ms);
	if (!options->auth_enabled && !greeting.offers_none)
		refuse_negotiation(no_acceptable_method, sizeof(no_acceptable_method), FAILURE_BAD_REQUEST,
				   "SOCKS5 client does not offer the no-authentication method", NULL, start_ms);
	const uint8_t choice[] = { SOCKS5_VERSION, options->auth_enabled ? SOCKS5_METHOD_LOGIN : SOCKS5_METHOD_NONE };
	if (write_to_client((const char *)choice, sizeof(choice), clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS) < 0)
		abandon("client write failed while choosing the SOCKS5 method", "-", NULL, start_ms);

	if (options->auth_enabled) {
		while ((verdict = socks5_parse_login(bytes + at, head->len - at, &login)) == SOCKS5_INCOMPLETE)
			await_socks5_bytes(head, deadline_ms, login_failed, sizeof(login_failed), -1,
					   "SOCKS5 login not complete within the header timeout", NULL, start_ms);
		if (verdict != SOCKS5_OK)
			refuse_negotiation(login_failed, sizeof(login_failed), FAILURE_AUTH_REQUIRED, login.why, NULL,
					   start_ms);
		at += login.bytes;
		int64_t hash_started_ms = clock_now_ms();
		enum auth_verdict checked = auth_check_login(&options->auth, login.user, login.password, &user);
		explicit_bzero(&login, sizeof(login));
		/* The header timeout is the client's time: a costly hash does not use it up. */
		deadline_ms += clock_now_ms() - hash_started_ms;
		if (checked == AUTH_STOPPED)
			abandon(auth_failure_reason(checked), "-", NULL, start_ms);
		if (checked != AUTH_GRANTED)
			refuse_negotiation(login_failed, sizeof(login_failed), FAILURE_AUTH_REQUIRED,
					   auth_failure_reason(checked), checked == AUTH_UNKNOWN_USER ? NULL : user,
					   start_ms);
		if (write_to_client((const char *)login_succeeded, sizeof(login_succeeded),
				    clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS) < 0)
			abandon("client write failed while answering the SOCKS5 login", "-", user, start_ms);
	}

	size_t general_failure_len = socks5_format_reply(general_failure, SOCKS5_GENERAL_FAILURE, NULL);
	while ((verdict = socks5_parse_request(bytes + at, head->len - at, &head->request)) == SOCKS5_INCOMPLETE)
		await_socks5_bytes(head, deadline_ms, general_failure, general_failure_len, SOCKS5_GENERAL_FAILURE,
				   "SOCKS5 request not complete within the header timeout", user, start_ms);
	const char *target = head->request.authority[0] != '\0' ? head->request.authority : "-";
	switch (verdict) {
	case SOCKS5_OK:
		break;
	case SOCKS5_UNSUPPORTED_COMMAND:
		refuse_socks5(SOCKS5_COMMAND_NOT_SUPPORTED, FAILURE_METHOD_NOT_ALLOWED, head->request.why, target, user,
			      start_ms);
	case SOCKS5_UNSUPPORTED_ADDRESS:
		refuse_socks5(SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED, FAILURE_BAD_REQUEST, head->request.why, target, user,
			      start_ms);
	case SOCKS5_INCOMPLETE:
	case SOCKS5_BAD:
		refuse_socks5(SOCKS5_GENERAL_FAILURE, FAILURE_BAD_REQUEST, head->request.why, target, user, start_ms);
	}
	head->request.head_bytes += at;
	return user;
}

/* The first byte names the protocol; a silent client times out as an HTTP one would. */
static enum head_outcome read_first_byte(struct head *head, int64_t deadline_ms, enum failure *failure,
					 const char **why)
{
	if (head->len > 0)
		return HEAD_PARSED;
	int status = read_client_by(deadline_ms, head->bytes, sizeof(head->bytes), &head->len, why);
	if (status < 0)
		return HEAD_ABANDONED;
	if (status == 0) {
		*failure = FAILURE_HEADER_TIMEOUT;
		*why = "no request within the header timeout";
		return HEAD_REFUSED;
	}
	return HEAD_PARSED;
}

/* 200, or SOCKS5's success naming the outbound socket's address; 0 or -1. */
static int answer_established(int target)
{
	struct sockaddr_storage bound = { 0 };
	socklen_t bound_len = sizeof(bound);
	uint8_t reply[SOCKS5_REPLY_MAX_BYTES];
	int64_t deadline_ms = clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS;

	if (client.protocol == PROTOCOL_HTTP)
		return write_to_client(RESPONSE_ESTABLISHED, strlen(RESPONSE_ESTABLISHED), deadline_ms);
	if (getsockname(target, (struct sockaddr *)&bound, &bound_len) < 0)
		bound.ss_family = AF_UNSPEC;
	size_t len = socks5_format_reply(reply, SOCKS5_SUCCEEDED, (struct sockaddr *)&bound);
	if (write_to_client((const char *)reply, len, deadline_ms) < 0)
		return -1;
	client.socks5_reply = SOCKS5_SUCCEEDED;
	return 0;
}

static void set_client_nodelay(void)
{
	int on = 1;
	/* Fails harmlessly with ENOTSOCK or EOPNOTSUPP on pipes and unix sockets. */
	(void)setsockopt(client.out, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* ---- policy: the options' rules, or the rules file's ---- */

static bool options_allow_address(const void *policy, const struct sockaddr *address)
{
	return policy_address_allowed(policy, address);
}

/* --allow-port, --allow-host, then every address against the destination rules. */
static int open_by_options(const struct options *options, const struct request *request, const char *user,
			   int64_t deadline_ms, int64_t start_ms)
{
	struct connect_outcome outcome;

	if (!policy_port_allowed(&options->policy, request->port))
		refuse(FAILURE_PORT_DENIED, "port not allowed", NULL, request->authority, user, start_ms);
	if (!policy_host_allowed(&options->policy, request->host, request->host_kind != HOST_NAME))
		refuse(FAILURE_HOST_DENIED, "host not allowed", NULL, request->authority, user, start_ms);
	int target = connector_open(request, options_allow_address, &options->policy, deadline_ms, &outcome);
	if (target < 0 && outcome.failure == FAILURE_NONE)
		abandon(outcome.why, request->authority, user, start_ms);
	if (target < 0)
		refuse(outcome.failure, outcome.why, outcome.dns_rcode, request->authority, user, start_ms);
	return target;
}

/* The host of "host:port", "[v6]:port" or a bare host into address: true if it is an IP address. */
static bool parse_source(const char *text, int *family, uint8_t *address)
{
	char host[sizeof(client.address)];

	log_host_of(text, host, sizeof(host));
	if (inet_pton(AF_INET, host, address) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, host, address) == 1)
		*family = AF_INET6;
	else
		return false;
	return true;
}

struct judged_request {
	const struct policy *policy;
	struct rules_subject subject;
};

static bool rules_allow_address(const void *context, const struct sockaddr *address)
{
	const struct judged_request *judged = context;
	struct rules_verdict verdict;
	return rules_judge_address(&rules, judged->policy, &judged->subject, address, &verdict) == RULES_ALLOW;
}

/* Where the rules send a request: to some of its addresses, via a parent, or nowhere. */
struct route {
	enum rules_action action;     /* RULES_ALLOW, RULES_VIA or RULES_DENY */
	struct rules_verdict verdict; /* the deciding one */
	enum failure failure;         /* RULES_DENY: how to answer; RULES_ALLOW: FAILURE_NONE, or the lookup's failure */
	struct connect_outcome lookup;
	struct addrinfo *addresses;   /* RULES_ALLOW with a lookup that worked: the caller frees them */
};

static void explain_line(bool explaining, const char *what, const struct rules_verdict *verdict)
{
	static const char *const words[] = { [RULES_ALLOW] = "allow", [RULES_DENY] = "deny", [RULES_VIA] = "via",
					     [RULES_NEEDS_ADDRESSES] = "the addresses decide" };
	char text[RULES_LINE_MAX_BYTES + 1];

	if (!explaining)
		return;
	if (verdict->action == RULES_NEEDS_ADDRESSES) {
		(void)printf("%s: the addresses decide\n", what);
		return;
	}
	rules_line_text(&rules, rules_line(&rules, verdict->rule), text, sizeof(text));
	if (verdict->rule >= 0)
		(void)printf("%s: %s, %s, line %u: %s\n", what, words[verdict->action], verdict->why,
			     rules_line(&rules, verdict->rule), text);
	else
		(void)printf("%s: %s, %s\n", what, words[verdict->action], verdict->why);
}

/*
 * The rules file's decision (tunneld(8) "RULES"), the same for a tunnel and
 * for --explain, which sees each step on stdout. A name is looked up only
 * when the rules need its addresses.
 */
static void route_by_rules(const struct judged_request *judged, const struct request *request, int64_t deadline_ms,
			   struct route *route, bool explaining)
{
	const struct rules_subject *subject = &judged->subject;
	struct rules_verdict verdict;
	bool have_allow = false, have_via = false, have_deny = false;
	struct rules_verdict first_allow = { 0 }, first_via = { 0 }, first_deny = { 0 };

	*route = (struct route){ .failure = FAILURE_NONE };
	enum rules_action action = rules_judge_request(&rules, judged->policy, subject, &route->verdict);
	explain_line(explaining, "before any lookup", &route->verdict);
	if (action == RULES_DENY || action == RULES_VIA) {
		route->action = action;
		route->failure = FAILURE_RULE_DENIED;
		return;
	}
	if (connector_resolve(request, deadline_ms, &route->addresses, &route->lookup) < 0) {
		route->addresses = NULL;
		if (explaining)
			(void)printf("lookup: %s\n", route->lookup.why);
		if (route->lookup.failure == FAILURE_NONE) { /* stopped: no rule decided anything */
			route->action = RULES_DENY;
			route->failure = FAILURE_NONE;
			route->verdict.rule = -1;
			return;
		}
		route->action = rules_judge_address(&rules, judged->policy, subject, NULL, &route->verdict);
		explain_line(explaining, "without an address", &route->verdict);
		if (route->action == RULES_VIA) /* a name only the parent knows */
			return;
		/*
		 * Allowed or denied without one, the rules asked for the addresses
		 * (rules_judge_request() decides first what needs none): the lookup's
		 * failure is the answer, not the rule that a missing address let match.
		 */
		route->action = RULES_NEEDS_ADDRESSES;
		route->failure = route->lookup.failure;
		route->verdict = (struct rules_verdict){ .action = RULES_NEEDS_ADDRESSES, .rule = -1,
							  .why = route->lookup.why };
		return;
	}
	for (struct addrinfo *ai = route->addresses; ai != NULL; ai = ai->ai_next) {
		switch (rules_judge_address(&rules, judged->policy, subject, ai->ai_addr, &verdict)) {
		case RULES_ALLOW:
			if (!have_allow)
				first_allow = verdict;
			have_allow = true;
			break;
		case RULES_VIA:
			if (!have_via)
				first_via = verdict;
			have_via = true;
			break;
		case RULES_DENY:
		case RULES_NEEDS_ADDRESSES:
			if (!have_deny)
				first_deny = verdict;
			have_deny = true;
			break;
		}
		if (explaining) {
			char text[INET6_ADDRSTRLEN] = "-";
			explain_line(explaining, address_text(ai->ai_addr, text, sizeof(text)) != NULL ? text : "-", &verdict);
		}
	}
	/* Any address allowed: connect to those; else a via rule; else every address is denied. */
	if (have_allow) {
		route->action = RULES_ALLOW;
		route->verdict = first_allow;
		return;
	}
	freeaddrinfo(route->addresses);
	route->addresses = NULL;
	route->action = have_via ? RULES_VIA : RULES_DENY;
	route->verdict = have_via ? first_via : first_deny;
	route->failure = FAILURE_DESTINATION_DENIED;
}

static void describe_subject(const struct request *request, const char *user, struct rules_subject *subject)
{
	*subject = (struct rules_subject){ .user = user, .host = request->host,
					   .host_is_ip_literal = request->host_kind != HOST_NAME,
					   .host_is_loopback_name = policy_is_loopback_name(request->host), .port = request->port,
					   .protocol = client.protocol == PROTOCOL_SOCKS5 ? RULE_PROTOCOL_SOCKS5
											   : RULE_PROTOCOL_HTTP };
	subject->has_source = parse_source(client.address, &subject->source_family, subject->source);
}

/*
 * Through the parent of rule, or a refusal in the parent's words. The hop
 * has a connect timeout of its own: a lookup of the target that timed out
 * before the rules chose the parent has not used it up.
 */
static int open_via(int rule, const struct request *request, const char *user, int connect_timeout_seconds,
		    int64_t start_ms)
{
	int64_t deadline_ms = clock_now_ms() + (int64_t)connect_timeout_seconds * 1000;
	static char reason[128];
	const struct parent *parent = &rules.parents[rules.rules[rule].parent];
	struct upstream_outcome outcome;

	hop.rule = rule;
	hop.via = parent->display;
	int target = upstream_open(parent, request, deadline_ms, &outcome);
	if (target >= 0)
		return target;
	if (outcome.failure == FAILURE_NONE)
		abandon(outcome.why, request->authority, user, start_ms);
	const char *log_reason = outcome.why;
	if (outcome.received_status > 0 || outcome.received_reply >= 0) {
		hop.received_status = outcome.received_status;
		if (outcome.received_status > 0)
			(void)snprintf(reason, sizeof(reason), "%s: HTTP %d", outcome.why, outcome.received_status);
		else
			(void)snprintf(reason, sizeof(reason), "%s: SOCKS5 reply 0x%02x", outcome.why, outcome.received_reply);
		log_reason = reason;
	}
	refuse_logging(outcome.failure, outcome.why, log_reason, outcome.dns_rcode, request->authority, user, start_ms);
}

static int open_by_rules(const struct options *options, const struct request *request, const char *user,
			 int64_t deadline_ms, int64_t start_ms)
{
	static struct judged_request judged;
	struct route route;
	struct connect_outcome outcome;

	judged.policy = &options->policy;
	describe_subject(request, user, &judged.subject);
	route_by_rules(&judged, request, deadline_ms, &route, false);
	hop.rule = route.verdict.rule;
	switch (route.action) {
	case RULES_VIA:
		return open_via(route.verdict.rule, request, user, options->connect_timeout_seconds, start_ms);
	case RULES_NEEDS_ADDRESSES: /* the rules need the addresses, and the lookup has none */
		refuse(route.lookup.failure, route.lookup.why, route.lookup.dns_rcode, request->authority, user, start_ms);
	case RULES_DENY:
		if (route.failure == FAILURE_NONE)
			abandon(route.lookup.why, request->authority, user, start_ms);
		refuse_logging(route.failure, "not allowed by the rules", route.verdict.why, NULL, request->authority, user,
			       start_ms);
	case RULES_ALLOW:
		break;
	}
	int target = connector_connect(route.addresses, rules_allow_address, &judged, deadline_ms, &outcome);
	freeaddrinfo(route.addresses);
	if (target < 0 && outcome.failure == FAILURE_NONE)
		abandon(outcome.why, request->authority, user, start_ms);
	if (target < 0)
		refuse(outcome.failure, outcome.why, outcome.dns_rcode, request->authority, user, start_ms);
	/* The record names the rule that allowed the address connected, of those the race could pick. */
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	struct rules_verdict verdict;
	if (getpeername(target, (struct sockaddr *)&peer, &peer_len) == 0 &&
	    rules_judge_address(&rules, &options->policy, &judged.subject, (struct sockaddr *)&peer, &verdict) == RULES_ALLOW)
		hop.rule = verdict.rule;
	return target;
}

/* ---- --check and --explain ---- */

static void __attribute__((noreturn)) check_and_exit(const struct options *options)
{
	char gaps[sizeof(sandbox.why)];

	signals_finishing();
	/* On stdout, with "OK": for a person; an acceptor's reload check, which closes stdout, says nothing. */
	if (sandbox_probe(gaps, sizeof(gaps)))
		(void)printf("tunneld: note: %s: tunnels run without it (tunneld(8) \"Sandbox\")\n", gaps);
	if (options->rules_path == NULL) {
		(void)printf("tunneld: options OK (no rules file)\n");
		exit(EXIT_SUCCESS);
	}
	unsigned users = 0;
	for (unsigned i = 0; i < rules.rule_count; i++)
		if (rules.rules[i].has_who && !options->auth_enabled && users++ == 0)
			(void)fprintf(stderr,
				      "tunneld: %s:%u: warning: this rule names users, but without --auth-file no "
				      "request has a user, so it never matches\n",
				      options->rules_path, rules.rules[i].line);
	(void)printf("tunneld: %s OK: %u rules, %u groups, %u parents%s%s\n", options->rules_path, rules.rule_count,
		     rules.group_count, rules.parent_count, rules.rule_count == 0 ? " (every request is denied)" : "",
		     rules.compiled ? " (compiled)" : "");
	if (options->compile_to != NULL)
		(void)printf("tunneld: compiled into %s\n", options->compile_to);
	exit(EXIT_SUCCESS);
}

/* user=NAME from=ADDRESS to=HOST:PORT protocol=http|socks5 */
static void __attribute__((noreturn)) explain_and_exit(const struct options *options, int count, char **words)
{
	static struct request request;
	static struct judged_request judged;
	const char *to = NULL, *from = "-", *protocol = "http";
	bool allowed = false;

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
			 (strcmp(value, "http") == 0 || strcmp(value, "socks5") == 0)) {
			protocol = value;
			judged.subject.protocol = value[0] == 'h' ? RULE_PROTOCOL_HTTP : RULE_PROTOCOL_SOCKS5;
		} else
			exit_usage("--explain: expected user=NAME, from=ADDRESS, to=HOST:PORT or protocol=http|socks5, "
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
		unsigned line = rules_line(&rules, route.verdict.rule);
		switch (route.action) {
		case RULES_ALLOW:
			allowed = true;
			(void)printf("verdict: allow, line %u\n", line);
			break;
		case RULES_NEEDS_ADDRESSES:
			(void)printf("verdict: %s (the rules need the name's addresses, and the lookup found none: %d, as "
				     "a tunnel would answer)\n",
				     route.lookup.why, failure_status(route.lookup.failure));
			break;
		case RULES_VIA:
			allowed = true;
			(void)printf("verdict: via %s, line %u\n", rules.parents[rules.rules[route.verdict.rule].parent].display,
				     line);
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
		if (addresses != NULL)
			freeaddrinfo(addresses);
		(void)printf("verdict: %s\n", allowed ? "allow" : "deny");
	}
	signals_finishing();
	(void)fflush(stdout);
	exit(allowed ? EXIT_SUCCESS : EXIT_FAILURE);
}

int main(int argc, char **argv)
{
	static struct options options;
	static struct head head;
	int64_t start_ms = clock_now_ms();
	enum failure failure = FAILURE_NONE;
	const char *why = NULL;
	const char *user = NULL;
	struct relay_result relayed;
	char peer_text[INET6_ADDRSTRLEN];

	signals_setup();
	offline_mode = wants_offline_mode(argc, argv, long_options);
	if (offline_mode) {
		(void)log_setup(LOG_TARGET_STDERR, -1, -1, NULL, 0);
		parse_options(argc, argv, &options);
		if (options.explain)
			explain_and_exit(&options, argc - optind, argv + optind);
		check_and_exit(&options);
	}
	sigset_t original_mask;
	(void)sigprocmask(SIG_BLOCK, NULL, &original_mask);
	bool unusable_sockets;
	int listeners = adopt_passed_sockets(&unusable_sockets);
	serving_as_acceptor = listeners > 0;
	if (listeners > 0) /* no client yet: fds 0 to 2 are the service's, and fd 2 may carry the log */
		client.in = client.out = -1;
	(void)log_setup(LOG_TARGET_AUTO, client.in, client.out, NULL, 0);
	if (unusable_sockets)
		log_error("LISTEN_FDS: the sockets passed are neither one connected stream socket nor listening stream "
			  "sockets (at most 16): ignored, the client is on stdin and stdout");
	parse_options(argc, argv, &options); /* -l re-runs log_setup as soon as it is parsed */
	config_file_unpin(); /* a reload's copies of the files are read */
	if (listeners > 0) {
		/* Said once, for every tunnel; the tunnels' records say it no more. */
		char gaps[sizeof(sandbox.why)];
		if (sandbox_probe(gaps, sizeof(gaps)))
			log_notice_f("acceptor: %s: every tunnel runs without it (tunneld(8) \"Sandbox\")", gaps);
		sandbox_gaps_told = true;
		/* Options and their files are read once, here; each child has them as they were at its fork. */
		client.in = client.out = acceptor_run(3, listeners, &options.acceptor, argv, &original_mask);
		start_ms = clock_now_ms();
	}
	identify_client();
	make_client_nonblocking();
	/* Before the client's first byte: whatever it sends meets a process that can do little else. */
	sandbox_enter(&sandbox);
	if (sandbox.why[0] != '\0' && !sandbox_gaps_told && !log_has_fields())
		log_notice(sandbox.why); /* the record cannot carry it as a field of its own */

	/* Read and parse the head, after the load balancer's PROXY header if there is one. */
	int64_t head_deadline_ms = start_ms + (int64_t)options.header_timeout_seconds * 1000;
	enum head_outcome outcome_of_head = HEAD_PARSED;
	if (options.proxy_protocol)
		outcome_of_head = read_proxy_header(&head, head_deadline_ms, &why);
	if (outcome_of_head == HEAD_PARSED)
		outcome_of_head = read_first_byte(&head, head_deadline_ms, &failure, &why);
	if (outcome_of_head == HEAD_PARSED) {
		if ((unsigned char)head.bytes[0] == SOCKS5_VERSION)
			client.protocol = PROTOCOL_SOCKS5;
		if (client.protocol == PROTOCOL_SOCKS5 ? !options.serve_socks5 : !options.serve_http)
			answer_then_finish(NULL, 0,
					   &(struct connection_record){
						   .client = client.address, .target = "-", .duration_ms = elapsed_ms(start_ms),
						   .reason = client.protocol == PROTOCOL_SOCKS5 ? "SOCKS5 is not served here (--protocols)"
												: "HTTP is not served here (--protocols)" });
		if (client.protocol == PROTOCOL_SOCKS5)
			user = negotiate_socks5(&head, &options, head_deadline_ms, start_ms);
		else
			outcome_of_head = read_head(&head, head_deadline_ms, &failure, &why);
	}
	switch (outcome_of_head) {
	case HEAD_HEALTH_CHECK:
		finish(NULL); /* a balancer's health check: no record */
	case HEAD_ABANDONED:
		abandon(why, "-", NULL, start_ms);
	case HEAD_REFUSED:
		if (!options.serve_http) /* a silent client on a SOCKS5-only port: no HTTP answer */
			abandon(why, "-", NULL, start_ms);
		refuse(failure, why, NULL, head.request.authority[0] != '\0' ? head.request.authority : "-", NULL,
		       start_ms);
	case HEAD_PARSED:
		break;
	}
	const struct request *request = &head.request;
	if (configuration_error[0] != '\0')
		refuse_logging(FAILURE_MISCONFIGURED, "the proxy's configuration has an error; its log says which",
			       configuration_error, NULL, request->authority, NULL, start_ms);

	/* Policy: who asks, then what may be asked for, before any DNS lookup. */
	if (options.auth_enabled && client.protocol == PROTOCOL_HTTP)
		user = authenticate(&options.auth, request, start_ms);
	int64_t connect_deadline_ms = clock_now_ms() + (int64_t)options.connect_timeout_seconds * 1000;
	int target;
	if (options.rules_path != NULL)
		target = open_by_rules(&options, request, user, connect_deadline_ms, start_ms);
	else
		target = open_by_options(&options, request, user, connect_deadline_ms, start_ms);

	if (sandbox.seccomp) {
		log_connect_ahead();
		if (!sandbox_tighten_after_connect())
			log_error("sandbox: the filter for after the connect was refused; the first one stays");
	}

	/* Answer, then relay; bytes after the head go to the target first. */
	if (answer_established(target) < 0)
		abandon("client write failed while answering the tunnel's success", request->authority, user, start_ms);
	set_client_nodelay();
	const char *peer = peer_of(target, peer_text, sizeof(peer_text)); /* now: after the relay it may be gone */
	relay_run(&(struct relay_endpoints){ .client_in = client.in, .client_out = client.out, .target = target,
					     .client_out_flags = client.saved_out_flags },
		  head.bytes + request->head_bytes, head.len - request->head_bytes, options.idle_timeout_seconds * 1000,
		  &relayed);
	finish(&(struct connection_record){ .client = client.address, .target = request->authority, .user = user,
					    .status = 200, .bytes_up = relayed.bytes_up,
					    .bytes_down = relayed.bytes_down, .duration_ms = elapsed_ms(start_ms),
					    .reason = relayed.error, .peer = peer });
}
