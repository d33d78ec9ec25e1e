/*
 * libFuzzer harness for the request parser: the bytes a client sends before
 * the tunnel exists. Built from src/request.c as the program uses it.
 */
#include "../src/request.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct request request;
	/* tunneld never hands the parser more than one head buffer. */
	size_t len = size < HEAD_MAX_BYTES ? size : HEAD_MAX_BYTES;
	enum request_verdict verdict = request_parse((const char *)data, len, &request);

	if (verdict == REQUEST_OK) {
		/* What the rest of tunneld relies on. */
		if (request.head_bytes == 0 || request.head_bytes > len || request.port == 0 || request.port > 65535 ||
		    request.host[0] == '\0' || strlen(request.authority) > AUTHORITY_MAX_BYTES)
			__builtin_trap();
	} else if (verdict != REQUEST_INCOMPLETE && request.why == NULL) {
		__builtin_trap();
	}
	(void)request_parse_authority((const char *)data, len < AUTHORITY_MAX_BYTES ? len : AUTHORITY_MAX_BYTES, &request);
	return 0;
}
