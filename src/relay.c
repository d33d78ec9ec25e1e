/*
 * relay: one poll() loop, two directions.
 *
 * Each direction reads its source only while its buffer has room, so memory
 * is bounded whatever the speeds of the two peers. End of input is passed on
 * as a half-close once everything before it was written (as Apache, HAProxy
 * and socat do: "echo x | nc" must still get its answer). A side that fails
 * ends the tunnel, but what was already read from it is still delivered to
 * the other side.
 */
#include "relay.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELAY_BUFFER_BYTES (64 * 1024)

struct direction {
	int from;
	int to;
	bool source_done;   /* EOF or error read, or the source side failed */
	bool done;          /* shut down, or its destination failed */
	size_t start;       /* buffer[start, end) is read but not yet written */
	size_t end;
	uint64_t bytes;
	char buffer[RELAY_BUFFER_BYTES];
};

static bool is_socket(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Reads into the free tail of the buffer; -1 on a real error (errno set). */
static int fill(struct direction *d)
{
	ssize_t n = read(d->from, d->buffer + d->end, sizeof(d->buffer) - d->end);
	if (n > 0) {
		d->end += (size_t)n;
		return 1;
	}
	if (n == 0) {
		d->source_done = true;
		return 1;
	}
	return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

static int drain(struct direction *d)
{
	ssize_t n = write(d->to, d->buffer + d->start, d->end - d->start);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	d->start += (size_t)n;
	d->bytes += (uint64_t)n;
	if (d->start == d->end)
		d->start = d->end = 0;
	return 1;
}

/*
 * Passes EOF on: a socket is half-closed; a pipe can only be closed, and its
 * flags go back first, since after close() they cannot.
 */
static void finish(struct direction *d, const struct relay_endpoints *ends)
{
	if (d->to == ends->target || is_socket(d->to)) {
		(void)shutdown(d->to, SHUT_WR);
	} else {
		if (ends->client_out_flags >= 0)
			(void)fcntl(d->to, F_SETFL, ends->client_out_flags);
		(void)close(d->to);
	}
	d->done = true;
}

/* A side failed: nothing more can go to it, and nothing more is read from it. */
static void fail_side(struct direction *toward_side, struct direction *from_side)
{
	toward_side->done = true;
	toward_side->start = toward_side->end = 0;
	from_side->source_done = true;
}

void relay_run(const struct relay_endpoints *ends, const char *early_data, size_t early_len, int idle_timeout_ms,
	       const volatile sig_atomic_t *stop, struct relay_result *result)
{
	static struct direction up, down;
	int64_t idle_deadline_ms = idle_timeout_ms > 0 ? clock_now_ms() + idle_timeout_ms : 0;

	up = (struct direction){ .from = ends->client_in, .to = ends->target };
	down = (struct direction){ .from = ends->target, .to = ends->client_out };
	memcpy(up.buffer, early_data, early_len);
	up.end = early_len;
	result->error = NULL;

	while (!(up.done && down.done)) {
		struct direction *directions[2] = { &up, &down };
		struct pollfd fds[4];

		for (size_t i = 0; i < 2; i++) {
			struct direction *d = directions[i];
			if (!d->done && d->source_done && d->start == d->end)
				finish(d, ends);
			bool want_read = !d->source_done && d->end < sizeof(d->buffer);
			bool want_write = !d->done && d->start < d->end;
			fds[2 * i] = (struct pollfd){ .fd = want_read ? d->from : -1, .events = POLLIN };
			fds[2 * i + 1] = (struct pollfd){ .fd = want_write ? d->to : -1, .events = POLLOUT };
		}
		if (up.done && down.done)
			break;
		if (*stop) {
			result->error = "stopped by signal";
			break;
		}

		int ready = poll(fds, 4, idle_deadline_ms != 0 ? clock_poll_timeout(idle_deadline_ms) : -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			result->error = "poll failed";
			break;
		}
		if (ready == 0) {
			result->error = "idle timeout";
			break;
		}

		bool moved = false;
		for (size_t i = 0; i < 2; i++) {
			struct direction *d = directions[i];
			struct direction *other = directions[1 - i];
			if (fds[2 * i].fd >= 0 && fds[2 * i].revents != 0) {
				int status = fill(d);
				if (status < 0) {
					result->error = d == &up ? "client read failed" : "target read failed";
					fail_side(other, d);
				}
				moved |= status > 0;
			}
			if (fds[2 * i + 1].fd >= 0 && fds[2 * i + 1].revents != 0) {
				int status = drain(d);
				if (status < 0) {
					result->error = d == &up ? "target write failed" : "client write failed";
					fail_side(d, other);
				}
				moved |= status > 0;
			}
		}
		if (moved && idle_timeout_ms > 0)
			idle_deadline_ms = clock_now_ms() + idle_timeout_ms;
	}
	result->bytes_up = up.bytes;
	result->bytes_down = down.bytes;
}
