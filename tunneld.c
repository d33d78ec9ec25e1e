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
 * main() below is that life, top to bottom; each phase lives in src/:
 *
 *   options.c      the command line and the files it names (offline.c: --check, --explain)
 *   client.c       the client's descriptors: where they come from, their flags, I/O by deadlines
 *   acceptor.c     Accept=no: accept and fork, each child going on from there as one tunnel
 *   sandbox.c      what the process may do once it reads the client's first byte
 *   negotiate.c    the PROXY header, then the request: HTTP (request.c) or SOCKS5 (socks5.c)
 *   jump.c         or none: sshd's forced command, its target named up front (--jump)
 *   auth.c         who asks
 *   route.c        where the request may go (policy.c, rules_judge.c) and the connection there
 *                  (connector.c: resolve, Happy Eyeballs; upstream.c: through a parent)
 *   relay.c        the poll loop, both directions
 *   ending.c       every way a tunnel ends: the answer (response.c), the record (log.c), exit
 *   title.c        what ps shows of it at each phase: who goes where, doing what
 *
 * Two rules hold everywhere: every wait is a signals_poll(), so a stop
 * signal ends any phase at once (signals.h); memory handed to the resolver
 * thread is never on a stack nor freed (connector.h). Every way out is in
 * ending.c, and the man page, tunneld(8), is the contract the code cites.
 */
#include "src/acceptor.h"
#include "src/client.h"
#include "src/clock.h"
#include "src/config_file.h"
#include "src/jump.h"
#include "src/log.h"
#include "src/negotiate.h"
#include "src/offline.h"
#include "src/options.h"
#include "src/relay.h"
#include "src/route.h"
#include "src/rules.h"
#include "src/sandbox.h"
#include "src/signals.h"
#include "src/title.h"
#include "src/tunnel.h"

#include <signal.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	static struct options options;
	static struct rules rules;
	static struct head head;
	static struct sandbox_report sandbox;
	static struct tunnel tunnel = { .client = CLIENT_ON_STDIO, .hop = { .rule = -1 } };
	char peer_text[INET6_ADDRSTRLEN];

	title_init(argc, &argv); /* first: from here argv and the environment are copies, their old place the title's */
	unsigned closed_fds = client_reserve_standard_fds();
	tunnel.start_ms = clock_now_ms();
	tunnel.options = &options;
	tunnel.rules = &rules;
	sigset_t original_mask;
	signals_setup(&original_mask);
	if (closed_fds & CLIENT_CLOSED_ERR)
		log_stderr_closed();

	/* A person at a shell: --check, --compile, --explain, --reload. */
	if (options_offline_wanted(argc, argv)) {
		(void)log_setup(LOG_TARGET_STDERR, -1, -1, NULL, 0);
		options_parse(argc, argv, &options, &rules, &(struct options_reader){ .offline = true });
		if (options.explain)
			offline_explain(&options, &rules, argc - optind, argv + optind);
		offline_check(&options, &rules);
	}

	/* The client on fds 0 and 1, systemd's connected socket, or listening sockets to accept from. */
	bool unusable_sockets;
	int listeners = client_adopt_passed_sockets(&tunnel.client, &unusable_sockets);
	if (listeners > 0) /* no client yet: fds 0 to 2 are the service's, and fd 2 may carry the log */
		tunnel.client.in = tunnel.client.out = -1;
	(void)log_setup(LOG_TARGET_AUTO, tunnel.client.in, tunnel.client.out, NULL, 0);
	if (options_jump_wanted(argc, argv)) /* from the first line it logs: fd 2 is ssh's, a person reads it */
		log_leave_stderr_to_person();
	if (listeners == 0 && tunnel.client.in == STDIN_FILENO && (closed_fds & (CLIENT_CLOSED_IN | CLIENT_CLOSED_OUT))) {
		log_error("fd 0 or 1 was closed: there is no client to serve (an activator hands it over on both)");
		return EXIT_USAGE;
	}
	if (unusable_sockets)
		log_error("LISTEN_FDS: the sockets passed are neither one connected stream socket nor listening stream "
			  "sockets (at most 16): ignored, the client is on stdin and stdout");

	/* Options and their files, read once; -l sets the log up as soon as it is parsed. */
	options_parse(argc, argv, &options, &rules,
		      &(struct options_reader){ .acceptor = listeners > 0, .client_in = tunnel.client.in,
						.client_out = tunnel.client.out });
	config_file_unpin(); /* a reload's copies of the files are read */
	if (options.configuration_error[0] != '\0')
		tunnel.exit_status = EXIT_USAGE;

	/* Accept=no: the acceptor runs here for good; each child goes on below with its connection. */
	bool sandbox_said = false;
	if (listeners > 0) {
		char gaps[SANDBOX_WHY_MAX_BYTES];
		if (sandbox_probe(gaps, sizeof(gaps))) /* said once, for every tunnel */
			log_notice_f("acceptor: %s: every tunnel runs without it (tunneld(8) \"Sandbox\")", gaps);
		sandbox_said = true;
		options.acceptor.may_bind = options.outgoing.set || rules_name_outgoing(&rules);
		tunnel.client.in = tunnel.client.out = acceptor_run(3, listeners, &options.acceptor, argv, &original_mask);
		tunnel.start_ms = clock_now_ms();
	}
	client_identify(&tunnel.client, options.jump);
	title_tunnel(NULL, tunnel.client.address, NULL);
	title_phase(options.jump ? "starting" : "reading the request");
	static struct jump_session jump;
	if (options.jump)
		jump_prepare(&tunnel, &jump);
	client_make_nonblocking(&tunnel.client);

	if (options.log_open)
		tunnel_take_id(&tunnel);

	/* Before the client's first byte: whatever it sends meets a process that can do little else. */
	sandbox_enter(&sandbox, options.outgoing.set || rules_name_outgoing(&rules));
	if (sandbox.why[0] != '\0' && !sandbox_said) {
		if (log_has_fields())
			tunnel.sandbox_gaps = sandbox.why; /* in the record's journal fields */
		else
			log_notice(sandbox.why);
	}

	/* The request, and who asks. */
	const char *user = NULL;
	const struct request *request = options.jump ? jump_request(&tunnel, &head.request, &jump, &user)
						     : read_request(&tunnel, &head, &user);
	if (options.configuration_error[0] != '\0')
		tunnel_refuse(&tunnel, FAILURE_MISCONFIGURED, "the proxy's configuration has an error; its log says which",
			      options.configuration_error, NULL, request->authority, NULL);
	/* As the record has them: the client a PROXY header named, the target without userinfo, never a password. */
	title_tunnel(user, tunnel.client.address, request->authority);
	if (options.auth_enabled && tunnel.client.protocol == PROTOCOL_HTTP) {
		title_phase("authenticating");
		user = authenticate(&tunnel, request);
		title_tunnel(user, NULL, NULL);
	}

	/* Policy, then the connection: every refusal ends the tunnel in route.c. */
	int target = route_and_connect(&tunnel, request, user);
	if (sandbox.seccomp) {
		log_connect_ahead();
		if (!sandbox_tighten_after_connect())
			log_error("sandbox: the filter for after the connect was refused; the first one stays");
	}

	/* Answer, then relay; bytes after the head go to the target first. */
	if (answer_established(&tunnel, target) < 0)
		tunnel_abandon(&tunnel, "client write failed while answering the tunnel's success", request->authority, user);
	client_set_nodelay(&tunnel.client);
	title_phase("relaying");
	/* For the records, asked now: after the relay it may be gone. */
	const char *peer = log_writes_records() ? peer_of(target, peer_text, sizeof(peer_text)) : NULL;
	if (options.log_open)
		tunnel_record_open(&tunnel, request->authority, user, peer);
	struct relay_result relayed;
	relay_run(&(struct relay_endpoints){ .client_in = tunnel.client.in, .client_out = tunnel.client.out,
					     .target = target, .client_out_flags = tunnel.client.saved_out_flags },
		  head.bytes + request->head_bytes, head.len - request->head_bytes, options.idle_timeout_seconds * 1000,
		  &relayed);
	tunnel_end(&tunnel, &(struct connection_record){ .client = tunnel.client.address, .target = request->authority,
							 .user = user, .status = 200, .bytes_up = relayed.bytes_up,
							 .bytes_down = relayed.bytes_down,
							 .duration_ms = tunnel_elapsed_ms(&tunnel), .reason = relayed.error,
							 .peer = peer });
}
