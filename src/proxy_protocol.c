/*
 * proxy_protocol: v1 ("PROXY TCP4 a b p q\r\n") and v2 (binary) headers.
 *
 * The parser consumes exactly the header and reports its length, so the
 * CONNECT bytes that follow in the same segment stay the request's. A prefix
 * of a valid header is INCOMPLETE (headers may arrive in pieces); anything
 * that cannot become one is INVALID at once, without waiting for more.
 */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t v2_signature[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static enum proxy_verdict invalid(struct proxy_header *header, const char *why)
{
	header->why = why;
	return PROXY_INVALID;
}

static bool is_prefix_of(const uint8_t *buf, size_t len, const uint8_t *whole, size_t whole_len)
{
	return memcmp(buf, whole, len < whole_len ? len : whole_len) == 0;
}

/* A decimal port 0-65535 without leading zeros, as v1 requires. */
static bool parse_v1_port(const char *text, uint16_t *port)
{
	size_t len = strlen(text);
	unsigned long value = 0;

	if (len == 0 || len > 5 || (len > 1 && text[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		value = value * 10 + (unsigned long)(text[i] - '0');
	}
	if (value > 65535)
		return false;
	*port = (uint16_t)value;
	return true;
}

static enum proxy_verdict parse_v1(const uint8_t *buf, size_t len, struct proxy_header *header)
{
	char line[PROXY_V1_MAX_BYTES + 1];
	char *fields[6];
	size_t field_count = 0;
	const uint8_t *end = memchr(buf, '\n', len < PROXY_V1_MAX_BYTES ? len : PROXY_V1_MAX_BYTES);

	if (end == NULL)
		return len >= PROXY_V1_MAX_BYTES ? invalid(header, "PROXY v1 line longer than 107 bytes") : PROXY_INCOMPLETE;
	size_t line_len = (size_t)(end - buf);
	if (line_len == 0 || buf[line_len - 1] != '\r')
		return invalid(header, "PROXY v1 line does not end in CRLF");
	line_len--;
	memcpy(line, buf, line_len);
	line[line_len] = '\0';
	header->length = line_len + 2;

	for (char *cursor = line; field_count < 6;) {
		fields[field_count++] = cursor;
		char *space = strchr(cursor, ' ');
		if (space == NULL)
			break;
		*space = '\0';
		cursor = space + 1;
	}
	if (strcmp(fields[0], "PROXY") != 0 || field_count < 2)
		return invalid(header, "malformed PROXY v1 line");
	if (strcmp(fields[1], "UNKNOWN") == 0)
		return PROXY_OK; /* whatever follows is to be ignored (§2.1) */
	if (field_count != 6)
		return invalid(header, "malformed PROXY v1 line");
	if (strcmp(fields[1], "TCP4") == 0)
		header->family = AF_INET;
	else if (strcmp(fields[1], "TCP6") == 0)
		header->family = AF_INET6;
	else
		return invalid(header, "unknown PROXY v1 protocol");
	uint8_t destination[16];
	uint16_t destination_port;
	if (inet_pton(header->family, fields[2], header->source_address) != 1 ||
	    inet_pton(header->family, fields[3], destination) != 1 || !parse_v1_port(fields[4], &header->source_port) ||
	    !parse_v1_port(fields[5], &destination_port))
		return invalid(header, "malformed PROXY v1 address or port");
	header->has_source = true;
	return PROXY_OK;
}

static enum proxy_verdict parse_v2(const uint8_t *buf, size_t len, struct proxy_header *header)
{
	if (len < 16)
		return PROXY_INCOMPLETE;
	uint8_t version = buf[12] >> 4;
	uint8_t command = buf[12] & 0x0f;
	uint8_t family = buf[13] >> 4;
	uint8_t transport = buf[13] & 0x0f;
	size_t address_length = (size_t)buf[14] << 8 | buf[15];

	if (version != 2)
		return invalid(header, "PROXY v2 header with an unknown version");
	if (command > 1)
		return invalid(header, "PROXY v2 header with an unknown command");
	if (16 + address_length > PROXY_HEADER_MAX_BYTES)
		return invalid(header, "PROXY v2 header larger than 536 bytes");
	if (len < 16 + address_length)
		return PROXY_INCOMPLETE;
	header->length = 16 + address_length;
	if (command == 0)
		return PROXY_LOCAL;

	const uint8_t *address = buf + 16;
	bool stream = transport == 1;
	if (family == 1 && stream) {
		if (address_length < 12)
			return invalid(header, "PROXY v2 TCP4 address block too short");
		header->family = AF_INET;
		memcpy(header->source_address, address, 4);
		header->source_port = (uint16_t)(address[8] << 8 | address[9]);
		header->has_source = true;
	} else if (family == 2 && stream) {
		if (address_length < 36)
			return invalid(header, "PROXY v2 TCP6 address block too short");
		header->family = AF_INET6;
		memcpy(header->source_address, address, 16);
		header->source_port = (uint16_t)(address[32] << 8 | address[33]);
		header->has_source = true;
	} else if (family > 3 || transport > 2) {
		return invalid(header, "PROXY v2 header with an unknown address family");
	}
	/* UNSPEC, UDP and unix sources carry no client address to log: has_source stays false. */
	return PROXY_OK;
}

enum proxy_verdict proxy_protocol_parse(const uint8_t *buf, size_t len, struct proxy_header *header)
{
	static const uint8_t v1_start[] = { 'P', 'R', 'O', 'X', 'Y', ' ' };

	memset(header, 0, sizeof(*header));
	if (len == 0)
		return PROXY_INCOMPLETE;
	if (is_prefix_of(buf, len, v2_signature, sizeof(v2_signature)))
		return len < sizeof(v2_signature) ? PROXY_INCOMPLETE : parse_v2(buf, len, header);
	if (is_prefix_of(buf, len, v1_start, sizeof(v1_start)))
		return len < sizeof(v1_start) ? PROXY_INCOMPLETE : parse_v1(buf, len, header);
	return invalid(header, "connection does not start with a PROXY protocol header");
}
