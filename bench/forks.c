/*
 * The fork ceiling: how many processes per second this machine can start
 * and end when it does nothing else. One loop per CPU, each forking a child
 * that exits at once and reaping it; the program is linked statically, so
 * the child is as small as a process gets. Whatever starts a process per
 * tunnel starts fewer tunnels per second than this.
 *
 *   forks SECONDS   prints: processes/s, all loops together
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds_now(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	long loops = sysconf(_SC_NPROCESSORS_ONLN);
	if (loops < 1)
		loops = 1;
	/* Each loop's count, where the parent can read it after the loops end. */
	long *counts = mmap(NULL, (size_t)loops * sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		return 1;
	double start = seconds_now();
	for (long loop = 0; loop < loops; loop++) {
		if (fork() != 0)
			continue;
		long count = 0;
		while (seconds_now() - start < seconds) {
			pid_t child = fork();
			if (child == 0)
				_exit(0);
			if (child < 0 || waitpid(child, NULL, 0) != child)
				_exit(1);
			count++;
		}
		counts[loop] = count;
		_exit(0);
	}
	long total = 0;
	for (long loop = 0; loop < loops; loop++) {
		int status;
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return 1;
	}
	for (long loop = 0; loop < loops; loop++)
		total += counts[loop];
	printf("%.0f\n", (double)total / (seconds_now() - start));
	return 0;
}
