/*
 * libFuzzer harness for the Proxy-Authorization parser (Basic, base64):
 * client bytes that reach tunneld whenever --auth-file is on.
 */
#include "../src/auth.h"
#include "../src/request.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As the request parser hands it over: a NUL-terminated field value, bounded. */
	char credentials[CREDENTIALS_MAX_BYTES + 1];
	char user[AUTH_USER_MAX_BYTES + 1];
	char password[AUTH_PASSWORD_MAX_BYTES + 1];
	size_t len = size < CREDENTIALS_MAX_BYTES ? size : CREDENTIALS_MAX_BYTES;

	memcpy(credentials, data, len);
	credentials[len] = '\0';
	if (auth_parse_basic(credentials, user, sizeof(user), password, sizeof(password)) == 0) {
		if (user[0] == '\0' || strlen(user) >= sizeof(user) || strlen(password) >= sizeof(password))
			__builtin_trap();
	}
	return 0;
}
