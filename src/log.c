/*
 * log: journal, syslog, stderr or a file.
 *
 * A journal record is written at the end of a connection, so libsystemd
 * (loaded on first use, see systemd.h) stays off the tunnel's setup path.
 *
 * The log is a trust boundary. Whether fd 2 may be written is decided once,
 * in log_setup(), and every path obeys it: under inetd fd 2 is the client,
 * and a line there would be tunnel data. Every value that came from the
 * client or the environment is escaped here, where it is written.
 */
#include "log.h"

#include "clock.h"
#include "systemd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX_BYTES 4608            /* four escaped fields and the rest */
#define FIELD_MAX_BYTES 1100           /* a 262-byte authority, every byte escaped */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define JOURNAL_FIELDS_MAX 20 /* a record's: its message, priority, identifier and fields */

static enum log_target active_target = LOG_TARGET_STDERR;
static enum log_format active_format = LOG_FORMAT_TUNNELD;
static bool stderr_writable;
static bool stderr_is_persons; /* a jump's fd 2 is ssh's stderr: a person reads it, not a log */
static bool stderr_is_terminal; /* asked before the sandbox, which refuses the ioctl */
static bool stderr_was_closed;  /* /dev/null holds its number now: nowhere to write, as when it was closed */
static char file_path[PATH_MAX];
static int file_fd = -1;
/* stderr_is_client()'s answer: initialized, so in .data beside file_fd, on a page every tunnel writes anyway. */
static struct {
	int in, out;
	bool known, client;
} stderr_asked = { .in = -1, .out = -1 };

int log_parse_target(const char *text, enum log_target *target)
{
	if (strncmp(text, "file:", 5) == 0) {
		const char *path = text + 5;
		if (path[0] != '/' || strlen(path) >= sizeof(file_path))
			return -1;
		memcpy(file_path, path, strlen(path) + 1);
		*target = LOG_TARGET_FILE;
		return 0;
	}
	static const struct {
		const char *name;
		enum log_target target;
	} names[] = {
		{ "auto", LOG_TARGET_AUTO },   { "journal", LOG_TARGET_JOURNAL }, { "syslog", LOG_TARGET_SYSLOG },
		{ "stderr", LOG_TARGET_STDERR }, { "none", LOG_TARGET_NONE },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i].name) == 0) {
			*target = names[i].target;
			return 0;
		}
	}
	return -1;
}

static bool is_open_file(const struct stat *a, int fd_b)
{
	struct stat b;
	return fstat(fd_b, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

/*
 * A person debugging at a shell: fd 2 is the controlling terminal of a
 * session that a shell leads. An activator that hands a terminal to its
 * client (socat's pty, ssh -t, script) makes tunneld the session's leader,
 * or gives it a terminal that is not its controlling one: a client.
 */
static bool stderr_is_person(void)
{
	pid_t terminal_session = -1; /* tcgetsid(3) by hand: valgrind does not know the ioctl fills it */

	return isatty(STDERR_FILENO) && ioctl(STDERR_FILENO, TIOCGSID, &terminal_session) == 0 &&
	       terminal_session == getsid(0) && getsid(0) != getpid();
}

static bool stderr_is_client_asked(int client_in, int client_out)
{
	if (stderr_was_closed || fcntl(STDERR_FILENO, F_GETFD) < 0)
		return true; /* closed: nowhere to write, and a later open() could land on fd 2 */
	if (stderr_is_person())
		return false;
	struct stat err;
	return fstat(STDERR_FILENO, &err) == 0 && (is_open_file(&err, client_in) || is_open_file(&err, client_out));
}

/*
 * Asked once for the same descriptors: log_setup() runs again when the
 * options name a target, and the answer has not changed since (seven
 * system calls on every tunnel's path, each about a microsecond in a new
 * process here).
 */
static bool stderr_is_client(int client_in, int client_out)
{
	if (!stderr_asked.known || stderr_asked.in != client_in || stderr_asked.out != client_out) {
		stderr_asked.client = stderr_is_client_asked(client_in, client_out);
		stderr_asked.in = client_in;
		stderr_asked.out = client_out;
		stderr_asked.known = true;
	}
	return stderr_asked.client;
}

/* $JOURNAL_STREAM is "device:inode" of the stream systemd connected to fd 2. */
static bool stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	char *end;
	struct stat st;

	if (stream == NULL || fstat(STDERR_FILENO, &st) < 0)
		return false;
	unsigned long long device = strtoull(stream, &end, 10);
	if (end == stream || *end != ':')
		return false;
	const char *inode_text = end + 1;
	unsigned long long inode = strtoull(inode_text, &end, 10);
	if (end == inode_text || *end != '\0')
		return false;
	return st.st_dev == (dev_t)device && st.st_ino == (ino_t)inode;
}

int log_parse_format(const char *text, enum log_format *format)
{
	if (strcmp(text, "tunneld") == 0)
		*format = LOG_FORMAT_TUNNELD;
	else if (strcmp(text, "squid") == 0)
		*format = LOG_FORMAT_SQUID;
	else
		return -1;
	return 0;
}

void log_set_format(enum log_format format)
{
	active_format = format;
}

/*
 * Appending, so that the records of concurrent tunnels, one write() each,
 * never overwrite one another; not following a link that someone with write
 * access to the directory put where the file should be; and a regular file
 * only: a FIFO there would block the open (O_NONBLOCK makes that fail at
 * once) or every write. Above fd 2: a closed standard descriptor must stay
 * closed, not become the log.
 */
static int open_log_file(char *why, size_t why_size)
{
	struct stat st;
	int fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0640);
	if (fd >= 0 && fd <= STDERR_FILENO) {
		int high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		(void)close(fd);
		fd = high;
	}
	if (fd < 0) {
		(void)snprintf(why, why_size, "cannot open log file %s: %s", file_path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		(void)snprintf(why, why_size, "cannot open log file %s: not a regular file", file_path);
		return -1;
	}
	if (file_fd >= 0)
		(void)close(file_fd);
	file_fd = fd;
	return 0;
}

int log_setup(enum log_target requested, int client_in, int client_out, char *why, size_t why_size)
{
	stderr_writable = !stderr_is_client(client_in, client_out);
	if (requested == LOG_TARGET_FILE && open_log_file(why, why_size) < 0) {
		active_target = stderr_writable && !stderr_is_persons ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG; /* to say so */
		return -1;
	}

	switch (requested) {
	case LOG_TARGET_AUTO:
		/* A jump's stderr is the person's: the journal then too, and syslog where there is none. */
		if ((stderr_writable && stderr_is_journal()) || stderr_is_persons)
			active_target = LOG_TARGET_JOURNAL;
		else if (stderr_writable)
			active_target = LOG_TARGET_STDERR;
		else
			active_target = LOG_TARGET_SYSLOG;
		break;
	case LOG_TARGET_STDERR:
		/* Never, even when asked: under inetd that would be tunnel data; for a jump, the person's reading. */
		active_target = stderr_is_persons ? LOG_TARGET_JOURNAL
			      : stderr_writable   ? LOG_TARGET_STDERR
						  : LOG_TARGET_SYSLOG;
		break;
	default:
		active_target = requested;
		break;
	}
	return 0;
}

static bool syslog_opened;

/* log_bound_writes(): 0, or how long a line may take. */
static int write_bound_ms;
static volatile sig_atomic_t write_expired;
static int64_t drop_until_ms;
static unsigned dropped_lines;
#define DROP_AFTER_EXPIRY_MS 1000
#define WRITE_INTERRUPT_EVERY_MS 10 /* after the first: a call retried inside a library is cut short too */

static void write_syslog_line(int priority, const char *line)
{
	if (!syslog_opened)
		openlog("tunneld", LOG_PID, LOG_DAEMON);
	syslog_opened = true;
	syslog(priority, "%s", line);
}

/*
 * One write, so that lines of concurrent tunnels sharing a stream or a file
 * do not interleave. A stop signal interrupts a blocked one; the record is
 * still worth the 100 ms that signals_finishing() leaves.
 */
static void write_line(int fd, const char *prefix, const char *line)
{
	char buffer[LOG_LINE_MAX_BYTES + 16];
	int len = snprintf(buffer, sizeof(buffer), "%s%s\n", prefix, line);
	if (len > (int)sizeof(buffer) - 1)
		len = (int)sizeof(buffer) - 1;
	for (ssize_t written = -1; written < 0 && !write_expired;) {
		written = write(fd, buffer, (size_t)len);
		if (written < 0 && errno != EINTR)
			break;
	}
}

static void write_stderr_line(const char *line)
{
	if (stderr_writable)
		write_line(STDERR_FILENO, "tunneld: ", line);
}

/*
 * sd_journal_sendv() reports success when journald is not there at all (it
 * drops the record "silently"), so the socket is looked for first.
 */
static bool journal_is_there(void)
{
	struct stat st;
	return stat(JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * The journal's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL), as
 * sd_journal_sendv() speaks it: one datagram, a "NAME=value" field a line.
 * Not libsystemd's call: a tunnel loading libsystemd pays about 0.8 ms for
 * it and the six libraries it pulls in (lazy.h), and a tunnel the
 * acceptor's forker forks with them mapped pays for their 35 mappings at
 * its fork and at its exit (bench/PERFORMANCE.md). What the protocol has
 * beyond that is never needed here: a value with a newline (escape() has
 * written every control byte as \xHH), or a record too large for one
 * datagram (a few KiB at most). A record the journal does not take goes to
 * syslog instead.
 */
static int write_journal_record(struct iovec *fields, size_t count)
{
	static int journal_fd = -1;
	static char newline[] = "\n";
	static struct sockaddr_un journal = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
	struct iovec lines[2 * JOURNAL_FIELDS_MAX];
	size_t n = 0;

	if (!journal_is_there() || count > JOURNAL_FIELDS_MAX)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (memchr(fields[i].iov_base, '\n', fields[i].iov_len) != NULL)
			return -1;
		lines[n++] = fields[i];
		lines[n++] = (struct iovec){ newline, 1 };
	}
	if (journal_fd < 0)
		journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct msghdr message = { .msg_name = &journal, .msg_namelen = sizeof(journal), .msg_iov = lines, .msg_iovlen = n };
	return journal_fd >= 0 && sendmsg(journal_fd, &message, MSG_NOSIGNAL) >= 0 ? 0 : -1;
}

void log_connect_ahead(void)
{
	bool to_syslog = active_target == LOG_TARGET_SYSLOG || (active_target == LOG_TARGET_JOURNAL && !journal_is_there());

	if (syslog_opened || !to_syslog)
		return;
	openlog("tunneld", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	syslog_opened = true;
}

/* fields: "NAME=value" strings, for the journal only. */
static void emit_now(enum log_target target, int priority, const char *line, char *const *fields,
		     size_t field_count)
{
	switch (target) {
	case LOG_TARGET_NONE:
	case LOG_TARGET_AUTO:
		return;
	case LOG_TARGET_SYSLOG:
		write_syslog_line(priority, line);
		return;
	case LOG_TARGET_STDERR:
		write_stderr_line(line);
		return;
	case LOG_TARGET_FILE:
		write_line(file_fd, "", line);
		return;
	case LOG_TARGET_JOURNAL: {
		static char identifier[] = "SYSLOG_IDENTIFIER=tunneld";
		char message[LOG_LINE_MAX_BYTES + 16];
		char priority_field[16];
		struct iovec iov[JOURNAL_FIELDS_MAX];
		size_t n = 0;

		(void)snprintf(message, sizeof(message), "MESSAGE=%s", line);
		(void)snprintf(priority_field, sizeof(priority_field), "PRIORITY=%d", priority);
		iov[n++] = (struct iovec){ message, strlen(message) };
		iov[n++] = (struct iovec){ priority_field, strlen(priority_field) };
		iov[n++] = (struct iovec){ identifier, strlen(identifier) };
		for (size_t i = 0; i < field_count && n < sizeof(iov) / sizeof(iov[0]); i++)
			iov[n++] = (struct iovec){ fields[i], strlen(fields[i]) };
		/* A journal that is missing or refuses the record: syslog, never fd 2. */
		if (write_journal_record(iov, n) < 0 && !write_expired)
			write_syslog_line(priority, line);
		return;
	}
	}
}

/* No SA_RESTART: the write, sendmsg or send it interrupts returns EINTR. */
static void note_write_expired(int signal_number)
{
	(void)signal_number;
	write_expired = 1;
}

void log_bound_writes(int max_ms)
{
	struct sigaction action = { .sa_handler = max_ms > 0 ? note_write_expired : SIG_DFL };

	write_bound_ms = max_ms;
	(void)sigemptyset(&action.sa_mask);
	(void)sigaction(SIGALRM, &action, NULL);
}

static void emit_bounded(enum log_target target, int priority, const char *line, char *const *fields,
			 size_t field_count)
{
	static const struct itimerval disarmed;
	const struct itimerval deadline = {
		.it_value = { .tv_sec = write_bound_ms / 1000, .tv_usec = (suseconds_t)(write_bound_ms % 1000) * 1000 },
		.it_interval = { .tv_usec = (suseconds_t)WRITE_INTERRUPT_EVERY_MS * 1000 },
	};

	write_expired = 0;
	(void)setitimer(ITIMER_REAL, &deadline, NULL);
	emit_now(target, priority, line, fields, field_count);
	(void)setitimer(ITIMER_REAL, &disarmed, NULL);
	if (write_expired)
		drop_until_ms = clock_now_ms() + DROP_AFTER_EXPIRY_MS;
	write_expired = 0;
}

static void emit(enum log_target target, int priority, const char *line, char *const *fields, size_t field_count)
{
	if (write_bound_ms == 0) {
		emit_now(target, priority, line, fields, field_count);
		return;
	}
	if (clock_now_ms() < drop_until_ms) {
		dropped_lines++;
		return;
	}
	if (dropped_lines > 0) {
		char note[128];
		(void)snprintf(note, sizeof(note), "%u log lines dropped: the log took none of them within %d ms",
			       dropped_lines + 1, write_bound_ms);
		dropped_lines = 0;
		emit_bounded(target, LOG_ERR, note, NULL, 0);
		if (clock_now_ms() < drop_until_ms)
			return;
	}
	emit_bounded(target, priority, line, fields, field_count);
}

/*
 * Copies text into out (size bytes), every byte outside printable ASCII
 * written as \xHH: control bytes, DEL, the backslash, and every byte of
 * 0x80 and above, which could be a C1 control, malformed UTF-8, or a
 * character that spaces, hides or reorders text in a viewer. For a field,
 * one word of the line, the space too. Stops before an escape that does
 * not fit.
 */
static void escape(const char *text, bool is_field, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (const unsigned char *in = (const unsigned char *)text; *in != '\0'; in++) {
		bool plain = (*in > 0x20 && *in < 0x7f && *in != '\\') || (*in == ' ' && !is_field);
		if (n + (plain ? 1 : 4) >= size)
			break;
		if (plain) {
			out[n++] = (char)*in;
			continue;
		}
		out[n++] = '\\';
		out[n++] = 'x';
		out[n++] = hex[*in >> 4];
		out[n++] = hex[*in & 0xf];
	}
	out[n] = '\0';
}

void log_escape_field(const char *text, char *out, size_t size)
{
	escape(text, true, out, size);
}

static void log_about_tunneld(int priority, const char *message)
{
	char escaped[LOG_LINE_MAX_BYTES];
	escape(message, false, escaped, sizeof(escaped));
	/* A log file holds records only, which tools parse: a line about tunneld goes where it would without one. */
	enum log_target target = active_target;
	if (target == LOG_TARGET_FILE)
		target = stderr_writable && !stderr_is_persons ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG;
	emit(target, priority, escaped, NULL, 0);
}

void log_error(const char *message)
{
	log_about_tunneld(LOG_ERR, message);
}

void log_verrorf(const char *format, va_list args)
{
	char message[512];

	(void)vsnprintf(message, sizeof(message), format, args); // NOLINT(clang-analyzer-valist.Uninitialized)
	log_error(message);
}

void log_errorf(const char *format, ...)
{
	va_list args;

	va_start(args, format);
	log_verrorf(format, args);
	va_end(args);
}

void log_notice(const char *message)
{
	log_about_tunneld(LOG_NOTICE, message);
}

void log_notice_f(const char *format, ...)
{
	char message[512];
	va_list args;

	va_start(args, format);
	(void)vsnprintf(message, sizeof(message), format, args); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(args);
	log_notice(message);
}

/* PRIORITY by outcome: a tunnel is routine, a refusal notable, an upstream failure a warning. */
static int record_priority(int status)
{
	if (status == 200)
		return LOG_INFO;
	if (status >= 500)
		return LOG_WARNING;
	return LOG_NOTICE;
}

void log_host_of(const char *address, char *out, size_t size)
{
	const char *start = address, *end;

	if (address[0] == '[') {
		start = address + 1;
		end = strchr(start, ']');
	} else {
		end = strchr(address, ':');
		if (end != NULL && strchr(end + 1, ':') != NULL)
			end = NULL; /* a bare IPv6 address */
	}
	if (end == NULL)
		end = start + strlen(start);
	(void)snprintf(out, size, "%.*s", (int)(end - start), start);
}

/*
 * Squid's native access.log line (squid.conf logformat "squid"):
 * time elapsed client code/status bytes method URL user hierarchy/peer type.
 * bytes is what went to the client, as Squid counts a tunnel.
 */
static void format_squid_line(const struct connection_record *record, const char *client, const char *target,
			      const char *user, char *line, size_t size)
{
	struct timespec now;
	char host[FIELD_MAX_BYTES];
	const char *code = "NONE";

	if (record->status == 200)
		code = "TCP_TUNNEL";
	else if (record->status == 403 || record->status == 407)
		code = "TCP_DENIED";
	log_host_of(client, host, sizeof(host));
	(void)clock_gettime(CLOCK_REALTIME, &now);
	(void)snprintf(line, size, "%lld.%03ld %6ld %s %s/%03d %" PRIu64 " CONNECT %s %s %s%s -", (long long)now.tv_sec,
		       now.tv_nsec / 1000000, record->duration_ms, host, code, record->status, record->bytes_down, target,
		       record->user != NULL ? user : "-",
		       record->peer == NULL ? "HIER_NONE/-" : record->via != NULL ? "FIRSTUP_PARENT/" : "HIER_DIRECT/",
		       record->peer != NULL ? record->peer : "");
}

void log_connection(const struct connection_record *record)
{
	char line[LOG_LINE_MAX_BYTES];
	char status_text[8] = "-";
	char protocol_text[40] = "";
	char client[FIELD_MAX_BYTES], target[FIELD_MAX_BYTES], user[FIELD_MAX_BYTES], reason[FIELD_MAX_BYTES];
	char client_field[FIELD_MAX_BYTES + 32], target_field[FIELD_MAX_BYTES + 32], user_field[FIELD_MAX_BYTES + 32];
	char status_field[32], up_field[48], down_field[48], duration_field[48], reason_field[FIELD_MAX_BYTES + 32];
	char protocol_field[32], reply_field[32], via_field[FIELD_MAX_BYTES + 32], rule_field[32];
	char sandbox_field[FIELD_MAX_BYTES + 32], local_field[FIELD_MAX_BYTES + 32];
	char event_field[32], id_field[64], event_text[80] = "";
	char via[FIELD_MAX_BYTES], route_text[FIELD_MAX_BYTES + 48] = "";
	bool socks5 = record->protocol != NULL && strcmp(record->protocol, "socks5") == 0;
	bool jump = record->protocol != NULL && strcmp(record->protocol, "jump") == 0;
	bool opening = record->event != NULL && strcmp(record->event, "open") == 0;
	char *fields[16] = { client_field, target_field, status_field, protocol_field };
	size_t field_count = 4;

	if (active_target == LOG_TARGET_NONE)
		return; /* nothing to format: --log=none */
	if (opening && active_format == LOG_FORMAT_SQUID)
		return; /* Squid's access.log has one line per tunnel, at its end */

	escape(record->client, true, client, sizeof(client));
	escape(record->target, true, target, sizeof(target));
	escape(record->user != NULL ? record->user : "", true, user, sizeof(user));
	escape(record->reason != NULL ? record->reason : "", false, reason, sizeof(reason));
	if (record->status != 0)
		(void)snprintf(status_text, sizeof(status_text), "%d", record->status);
	/* HTTP lines stay as they always were; a SOCKS5 line says so, and which reply it got; a jump says so. */
	if (socks5 && record->socks5_reply >= 0)
		(void)snprintf(protocol_text, sizeof(protocol_text), " protocol=socks5 reply=0x%02x", record->socks5_reply);
	else if (socks5 || jump)
		(void)snprintf(protocol_text, sizeof(protocol_text), " protocol=%s", record->protocol);
	/* The route a rules file chose: the parent used, and the line that decided. */
	escape(record->via != NULL ? record->via : "", true, via, sizeof(via));
	if (record->via != NULL || record->rule_line > 0 || record->local != NULL)
		(void)snprintf(route_text, sizeof(route_text), "%s%s%s%.0u%s%s", record->via != NULL ? " via=" : "", via,
			       record->rule_line > 0 ? " rule=" : "", record->rule_line,
			       record->local != NULL ? " local=" : "", record->local != NULL ? record->local : "");
	/* Before the reason, which is free text and comes last. */
	if (record->event != NULL)
		(void)snprintf(event_text, sizeof(event_text), " event=%s id=%s", record->event,
			       record->id != NULL ? record->id : "-");
	if (active_format == LOG_FORMAT_SQUID)
		format_squid_line(record, client, target, user, line, sizeof(line));
	else if (opening)
		(void)snprintf(line, sizeof(line), "%s -> %s status=%s%s%s%s%s%s", client, target, status_text, protocol_text,
			       route_text, record->user != NULL ? " user=" : "", user, event_text);
	else
		(void)snprintf(line, sizeof(line),
			       "%s -> %s status=%s up=%" PRIu64 " down=%" PRIu64 " duration_ms=%ld%s%s%s%s%s%s%s", client,
			       target, status_text, record->bytes_up, record->bytes_down, record->duration_ms, protocol_text,
			       route_text, record->user != NULL ? " user=" : "", user, event_text,
			       record->reason != NULL ? " reason=" : "", reason);
	if (active_target != LOG_TARGET_JOURNAL) {
		emit(active_target, record_priority(record->status), line, NULL, 0);
		return;
	}
	(void)snprintf(client_field, sizeof(client_field), "TUNNELD_CLIENT=%s", client);
	(void)snprintf(target_field, sizeof(target_field), "TUNNELD_TARGET=%s", target);
	(void)snprintf(status_field, sizeof(status_field), "TUNNELD_STATUS=%s", status_text);
	(void)snprintf(protocol_field, sizeof(protocol_field), "TUNNELD_PROTOCOL=%s", socks5 ? "socks5" : jump ? "jump" : "http");
	if (!opening) { /* an open record has no bytes, duration nor end */
		(void)snprintf(up_field, sizeof(up_field), "TUNNELD_BYTES_UP=%" PRIu64, record->bytes_up);
		(void)snprintf(down_field, sizeof(down_field), "TUNNELD_BYTES_DOWN=%" PRIu64, record->bytes_down);
		(void)snprintf(duration_field, sizeof(duration_field), "TUNNELD_DURATION_MS=%ld", record->duration_ms);
		(void)snprintf(reason_field, sizeof(reason_field), "TUNNELD_REASON=%s", reason);
		fields[field_count++] = up_field;
		fields[field_count++] = down_field;
		fields[field_count++] = duration_field;
		fields[field_count++] = reason_field;
	}
	if (record->event != NULL) {
		(void)snprintf(event_field, sizeof(event_field), "TUNNELD_EVENT=%s", record->event);
		(void)snprintf(id_field, sizeof(id_field), "TUNNELD_ID=%s", record->id != NULL ? record->id : "-");
		fields[field_count++] = event_field;
		fields[field_count++] = id_field;
	}
	/* Optional fields only when they have a value: the journal keeps empty ones. */
	if (record->user != NULL) {
		(void)snprintf(user_field, sizeof(user_field), "TUNNELD_USER=%s", user);
		fields[field_count++] = user_field;
	}
	if (socks5 && record->socks5_reply >= 0) {
		(void)snprintf(reply_field, sizeof(reply_field), "TUNNELD_SOCKS5_REPLY=0x%02x", record->socks5_reply);
		fields[field_count++] = reply_field;
	}
	if (record->via != NULL) {
		(void)snprintf(via_field, sizeof(via_field), "TUNNELD_VIA=%s", via);
		fields[field_count++] = via_field;
	}
	if (record->rule_line > 0) {
		(void)snprintf(rule_field, sizeof(rule_field), "TUNNELD_RULE=%u", record->rule_line);
		fields[field_count++] = rule_field;
	}
	if (record->local != NULL) {
		(void)snprintf(local_field, sizeof(local_field), "TUNNELD_LOCAL=%s", record->local);
		fields[field_count++] = local_field;
	}
	if (record->sandbox != NULL) {
		char sandbox[FIELD_MAX_BYTES];
		escape(record->sandbox, false, sandbox, sizeof(sandbox));
		(void)snprintf(sandbox_field, sizeof(sandbox_field), "TUNNELD_SANDBOX=%s", sandbox);
		fields[field_count++] = sandbox_field;
	}
	emit(active_target, record_priority(record->status), line, fields, field_count);
}

void log_leave_stderr_to_person(void)
{
	stderr_is_persons = true;
	stderr_is_terminal = isatty(STDERR_FILENO);
	if (active_target == LOG_TARGET_STDERR)
		active_target = LOG_TARGET_JOURNAL; /* and syslog where there is no journal */
}

bool log_stderr_is_persons(void)
{
	return stderr_is_persons;
}

void log_stderr_closed(void)
{
	stderr_was_closed = true;
}

void log_tell_person(const char *target, const char *text)
{
	char escaped_target[FIELD_MAX_BYTES], escaped_text[LOG_LINE_MAX_BYTES / 2], line[LOG_LINE_MAX_BYTES];

	if (!stderr_writable && !stderr_is_terminal) /* a terminal is the person's: no stream runs on it yet */
		return;
	escape(target, true, escaped_target, sizeof(escaped_target));
	escape(text, false, escaped_text, sizeof(escaped_text));
	if (strcmp(target, "-") == 0) /* no target to name */
		(void)snprintf(line, sizeof(line), "%s", escaped_text);
	else
		(void)snprintf(line, sizeof(line), "%s: %s", escaped_target, escaped_text);
	write_line(STDERR_FILENO, "tunneld: ", line);
}

bool log_writes_records(void)
{
	return active_target != LOG_TARGET_NONE;
}

bool log_has_fields(void)
{
	return active_target == LOG_TARGET_JOURNAL && journal_is_there();
}

/* "a.b.c.d:port" or "[v6]:port" from an address in network byte order. */
void log_format_raw_address(int family, const void *address, unsigned port, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (inet_ntop(family, address, host, sizeof(host)) == NULL)
		(void)snprintf(out, size, "-");
	else if (family == AF_INET6)
		(void)snprintf(out, size, "[%s]:%u", host, port);
	else
		(void)snprintf(out, size, "%s:%u", host, port);
}

void log_format_address(const struct sockaddr *address, char *out, size_t size)
{
	if (address->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)address;
		log_format_raw_address(AF_INET, &v4->sin_addr, ntohs(v4->sin_port), out, size);
	} else if (address->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)address;
		log_format_raw_address(AF_INET6, &v6->sin6_addr, ntohs(v6->sin6_port), out, size);
	} else {
		(void)snprintf(out, size, "-");
	}
}
