/* systemd: libsystemd, loaded on first use (see lazy.h for why). */
#include "systemd.h"

#include "lazy.h"

#include <dlfcn.h>
#include <errno.h>
#include <systemd/sd-daemon.h>

#define LIBSYSTEMD "libsystemd.so.0"

static void *libsystemd;

int systemd_listen_fds(int unset_environment)
{
	LAZY_FUNCTION(listen_fds, &libsystemd, LIBSYSTEMD, sd_listen_fds);
	return listen_fds != NULL ? listen_fds(unset_environment) : -ENOSYS;
}

int systemd_is_socket(int fd, int family, int type, int listening)
{
	LAZY_FUNCTION(is_socket, &libsystemd, LIBSYSTEMD, sd_is_socket);
	return is_socket != NULL ? is_socket(fd, family, type, listening) : -ENOSYS;
}


int systemd_notify(const char *state)
{
	LAZY_FUNCTION(notify, &libsystemd, LIBSYSTEMD, sd_notify);
	return notify != NULL ? notify(0, state) : -ENOSYS;
}

void systemd_unload(void)
{
	if (libsystemd != NULL)
		(void)dlclose(libsystemd);
	libsystemd = NULL;
}
