/*
 * proxy_protocol: the PROXY protocol v1 and v2 header a load balancer puts in
 * front of the client's bytes (HAProxy's proxy-protocol.txt). Pure: bytes in,
 * struct out, no I/O; fuzzed.
 */
#ifndef TUNNELD_PROXY_PROTOCOL_H
#define TUNNELD_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define PROXY_V1_MAX_BYTES 107   /* proxy-protocol.txt §2.1, CRLF included */
/* v2: 16 bytes, then addresses and TLVs; 536 is what proxy-protocol.txt §2.2 says a receiver should take. */
#define PROXY_HEADER_MAX_BYTES 536

enum proxy_verdict {
	PROXY_INCOMPLETE,  /* a prefix of a valid header: read more */
	PROXY_OK,          /* header parsed; source set if it carried TCP addresses */
	PROXY_LOCAL,       /* v2 LOCAL: a health check, to be closed quietly */
	PROXY_INVALID,     /* missing, malformed or oversized */
};

struct proxy_header {
	size_t length;             /* bytes of the header; what follows is the client's */
	bool has_source;           /* false for UNKNOWN and non-TCP families */
	int family;                /* AF_INET or AF_INET6 */
	uint8_t source_address[16];
	uint16_t source_port;
	const char *why;           /* static text when PROXY_INVALID */
};

enum proxy_verdict proxy_protocol_parse(const uint8_t *buf, size_t len, struct proxy_header *header);

#endif
