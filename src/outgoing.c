/* outgoing: see outgoing.h. */
#include "outgoing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int outgoing_parse(const char *text, struct outgoing *out, const char **why)
{
	char copy[OUTGOING_TEXT_MAX_BYTES];
	char *saveptr = NULL;

	*out = (struct outgoing){ 0 };
	if (strcmp(text, "same") == 0) {
		*out = (struct outgoing){ .set = true, .same = true };
		return 0;
	}
	if (text[0] == '\0' || strlen(text) >= sizeof(copy)) {
		*why = "want an IPv4 address, an IPv6 address, both with a comma, or same";
		return -1;
	}
	memcpy(copy, text, strlen(text) + 1);
	for (char *word = strtok_r(copy, ",", &saveptr); word != NULL; word = strtok_r(NULL, ",", &saveptr)) {
		struct in_addr v4;
		struct in6_addr v6;
		if (inet_pton(AF_INET, word, &v4) == 1 && !out->has_v4) {
			out->v4 = v4;
			out->has_v4 = true;
		} else if (inet_pton(AF_INET6, word, &v6) == 1 && !out->has_v6 &&
			   memcmp(&v6, v4_mapped_prefix, sizeof(v4_mapped_prefix)) != 0) {
			out->v6 = v6;
			out->has_v6 = true;
		} else {
			*why = "want an IPv4 address, an IPv6 address (not IPv4-mapped), at most one of each, or same";
			return -1;
		}
	}
	if (!out->has_v4 && !out->has_v6) {
		*why = "want an IPv4 address, an IPv6 address, both with a comma, or same";
		return -1;
	}
	out->set = true;
	return 0;
}

void outgoing_format(const struct outgoing *outgoing, char *out, size_t size)
{
	char v4[INET_ADDRSTRLEN] = "", v6[INET6_ADDRSTRLEN] = "";

	if (!outgoing->set) {
		(void)snprintf(out, size, "-");
		return;
	}
	if (outgoing->same) {
		(void)snprintf(out, size, "same");
		return;
	}
	if (outgoing->has_v4)
		(void)inet_ntop(AF_INET, &outgoing->v4, v4, sizeof(v4));
	if (outgoing->has_v6)
		(void)inet_ntop(AF_INET6, &outgoing->v6, v6, sizeof(v6));
	(void)snprintf(out, size, "%s%s%s", v4, outgoing->has_v4 && outgoing->has_v6 ? "," : "", v6);
}

bool outgoing_serves(const struct outgoing *outgoing, int family)
{
	if (!outgoing->set)
		return true;
	return family == AF_INET ? outgoing->has_v4 : family == AF_INET6 && outgoing->has_v6;
}

socklen_t outgoing_address(const struct outgoing *outgoing, int family, struct sockaddr_storage *address)
{
	memset(address, 0, sizeof(*address));
	if (family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)address;
		v4->sin_family = AF_INET;
		v4->sin_addr = outgoing->v4;
		return sizeof(*v4);
	}
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)address;
	v6->sin6_family = AF_INET6;
	v6->sin6_addr = outgoing->v6;
	return sizeof(*v6);
}

int outgoing_check(const struct outgoing *outgoing, char *why, size_t why_size)
{
	static const int families[] = { AF_INET, AF_INET6 };

	if (!outgoing->set || outgoing->same)
		return 0;
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		struct sockaddr_storage address;
		char text[INET6_ADDRSTRLEN] = "";
		if (!outgoing_serves(outgoing, families[i]))
			continue;
		socklen_t len = outgoing_address(outgoing, families[i], &address);
		int fd = socket(families[i], SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
		int error = 0;
		if (fd < 0 || bind(fd, (struct sockaddr *)&address, len) < 0)
			error = errno;
		if (fd >= 0)
			(void)close(fd);
		if (error == 0)
			continue;
		(void)inet_ntop(families[i], families[i] == AF_INET ? (const void *)&outgoing->v4 : (const void *)&outgoing->v6,
				text, sizeof(text));
		(void)snprintf(why, why_size, "outgoing address %s: %s", text,
			       error == EADDRNOTAVAIL ? "not an address of this host" : strerror(error));
		return -1;
	}
	return 0;
}

int outgoing_of_client(const struct outgoing *outgoing, int fd, struct outgoing *resolved)
{
	struct sockaddr_storage local = { 0 };
	socklen_t len = sizeof(local);

	*resolved = *outgoing;
	if (!outgoing->set || !outgoing->same)
		return 0;
	*resolved = (struct outgoing){ .set = true };
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
		return -1;
	if (local.ss_family == AF_INET) {
		resolved->v4 = ((struct sockaddr_in *)(void *)&local)->sin_addr;
		resolved->has_v4 = true;
		return 0;
	}
	if (local.ss_family != AF_INET6)
		return -1;
	const struct in6_addr *v6 = &((struct sockaddr_in6 *)(void *)&local)->sin6_addr;
	if (memcmp(v6, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		memcpy(&resolved->v4, (const uint8_t *)v6 + 12, 4);
		resolved->has_v4 = true;
	} else {
		resolved->v6 = *v6;
		resolved->has_v6 = true;
	}
	return 0;
}
