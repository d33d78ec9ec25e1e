/*
 * An LD_PRELOAD shim for tests/sandbox.bats: the kernel of an older
 * machine, with neither Landlock nor seccomp filters. tunneld must serve
 * through it and say once what it could not put in place.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long number, ...)
{
	static long (*real_syscall)(long, ...);
	va_list args;
	long a[6];

	if (number == SYS_landlock_create_ruleset) {
		errno = ENOSYS;
		return -1;
	}
	if (real_syscall == NULL)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(args, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(args, long);
	va_end(args);
	return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int prctl(int option, ...)
{
	static int (*real_prctl)(int, ...);
	va_list args;
	unsigned long a[4];

	va_start(args, option);
	for (int i = 0; i < 4; i++)
		a[i] = va_arg(args, unsigned long);
	va_end(args);
	if (option == PR_SET_SECCOMP && a[0] == SECCOMP_MODE_FILTER) {
		errno = EINVAL;
		return -1;
	}
	if (real_prctl == NULL)
		real_prctl = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
	return real_prctl(option, a[0], a[1], a[2], a[3]);
}
