/*
 * systemd: the few libsystemd calls tunneld makes, each loaded on first use
 * (lazy.h says why). Each returns -ENOSYS when libsystemd cannot be loaded.
 */
#ifndef TUNNELD_SYSTEMD_H
#define TUNNELD_SYSTEMD_H

#include <sys/uio.h>

int systemd_listen_fds(int unset_environment);
int systemd_is_socket(int fd, int family, int type, int listening);
int systemd_journal_sendv(const struct iovec *iov, int n);
int systemd_notify(const char *state); /* sd_notify(0, state): > 0 sent, 0 no manager listens */

#endif
