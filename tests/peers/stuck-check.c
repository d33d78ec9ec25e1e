/*
 * An LD_PRELOAD shim for tests/acceptor.bats: a `tunneld --check` that
 * never finishes, as one reading a file on a hung mount would. Every other
 * tunneld process it is loaded into runs as usual.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void hang_if_checking(void)
{
	char cmdline[4096];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;

	if (fd >= 0)
		(void)close(fd);
	if (len > 0)
		cmdline[len] = '\0';
	for (ssize_t at = 0; at < len; at += (ssize_t)strlen(cmdline + at) + 1) {
		if (strcmp(cmdline + at, "--check") == 0)
			for (;;)
				(void)pause();
	}
}
