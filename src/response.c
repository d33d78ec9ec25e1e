/*
 * response: the wire table. Every non-200 answer is HTTP/1.1 with an exact
 * Content-Length and Connection: close (tunneld(8) "Responses"), so a client never waits for
 * a body that is not coming and never reuses the connection.
 */
#include "response.h"

#include <stdio.h>
#include <string.h>

struct failure_wire {
	int status;
	const char *reason;
	const char *proxy_status_error; /* RFC 9209 §2.3 */
	const char *extra_fields;
};

static const struct failure_wire failure_table[FAILURE_COUNT] = {
	[FAILURE_NONE] = { 200, "Connection established", NULL, "" },
	[FAILURE_BAD_REQUEST] = { 400, "Bad Request", "http_request_error", "" },
	[FAILURE_METHOD_NOT_ALLOWED] = { 405, "Method Not Allowed", "http_request_error", "Allow: CONNECT\r\n" },
	[FAILURE_VERSION_NOT_SUPPORTED] = { 505, "HTTP Version Not Supported", "http_request_error", "" },
	[FAILURE_PORT_DENIED] = { 403, "Forbidden", "http_request_denied", "" },
	[FAILURE_HOST_DENIED] = { 403, "Forbidden", "http_request_denied", "" },
	[FAILURE_DESTINATION_DENIED] = { 403, "Forbidden", "destination_ip_prohibited", "" },
	[FAILURE_AUTH_REQUIRED] = { 407, "Proxy Authentication Required", "http_request_denied",
				    "Proxy-Authenticate: Basic realm=\"tunneld\", charset=\"UTF-8\"\r\n" },
	[FAILURE_HEADER_TIMEOUT] = { 408, "Request Timeout", "http_request_error", "" },
	[FAILURE_HEAD_TOO_LARGE] = { 431, "Request Header Fields Too Large", "http_request_error", "" },
	[FAILURE_DNS_ERROR] = { 502, "Bad Gateway", "dns_error", "" },
	[FAILURE_DNS_TIMEOUT] = { 504, "Gateway Timeout", "dns_timeout", "" },
	[FAILURE_CONNECTION_REFUSED] = { 502, "Bad Gateway", "connection_refused", "" },
	[FAILURE_UNROUTABLE] = { 502, "Bad Gateway", "destination_ip_unroutable", "" },
	[FAILURE_HOST_UNREACHABLE] = { 502, "Bad Gateway", "destination_ip_unroutable", "" },
	[FAILURE_CONNECT_TIMEOUT] = { 504, "Gateway Timeout", "connection_timeout", "" },
	[FAILURE_DESTINATION_UNAVAILABLE] = { 502, "Bad Gateway", "destination_unavailable", "" },
	[FAILURE_RULE_DENIED] = { 403, "Forbidden", "http_request_denied", "" },
	[FAILURE_PARENT_REFUSED] = { 502, "Bad Gateway", "destination_unavailable", "" },
	[FAILURE_PARENT_BROKEN] = { 502, "Bad Gateway", "http_protocol_error", "" },
	[FAILURE_MISCONFIGURED] = { 500, "Internal Server Error", "proxy_configuration_error", "" },
	[FAILURE_NO_OUTGOING] = { 502, "Bad Gateway", "destination_ip_unroutable", "" },
	[FAILURE_OUTGOING_UNUSABLE] = { 502, "Bad Gateway", "proxy_configuration_error", "" },
};

int failure_status(enum failure failure)
{
	return failure_table[failure].status;
}

void response_describe(char *out, size_t size, enum failure failure, const char *why, const char *dns_rcode)
{
	const struct failure_wire *wire = &failure_table[failure];

	(void)snprintf(out, size, "%d %s: %s%s%s%s", wire->status, wire->reason, why, dns_rcode != NULL ? " (" : "",
		       dns_rcode != NULL ? dns_rcode : "", dns_rcode != NULL ? ")" : "");
}

/* why texts are ours, but keep the sf-string (RFC 8941 §3.3.3) valid regardless. */
static void copy_sf_string_safe(char *out, size_t cap, const char *text)
{
	size_t n = 0;
	for (; *text != '\0' && n + 1 < cap; text++)
		if (*text >= 0x20 && *text < 0x7f && *text != '"' && *text != '\\')
			out[n++] = *text;
	out[n] = '\0';
}

size_t response_format(char *out, enum failure failure, const char *why, const char *dns_rcode, int received_status)
{
	const struct failure_wire *wire = &failure_table[failure];
	char body[256];
	char safe_why[200];
	char rcode[48] = "";
	char received[32] = "";

	copy_sf_string_safe(safe_why, sizeof(safe_why), why);
	int body_len = snprintf(body, sizeof(body), "tunneld: %s\n", safe_why);
	if (dns_rcode != NULL)
		(void)snprintf(rcode, sizeof(rcode), "; rcode=\"%s\"", dns_rcode);
	if (received_status > 0)
		(void)snprintf(received, sizeof(received), "; received-status=%d", received_status);
	int len = snprintf(out, RESPONSE_MAX_BYTES,
			   "HTTP/1.1 %d %s\r\n"
			   "Content-Type: text/plain\r\n"
			   "Content-Length: %d\r\n"
			   "Connection: close\r\n"
			   "Proxy-Status: tunneld; error=%s%s%s; details=\"%s\"\r\n"
			   "%s"
			   "\r\n"
			   "%s",
			   wire->status, wire->reason, body_len, wire->proxy_status_error, rcode, received, safe_why,
			   wire->extra_fields, body);
	return (size_t)len;
}
