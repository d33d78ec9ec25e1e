/*
 * connector: getaddrinfo_a and Happy Eyeballs (RFC 8305).
 *
 * Resolution runs asynchronously so that the connect timeout bounds it: a
 * plain getaddrinfo() can sit in the resolver for the resolver's own
 * timeouts, whatever ours says. IP literals never reach the resolver.
 *
 * Attempts start HAPPY_EYEBALLS_DELAY_MS apart, or at once when the previous
 * one failed, with address families interleaved; the first to complete wins
 * and the others are closed. The address connected is the address checked:
 * each sockaddr goes from the policy check straight to connect().
 */
#include "connector.h"

#include "clock.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(struct connect_outcome *outcome, enum failure failure, const char *why, const char *dns_rcode)
{
	outcome->failure = failure;
	outcome->why = why;
	outcome->dns_rcode = dns_rcode;
	return -1;
}

static int fail_resolution(struct connect_outcome *outcome, int gai_status)
{
	switch (gai_status) {
	case EAI_NONAME:
		return fail(outcome, FAILURE_DNS_ERROR, "host name does not resolve", "NXDOMAIN");
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
	case EAI_ADDRFAMILY:
		return fail(outcome, FAILURE_DNS_ERROR, "host name has no address", "NOERROR");
	case EAI_AGAIN:
		return fail(outcome, FAILURE_DNS_ERROR, "temporary failure in name resolution", NULL);
	default:
		return fail(outcome, FAILURE_DNS_ERROR, "name resolution failed", NULL);
	}
}

/*
 * Everything getaddrinfo_a's helper thread reads or writes. glibc cannot
 * cancel a lookup its thread is already running, and that thread writes its
 * answer into the gaicb whenever it comes, after our deadline too. So this
 * lives in static storage, is never freed, and each slot serves one lookup
 * (the design rule in connector.h).
 */
static struct lookup {
	struct gaicb request;
	struct addrinfo hints;
	struct sigevent notify;
	char name[HOST_MAX_BYTES + 2];
	char service[8];
} lookups[CONNECTOR_LOOKUPS_MAX];
static unsigned lookups_started;

static int fail_stopped(struct connect_outcome *outcome, const char *why)
{
	return fail(outcome, FAILURE_NONE, why, NULL);
}

int connector_resolve(const struct request *request, int64_t deadline_ms, struct addrinfo **result,
		      struct connect_outcome *outcome)
{
	struct addrinfo numeric_hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					  .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST };
	char service[8];

	(void)snprintf(service, sizeof(service), "%u", request->port);
	if (request->host_kind != HOST_NAME) {
		/* Synchronous and without a thread: nothing outlives the call. */
		int status = getaddrinfo(request->host, service, &numeric_hints, result);
		return status == 0 ? 0 : fail_resolution(outcome, status);
	}
	if (lookups_started >= CONNECTOR_LOOKUPS_MAX)
		return fail(outcome, FAILURE_DNS_ERROR, "no name lookup left in this process", NULL);

	struct lookup *lookup = &lookups[lookups_started++];
	memcpy(lookup->service, service, sizeof(service));
	(void)snprintf(lookup->name, sizeof(lookup->name), "%s", request->host);
	lookup->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					   .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV };
	lookup->request = (struct gaicb){ .ar_name = lookup->name, .ar_service = lookup->service,
					  .ar_request = &lookup->hints };
	lookup->notify = (struct sigevent){ .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGNAL_LOOKUP_DONE };
	struct gaicb *requests[1] = { &lookup->request };
	int status = getaddrinfo_a(GAI_NOWAIT, requests, 1, &lookup->notify);
	if (status != 0)
		return fail_resolution(outcome, status);
	while ((status = gai_error(&lookup->request)) == EAI_INPROGRESS) {
		if (signals_stop_requested()) {
			(void)gai_cancel(&lookup->request);
			return fail_stopped(outcome, "stopped by signal while resolving");
		}
		if (clock_poll_timeout(deadline_ms) == 0) {
			(void)gai_cancel(&lookup->request);
			return fail(outcome, FAILURE_DNS_TIMEOUT, "name resolution timed out", NULL);
		}
		/* Ends early on SIGNAL_LOOKUP_DONE or a stop signal. */
		(void)signals_poll(NULL, 0, clock_poll_timeout(deadline_ms));
	}
	if (status != 0)
		return fail_resolution(outcome, status);
	*result = lookup->request.ar_result;
	return 0;
}

/*
 * RFC 8305 §4: keep getaddrinfo's (RFC 6724) order within each family, and
 * alternate families starting with the family of the first address.
 */
/* An address to try, and where to leave from for it. */
struct candidate {
	const struct addrinfo *address;
	struct outgoing from;
};

static size_t order_candidates(struct addrinfo *list, connector_judge judge, const void *context,
			       struct candidate *ordered, size_t *denied, size_t *without_from)
{
	struct candidate by_family[2][CONNECT_ADDRESSES_MAX];
	size_t count[2] = { 0, 0 };
	int first_family = list != NULL ? list->ai_family : AF_INET6;
	size_t n = 0;

	*denied = *without_from = 0;
	for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
		size_t group = ai->ai_family == first_family ? 0 : 1;
		struct outgoing from = { 0 };
		if (!judge(context, ai->ai_addr, &from)) {
			(*denied)++;
			continue;
		}
		if (!outgoing_serves(&from, ai->ai_addr)) { /* tunneld(8) "Leaving from an address" */
			(*without_from)++;
			continue;
		}
		if (count[group] < CONNECT_ADDRESSES_MAX)
			by_family[group][count[group]++] = (struct candidate){ .address = ai, .from = from };
	}
	for (size_t i = 0; n < CONNECT_ADDRESSES_MAX && (i < count[0] || i < count[1]); i++) {
		if (i < count[0])
			ordered[n++] = by_family[0][i];
		if (i < count[1] && n < CONNECT_ADDRESSES_MAX)
			ordered[n++] = by_family[1][i];
	}
	return n;
}

static void set_socket_options(int fd)
{
	int on = 1;
	/* A dead peer behind a NAT must not hold a tunnel (and a process) forever. */
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	/* Interactive protocols (ssh) inside the tunnel must not wait on Nagle. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/* Urgent data is relayed in its place in the stream (tunneld(8) "The relay"). */
	(void)setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on));
}

/*
 * Leaves from from's address: bound to it with no port yet, so that the
 * kernel picks the port at connect() for this destination alone, and every
 * destination has the whole ephemeral range (a bind that picked the port
 * would reserve it for all of them). 0, or -1 with errno set.
 */
static int leave_from(int fd, const struct outgoing *from, const struct sockaddr *target)
{
	struct sockaddr_storage local;
	int on = 1;

	if (!from->set)
		return 0;
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on));
	socklen_t len = outgoing_address(from, target, &local);
	return bind(fd, (struct sockaddr *)&local, len);
}

/* Starts a non-blocking connect; the socket, or -1 with errno set and *bind_failed when the bind was what failed. */
static int start_attempt(const struct candidate *candidate, bool *bind_failed)
{
	const struct addrinfo *ai = candidate->address;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -1;
	set_socket_options(fd);
	*bind_failed = leave_from(fd, &candidate->from, ai->ai_addr) < 0;
	if (!*bind_failed && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS))
		return fd;
	int saved = errno;
	(void)close(fd);
	errno = saved;
	return -1;
}

/* Which failure to report when every attempt failed: the most telling errno seen. */
static int fail_connect(struct connect_outcome *outcome, int error)
{
	switch (error) {
	case ECONNREFUSED:
		return fail(outcome, FAILURE_CONNECTION_REFUSED, "connection refused by the target", NULL);
	case EHOSTUNREACH:
		return fail(outcome, FAILURE_HOST_UNREACHABLE, "target host unreachable", NULL);
	case ENETUNREACH:
	case EADDRNOTAVAIL:
	case EAFNOSUPPORT:
		return fail(outcome, FAILURE_UNROUTABLE, "target unreachable", NULL);
	case ETIMEDOUT:
		return fail(outcome, FAILURE_CONNECT_TIMEOUT, "connection to the target timed out", NULL);
	default:
		return fail(outcome, FAILURE_DESTINATION_UNAVAILABLE, "connection to the target failed", NULL);
	}
}

static int error_rank(int error)
{
	switch (error) {
	case ECONNREFUSED:
		return 3;
	case ENETUNREACH:
	case EHOSTUNREACH:
		return 2;
	case 0:
		return 0;
	default:
		return 1;
	}
}

/*
 * A bind that failed, or a connection that left from another address (a
 * broadcast one bound): the address is the configuration's fault, not the
 * target's, and the record says which. error 0: the latter.
 */
static int fail_leaving(struct connect_outcome *outcome, const struct candidate *candidate, int error)
{
	static char why[INET6_ADDRSTRLEN + 96];
	char text[INET6_ADDRSTRLEN] = "?";
	int family = outgoing_family(candidate->address->ai_addr);

	(void)inet_ntop(family, family == AF_INET ? (const void *)&candidate->from.v4 : (const void *)&candidate->from.v6,
			text, sizeof(text));
	(void)snprintf(why, sizeof(why), "cannot leave from %s: %s", text,
		       error == 0		 ? "the kernel chose another address (a broadcast one?)"
		       : error == EADDRNOTAVAIL ? "not an address of this host"
						: strerror(error));
	return fail(outcome, FAILURE_OUTGOING_UNUSABLE, why, NULL);
}

static int race_attempts(const struct candidate *candidates, size_t candidate_count, int64_t deadline_ms,
			 struct connect_outcome *outcome)
{
	struct pollfd in_flight[CONNECT_ADDRESSES_MAX];
	const struct candidate *in_flight_candidate[CONNECT_ADDRESSES_MAX];
	size_t in_flight_count = 0;
	size_t next = 0;
	int64_t next_start_ms = 0;
	int worst_error = 0;
	const struct candidate *unbound = NULL; /* the first whose address could not be bound */
	int unbound_error = 0;

	for (;;) {
		int64_t now = clock_now_ms();
		if (next < candidate_count && now < deadline_ms && (in_flight_count == 0 || now >= next_start_ms)) {
			bool bind_failed = false;
			int fd = start_attempt(&candidates[next++], &bind_failed);
			if (fd >= 0) {
				in_flight_candidate[in_flight_count] = &candidates[next - 1];
				in_flight[in_flight_count++] = (struct pollfd){ .fd = fd, .events = POLLOUT };
				next_start_ms = now + HAPPY_EYEBALLS_DELAY_MS;
			} else if (bind_failed && unbound == NULL) {
				unbound = &candidates[next - 1];
				unbound_error = errno;
			} else if (!bind_failed && error_rank(errno) >= error_rank(worst_error)) {
				worst_error = errno;
			}
			continue;
		}
		if (now >= deadline_ms)
			break;
		if (in_flight_count == 0 && unbound != NULL && worst_error == 0)
			return fail_leaving(outcome, unbound, unbound_error);
		if (in_flight_count == 0)
			return fail_connect(outcome, worst_error);

		int64_t wake_ms = deadline_ms;
		if (next < candidate_count && next_start_ms < wake_ms)
			wake_ms = next_start_ms;
		if (signals_stop_requested())
			break;
		int ready = signals_poll(in_flight, in_flight_count, clock_poll_timeout(wake_ms));
		if (ready < 0 && errno != EINTR)
			break;
		for (size_t i = in_flight_count; ready > 0 && i-- > 0;) {
			int error = 0;
			socklen_t error_len = sizeof(error);
			if (in_flight[i].revents == 0)
				continue;
			if (getsockopt(in_flight[i].fd, SOL_SOCKET, SO_ERROR, &error, &error_len) < 0)
				error = errno;
			if (error == 0) {
				int winner = in_flight[i].fd;
				const struct candidate *won = in_flight_candidate[i];
				for (size_t j = 0; j < in_flight_count; j++)
					if (j != i)
						(void)close(in_flight[j].fd);
				if (outgoing_was_used(&won->from, won->address->ai_addr, winner))
					return winner;
				(void)close(winner);
				return fail_leaving(outcome, won, 0);
			}
			if (error_rank(error) >= error_rank(worst_error))
				worst_error = error;
			(void)close(in_flight[i].fd);
			in_flight_candidate[i] = in_flight_candidate[in_flight_count - 1];
			in_flight[i] = in_flight[--in_flight_count];
			/* A failure frees the next attempt to start now (RFC 8305 §5). */
			next_start_ms = 0;
		}
	}
	for (size_t j = 0; j < in_flight_count; j++)
		(void)close(in_flight[j].fd);
	if (signals_stop_requested())
		return fail_stopped(outcome, "stopped by signal while connecting");
	return fail(outcome, FAILURE_CONNECT_TIMEOUT, "connection to the target timed out", NULL);
}

int connector_connect(struct addrinfo *addresses, connector_judge judge, const void *context, int64_t deadline_ms,
		      struct connect_outcome *outcome)
{
	struct candidate candidates[CONNECT_ADDRESSES_MAX];
	size_t denied, without_from;

	outcome->failure = FAILURE_NONE;
	size_t candidate_count = order_candidates(addresses, judge, context, candidates, &denied, &without_from);
	if (candidate_count == 0 && without_from > 0)
		return fail(outcome, FAILURE_NO_OUTGOING,
			    "the outgoing address has none of the target's address families", NULL);
	if (candidate_count == 0)
		return fail(outcome, FAILURE_DESTINATION_DENIED,
			    "every address of the target is denied by the destination rules", NULL);
	return race_attempts(candidates, candidate_count, deadline_ms, outcome);
}

int connector_open(const struct request *request, connector_judge judge, const void *context, int64_t deadline_ms,
		   struct connect_outcome *outcome)
{
	struct addrinfo *addresses = NULL;

	outcome->failure = FAILURE_NONE;
	if (connector_resolve(request, deadline_ms, &addresses, outcome) < 0)
		return -1;
	int fd = connector_connect(addresses, judge, context, deadline_ms, outcome);
	freeaddrinfo(addresses);
	return fd;
}
