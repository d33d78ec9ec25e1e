/*
 * title: see title.h. The kernel shows as a process's command line the
 * memory from argv[0] to the end of its last argument, or on to the end of
 * the environment's strings when the byte after the arguments is no longer
 * a NUL. So, as sshd's and PostgreSQL's setproctitle do, the arguments and
 * the environment, which lie there one after another, are copied to the
 * heap once, and that whole span is then the title's, NUL-padded. Writing
 * it costs a memcpy into a page the process already has: no system call,
 * which the sandbox would have to allow.
 */
#include "title.h"

#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/*
 * All of the title's state in one page of its own: an idle tunnel's memory
 * is the pages it wrote (bench/run's Private_Dirty), and loose, these
 * landed on three.
 */
static struct {
	char *area; /* where the title goes, or NULL: the strings were not one span */
	size_t area_size;
	char user[TITLE_FIELD_MAX_BYTES];
	char client[TITLE_FIELD_MAX_BYTES];
	char target[TITLE_FIELD_MAX_BYTES];
} title __attribute__((aligned(4096))) = { .user = "-", .client = "-" };
_Static_assert(sizeof(title) <= 4096, "the title's state fits one page");

/* The span the strings fill, if each starts where the one before ended. */
static void find_area(int argc, char **argv)
{
	char *end = argv[0];

	for (int i = 0; i < argc; i++) {
		if (argv[i] != end)
			return;
		end = argv[i] + strlen(argv[i]) + 1;
	}
	for (int i = 0; environ[i] != NULL; i++) {
		if (environ[i] != end)
			break;
		end = environ[i] + strlen(environ[i]) + 1;
	}
	title.area = argv[0];
	title.area_size = (size_t)(end - argv[0]);
}

void title_init(int argc, char ***argv)
{
	char **old = *argv;
	size_t environ_count = 0, bytes = 0;

	if (argc <= 0)
		return;
	for (int i = 0; i < argc; i++)
		bytes += strlen(old[i]) + 1;
	for (; environ[environ_count] != NULL; environ_count++)
		bytes += strlen(environ[environ_count]) + 1;
	/* One block each: nothing to undo if the second cannot be had. */
	char *strings = malloc(bytes);
	char **copy = calloc((size_t)argc + 1 + environ_count + 1, sizeof(*copy));
	if (strings == NULL || copy == NULL) {
		free(strings);
		free(copy);
		return; /* no title: the command line stays as it was */
	}
	char **new_environ = copy + argc + 1;
	char *at = strings;
	for (int i = 0; i < argc; i++)
		at = stpcpy(copy[i] = at, old[i]) + 1;
	for (size_t i = 0; i < environ_count; i++)
		at = stpcpy(new_environ[i] = at, environ[i]) + 1;
	find_area(argc, old);
	environ = new_environ;
	*argv = copy;
	/*
	 * The environment's strings leave the area now. A title longer than the
	 * arguments makes the kernel read past them to the first NUL; while the
	 * first one was being written, that was inside the environment, which
	 * only the owner may read (/proc/PID/environ), shown in the command
	 * line anyone may.
	 */
	if (title.area != NULL) {
		size_t arguments_bytes = (size_t)(old[argc - 1] + strlen(old[argc - 1]) + 1 - title.area);
		memset(title.area + arguments_bytes, '\0', title.area_size - arguments_bytes);
	}
}

/* After a title of len bytes was written to the area: NULs to its end, so no older, longer title shows through. */
static void pad_after(int len)
{
	size_t used = len < 0 ? 0 : (size_t)len + 1 < title.area_size ? (size_t)len + 1 : title.area_size;
	memset(title.area + used, '\0', title.area_size - used);
}

void title_tunnel(const char *who, const char *from, const char *to)
{
	if (who != NULL)
		log_escape_field(who, title.user, sizeof(title.user));
	if (from != NULL)
		log_escape_field(from, title.client, sizeof(title.client));
	if (to != NULL)
		log_escape_field(to, title.target, sizeof(title.target));
}

void title_phase(const char *phase)
{
	if (title.area == NULL || title.area_size < 2)
		return;
	/* Straight into the area, no copy on the stack: it is cut there anyway. */
	pad_after(snprintf(title.area, title.area_size, "tunneld: %s %s%s%s %s", title.user, title.client,
			   title.target[0] != '\0' ? " -> " : "", title.target, phase));
}

void title_acceptor(unsigned tunnels, unsigned waiting)
{
	if (title.area == NULL || title.area_size < 2)
		return;
	pad_after(snprintf(title.area, title.area_size, "tunneld: acceptor, %u tunnel%s, %u waiting", tunnels,
			   tunnels == 1 ? "" : "s", waiting));
}

void title_forker(void)
{
	if (title.area == NULL || title.area_size < 2)
		return;
	pad_after(snprintf(title.area, title.area_size, "tunneld: forker"));
}
