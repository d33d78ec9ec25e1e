/*
 * ending: every way a tunnel ends (tunnel.h). A refusal is answered in the
 * client's protocol from the wire table (response.c) or SOCKS5's replies,
 * the connection closed gracefully, and the record written last.
 */
#include "tunnel.h"

#include "acceptor.h"
#include "clock.h"
#include "jump.h"
#include "response.h"
#include "signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
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

#define RESPONSE_WRITE_TIMEOUT_MS 5000

long tunnel_elapsed_ms(const struct tunnel *tunnel)
{
	return (long)(clock_now_ms() - tunnel->start_ms);
}

void tunnel_take_id(struct tunnel *tunnel)
{
	uint8_t bytes[16];

	/*
	 * Never waiting for the kernel's pool (early at boot): the time to the
	 * nanosecond and the pid are as unique on the host, if not as unguessable.
	 */
	if (getrandom(bytes, sizeof(bytes), GRND_NONBLOCK) != (ssize_t)sizeof(bytes)) {
		struct timespec now;
		(void)clock_gettime(CLOCK_REALTIME, &now);
		uint64_t nanoseconds = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		uint64_t pid = (uint64_t)getpid();
		for (size_t i = 0; i < 8; i++) {
			bytes[i] = (uint8_t)(nanoseconds >> (8 * i));
			bytes[8 + i] = (uint8_t)(pid >> (8 * i));
		}
	}
	for (size_t i = 0; i < sizeof(bytes); i++)
		(void)snprintf(tunnel->id + 2 * i, 3, "%02x", bytes[i]);
}

/* What the tunnel knows of itself, into a record its ending or its opening fills. */
static void complete(const struct tunnel *tunnel, struct connection_record *record, const char *event)
{
	record->protocol = tunnel->client.protocol == PROTOCOL_SOCKS5 ? "socks5"
			   : tunnel->client.protocol == PROTOCOL_JUMP ? "jump"
								      : "http";
	record->socks5_reply = tunnel->client.socks5_reply;
	record->via = tunnel->hop.via;
	record->local = tunnel->hop.local;
	record->rule_line = rules_line(tunnel->rules, tunnel->hop.rule);
	record->sandbox = tunnel->sandbox_gaps;
	if (tunnel->id[0] != '\0') {
		record->event = event;
		record->id = tunnel->id;
	}
}

void tunnel_record_open(const struct tunnel *tunnel, const char *target, const char *user, const char *peer)
{
	struct connection_record record = { .client = tunnel->client.address, .target = target, .user = user,
					    .status = 200, .peer = peer };

	complete(tunnel, &record, "open");
	log_connection(&record);
}

/*
 * The flags go first: a syslog socket opened by the log could take a
 * closed fd 1's number.
 */
void tunnel_end(struct tunnel *tunnel, const struct connection_record *record)
{
	/* Nothing that can wait is left without a record to write: no deadline to arm. */
	bool recording = record != NULL && log_writes_records();

	acceptor_tunnel_ended();
	if (recording)
		signals_finishing();
	client_restore_flags(&tunnel->client);
	if (recording) {
		struct connection_record full = *record;
		complete(tunnel, &full, "close");
		log_connection(&full);
	}
	/* Nothing is left to flush (records are written with write(2)), and
	 * exit(3) would run the destructors of every library the process has
	 * loaded, libsystemd's compressors and crypto among them: in a child of
	 * the acceptor each one touches pages its fork has not mapped, about a
	 * third of a tunnel's page faults. */
#ifdef TUNNELD_ASAN
	signals_finished(); /* the finishing deadline must not cut the leak check short */
	__lsan_do_leak_check(); /* which exit(3) would have run */
#endif
	_exit(tunnel->exit_status);
}

void tunnel_abandon(struct tunnel *tunnel, const char *reason, const char *target, const char *user)
{
	if (tunnel->client.protocol == PROTOCOL_JUMP) { /* no stream yet: the person is told why ssh saw none */
		log_tell_person(target, reason);
		if (tunnel->exit_status == EXIT_SUCCESS)
			tunnel->exit_status = JUMP_EXIT_STOPPED;
	}
	tunnel_end(tunnel, &(struct connection_record){ .client = tunnel->client.address, .target = target,
							.user = user, .duration_ms = tunnel_elapsed_ms(tunnel),
							.reason = reason });
}

/* Sends answer (len 0: none), ends the connection gracefully and ends the tunnel with record. */
static void __attribute__((noreturn)) answer_then_end(struct tunnel *tunnel, const void *answer, size_t len,
						      const struct connection_record *record)
{
	if (len > 0)
		(void)client_write(&tunnel->client, answer, len, clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS);
	client_close_gracefully(&tunnel->client);
	tunnel_end(tunnel, record);
}

static struct connection_record refusal_record(const struct tunnel *tunnel, enum failure failure, const char *why,
					       const char *target, const char *user)
{
	return (struct connection_record){ .client = tunnel->client.address, .target = target, .user = user,
					   .status = failure_status(failure),
					   .duration_ms = tunnel_elapsed_ms(tunnel), .reason = why };
}

void tunnel_refuse_socks5(struct tunnel *tunnel, enum socks5_reply reply, enum failure failure, const char *why,
			  const char *target, const char *user)
{
	uint8_t answer[SOCKS5_REPLY_MAX_BYTES];
	size_t len = socks5_format_reply(answer, reply, NULL);

	tunnel->client.socks5_reply = (int)reply;
	struct connection_record record = refusal_record(tunnel, failure, why, target, user);
	answer_then_end(tunnel, answer, len, &record);
}

void tunnel_refuse(struct tunnel *tunnel, enum failure failure, const char *why, const char *log_reason,
		   const char *dns_rcode, const char *target, const char *user)
{
	char response[RESPONSE_MAX_BYTES];
	const char *reason = log_reason != NULL ? log_reason : why;

	if (tunnel->client.protocol == PROTOCOL_SOCKS5)
		tunnel_refuse_socks5(tunnel, socks5_reply_for(failure), failure, reason, target, user);
	if (tunnel->client.protocol == PROTOCOL_JUMP) {
		/* The stream is ssh's: the answer goes to the person on stderr, and into the exit status. */
		char told[512];
		response_describe(told, sizeof(told), failure, why, dns_rcode);
		log_tell_person(target, told);
		if (tunnel->exit_status == EXIT_SUCCESS)
			tunnel->exit_status = jump_exit_status(failure);
		struct connection_record record = refusal_record(tunnel, failure, reason, target, user);
		tunnel_end(tunnel, &record);
	}
	size_t len = response_format(response, failure, why, dns_rcode, tunnel->hop.received_status);
	struct connection_record record = refusal_record(tunnel, failure, reason, target, user);
	answer_then_end(tunnel, response, len, &record);
}

void tunnel_refuse_negotiation(struct tunnel *tunnel, const void *answer, size_t len, enum failure failure,
			       const char *why, const char *user)
{
	struct connection_record record = refusal_record(tunnel, failure, why, "-", user);
	answer_then_end(tunnel, answer, len, &record);
}

void tunnel_close_unanswered(struct tunnel *tunnel, const char *reason)
{
	answer_then_end(tunnel, NULL, 0,
			&(struct connection_record){ .client = tunnel->client.address, .target = "-",
						     .duration_ms = tunnel_elapsed_ms(tunnel), .reason = reason });
}
