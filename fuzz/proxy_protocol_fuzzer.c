/*
 * libFuzzer harness for the PROXY protocol v1/v2 parser: the first bytes of
 * every connection under --proxy-protocol.
 */
#include "../src/proxy_protocol.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header header;
	/* tunneld reads at most one header buffer before deciding. */
	size_t len = size < PROXY_HEADER_MAX_BYTES ? size : PROXY_HEADER_MAX_BYTES;
	enum proxy_verdict verdict = proxy_protocol_parse(data, len, &header);

	if ((verdict == PROXY_OK || verdict == PROXY_LOCAL) && (header.length == 0 || header.length > len))
		__builtin_trap();
	if (verdict == PROXY_INVALID && header.why == NULL)
		__builtin_trap();
	if (verdict == PROXY_OK && header.has_source && header.family != AF_INET && header.family != AF_INET6)
		__builtin_trap();
	return 0;
}
