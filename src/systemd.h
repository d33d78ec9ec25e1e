/*
 * systemd: the few libsystemd calls tunneld makes (the journal's records it
 * writes itself: log.c), each loaded on first use
 * (lazy.h says why). Each returns -ENOSYS when libsystemd cannot be loaded.
 */
#ifndef TUNNELD_SYSTEMD_H
#define TUNNELD_SYSTEMD_H

#include <sys/uio.h>

int systemd_listen_fds(int unset_environment);
int systemd_is_socket(int fd, int family, int type, int listening);
int systemd_notify(const char *state); /* sd_notify(0, state): > 0 sent, 0 no manager listens */

/* libsystemd and what it pulled in unmapped (the acceptor's forker: tunnels need none of it); loaded again if called. */
void systemd_unload(void);

#endif
