#include "systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

static void *load_symbol(const char *name)
{
	static void *library;

	if (library == NULL)
		library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
	return library != NULL ? dlsym(library, name) : NULL;
}

/* POSIX guarantees dlsym's object pointer converts to a function pointer; ISO C does not, hence memcpy. */
#define CALL_SYSTEMD(function, ...)                                     \
	do {                                                            \
		__typeof__(function) *call;                             \
		void *symbol = load_symbol(#function);                  \
		if (symbol == NULL)                                     \
			return -ENOSYS;                                 \
		memcpy(&call, &symbol, sizeof(call));                   \
		return call(__VA_ARGS__);                               \
	} while (0)

int systemd_listen_fds(int unset_environment)
{
	CALL_SYSTEMD(sd_listen_fds, unset_environment);
}

int systemd_is_socket(int fd, int family, int type, int listening)
{
	CALL_SYSTEMD(sd_is_socket, fd, family, type, listening);
}

int systemd_journal_sendv(const struct iovec *iov, int n)
{
	CALL_SYSTEMD(sd_journal_sendv, iov, n);
}
