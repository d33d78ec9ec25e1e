/*
 * libFuzzer harness for the SOCKS5 parser: greeting, login and request in
 * a row, each parsed where the one before ended, as tunneld reads them.
 * Built from src/socks5.c and src/request.c as the program uses them.
 */
#include "../src/socks5.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(enum socks5_reply reply, const struct sockaddr *bound)
{
	uint8_t out[SOCKS5_REPLY_MAX_BYTES];
	size_t len = socks5_format_reply(out, reply, bound);
	if ((len != 10 && len != 22) || out[0] != SOCKS5_VERSION || out[1] != (uint8_t)reply)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct request request;
	static struct socks5_login login;
	struct socks5_greeting greeting;
	/* tunneld never holds more than one head buffer. */
	size_t len = size < HEAD_MAX_BYTES ? size : HEAD_MAX_BYTES;
	size_t at = 0;

	enum socks5_verdict verdict = socks5_parse_greeting(data, len, &greeting);
	if (verdict == SOCKS5_BAD && greeting.why == NULL)
		__builtin_trap();
	if (verdict != SOCKS5_OK)
		return 0;
	if (greeting.bytes < 3 || greeting.bytes > len)
		__builtin_trap();
	at = greeting.bytes;
	if (greeting.offers_login) {
		verdict = socks5_parse_login(data + at, len - at, &login);
		if (verdict == SOCKS5_BAD && login.why == NULL)
			__builtin_trap();
		if (verdict != SOCKS5_OK)
			return 0;
		if (login.bytes < 3 || login.bytes > len - at || login.user[0] == '\0' ||
		    strlen(login.user) > SOCKS5_LOGIN_FIELD_MAX_BYTES || strlen(login.password) > SOCKS5_LOGIN_FIELD_MAX_BYTES)
			__builtin_trap();
		at += login.bytes;
	}
	verdict = socks5_parse_request(data + at, len - at, &request);
	if (verdict != SOCKS5_INCOMPLETE && verdict != SOCKS5_OK && request.why == NULL)
		__builtin_trap();
	if (verdict == SOCKS5_OK) {
		/* What the rest of tunneld relies on, as for an HTTP CONNECT; the shortest request has a 1-byte name. */
		if (request.head_bytes < 8 || request.head_bytes > len - at || request.port == 0 || request.port > 65535 ||
		    request.host[0] == '\0' || strlen(request.authority) > AUTHORITY_MAX_BYTES)
			__builtin_trap();
	}
	/* Replies for every code, naming an address made of the input's last bytes. */
	struct sockaddr_in6 bound = { .sin6_family = size % 2 ? AF_INET6 : AF_INET };
	memcpy(&bound, data + len - (len < sizeof(bound) ? len : sizeof(bound)), len < sizeof(bound) ? len : sizeof(bound));
	bound.sin6_family = size % 2 ? AF_INET6 : AF_INET;
	for (int code = SOCKS5_SUCCEEDED; code <= SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED; code++) {
		check_reply((enum socks5_reply)code, NULL);
		check_reply((enum socks5_reply)code, (const struct sockaddr *)&bound);
	}
	for (int failure = FAILURE_NONE; failure < FAILURE_COUNT; failure++)
		if (socks5_reply_for((enum failure)failure) > SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED)
			__builtin_trap();
	return 0;
}
