/*
 * title: what ps, top, pgrep -a and systemctl status show of each tunneld
 * (tunneld(8) "WATCHING AND ENDING TUNNELS"): its command line rewritten,
 * at each phase of a tunnel's life, to say who goes where and what it is
 * doing, e.g. "tunneld: alice 10.1.2.3:50122 -> db1.internal:22 relaying".
 */
#ifndef TUNNELD_TITLE_H
#define TUNNELD_TITLE_H

#define TITLE_FIELD_MAX_BYTES 1100 /* an authority of 262 bytes, every one escaped */

/*
 * Before anything reads argv or the environment: both are copied to the
 * heap (*argv then points to the copy) and the memory they were in, which
 * the kernel shows as /proc/PID/cmdline, becomes the title's.
 */
void title_init(int argc, char ***argv);

/* Who asks for what, as far as it is known (NULL: not yet); each escaped as a record's field is. */
void title_tunnel(const char *user, const char *client, const char *target);

/* What the tunnel is doing now: "reading the request", "resolving", "connecting", "relaying"... */
void title_phase(const char *phase);

/* The acceptor's: the tunnels it holds, the connections waiting for a slot. */
void title_acceptor(unsigned tunnels, unsigned waiting);

/* The acceptor's forker (acceptor.c): "tunneld: forker". */
void title_forker(void);

#endif
