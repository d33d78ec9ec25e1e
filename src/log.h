/*
 * log: one record per connection, to the journal, syslog or stderr
 * (tunneld(8) "LOGGING").
 */
#ifndef TUNNELD_LOG_H
#define TUNNELD_LOG_H

#include <stdint.h>

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_JOURNAL, LOG_TARGET_SYSLOG, LOG_TARGET_STDERR, LOG_TARGET_NONE };

struct connection_record {
	const char *client;     /* "addr:port", "[v6]:port" or "-" */
	const char *target;     /* as requested, or "-"; never with userinfo */
	const char *user;       /* the proxy user named by good or wrongly-passworded credentials, or NULL */
	int status;             /* 0: the client got no response */
	uint64_t bytes_up;      /* client to target */
	uint64_t bytes_down;
	long duration_ms;
	const char *reason;     /* NULL when the tunnel ended normally */
	const char *protocol;   /* "http" or "socks5" */
	int socks5_reply;       /* the SOCKS5 REP the client got, or -1 */
};

int log_parse_target(const char *text, enum log_target *target);

/*
 * Chooses where lines go. client_in/client_out are the client's fds: under
 * inetd fd 2 is the client too, and a log line there would be tunnel data.
 */
void log_setup(enum log_target requested, int client_in, int client_out);

/* A line about tunneld itself (bad option, unreadable file): priority err. */
void log_error(const char *message);

void log_connection(const struct connection_record *record);

#endif
