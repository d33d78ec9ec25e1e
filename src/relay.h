/*
 * relay: move bytes both ways between the client and the target until both
 * directions are done (tunneld(8) "The relay").
 */
#ifndef TUNNELD_RELAY_H
#define TUNNELD_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct relay_endpoints {
	int client_in;
	int client_out;    /* may equal client_in (one socket) */
	int target;
	int client_out_flags;  /* file status flags to give back before close(client_out), or -1 */
};

struct relay_result {
	uint64_t bytes_up;      /* written to the target, early data included */
	uint64_t bytes_down;    /* written to the client */
	const char *error;      /* NULL when both directions ended cleanly */
};

/*
 * Passes end of input on through fd: a socket is half-closed; anything else
 * (a pipe) can only be closed, after its file status flags are given back
 * (flags_to_restore, or -1), since after close() they cannot be.
 */
void relay_end_output(int fd, int flags_to_restore);

/*
 * early_data: bytes the client sent after the head, written to the target
 * first. idle_timeout_ms 0 means no idle timeout. Returns when both
 * directions ended, on an error, on the idle timeout, or on a stop signal.
 */
void relay_run(const struct relay_endpoints *ends, const char *early_data, size_t early_len, int idle_timeout_ms,
	       struct relay_result *result);

#endif
