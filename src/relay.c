/*
 * relay: one poll() loop, two directions.
 *
 * Each direction reads its source only while its buffer has room, so memory
 * is bounded whatever the speeds of the two peers. Where both ends of a
 * direction are sockets or pipes the buffer is a pipe of our own and bytes
 * move with splice(), never entering this process (as socket-proxyd does);
 * otherwise it is a 64 KiB array and bytes move with read() and write().
 * The pipe is made when a direction first reads a full RELAY_PROBE_BYTES:
 * until then its bytes go through a small buffer on the stack, as many
 * calls as splice() would take, and a tunnel that carries a request and its
 * answer never pays for two pipes (about 20 us, measured).
 *
 * End of input is passed on as a half-close once everything before it was
 * written (as Apache, HAProxy and socat do: "echo x | nc" must still get its
 * answer). A side that fails ends the tunnel: what was already read from it
 * is still delivered to the other side, which is then reset rather than
 * half-closed, so that it cannot take a broken stream for a complete one.
 *
 * Urgent data is ordinary data here: both TCP sockets have SO_OOBINLINE
 * (RFC 6093 asks that of applications), so the urgent byte is relayed in
 * its place in the stream, and the urgent flag is not carried.
 */
#include "relay.h"

#include "clock.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELAY_BUFFER_BYTES ((size_t)64 * 1024)
#define RELAY_PROBE_BYTES ((size_t)2048)
/*
 * fs.pipe-max-size by default: four times socket-proxyd's 256 KiB measured
 * 1.2-1.35x its bulk rate here (make bench). Pages are taken only as bytes
 * wait in the pipe; past the per-user pipe limits F_SETPIPE_SZ fails and the
 * 64 KiB default serves.
 */
#define RELAY_PIPE_BYTES (1024 * 1024)
#define RESET_PROGRESS_CHECK_MS 1000 /* a peer slowly taking what is left: is it taking any? */
#define RESET_ACK_WAIT_MS 1000       /* for the bytes in flight, once all are sent */
#define RESET_ACK_CHECK_MS 5

struct direction {
	int from;
	int to;
	bool source_done;   /* EOF or error read, or the source side failed */
	bool source_failed; /* ...by an error, not an EOF: the destination is reset once drained */
	bool done;          /* shut down, or its destination failed */
	bool spliced;       /* the buffer is pipe[] rather than buffer[] */
	bool pipe_full;     /* splice() into the pipe said EAGAIN: wait for a drain */
	bool to_is_socket;  /* shut down at the end, not closed; a failed source resets it */
	bool splice_later;  /* both ends can splice: a pipe once a read fills the small buffer */
	bool splice_now;    /* ...one did: a pipe as soon as that buffer is drained */
	int pipe[2];
	size_t capacity;
	size_t pending;     /* read but not yet written */
	size_t start;       /* buffer[start, start + pending) when not spliced */
	uint64_t bytes;
	char *buffer;       /* capacity bytes, when not spliced: the probe, or large_buffer */
	char *large_buffer; /* RELAY_BUFFER_BYTES, touched only when not spliced */
};

/*
 * Apart from the state, and never cleared: a page of them is only made
 * resident when read/write relaying uses it, so a spliced tunnel keeps its
 * private memory to what it touches (make bench measures it).
 */
static char up_buffer[RELAY_BUFFER_BYTES], down_buffer[RELAY_BUFFER_BYTES];

/* The type bits of st_mode, 0 if fd cannot say. */
static mode_t file_type(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_mode & S_IFMT : 0;
}

static bool is_socket(int fd)
{
	return file_type(fd) == S_IFSOCK;
}

static bool can_splice(mode_t type)
{
	return type == S_IFSOCK || type == S_IFIFO;
}

/* d's pipe, with its early bytes; false, and no pipe, if it cannot be had. */
static bool make_pipe(struct direction *d, const char *early_data, size_t early_len)
{
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
		int size = fcntl(d->pipe[1], F_SETPIPE_SZ, RELAY_PIPE_BYTES);
		if (size < 0)
			size = fcntl(d->pipe[1], F_GETPIPE_SZ);
		if (size > 0 && (size_t)size >= early_len &&
		    (early_len == 0 || write(d->pipe[1], early_data, early_len) == (ssize_t)early_len)) {
			d->spliced = true;
			d->capacity = (size_t)size;
			d->pending = early_len;
			return true;
		}
		(void)close(d->pipe[0]);
		(void)close(d->pipe[1]);
		d->pipe[0] = d->pipe[1] = -1;
	}
	return false;
}

/*
 * Chooses splice() or read/write for d, given its ends' types (asked once
 * for the tunnel: each fstat() is a system call); early bytes are its first
 * pending data. probe: RELAY_PROBE_BYTES for the bytes before the pipe.
 */
static void prepare(struct direction *d, mode_t from_type, mode_t to_type, char *probe, const char *early_data,
		    size_t early_len)
{
	d->capacity = RELAY_BUFFER_BYTES;
	d->to_is_socket = to_type == S_IFSOCK;
	if (can_splice(from_type) && can_splice(to_type)) {
		if (early_len <= RELAY_PROBE_BYTES) {
			d->splice_later = true;
			d->buffer = probe;
			d->capacity = RELAY_PROBE_BYTES;
		} else if (make_pipe(d, early_data, early_len)) {
			return;
		}
	}
	if (early_len > 0)
		memcpy(d->buffer, early_data, early_len);
	d->pending = early_len;
}

/* A read filled d's small buffer, now drained: a pipe from here, or the large buffer if none can be had. */
static void leave_probe(struct direction *d)
{
	d->splice_later = d->splice_now = false;
	if (make_pipe(d, NULL, 0))
		return;
	d->buffer = d->large_buffer;
	d->capacity = RELAY_BUFFER_BYTES;
}

static bool has_room(const struct direction *d)
{
	return d->spliced ? !d->pipe_full && d->pending < d->capacity : d->start + d->pending < d->capacity;
}

/*
 * splice() said EAGAIN while the source may be readable. Either the pipe is
 * full (it fills by slots, one per segment spliced in, not by bytes), or
 * the source has bytes splice() will not take: at TCP's urgent mark
 * tcp_read_sock() reads nothing, SO_OOBINLINE or not, until a read() has
 * passed it, and polling the source again would spin. Such bytes move by
 * read() and write(), PIPE_BUF at most: a pipe with a free slot takes that
 * much whole (pipe(7)), and this process is its only writer.
 */
static int fill_past_splice(struct direction *d)
{
	struct pollfd ends[2] = { { .fd = d->from, .events = POLLIN }, { .fd = d->pipe[1], .events = POLLOUT } };
	char bytes[PIPE_BUF];

	if (poll(ends, 2, 0) <= 0 || ends[0].revents == 0)
		return 0;
	if (!(ends[1].revents & POLLOUT)) {
		d->pipe_full = true; /* it holds bytes, so its destination is polled: never a wait for nothing */
		return 0;
	}
	ssize_t n = read(d->from, bytes, sizeof(bytes));
	if (n == 0) {
		d->source_done = true;
		return 1;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (write(d->pipe[1], bytes, (size_t)n) != n) {
		errno = EIO; /* the kernel had no page for the free slot: these bytes cannot be delivered */
		return -1;
	}
	d->pending += (size_t)n;
	return 1;
}

static bool bytes_waiting(int fd)
{
	int count = 0;
	return ioctl(fd, FIONREAD, &count) == 0 && count > 0;
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
		d->splice_now |= d->splice_later && d->start + d->pending == d->capacity;
		return 1;
	}
	if (n == 0 && d->spliced && bytes_waiting(d->from))
		return fill_past_splice(d); /* at the urgent mark after the peer's FIN, splice() says 0 too */
	if (n == 0) {
		d->source_done = true;
		return 1;
	}
	if (errno == EAGAIN && d->spliced)
		return fill_past_splice(d);
	return errno == EAGAIN || errno == EINTR ? 0 : -1;
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
	if (d->pending == 0 && d->splice_now && !d->source_done)
		leave_probe(d);
	return 1;
}

static void end_output(int fd, bool fd_is_socket, int flags_to_restore)
{
	if (fd_is_socket) {
		(void)shutdown(fd, SHUT_WR);
		return;
	}
	if (flags_to_restore >= 0)
		(void)fcntl(fd, F_SETFL, flags_to_restore);
	(void)close(fd);
}

void relay_end_output(int fd, int flags_to_restore)
{
	end_output(fd, is_socket(fd), flags_to_restore);
}

/*
 * The source ended: a clean end is passed on as one, a failed source as a
 * reset (SO_LINGER 0: the last close of the socket sends RST, with this
 * process's exit or, under systemd, the manager's close of its copy). A
 * pipe can only be closed.
 */
/*
 * Before a reset: what was written to fd is delivered first, since a reset
 * discards all the peer has not yet acknowledged (a FIN would have let the
 * kernel deliver it after exit). Sent first: with TCP_NOTSENT_LOWAT of 1,
 * POLLOUT means nothing is left unsent, an event, waited for as long as
 * the peer keeps taking bytes within the idle timeout, as any tunnel waits
 * for a slow reader. Then acknowledged, which no event tells: asked every
 * few milliseconds, RESET_ACK_WAIT_MS at most. A stop signal, or the peer
 * gone, ends the wait. Not TCP (a unix socket): nothing to wait for.
 */
static void deliver_before_reset(int fd, int idle_timeout_ms)
{
	int one = 1, queued = 0, last_queued = -1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &one, sizeof(one)) < 0)
		return;
	int64_t idle_deadline_ms = idle_timeout_ms > 0 ? clock_now_ms() + idle_timeout_ms : 0;
	for (;;) {
		struct pollfd out = { .fd = fd, .events = POLLOUT };
		int wait_ms = RESET_PROGRESS_CHECK_MS;
		if (idle_deadline_ms != 0 && clock_poll_timeout(idle_deadline_ms) < wait_ms)
			wait_ms = clock_poll_timeout(idle_deadline_ms);
		if (signals_stop_requested())
			return;
		int ready = signals_poll(&out, 1, wait_ms);
		if (ready > 0 && (out.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
			return;
		if (ready > 0)
			break;
		if (ready < 0 && errno != EINTR)
			return;
		if (ioctl(fd, SIOCOUTQ, &queued) < 0)
			return;
		if (queued != last_queued && idle_timeout_ms > 0)
			idle_deadline_ms = clock_now_ms() + idle_timeout_ms; /* the peer took some: not idle */
		else if (idle_deadline_ms != 0 && clock_now_ms() >= idle_deadline_ms)
			return;
		last_queued = queued;
	}
	int64_t ack_deadline_ms = clock_now_ms() + RESET_ACK_WAIT_MS;
	while (!signals_stop_requested() && ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 &&
	       clock_poll_timeout(ack_deadline_ms) > 0) {
		struct pollfd gone = { .fd = fd, .events = 0 };
		if (signals_poll(&gone, 1, RESET_ACK_CHECK_MS) > 0)
			return;
	}
}

static void finish(struct direction *d, const struct relay_endpoints *ends, int idle_timeout_ms)
{
	static const struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	if (d->source_failed && d->to_is_socket) {
		deliver_before_reset(d->to, idle_timeout_ms);
		if (setsockopt(d->to, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) == 0) {
			d->done = true;
			return;
		}
	}
	end_output(d->to, d->to_is_socket, d->to == ends->client_out ? ends->client_out_flags : -1);
	d->done = true;
}

/* A side failed: nothing more can go to it, nothing more is read from it, and the other side is reset. */
static void fail_side(struct direction *toward_side, struct direction *from_side)
{
	toward_side->done = true;
	toward_side->pending = 0;
	from_side->source_done = true;
	from_side->source_failed = true;
}

/* The record's words for a side that failed: a reset is named as one. */
static const char *failure_of(bool client_side, bool reading, int error)
{
	if (error == ECONNRESET)
		return client_side ? "client reset the connection" : "target reset the connection";
	if (reading)
		return client_side ? "client read failed" : "target read failed";
	return client_side ? "client write failed" : "target write failed";
}

void relay_run(const struct relay_endpoints *ends, const char *early_data, size_t early_len, int idle_timeout_ms,
	       struct relay_result *result)
{
	static struct direction up, down;
	char probes[2][RELAY_PROBE_BYTES]; /* on pages of the stack that the request's phases dirtied already */
	int64_t idle_deadline_ms = idle_timeout_ms > 0 ? clock_now_ms() + idle_timeout_ms : 0;

	up = (struct direction){ .from = ends->client_in, .to = ends->target, .pipe = { -1, -1 }, .buffer = up_buffer,
				 .large_buffer = up_buffer };
	down = (struct direction){ .from = ends->target, .to = ends->client_out, .pipe = { -1, -1 },
				   .buffer = down_buffer, .large_buffer = down_buffer };
	mode_t client_in_type = file_type(ends->client_in), target_type = file_type(ends->target);
	mode_t client_out_type = ends->client_out == ends->client_in ? client_in_type : file_type(ends->client_out);
	prepare(&up, client_in_type, target_type, probes[0], early_data, early_len);
	prepare(&down, target_type, client_out_type, probes[1], NULL, 0);
	result->error = NULL;

	while (!(up.done && down.done)) {
		struct direction *directions[2] = { &up, &down };
		struct pollfd fds[4];

		bool waiting = false;
		for (size_t i = 0; i < 2; i++) {
			struct direction *d = directions[i];
			if (!d->done && d->source_done && d->pending == 0)
				finish(d, ends, idle_timeout_ms);
			bool want_read = !d->source_done && has_room(d);
			bool want_write = !d->done && d->pending > 0;
			fds[2 * i] = (struct pollfd){ .fd = want_read ? d->from : -1, .events = POLLIN };
			fds[2 * i + 1] = (struct pollfd){ .fd = want_write ? d->to : -1, .events = POLLOUT };
			waiting |= want_read || want_write;
		}
		if (up.done && down.done)
			break;
		if (!waiting) { /* a direction neither done nor waiting on anything: never a wait without end */
			result->error = "relay stalled";
			break;
		}
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
					result->error = failure_of(d == &up, true, errno);
					fail_side(other, d);
				}
				moved |= status > 0;
				/* The destination is nearly always writable: one poll round per chunk, not two. */
				try_drain |= status > 0 && d->pending > 0 && !d->done;
			}
			if (try_drain) {
				int status = drain(d);
				if (status < 0) {
					result->error = failure_of(d == &down, false, errno);
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
	up.buffer = down.buffer = NULL; /* the probes were on this frame */
}
