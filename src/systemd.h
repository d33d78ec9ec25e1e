/*
 * systemd: the few libsystemd calls tunneld makes, loaded on first use.
 *
 * Linking libsystemd costs every tunnel about 0.8 ms of exec time and
 * 137 KiB of private memory for the library and the six it pulls in, while
 * most tunnels never call it (systemd itself dlopen()s optional libraries the
 * same way). Each wrapper returns -ENOSYS when libsystemd cannot be loaded.
 */
#ifndef TUNNELD_SYSTEMD_H
#define TUNNELD_SYSTEMD_H

#include <sys/uio.h>

int systemd_listen_fds(int unset_environment);
int systemd_is_socket(int fd, int family, int type, int listening);
int systemd_journal_sendv(const struct iovec *iov, int n);

#endif
