/*
 * negotiate: what the client sends before its tunnel, read against the
 * header deadline: the load balancer's PROXY header, then the first byte,
 * which names the protocol, then an HTTP CONNECT head or a SOCKS5
 * greeting, login and request (tunneld(8) "The request", "SOCKS5"). Bytes
 * read past the request are the tunnel's first data.
 */
#include "negotiate.h"

#include "auth.h"
#include "clock.h"
#include "proxy_protocol.h"
#include "response.h"

#include <string.h>

#define RESPONSE_WRITE_TIMEOUT_MS 5000
#define TLS_HANDSHAKE_RECORD 0x16    /* first byte of a TLS ClientHello record */

enum head_outcome { HEAD_PARSED, HEAD_REFUSED, HEAD_ABANDONED, HEAD_HEALTH_CHECK };

/*
 * The PROXY header (tunneld(8) "OPTIONS", --proxy-protocol), within the header deadline. It names the client
 * for the log and nothing else; bytes read past it are the request's.
 */
static enum head_outcome read_proxy_header(struct tunnel *tunnel, struct head *head, int64_t deadline_ms,
					   const char **why)
{
	char buf[PROXY_HEADER_MAX_BYTES];
	size_t len = 0;
	struct proxy_header header;

	for (;;) {
		int status = client_read_by(&tunnel->client, deadline_ms, buf, sizeof(buf), &len, why);
		if (status == 0)
			*why = "no complete PROXY header within the header timeout";
		if (status <= 0)
			return HEAD_ABANDONED;
		switch (proxy_protocol_parse((const uint8_t *)buf, len, &header)) {
		case PROXY_INCOMPLETE:
			if (len < sizeof(buf))
				continue;
			*why = "PROXY header larger than 536 bytes";
			return HEAD_ABANDONED;
		case PROXY_INVALID:
			*why = header.why;
			return HEAD_ABANDONED;
		case PROXY_LOCAL:
			return HEAD_HEALTH_CHECK;
		case PROXY_OK:
			break;
		}
		if (header.has_source)
			log_format_raw_address(header.family, header.source_address, header.source_port, tunnel->client.address,
					   sizeof(tunnel->client.address));
		head->len = len - header.length;
		memcpy(head->bytes, buf + header.length, head->len);
		return HEAD_PARSED;
	}
}

/*
 * Reads until the head is complete, too large, or the header timeout. Extra
 * bytes read past the head are kept: they are tunnel data. Bytes already in
 * head (after a PROXY header) are parsed before waiting for more.
 */
static enum head_outcome read_head(struct tunnel *tunnel, struct head *head, int64_t deadline_ms,
				   enum failure *failure, const char **why)
{
	while (head->len == 0 || (unsigned char)head->bytes[0] != TLS_HANDSHAKE_RECORD) {
		enum request_verdict verdict = head->len == 0 ? REQUEST_INCOMPLETE
							       : request_parse(head->bytes, head->len, &head->request);
		switch (verdict) {
		case REQUEST_INCOMPLETE: {
			int status = client_read_by(&tunnel->client, deadline_ms, head->bytes, sizeof(head->bytes), &head->len, why);
			if (status < 0)
				return HEAD_ABANDONED;
			if (status == 0) {
				*failure = FAILURE_HEADER_TIMEOUT;
				*why = head->len == 0 ? "no request within the header timeout"
						      : "request head not complete within the header timeout";
				return HEAD_REFUSED;
			}
			continue;
		}
		case REQUEST_OK:
			return HEAD_PARSED;
		case REQUEST_BAD:
			*failure = FAILURE_BAD_REQUEST;
			break;
		case REQUEST_METHOD_NOT_ALLOWED:
			*failure = FAILURE_METHOD_NOT_ALLOWED;
			break;
		case REQUEST_VERSION_NOT_SUPPORTED:
			*failure = FAILURE_VERSION_NOT_SUPPORTED;
			break;
		case REQUEST_TOO_LARGE:
			*failure = FAILURE_HEAD_TOO_LARGE;
			break;
		}
		*why = head->request.why;
		return HEAD_REFUSED;
	}
	*why = "client spoke TLS to this plain-HTTP proxy; TLS to the proxy needs a terminator "
	       "(stunnel, HAProxy) in front of tunneld";
	return HEAD_ABANDONED;
}

/*
 * What the log says of credentials that were not good. It names a known
 * user who failed, never a password, nor a name that is not in the file (it
 * may be a password typed into the wrong box).
 */
static const char *auth_failure_reason(enum auth_verdict verdict)
{
	switch (verdict) {
	case AUTH_MISSING:
		return "no proxy credentials";
	case AUTH_MALFORMED:
		return "malformed Proxy-Authorization"; /* SOCKS5 logins too long for it never get here */
	case AUTH_UNKNOWN_USER:
		return "unknown user";
	case AUTH_WRONG_PASSWORD:
		return "wrong password";
	case AUTH_UNAVAILABLE:
		return "crypt(3) unavailable";
	case AUTH_GRANTED:
	case AUTH_STOPPED:
		break;
	}
	return "stopped by signal while checking credentials";
}

const char *authenticate(struct tunnel *tunnel, const struct request *request)
{
	const char *user = NULL;
	enum auth_verdict verdict = auth_check(&tunnel->options->auth, request->credentials, &user);

	if (verdict == AUTH_GRANTED)
		return user;
	if (verdict == AUTH_STOPPED)
		tunnel_abandon(tunnel, auth_failure_reason(verdict), request->authority, NULL);
	tunnel_refuse(tunnel, FAILURE_AUTH_REQUIRED, "proxy authentication required", auth_failure_reason(verdict), NULL,
		      request->authority, verdict == AUTH_UNKNOWN_USER ? NULL : user);
}

/*
 * More SOCKS5 bytes before the deadline, or the end: a client that closed
 * is abandoned; one that is too slow gets timeout_answer (len 0: none),
 * which is the reply timeout_reply if that is not -1, and a 408 record
 * saying why.
 */
static void await_socks5_bytes(struct tunnel *tunnel, struct head *head, int64_t deadline_ms,
			       const void *timeout_answer, size_t len, int timeout_reply, const char *timeout_why,
			       const char *user)
{
	const char *why = NULL;
	int status = client_read_by(&tunnel->client, deadline_ms, head->bytes, sizeof(head->bytes), &head->len, &why);

	if (status < 0)
		tunnel_abandon(tunnel, why, "-", user);
	if (status == 0) {
		tunnel->client.socks5_reply = timeout_reply;
		tunnel_refuse_negotiation(tunnel, timeout_answer, len, FAILURE_HEADER_TIMEOUT, timeout_why, user);
	}
}

/*
 * SOCKS5 up to the request (tunneld(8) "SOCKS5"): greeting, method choice,
 * the login when --auth-file is given, then the request, all within the
 * header timeout. A message may come with the ones after it (a client that
 * does not wait for answers) or a byte at a time. Returns the user; every
 * refusal ends here, with the best answer the protocol has at that point.
 * Afterwards head->request is what an HTTP CONNECT would have given, and
 * its head_bytes counts every negotiation byte: what follows is tunnel data.
 */
static const char *negotiate_socks5(struct tunnel *tunnel, struct head *head, int64_t deadline_ms)
{
	static const uint8_t no_acceptable_method[] = { SOCKS5_VERSION, SOCKS5_METHOD_UNACCEPTABLE };
	static const uint8_t login_failed[] = { SOCKS5_LOGIN_VERSION, 0x01 };
	static const uint8_t login_succeeded[] = { SOCKS5_LOGIN_VERSION, 0x00 };
	static struct socks5_login login; /* holds a password until it is checked, then zeroed */
	const uint8_t *bytes = (const uint8_t *)head->bytes;
	uint8_t general_failure[SOCKS5_REPLY_MAX_BYTES];
	struct socks5_greeting greeting;
	const char *user = NULL;
	enum socks5_verdict verdict;
	size_t at = 0;

	while ((verdict = socks5_parse_greeting(bytes, head->len, &greeting)) == SOCKS5_INCOMPLETE)
		await_socks5_bytes(tunnel, head, deadline_ms, NULL, 0, -1, "SOCKS5 greeting not complete within the header timeout",
				   NULL);
	if (verdict != SOCKS5_OK)
		tunnel_refuse_negotiation(tunnel, no_acceptable_method, sizeof(no_acceptable_method), FAILURE_BAD_REQUEST,
				   greeting.why, NULL);
	at = greeting.bytes;
	/* A configuration that cannot be used is answered at the request: no login is asked for on the way. */
	bool broken = tunnel->options->configuration_error[0] != '\0';
	bool asks_login = tunnel->options->auth_enabled && !broken;
	if (broken && !greeting.offers_none)
		tunnel_refuse_negotiation(tunnel, no_acceptable_method, sizeof(no_acceptable_method), FAILURE_MISCONFIGURED,
				   tunnel->options->configuration_error, NULL);
	if (asks_login && !greeting.offers_login)
		tunnel_refuse_negotiation(tunnel, no_acceptable_method, sizeof(no_acceptable_method), FAILURE_AUTH_REQUIRED,
				   "no proxy credentials: SOCKS5 client does not offer username/password", NULL);
	if (!asks_login && !greeting.offers_none)
		tunnel_refuse_negotiation(tunnel, no_acceptable_method, sizeof(no_acceptable_method), FAILURE_BAD_REQUEST,
				   "SOCKS5 client does not offer the no-authentication method", NULL);
	const uint8_t choice[] = { SOCKS5_VERSION, asks_login ? SOCKS5_METHOD_LOGIN : SOCKS5_METHOD_NONE };
	if (client_write(&tunnel->client, (const char *)choice, sizeof(choice),
			 clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS) < 0)
		tunnel_abandon(tunnel, "client write failed while choosing the SOCKS5 method", "-", NULL);

	if (asks_login) {
		while ((verdict = socks5_parse_login(bytes + at, head->len - at, &login)) == SOCKS5_INCOMPLETE)
			await_socks5_bytes(tunnel, head, deadline_ms, login_failed, sizeof(login_failed), -1,
					   "SOCKS5 login not complete within the header timeout", NULL);
		if (verdict != SOCKS5_OK)
			tunnel_refuse_negotiation(tunnel, login_failed, sizeof(login_failed), FAILURE_AUTH_REQUIRED, login.why, NULL);
		at += login.bytes;
		int64_t hash_started_ms = clock_now_ms();
		enum auth_verdict checked = auth_check_login(&tunnel->options->auth, login.user, login.password, &user);
		explicit_bzero(&login, sizeof(login));
		/* The header timeout is the client's time: a costly hash does not use it up. */
		deadline_ms += clock_now_ms() - hash_started_ms;
		if (checked == AUTH_STOPPED)
			tunnel_abandon(tunnel, auth_failure_reason(checked), "-", NULL);
		if (checked != AUTH_GRANTED)
			tunnel_refuse_negotiation(tunnel, login_failed, sizeof(login_failed), FAILURE_AUTH_REQUIRED,
					   auth_failure_reason(checked), checked == AUTH_UNKNOWN_USER ? NULL : user);
		if (client_write(&tunnel->client, (const char *)login_succeeded, sizeof(login_succeeded),
				    clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS) < 0)
			tunnel_abandon(tunnel, "client write failed while answering the SOCKS5 login", "-", user);
	}

	size_t general_failure_len = socks5_format_reply(general_failure, SOCKS5_GENERAL_FAILURE, NULL);
	while ((verdict = socks5_parse_request(bytes + at, head->len - at, &head->request)) == SOCKS5_INCOMPLETE)
		await_socks5_bytes(tunnel, head, deadline_ms, general_failure, general_failure_len, SOCKS5_GENERAL_FAILURE,
				   "SOCKS5 request not complete within the header timeout", user);
	const char *target = head->request.authority[0] != '\0' ? head->request.authority : "-";
	switch (verdict) {
	case SOCKS5_OK:
		break;
	case SOCKS5_UNSUPPORTED_COMMAND:
		tunnel_refuse_socks5(tunnel, SOCKS5_COMMAND_NOT_SUPPORTED, FAILURE_METHOD_NOT_ALLOWED, head->request.why,
				     target, user);
	case SOCKS5_UNSUPPORTED_ADDRESS:
		tunnel_refuse_socks5(tunnel, SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED, FAILURE_BAD_REQUEST, head->request.why, target, user);
	case SOCKS5_INCOMPLETE:
	case SOCKS5_BAD:
		tunnel_refuse_socks5(tunnel, SOCKS5_GENERAL_FAILURE, FAILURE_BAD_REQUEST, head->request.why, target, user);
	}
	head->request.head_bytes += at;
	return user;
}

/* The first byte names the protocol; a silent client times out as an HTTP one would. */
static enum head_outcome read_first_byte(struct tunnel *tunnel, struct head *head, int64_t deadline_ms,
					 enum failure *failure, const char **why)
{
	if (head->len > 0)
		return HEAD_PARSED;
	int status = client_read_by(&tunnel->client, deadline_ms, head->bytes, sizeof(head->bytes), &head->len, why);
	if (status < 0)
		return HEAD_ABANDONED;
	if (status == 0) {
		*failure = FAILURE_HEADER_TIMEOUT;
		*why = "no request within the header timeout";
		return HEAD_REFUSED;
	}
	return HEAD_PARSED;
}

int answer_established(struct tunnel *tunnel, int target)
{
	struct sockaddr_storage bound = { 0 };
	socklen_t bound_len = sizeof(bound);
	uint8_t reply[SOCKS5_REPLY_MAX_BYTES];
	int64_t deadline_ms = clock_now_ms() + RESPONSE_WRITE_TIMEOUT_MS;

	if (tunnel->client.protocol == PROTOCOL_JUMP)
		return 0; /* the stream's first byte is the target's */
	if (tunnel->client.protocol == PROTOCOL_HTTP)
		return client_write(&tunnel->client, RESPONSE_ESTABLISHED, strlen(RESPONSE_ESTABLISHED), deadline_ms);
	if (getsockname(target, (struct sockaddr *)&bound, &bound_len) < 0)
		bound.ss_family = AF_UNSPEC;
	size_t len = socks5_format_reply(reply, SOCKS5_SUCCEEDED, (struct sockaddr *)&bound);
	if (client_write(&tunnel->client, (const char *)reply, len, deadline_ms) < 0)
		return -1;
	tunnel->client.socks5_reply = SOCKS5_SUCCEEDED;
	return 0;
}


const struct request *read_request(struct tunnel *tunnel, struct head *head, const char **user)
{
	const struct options *options = tunnel->options;
	int64_t deadline_ms = tunnel->start_ms + (int64_t)options->header_timeout_seconds * 1000;
	enum head_outcome outcome = HEAD_PARSED;
	enum failure failure = FAILURE_NONE;
	const char *why = NULL;

	*user = NULL;
	if (options->proxy_protocol)
		outcome = read_proxy_header(tunnel, head, deadline_ms, &why);
	if (outcome == HEAD_PARSED)
		outcome = read_first_byte(tunnel, head, deadline_ms, &failure, &why);
	if (outcome == HEAD_PARSED) {
		if ((unsigned char)head->bytes[0] == SOCKS5_VERSION)
			tunnel->client.protocol = PROTOCOL_SOCKS5;
		if (tunnel->client.protocol == PROTOCOL_SOCKS5 ? !options->serve_socks5 : !options->serve_http)
			tunnel_close_unanswered(tunnel, tunnel->client.protocol == PROTOCOL_SOCKS5
								? "SOCKS5 is not served here (--protocols)"
								: "HTTP is not served here (--protocols)");
		if (tunnel->client.protocol == PROTOCOL_SOCKS5)
			*user = negotiate_socks5(tunnel, head, deadline_ms);
		else
			outcome = read_head(tunnel, head, deadline_ms, &failure, &why);
	}
	switch (outcome) {
	case HEAD_HEALTH_CHECK:
		tunnel_end(tunnel, NULL); /* a balancer's health check: no record */
	case HEAD_ABANDONED:
		tunnel_abandon(tunnel, why, "-", NULL);
	case HEAD_REFUSED:
		if (!options->serve_http) /* a silent client on a SOCKS5-only port: no HTTP answer */
			tunnel_abandon(tunnel, why, "-", NULL);
		tunnel_refuse(tunnel, failure, why, NULL, NULL,
			      head->request.authority[0] != '\0' ? head->request.authority : "-", NULL);
	case HEAD_PARSED:
		break;
	}
	return &head->request;
}
