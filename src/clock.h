/* clock: monotonic milliseconds, for deadlines that wall-clock jumps cannot move. */
#ifndef TUNNELD_CLOCK_H
#define TUNNELD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_ms(void)
{
	struct timespec now;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Milliseconds until deadline as a poll() timeout: never negative, never past INT32_MAX. */
static inline int clock_poll_timeout(int64_t deadline_ms)
{
	int64_t left = deadline_ms - clock_now_ms();
	if (left < 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

#endif
