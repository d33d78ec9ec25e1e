/*
 * An LD_PRELOAD probe for the tests: it sits in front of getaddrinfo_a()
 * and writes to $RESOLVER_PROBE_REPORT where each piece of memory handed
 * to the resolver thread lives, "stack" or "elsewhere". The thread writes
 * its answer into that memory whenever the answer comes, after tunneld's
 * deadline too, so none of it may be on a stack, which the next function
 * called reuses.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Taken when the probe is loaded, before tunneld sandboxes itself: the
 * report file, and the main thread's stack (glibc finds it in
 * /proc/self/maps, which the sandbox does not let tunneld read).
 */
static FILE *report;
static uintptr_t stack_low, stack_high;

__attribute__((constructor)) static void prepare(void)
{
	const char *path = getenv("RESOLVER_PROBE_REPORT");
	pthread_attr_t attributes;
	void *stack;
	size_t size;

	report = path != NULL ? fopen(path, "ae") : NULL;
	if (pthread_getattr_np(pthread_self(), &attributes) != 0)
		return;
	(void)pthread_attr_getstack(&attributes, &stack, &size);
	(void)pthread_attr_destroy(&attributes);
	stack_low = (uintptr_t)stack;
	stack_high = stack_low + size;
}

static const char *where(const void *pointer)
{
	uintptr_t at = (uintptr_t)pointer;
	if (stack_high == 0)
		return "unknown";
	return at >= stack_low && at < stack_high ? "stack" : "elsewhere";
}

int getaddrinfo_a(int mode, struct gaicb *list[], int count, struct sigevent *notify)
{
	int (*real)(int, struct gaicb *[], int, struct sigevent *);
	void *symbol = dlsym(RTLD_NEXT, "getaddrinfo_a");

	for (int i = 0; report != NULL && i < count; i++)
		(void)fprintf(report, "gaicb=%s hints=%s name=%s service=%s\n", where(list[i]),
			      where(list[i]->ar_request), where(list[i]->ar_name), where(list[i]->ar_service));
	if (report != NULL)
		(void)fflush(report);
	*(void **)&real = symbol;
	return real(mode, list, count, notify);
}
