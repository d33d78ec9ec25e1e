/*
 * request: the CONNECT head parser (RFC 9110 §9.3.6, RFC 9112 §3 and §5).
 *
 * The head is checked in two passes: first its size and shape (where it
 * ends, how many fields), so that a flood is refused before any of it is
 * interpreted; then the request line and each field. Anything the grammar
 * does not allow is refused rather than repaired: a proxy that guesses is a
 * proxy that can be smuggled through.
 */
#include "request.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar */
static bool is_token_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_token_char((unsigned char)s[i]))
			return false;
	return true;
}

/* RFC 9110 §5.5: field-value is VCHAR, obs-text, SP and HTAB. */
static bool is_field_value_char(unsigned char c)
{
	return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static bool is_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int fail(struct request *req, const char *why)
{
	req->why = why;
	return -1;
}

static bool parse_ipv6(const char *host, size_t len)
{
	char text[INET6_ADDRSTRLEN + 1];
	struct in6_addr addr;

	/* A zone id ("%eth0") names an interface of the proxy: never the client's to pick. */
	if (len >= sizeof(text) || memchr(host, '%', len) != NULL)
		return false;
	memcpy(text, host, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &addr) == 1;
}

/*
 * A DNS name, or a dotted quad. A name whose last label is numeric cannot be
 * a DNS name (RFC 3696 §2), so it must be a valid IPv4 address: this stops
 * "256.1.1.1" and inet_aton's shorthand forms ("127.1") from reaching the
 * resolver, which would quietly turn them into addresses.
 */
static int parse_name_or_ipv4(const char *host, size_t len, struct request *req)
{
	size_t name_len = len;
	size_t label_start = 0;
	size_t last_label_start = 0;
	struct in_addr addr;

	if (len > 0 && host[len - 1] == '.')
		name_len--;
	if (name_len == 0)
		return fail(req, "empty host");
	if (name_len > HOST_MAX_BYTES)
		return fail(req, "host name longer than 253 octets");

	for (size_t i = 0; i <= name_len; i++) {
		if (i == name_len || host[i] == '.') {
			size_t label_len = i - label_start;
			if (label_len == 0)
				return fail(req, "empty label in host name");
			if (label_len > 63)
				return fail(req, "host name label longer than 63 octets");
			last_label_start = label_start;
			label_start = i + 1;
			continue;
		}
		unsigned char c = (unsigned char)host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return fail(req, "invalid character in host");
	}

	memcpy(req->host, host, len);
	req->host[len] = '\0';
	if (is_digits(host + last_label_start, name_len - last_label_start)) {
		if (name_len != len || inet_pton(AF_INET, req->host, &addr) != 1)
			return fail(req, "host is neither a DNS name nor a valid IPv4 address");
		req->host_kind = HOST_IPV4;
		return 0;
	}
	/* "0x7f000001" is a DNS name to the grammar and 127.0.0.1 to getaddrinfo. */
	if (inet_aton(req->host, &addr) != 0)
		return fail(req, "host is a numeric address in a non-standard form");
	req->host_kind = HOST_NAME;
	return 0;
}

static int parse_port(const char *text, size_t len, struct request *req)
{
	unsigned long value = 0;

	if (!is_digits(text, len))
		return fail(req, "port missing or not a decimal number");
	for (size_t i = 0; i < len; i++) {
		value = value * 10 + (unsigned long)(text[i] - '0');
		if (value > 65535)
			return fail(req, "port out of range");
	}
	if (value == 0)
		return fail(req, "port out of range");
	req->port = (unsigned)value;
	return 0;
}

/*
 * The target as the client wrote it, for the log even when refused, bounded.
 * Userinfo ("alice:secret@") is left out: it may be a password. The log
 * escapes whatever else the bytes hold.
 */
static void record_authority(const char *text, size_t len, struct request *req)
{
	const char *at = memrchr(text, '@', len);
	if (at != NULL) {
		len -= (size_t)(at + 1 - text);
		text = at + 1;
	}
	if (len > AUTHORITY_MAX_BYTES)
		len = AUTHORITY_MAX_BYTES;
	memcpy(req->authority, text, len);
	req->authority[len] = '\0';
}

int request_parse_authority(const char *text, size_t len, struct request *req)
{
	const char *host;
	size_t host_len;
	const char *colon;

	if (len == 0)
		return fail(req, "empty authority");
	record_authority(text, len, req);
	if (len > AUTHORITY_MAX_BYTES)
		return fail(req, "authority too long");
	if (memchr(text, '@', len) != NULL)
		return fail(req, "userinfo is not allowed in the authority");

	if (text[0] == '[') {
		const char *close = memchr(text, ']', len);
		if (close == NULL)
			return fail(req, "unterminated IPv6 literal");
		host = text + 1;
		host_len = (size_t)(close - host);
		if (close + 1 == text + len || close[1] != ':')
			return fail(req, "port required after IPv6 literal");
		colon = close + 1;
		if (!parse_ipv6(host, host_len))
			return fail(req, "invalid IPv6 literal");
		req->host_kind = HOST_IPV6;
	} else {
		/* The port is required, so the last colon ends the host even for
		 * openssl s_client's unbracketed "::1:443". */
		colon = memrchr(text, ':', len);
		if (colon == NULL)
			return fail(req, "port required in the authority");
		host = text;
		host_len = (size_t)(colon - text);
		if (memchr(host, ':', host_len) != NULL) {
			if (!parse_ipv6(host, host_len))
				return fail(req, "invalid IPv6 address");
			req->host_kind = HOST_IPV6;
		} else if (parse_name_or_ipv4(host, host_len, req) < 0) {
			return -1;
		}
	}
	if (req->host_kind == HOST_IPV6) {
		memcpy(req->host, host, host_len);
		req->host[host_len] = '\0';
	}
	return parse_port(colon + 1, (size_t)(text + len - colon - 1), req);
}

/*
 * The request line: exactly "method SP authority SP HTTP/x.y". The version is
 * judged before the method so that an HTTP/2 preface gets 505, and the method
 * before the authority so that "GET /path" gets 405, not 400.
 */
static enum request_verdict parse_request_line(const char *line, size_t len, struct request *req)
{
	const char *first_space = memchr(line, ' ', len);
	if (first_space == NULL) {
		req->why = "request line has no target";
		return REQUEST_BAD;
	}
	const char *target = first_space + 1;
	const char *second_space = memchr(target, ' ', (size_t)(line + len - target));
	if (second_space == NULL) {
		req->why = "request line has no HTTP version";
		return REQUEST_BAD;
	}
	const char *version = second_space + 1;
	size_t method_len = (size_t)(first_space - line);
	size_t target_len = (size_t)(second_space - target);
	size_t version_len = (size_t)(line + len - version);

	if (!is_token(line, method_len)) {
		req->why = "malformed method";
		return REQUEST_BAD;
	}
	if (version_len != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
	    version[6] != '.' || version[7] < '0' || version[7] > '9') {
		req->why = "malformed HTTP version";
		return REQUEST_BAD;
	}
	if (version[5] != '1') {
		req->why = "HTTP major version is not 1";
		return REQUEST_VERSION_NOT_SUPPORTED;
	}
	req->version_minor = version[7] - '0';
	if (method_len != 7 || memcmp(line, "CONNECT", 7) != 0) {
		req->why = "method is not CONNECT";
		return REQUEST_METHOD_NOT_ALLOWED;
	}
	if (target_len == 0 || memchr(target, ' ', target_len) != NULL) {
		req->why = "request line has extra spaces";
		return REQUEST_BAD;
	}
	if (request_parse_authority(target, target_len, req) < 0)
		return REQUEST_BAD;
	return REQUEST_OK;
}

static enum request_verdict parse_field(const char *line, size_t len, struct request *req)
{
	const char *colon = memchr(line, ':', len);
	if (line[0] == ' ' || line[0] == '\t') {
		req->why = "obsolete line folding in header field";
		return REQUEST_BAD;
	}
	/* RFC 9112 §5.1: no whitespace between the name and the colon. */
	if (colon == NULL || !is_token(line, (size_t)(colon - line))) {
		req->why = "malformed header field";
		return REQUEST_BAD;
	}
	const char *value = colon + 1;
	const char *end = line + len;
	while (value < end && (*value == ' ' || *value == '\t'))
		value++;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *c = value; c < end; c++) {
		if (!is_field_value_char((unsigned char)*c)) {
			req->why = "invalid character in header field value";
			return REQUEST_BAD;
		}
	}
	size_t name_len = (size_t)(colon - line);
	if (name_len == 19 && strncasecmp(line, "Proxy-Authorization", 19) == 0) {
		size_t value_len = (size_t)(end - value);
		if (req->credentials[0] != '\0') {
			req->why = "more than one Proxy-Authorization field";
			return REQUEST_BAD;
		}
		if (value_len == 0 || value_len > CREDENTIALS_MAX_BYTES) {
			req->why = "Proxy-Authorization empty or too long";
			return REQUEST_BAD;
		}
		memcpy(req->credentials, value, value_len);
		req->credentials[value_len] = '\0';
	}
	return REQUEST_OK;
}

/* Length of the line at buf[start...] without its CRLF or LF, or -1 if a bare CR is inside. */
static long line_length(const char *line, size_t len_with_lf)
{
	size_t len = len_with_lf - 1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\r', len) != NULL || memchr(line, '\0', len) != NULL)
		return -1;
	return (long)len;
}

enum request_verdict request_parse(const char *buf, size_t len, struct request *req)
{
	size_t head_end = 0;
	size_t fields = 0;
	size_t pos = 0;

	memset(req, 0, sizeof(*req));
	req->why = "incomplete head";

	/* Pass 1: where does the head end, and is it within the limits? */
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (nl == NULL) {
			if (len >= HEAD_MAX_BYTES) {
				req->why = "head larger than 8192 bytes";
				return REQUEST_TOO_LARGE;
			}
			return REQUEST_INCOMPLETE;
		}
		size_t next = (size_t)(nl - buf) + 1;
		if (next > HEAD_MAX_BYTES) {
			req->why = "head larger than 8192 bytes";
			return REQUEST_TOO_LARGE;
		}
		bool empty = next - pos == 1 || (next - pos == 2 && buf[pos] == '\r');
		if (empty && pos > 0) {
			head_end = next;
			break;
		}
		if (pos > 0 && ++fields > HEAD_MAX_FIELDS) {
			req->why = "more than 100 header fields";
			return REQUEST_TOO_LARGE;
		}
		pos = next;
	}

	/* Pass 2: the request line, then each field. */
	pos = 0;
	while (pos < head_end) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', head_end - pos);
		size_t len_with_lf = (size_t)(nl - line) + 1;
		long line_len = line_length(line, len_with_lf);
		enum request_verdict verdict;

		if (line_len < 0) {
			req->why = "stray CR or NUL in the head";
			return REQUEST_BAD;
		}
		if (pos == 0 && line_len == 0) {
			req->why = "empty request line";
			return REQUEST_BAD;
		}
		if (pos == 0)
			verdict = parse_request_line(line, (size_t)line_len, req);
		else if (line_len == 0)
			break;
		else
			verdict = parse_field(line, (size_t)line_len, req);
		if (verdict != REQUEST_OK)
			return verdict;
		pos += len_with_lf;
	}
	req->head_bytes = head_end;
	req->why = NULL;
	return REQUEST_OK;
}
