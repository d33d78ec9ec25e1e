/* config_file: see config_file.h. */
#include "config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* "FD PATH\n" for each pinned file. Honoured only for an fd that is a sealed memory file. */
#define PINNED_VARIABLE "TUNNELD_PINNED_FILES"
#define PIN_MAX_FILES 4
#define PIN_MAX_BYTES ((size_t)64 << 20)
#define PIN_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

const char *config_file_resolve(const char *path, char *out, size_t size)
{
	const char *credentials_directory = getenv("CREDENTIALS_DIRECTORY");

	if (path[0] == '/' || credentials_directory == NULL)
		return path;
	if ((size_t)snprintf(out, size, "%s/%s", credentials_directory, path) >= size)
		return NULL;
	return out;
}

bool config_file_is_credential(const char *path)
{
	return path[0] != '/' && getenv("CREDENTIALS_DIRECTORY") != NULL;
}

const char *config_file_name(const char *path, const char *resolved, char *out, size_t size)
{
	if (!config_file_is_credential(path))
		return resolved;
	(void)snprintf(out, size, "credential %s (LoadCredential=%s:...)", path, path);
	return out;
}

const char *config_file_hint(int error)
{
	return error == EACCES ? " (the service's user may not read it: hand it over with LoadCredential=, tunneld(8) EXAMPLES)"
			       : "";
}

/* An fd the environment names is trusted only if it is one of ours: a memory file, sealed. */
static bool is_pinned_copy(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & PIN_SEALS) == PIN_SEALS;
}

/* The fd pinned for path, or -1. */
static int pinned_fd(const char *path)
{
	const char *entry = getenv(PINNED_VARIABLE);
	size_t path_len = strlen(path);

	while (entry != NULL && *entry != '\0') {
		char *after = NULL;
		long fd = strtol(entry, &after, 10);
		const char *end = strchr(entry, '\n');
		size_t entry_len = end != NULL ? (size_t)(end - entry) : strlen(entry);
		if (after != entry && *after == ' ' && fd > STDERR_FILENO && fd < 65536 &&
		    (size_t)(entry + entry_len - (after + 1)) == path_len && memcmp(after + 1, path, path_len) == 0 &&
		    is_pinned_copy((int)fd))
			return (int)fd;
		entry = end != NULL ? end + 1 : NULL;
	}
	return -1;
}

int config_file_open(const char *resolved_path)
{
	int pinned = pinned_fd(resolved_path);

	if (pinned >= 0) {
		/* A new open file of its own, so that its offset is not the check's or the next reader's. */
		char self[32];
		(void)snprintf(self, sizeof(self), "/proc/self/fd/%d", pinned);
		return open(self, O_RDONLY | O_CLOEXEC);
	}
	return open(resolved_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

/* A sealed copy of path, mode included (the rules and password files' modes are checked); -1 if it cannot be made. */
static int copy_of(const char *path)
{
	int source = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	int copy = -1;

	if (source < 0)
		return -1;
	if (fstat(source, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= PIN_MAX_BYTES)
		copy = memfd_create("tunneld-pinned", MFD_ALLOW_SEALING); /* not CLOEXEC: the check and the exec inherit it */
	if (copy >= 0) {
		char buffer[16384];
		size_t total = 0;
		bool copied = false;
		for (;;) {
			ssize_t n = read(source, buffer, sizeof(buffer));
			if (n == 0) {
				copied = true;
				break;
			}
			if (n < 0 || (total += (size_t)n) > PIN_MAX_BYTES || write(copy, buffer, (size_t)n) != n)
				break;
		}
		if (!copied || fchmod(copy, st.st_mode & 07777) < 0 || fcntl(copy, F_ADD_SEALS, PIN_SEALS) < 0) {
			(void)close(copy);
			copy = -1;
		}
	}
	(void)close(source);
	return copy;
}

void config_file_pin(const char *const *resolved_paths, size_t count)
{
	char value[PIN_MAX_FILES * 4200] = "";
	size_t used = 0;

	config_file_unpin();
	for (size_t i = 0; i < count && i < PIN_MAX_FILES; i++) {
		if (resolved_paths[i] == NULL || strchr(resolved_paths[i], '\n') != NULL)
			continue;
		int copy = copy_of(resolved_paths[i]);
		if (copy < 0)
			continue;
		int n = snprintf(value + used, sizeof(value) - used, "%d %s\n", copy, resolved_paths[i]);
		if (n < 0 || (size_t)n >= sizeof(value) - used) {
			(void)close(copy);
			continue;
		}
		used += (size_t)n;
	}
	if (used > 0)
		(void)setenv(PINNED_VARIABLE, value, 1);
}

void config_file_unpin(void)
{
	const char *entry = getenv(PINNED_VARIABLE);

	while (entry != NULL && *entry != '\0') {
		char *after = NULL;
		long fd = strtol(entry, &after, 10);
		if (after != entry && fd > STDERR_FILENO && fd < 65536 && is_pinned_copy((int)fd))
			(void)close((int)fd);
		entry = strchr(entry, '\n');
		if (entry != NULL)
			entry++;
	}
	(void)unsetenv(PINNED_VARIABLE);
}
