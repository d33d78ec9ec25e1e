/*
 * An LD_PRELOAD shim for tests/acceptor.bats: a `tunneld --check` that
 * does not finish, as one reading a file on a hung mount would. With
 * STUCK_CHECK_GATE naming a FIFO, the check waits until the test opens it
 * for writing, then goes on; without, it waits for ever. Every other
 * tunneld process it is loaded into runs as usual.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
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
		if (strcmp(cmdline + at, "--check") != 0)
			continue;
		const char *gate = getenv("STUCK_CHECK_GATE");
		if (gate == NULL)
			for (;;)
				(void)pause();
		int gate_fd = open(gate, O_RDONLY | O_CLOEXEC); /* blocks until the test opens it to write */
		char byte;
		while (gate_fd >= 0 && read(gate_fd, &byte, 1) > 0)
			;
		if (gate_fd >= 0)
			(void)close(gate_fd);
		return;
	}
}
