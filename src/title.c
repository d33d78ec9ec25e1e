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

static char *area;        /* where the title goes, or NULL: the strings were not one span */
static size_t area_size;
static char user[TITLE_FIELD_MAX_BYTES] = "-";
static char client[TITLE_FIELD_MAX_BYTES] = "-";
static char target[TITLE_FIELD_MAX_BYTES] = "";

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
	area = argv[0];
	area_size = (size_t)(end - argv[0]);
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
}

static void show(const char *text)
{
	if (area == NULL || area_size < 2)
		return;
	int len = snprintf(area, area_size, "%s", text);
	size_t used = len < 0 ? 0 : (size_t)len + 1 < area_size ? (size_t)len + 1 : area_size;
	memset(area + used, '\0', area_size - used);
}

void title_tunnel(const char *who, const char *from, const char *to)
{
	if (who != NULL)
		log_escape_field(who, user, sizeof(user));
	if (from != NULL)
		log_escape_field(from, client, sizeof(client));
	if (to != NULL)
		log_escape_field(to, target, sizeof(target));
}

void title_phase(const char *phase)
{
	char text[3 * TITLE_FIELD_MAX_BYTES + 64];

	(void)snprintf(text, sizeof(text), "tunneld: %s %s%s%s %s", user, client, target[0] != '\0' ? " -> " : "", target,
		       phase);
	show(text);
}

void title_acceptor(unsigned tunnels, unsigned waiting)
{
	char text[96];

	(void)snprintf(text, sizeof(text), "tunneld: acceptor, %u tunnel%s, %u waiting", tunnels, tunnels == 1 ? "" : "s",
		       waiting);
	show(text);
}
