#include "signals.h"

#include "clock.h"

#include <signal.h>
#include <stddef.h>
#include <sys/time.h>
#include <time.h>

static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
#define STOP_SIGNAL_COUNT (sizeof(stop_signals) / sizeof(stop_signals[0]))
#define PENDING_CHECK_EVERY_MS 10

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t finish_deadline_armed;
static sigset_t wait_mask;   /* the mask inside signals_poll(): stop signals let through */
static int64_t next_pending_check_ms;

static void stop_signal_set(sigset_t *stops)
{
	(void)sigemptyset(stops);
	for (size_t i = 0; i < STOP_SIGNAL_COUNT; i++)
		(void)sigaddset(stops, stop_signals[i]);
}

static void install_stop_handler(void (*handler)(int))
{
	struct sigaction action = { .sa_handler = handler };

	stop_signal_set(&action.sa_mask);
	for (size_t i = 0; i < STOP_SIGNAL_COUNT; i++)
		(void)sigaction(stop_signals[i], &action, NULL);
}

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

void signals_setup(sigset_t *mask_now)
{
	struct sigaction lookup_done = { .sa_handler = note_lookup_done };
	sigset_t blocked;

	/* A client or target gone mid-write must be an EPIPE, not a dead process. */
	(void)signal(SIGPIPE, SIG_IGN);
	install_stop_handler(request_stop);
	(void)sigemptyset(&lookup_done.sa_mask);
	(void)sigaction(SIGNAL_LOOKUP_DONE, &lookup_done, NULL);
	stop_signal_set(&blocked);
	(void)sigaddset(&blocked, SIGNAL_LOOKUP_DONE);
	(void)sigprocmask(SIG_BLOCK, &blocked, &wait_mask);
	if (mask_now != NULL)
		(void)sigorset(mask_now, &wait_mask, &blocked);
	next_pending_check_ms = 0; /* the first wait asks: a stop pending since before exec ends the first phase */
	for (size_t i = 0; i < STOP_SIGNAL_COUNT; i++)
		(void)sigdelset(&wait_mask, stop_signals[i]);
	(void)sigdelset(&wait_mask, SIGNAL_LOOKUP_DONE);
}

bool signals_stop_requested(void)
{
	return stop_requested != 0;
}

static bool stop_signal_pending(void)
{
	sigset_t pending;

	if (sigpending(&pending) < 0)
		return false;
	for (size_t i = 0; i < STOP_SIGNAL_COUNT; i++)
		if (sigismember(&pending, stop_signals[i]) == 1)
			return true;
	return false;
}

int signals_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
	struct timespec timeout = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };
	int ready = ppoll(fds, count, timeout_ms < 0 ? NULL : &timeout, &wait_mask);
	/*
	 * ppoll() runs a handler only when it would otherwise sleep: with a
	 * descriptor ready at once it puts the mask back and the signal stays
	 * pending. A relay whose peers are always ready would never see it: it
	 * is asked at the first wait, then every PENDING_CHECK_EVERY_MS of such
	 * waits, not at each (a system call every time, for a short tunnel
	 * as many as its whole relay).
	 */
	int64_t now_ms = ready >= 0 ? clock_now_ms() : 0;
	if (ready >= 0 && now_ms >= next_pending_check_ms) {
		next_pending_check_ms = now_ms + PENDING_CHECK_EVERY_MS;
		if (stop_signal_pending())
			stop_requested = 1;
	}
	return ready;
}

/* SIGALRM's default action ends the process: the time to finish is over. */
static void arm_finish_deadline(void)
{
	struct itimerval deadline = { .it_value = { .tv_sec = 0, .tv_usec = (suseconds_t)FINISH_AFTER_STOP_MS * 1000 } };

	if (finish_deadline_armed)
		return;
	finish_deadline_armed = 1;
	(void)setitimer(ITIMER_REAL, &deadline, NULL);
}

static void stop_while_finishing(int signal_number)
{
	(void)signal_number;
	stop_requested = 1;
	arm_finish_deadline();
}

void signals_finishing(void)
{
	sigset_t stops;

	install_stop_handler(stop_while_finishing);
	(void)signal(SIGALRM, SIG_DFL);
	if (stop_requested)
		arm_finish_deadline();
	/* A stop still pending is delivered here; SIGALRM, a parent may have left blocked. */
	stop_signal_set(&stops);
	(void)sigaddset(&stops, SIGALRM);
	(void)sigprocmask(SIG_UNBLOCK, &stops, NULL);
}

void signals_finished(void)
{
	static const struct itimerval disarmed;
	sigset_t stops;

	stop_signal_set(&stops);
	(void)sigprocmask(SIG_BLOCK, &stops, NULL);
	(void)setitimer(ITIMER_REAL, &disarmed, NULL);
}
