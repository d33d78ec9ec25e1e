/*
 * signals: one model for every wait.
 *
 * SIGTERM, SIGINT and SIGHUP are blocked everywhere except inside
 * signals_poll(), which is ppoll() with them unblocked. A stop signal that
 * arrives between a check of signals_stop_requested() and the wait stays
 * pending and ends that wait at once, so no wait can miss or outlive it.
 * One that is pending already is seen at the first wait; later, a phase
 * whose waits never sleep (both ends of a relay always ready) sees it
 * within PENDING_CHECK_EVERY_MS. Every wait in tunneld goes through
 * signals_poll().
 */
#ifndef TUNNELD_SIGNALS_H
#define TUNNELD_SIGNALS_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>

/*
 * Delivered by getaddrinfo_a's helper thread when a lookup completes
 * (SIGEV_SIGNAL), so that the resolver's wait is a signals_poll() too.
 */
#define SIGNAL_LOOKUP_DONE (SIGRTMIN)

/*
 * Blocks the stop signals, installs their handler; SIGPIPE is ignored. Call
 * first. The mask in force afterwards into mask_now, unless NULL: asked
 * here, not again (a system call costs a new process about a microsecond).
 */
void signals_setup(sigset_t *mask_now);

bool signals_stop_requested(void);

/*
 * poll() that a stop signal interrupts: -1 with errno EINTR then (and when
 * SIGNAL_LOOKUP_DONE arrives). timeout_ms < 0 waits without a deadline.
 */
int signals_poll(struct pollfd *fds, nfds_t count, int timeout_ms);

/*
 * The last phase, writing the record, waits in calls that are not ours
 * (write to fd 2, syslog(3), sd_journal_sendv) and that a stuck log sink can
 * block. From here on a stop signal, or one already received, leaves
 * FINISH_AFTER_STOP_MS to finish; then SIGALRM ends the process.
 */
#define FINISH_AFTER_STOP_MS 100
void signals_finishing(void);

/* The record is written: what is left is a sanitizer's leak check, which no signal need cut short. */
void signals_finished(void);

#endif
