/*
 * log: journal, syslog or stderr.
 *
 * A journal record is written at the end of a connection, so libsystemd
 * (loaded on first use, see systemd.h) stays off the tunnel's setup path.
 */
#include "log.h"

#include "systemd.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#define LOG_LINE_MAX_BYTES 1024

static enum log_target active_target = LOG_TARGET_STDERR;

int log_parse_target(const char *text, enum log_target *target)
{
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

static bool same_open_file(int fd_a, int fd_b)
{
	struct stat a, b;
	return fstat(fd_a, &a) == 0 && fstat(fd_b, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* A terminal shared by 0, 1 and 2 is a person debugging, not an inetd client. */
static bool stderr_is_client(int client_in, int client_out)
{
	if (fcntl(STDERR_FILENO, F_GETFD) < 0)
		return true; /* closed: nowhere to write, and a later open() could land on fd 2 */
	if (isatty(STDERR_FILENO))
		return false;
	return same_open_file(STDERR_FILENO, client_in) || same_open_file(STDERR_FILENO, client_out);
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

void log_setup(enum log_target requested, int client_in, int client_out)
{
	bool stderr_usable = !stderr_is_client(client_in, client_out);

	switch (requested) {
	case LOG_TARGET_AUTO:
		if (stderr_usable && stderr_is_journal())
			active_target = LOG_TARGET_JOURNAL;
		else if (stderr_usable)
			active_target = LOG_TARGET_STDERR;
		else
			active_target = LOG_TARGET_SYSLOG;
		break;
	case LOG_TARGET_STDERR:
		/* Never, even when asked: under inetd that would be tunnel data. */
		active_target = stderr_usable ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG;
		break;
	default:
		active_target = requested;
		break;
	}
	if (active_target == LOG_TARGET_SYSLOG)
		openlog("tunneld", LOG_PID, LOG_DAEMON);
}

static void write_stderr_line(const char *line)
{
	char buffer[LOG_LINE_MAX_BYTES + 16];
	int len = snprintf(buffer, sizeof(buffer), "tunneld: %s\n", line);
	if (len > (int)sizeof(buffer) - 1)
		len = (int)sizeof(buffer) - 1;
	/* One write, so that lines of concurrent tunnels sharing a stream do not interleave. */
	(void)!write(STDERR_FILENO, buffer, (size_t)len);
}

/* fields: "NAME=value" strings, for the journal only. */
static void emit(int priority, const char *line, char *const *fields, size_t field_count)
{
	switch (active_target) {
	case LOG_TARGET_NONE:
	case LOG_TARGET_AUTO:
		return;
	case LOG_TARGET_SYSLOG:
		syslog(priority, "%s", line);
		return;
	case LOG_TARGET_STDERR:
		write_stderr_line(line);
		return;
	case LOG_TARGET_JOURNAL: {
		static char identifier[] = "SYSLOG_IDENTIFIER=tunneld";
		char message[LOG_LINE_MAX_BYTES + 16];
		char priority_field[16];
		struct iovec iov[12];
		size_t n = 0;

		(void)snprintf(message, sizeof(message), "MESSAGE=%s", line);
		(void)snprintf(priority_field, sizeof(priority_field), "PRIORITY=%d", priority);
		iov[n++] = (struct iovec){ message, strlen(message) };
		iov[n++] = (struct iovec){ priority_field, strlen(priority_field) };
		iov[n++] = (struct iovec){ identifier, strlen(identifier) };
		for (size_t i = 0; i < field_count && n < sizeof(iov) / sizeof(iov[0]); i++)
			iov[n++] = (struct iovec){ fields[i], strlen(fields[i]) };
		/* Without libsystemd, fd 2 is still a journal stream: the line lands, without fields. */
		if (systemd_journal_sendv(iov, (int)n) < 0)
			write_stderr_line(line);
		return;
	}
	}
}

void log_error(const char *message)
{
	emit(LOG_ERR, message, NULL, 0);
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

void log_connection(const struct connection_record *record)
{
	char line[LOG_LINE_MAX_BYTES];
	char status_text[8] = "-";
	char client[80], target[300], status[32], up[48], down[48], duration[48], reason[300];
	char *const fields[] = { client, target, status, up, down, duration, reason };

	if (record->status != 0)
		(void)snprintf(status_text, sizeof(status_text), "%d", record->status);
	(void)snprintf(line, sizeof(line), "%s -> %s status=%s up=%" PRIu64 " down=%" PRIu64 " duration_ms=%ld%s%s",
		       record->client, record->target, status_text, record->bytes_up, record->bytes_down,
		       record->duration_ms, record->reason != NULL ? " reason=" : "",
		       record->reason != NULL ? record->reason : "");
	if (active_target != LOG_TARGET_JOURNAL) {
		emit(record_priority(record->status), line, NULL, 0);
		return;
	}
	(void)snprintf(client, sizeof(client), "TUNNELD_CLIENT=%s", record->client);
	(void)snprintf(target, sizeof(target), "TUNNELD_TARGET=%s", record->target);
	(void)snprintf(status, sizeof(status), "TUNNELD_STATUS=%s", status_text);
	(void)snprintf(up, sizeof(up), "TUNNELD_BYTES_UP=%" PRIu64, record->bytes_up);
	(void)snprintf(down, sizeof(down), "TUNNELD_BYTES_DOWN=%" PRIu64, record->bytes_down);
	(void)snprintf(duration, sizeof(duration), "TUNNELD_DURATION_MS=%ld", record->duration_ms);
	(void)snprintf(reason, sizeof(reason), "TUNNELD_REASON=%s", record->reason != NULL ? record->reason : "");
	emit(record_priority(record->status), line, fields, sizeof(fields) / sizeof(fields[0]));
}
