#include "signals.h"

#include <signal.h>
#include <stddef.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;
static sigset_t wait_mask;   /* the mask inside signals_poll(): stop signals let through */

static void request_stop(int signal_number)
{
	(void)signal_number;
	stop_requested = 1;
}

/* Its only job is to interrupt the wait; gai_error() then tells what happened. */
static void note_lookup_done(int signal_number)
{
	(void)signal_number;
}

void signals_setup(void)
{
	static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction stop = { .sa_handler = request_stop };
	struct sigaction lookup_done = { .sa_handler = note_lookup_done };
	sigset_t blocked;

	/* A client or target gone mid-write must be an EPIPE, not a dead process. */
	(void)signal(SIGPIPE, SIG_IGN);
	(void)sigemptyset(&blocked);
	(void)sigemptyset(&stop.sa_mask);
	(void)sigemptyset(&lookup_done.sa_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		(void)sigaddset(&blocked, stop_signals[i]);
		(void)sigaction(stop_signals[i], &stop, NULL);
	}
	(void)sigaddset(&blocked, SIGNAL_LOOKUP_DONE);
	(void)sigaction(SIGNAL_LOOKUP_DONE, &lookup_done, NULL);
	(void)sigprocmask(SIG_BLOCK, &blocked, &wait_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		(void)sigdelset(&wait_mask, stop_signals[i]);
	(void)sigdelset(&wait_mask, SIGNAL_LOOKUP_DONE);
}

bool signals_stop_requested(void)
{
	return stop_requested != 0;
}

int signals_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
	struct timespec timeout = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };
	return ppoll(fds, count, timeout_ms < 0 ? NULL : &timeout, &wait_mask);
}
