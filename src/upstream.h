/*
 * upstream: one hop through a parent proxy (tunneld(8) "RULES", via):
 * HTTP CONNECT, or SOCKS5 with the target as a name the parent resolves.
 * The parent's answers are read to their exact end, so that nothing of the
 * tunnel is taken for them, and judged by the pure parsers below.
 */
#ifndef TUNNELD_UPSTREAM_H
#define TUNNELD_UPSTREAM_H

#include "connector.h"
#include "request.h"
#include "rules.h"

#include <stddef.h>
#include <stdint.h>

#define UPSTREAM_HEAD_MAX_BYTES 8192

struct upstream_outcome {
	enum failure failure;     /* FAILURE_NONE with why set: stopped by a signal */
	const char *why;          /* static text */
	const char *dns_rcode;
	int received_status;      /* an HTTP parent's status, or 0 */
	int received_reply;       /* a SOCKS5 parent's REP, or -1 */
};

/*
 * A socket through parent to request's host and port, ready for the relay,
 * or -1 with outcome filled; the parent is reached leaving from from.
 * deadline_ms bounds connecting and the parent's answer together.
 */
int upstream_open(const struct parent *parent, const struct request *request, const struct outgoing *from,
		  int64_t deadline_ms, struct upstream_outcome *outcome);

enum upstream_verdict { UPSTREAM_INCOMPLETE, UPSTREAM_OK, UPSTREAM_BAD };

/*
 * An HTTP parent's response head in buf: UPSTREAM_OK once the empty line
 * has come, with *status its status code (100-599).
 */
enum upstream_verdict upstream_parse_http_head(const char *buf, size_t len, int *status);

/*
 * A SOCKS5 reply's first bytes: UPSTREAM_OK with *total the whole reply's
 * length once enough is known (after 5 bytes at most), UPSTREAM_BAD if it
 * is not a reply.
 */
enum upstream_verdict upstream_socks5_reply_length(const uint8_t *buf, size_t len, size_t *total);

#endif
