/*
 * log: one record per connection, to the journal, syslog, stderr or a file,
 * in tunneld's own format or Squid's (tunneld(8) "LOGGING").
 */
#ifndef TUNNELD_LOG_H
#define TUNNELD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_JOURNAL, LOG_TARGET_SYSLOG, LOG_TARGET_STDERR, LOG_TARGET_NONE,
		  LOG_TARGET_FILE };

enum log_format { LOG_FORMAT_TUNNELD, LOG_FORMAT_SQUID };

struct connection_record {
	const char *client;     /* "addr:port", "[v6]:port" or "-" */
	const char *target;     /* as requested, or "-"; never with userinfo */
	const char *user;       /* the proxy user named by good or wrongly-passworded credentials, or NULL */
	int status;             /* 0: the client got no response */
	uint64_t bytes_up;      /* client to target */
	uint64_t bytes_down;
	long duration_ms;
	const char *reason;     /* NULL when the tunnel ended normally */
	const char *protocol;   /* "http", "socks5" or "jump" */
	int socks5_reply;       /* the SOCKS5 REP the client got, or -1 */
	const char *peer;       /* the address connected (the target's, or the parent's), or NULL */
	const char *via;        /* the parent proxy's URL, never with a login, or NULL: direct */
	const char *local;      /* the address:port it left from, when an outgoing address chose it; or NULL */
	unsigned rule_line;     /* the rules file's line that decided, or 0 */
	const char *sandbox;    /* what of the sandbox this kernel refused, as sandbox_enter() says it, or NULL */
	const char *event;      /* with --log-open: "open" (no bytes nor duration) or "close"; NULL: the one record */
	const char *id;         /* with --log-open: the tunnel's id, the same in both records; or NULL */
};

/* "file:/absolute/path" is LOG_TARGET_FILE, its path kept for log_setup(). */
int log_parse_target(const char *text, enum log_target *target);

int log_parse_format(const char *text, enum log_format *format);
void log_set_format(enum log_format format);

/*
 * Chooses where lines go. client_in/client_out are the client's fds: under
 * inetd fd 2 is the client too, and a log line there would be tunnel data.
 * 0, or -1 when the log file cannot be opened, with why filled.
 */
int log_setup(enum log_target requested, int client_in, int client_out, char *why, size_t why_size);

/* A line about tunneld itself (bad option, unreadable file): priority err. */
void log_error(const char *message);
/* The same, formatted as printf would (at most 511 bytes). */
void log_errorf(const char *format, ...) __attribute__((format(printf, 1, 2)));
void log_verrorf(const char *format, va_list args) __attribute__((format(printf, 1, 0)));
/* A line about tunneld that is news, not trouble (the acceptor reloaded): priority notice. */
void log_notice(const char *message);
void log_notice_f(const char *format, ...) __attribute__((format(printf, 1, 2)));

void log_connection(const struct connection_record *record);

/*
 * A jump (tunneld(8) "AS AN SSH JUMP HOST"): fd 2 is ssh's stderr, which
 * a person reads. --log=auto then writes to the journal (or syslog), and
 * the person is told only what log_tell_person() says.
 */
void log_leave_stderr_to_person(void);

bool log_stderr_is_persons(void);

/* fd 2 was closed when tunneld started (and /dev/null holds its number): never the log's. */
void log_stderr_closed(void);

/* "tunneld: TARGET: TEXT" on fd 2, both escaped, unless fd 2 is the client. */
void log_tell_person(const char *target, const char *text);

/* Do records go to the journal, whose structured fields can carry what a line does not? */
bool log_has_fields(void);

/* Is a record written anywhere (not --log=none)? */
bool log_writes_records(void);

/*
 * For a process that must not stall on its log (the acceptor): each line
 * may take max_ms to be written, then it is dropped, and so is every line
 * for a second after, counted and said once the log takes lines again.
 * SIGALRM is this bound's. 0: lines wait as long as the sink makes them.
 */
void log_bound_writes(int max_ms);

/*
 * Connects now the socket a record may go out by later (syslog, or the
 * journal's fallback to it when the journal is not there), for a sandbox
 * that will let no socket connect once the tunnel's target is connected.
 */
void log_connect_ahead(void);

/* text as one field of a record is written: every byte outside printable ASCII, and the space, as \xHH. */
void log_escape_field(const char *text, char *out, size_t size);

/* The host of "host:port", "[v6]:port" or a bare host, as a record's client is written. */
void log_host_of(const char *address, char *out, size_t size);

/* "a.b.c.d:port" or "[v6]:port", as a record's client is written; "-" for another family. */
void log_format_raw_address(int family, const void *address, unsigned port, char *out, size_t size);
struct sockaddr;
void log_format_address(const struct sockaddr *address, char *out, size_t size);

#endif
