/*
 * An LD_PRELOAD shim for tests/faults.bats: a system out of pipes, so the
 * relay takes its read/write path (tunneld(8) "The relay"). Only the
 * relay's own pipes are refused, as ENFILE would refuse them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int pipe2(int fds[2], int flags)
{
	static int (*real_pipe2)(int[2], int);

	if (flags == (O_NONBLOCK | O_CLOEXEC)) {
		errno = ENFILE;
		return -1;
	}
	if (real_pipe2 == NULL)
		real_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
	return real_pipe2(fds, flags);
}
