/*
 * relay: one poll() loop, two directions.
 *
 * Each direction reads its source only while its buffer has room, so memory
 * is bounded whatever the speeds of the two peers. Where both ends of a
 * direction are sockets or pipes the buffer is a pipe of our own and bytes
 * move with splice(), never entering this process (as socket-proxyd does);
 * otherwise it is a 64 KiB array and bytes move with read() and write().
 *
 * End of input is passed on as a half-close once everything before it was
 * written (as Apache, HAProxy and socat do: "echo x | nc" must still get its
 * answer). A side that fails ends the tunnel, but what was already read from
 * it is still delivered to the other side.
 */
#include "relay.h"

#include "clock.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELAY_BUFFER_BYTES ((size_t)64 * 1024)
/*
 * fs.pipe-max-size by default: four times socket-proxyd's 256 KiB measured
 * 1.2-1.35x its bulk rate here (make bench). Pages are taken only as bytes
 * wait in the pipe; past the per-user pipe limits F_SETPIPE_SZ fails and the
 * 64 KiB default serves.
 */
#define RELAY_PIPE_BYTES (1024 * 1024)

struct direction {
	int from;
	int to;
	bool source_done;   /* EOF or error read, or the source side failed */
	bool done;          /* shut down, or its destination failed */
	bool spliced;       /* the buffer is pipe[] rather than buffer[] */
	bool pipe_full;     /* splice() into the pipe said EAGAIN: wait for a drain */
	int pipe[2];
	size_t capacity;
	size_t pending;     /* read but not yet written */
	size_t start;       /* buffer[start, start + pending) when not spliced */
	uint64_t bytes;
	char *buffer;       /* RELAY_BUFFER_BYTES, touched only when not spliced */
};

/*
 * Apart from the state, and never cleared: a page of them is only made
 * resident when read/write relaying uses it, so a spliced tunnel keeps its
 * private memory to what it touches (make bench measures it).
 */
static char up_buffer[RELAY_BUFFER_BYTES], down_buffer[RELAY_BUFFER_BYTES];

static bool is_socket(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool can_splice(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

/* Chooses splice() or read/write for d; early bytes are its first pending data. */
static void prepare(struct direction *d, const char *early_data, size_t early_len)
{
	d->capacity = RELAY_BUFFER_BYTES;
	if (can_splice(d->from) && can_splice(d->to) && pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
		int size = fcntl(d->pipe[1], F_SETPIPE_SZ, RELAY_PIPE_BYTES);
		if (size < 0)
			size = fcntl(d->pipe[1], F_GETPIPE_SZ);
		if (size > 0 && (size_t)size >= early_len &&
		    (early_len == 0 || write(d->pipe[1], early_data, early_len) == (ssize_t)early_len)) {
			d->spliced = true;
			d->capacity = (size_t)size;
			d->pending = early_len;
			return;
		}
		(void)close(d->pipe[0]);
		(void)close(d->pipe[1]);
	}
	if (early_len > 0)
		memcpy(d->buffer, early_data, early_len);
	d->pending = early_len;
}

static bool has_room(const struct direction *d)
{
	return d->spliced ? !d->pipe_full && d->pending < d->capacity : d->start + d->pending < d->capacity;
}

/* Moves what the source has into the buffer: 1 moved or EOF, 0 nothing yet, -1 error. */
static int fill(struct direction *d)
{
	ssize_t n;
	if (d->spliced)
		n = splice(d->from, NULL, d->pipe[1], NULL, d->capacity - d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	else
		n = read(d->from, d->buffer + d->start + d->pending, d->capacity - d->start - d->pending);
	if (n > 0) {
		d->pending += (size_t)n;
		return 1;
	}
	if (n == 0) {
		d->source_done = true;
		return 1;
	}
	int error = errno;
	if (error == EAGAIN && d->spliced) {
		/*
		 * A pipe fills by slots, one per segment spliced in, not by bytes: if
		 * the source is still readable, the pipe is what is full, and polling
		 * the source again would spin until a drain frees a slot.
		 */
		struct pollfd source = { .fd = d->from, .events = POLLIN };
		d->pipe_full = poll(&source, 1, 0) > 0;
	}
	return error == EAGAIN || error == EINTR ? 0 : -1;
}

static int drain(struct direction *d)
{
	ssize_t n;
	if (d->spliced)
		n = splice(d->pipe[0], NULL, d->to, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	else
		n = write(d->to, d->buffer + d->start, d->pending);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	d->pending -= (size_t)n;
	d->bytes += (uint64_t)n;
	d->pipe_full = false;
	d->start = d->pending == 0 ? 0 : d->start + (size_t)n;
	return 1;
}

void relay_end_output(int fd, int flags_to_restore)
{
	if (is_socket(fd)) {
		(void)shutdown(fd, SHUT_WR);
		return;
	}
	if (flags_to_restore >= 0)
		(void)fcntl(fd, F_SETFL, flags_to_restore);
	(void)close(fd);
}

static void finish(struct direction *d, const struct relay_endpoints *ends)
{
	relay_end_output(d->to, d->to == ends->client_out ? ends->client_out_flags : -1);
	d->done = true;
}

/* A side failed: nothing more can go to it, and nothing more is read from it. */
static void fail_side(struct direction *toward_side, struct direction *from_side)
{
	toward_side->done = true;
	toward_side->pending = 0;
	from_side->source_done = true;
}

void relay_run(const struct relay_endpoints *ends, const char *early_data, size_t early_len, int idle_timeout_ms,
	       struct relay_result *result)
{
	static struct direction up, down;
	int64_t idle_deadline_ms = idle_timeout_ms > 0 ? clock_now_ms() + idle_timeout_ms : 0;

	up = (struct direction){ .from = ends->client_in, .to = ends->target, .pipe = { -1, -1 }, .buffer = up_buffer };
	down = (struct direction){ .from = ends->target, .to = ends->client_out, .pipe = { -1, -1 }, .buffer = down_buffer };
	prepare(&up, early_data, early_len);
	prepare(&down, NULL, 0);
	result->error = NULL;

	while (!(up.done && down.done)) {
		struct direction *directions[2] = { &up, &down };
		struct pollfd fds[4];

		for (size_t i = 0; i < 2; i++) {
			struct direction *d = directions[i];
			if (!d->done && d->source_done && d->pending == 0)
				finish(d, ends);
			bool want_read = !d->source_done && has_room(d);
			bool want_write = !d->done && d->pending > 0;
			fds[2 * i] = (struct pollfd){ .fd = want_read ? d->from : -1, .events = POLLIN };
			fds[2 * i + 1] = (struct pollfd){ .fd = want_write ? d->to : -1, .events = POLLOUT };
		}
		if (up.done && down.done)
			break;
		if (signals_stop_requested()) {
			result->error = "stopped by signal";
			break;
		}

		int ready = signals_poll(fds, 4, idle_deadline_ms != 0 ? clock_poll_timeout(idle_deadline_ms) : -1);
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
			bool try_drain = fds[2 * i + 1].fd >= 0 && fds[2 * i + 1].revents != 0;
			if (fds[2 * i].fd >= 0 && fds[2 * i].revents != 0) {
				int status = fill(d);
				if (status < 0) {
					result->error = d == &up ? "client read failed" : "target read failed";
					fail_side(other, d);
				}
				moved |= status > 0;
				/* The destination is nearly always writable: one poll round per chunk, not two. */
				try_drain |= status > 0 && d->pending > 0 && !d->done;
			}
			if (try_drain) {
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
