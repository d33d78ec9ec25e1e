/* outgoing: see outgoing.h. */
#include "outgoing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_v4_mapped(const struct in6_addr *address)
{
	return memcmp(address, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* An address a tunnel can never leave from, whatever the host has. */
static bool never_a_source(int family, const void *address)
{
	if (family == AF_INET) {
		uint32_t v4 = ntohl(((const struct in_addr *)address)->s_addr);
		return v4 == INADDR_ANY || v4 == INADDR_BROADCAST || IN_MULTICAST(v4);
	}
	const struct in6_addr *v6 = address;
	return IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_MULTICAST(v6) || IN6_IS_ADDR_LINKLOCAL(v6) || is_v4_mapped(v6);
}

int outgoing_parse(const char *text, struct outgoing *out, const char **why)
{
	static const char want[] = "want an IPv4 address, an IPv6 address, both with a comma, or same";
	char copy[OUTGOING_TEXT_MAX_BYTES];
	char *saveptr = NULL;
	size_t len = strlen(text);

	*out = (struct outgoing){ 0 };
	if (strcmp(text, "same") == 0) {
		*out = (struct outgoing){ .set = true, .same = true };
		return 0;
	}
	/* strtok_r would pass over an empty word: ",a", "a,,b" and "a," are no list. */
	if (len == 0 || len >= sizeof(copy) || text[0] == ',' || text[len - 1] == ',' || strstr(text, ",,") != NULL) {
		*why = want;
		return -1;
	}
	memcpy(copy, text, len + 1);
	for (char *word = strtok_r(copy, ",", &saveptr); word != NULL; word = strtok_r(NULL, ",", &saveptr)) {
		struct in_addr v4;
		struct in6_addr v6;
		bool is_v4 = inet_pton(AF_INET, word, &v4) == 1, is_v6 = !is_v4 && inet_pton(AF_INET6, word, &v6) == 1;
		if ((is_v4 && never_a_source(AF_INET, &v4)) || (is_v6 && never_a_source(AF_INET6, &v6))) {
			*why = "not an address a tunnel can leave from (unspecified, multicast, broadcast, IPv4-mapped, or "
			       "IPv6 link-local, which needs an interface)";
			return -1;
		}
		if (is_v4 && !out->has_v4) {
			out->v4 = v4;
			out->has_v4 = true;
		} else if (is_v6 && !out->has_v6) {
			out->v6 = v6;
			out->has_v6 = true;
		} else {
			*why = "want an IPv4 address, an IPv6 address, at most one of each, or same";
			return -1;
		}
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

int outgoing_family(const struct sockaddr *target)
{
	if (target->sa_family == AF_INET6 && is_v4_mapped(&((const struct sockaddr_in6 *)(const void *)target)->sin6_addr))
		return AF_INET;
	return target->sa_family;
}

bool outgoing_serves(const struct outgoing *outgoing, const struct sockaddr *target)
{
	if (!outgoing->set)
		return true;
	int family = outgoing_family(target);
	return family == AF_INET ? outgoing->has_v4 : family == AF_INET6 && outgoing->has_v6;
}

socklen_t outgoing_address(const struct outgoing *outgoing, const struct sockaddr *target,
			   struct sockaddr_storage *address)
{
	memset(address, 0, sizeof(*address));
	if (target->sa_family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)address;
		v4->sin_family = AF_INET;
		v4->sin_addr = outgoing->v4;
		return sizeof(*v4);
	}
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)address;
	v6->sin6_family = AF_INET6;
	if (outgoing_family(target) == AF_INET) {
		memcpy(&v6->sin6_addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy((uint8_t *)&v6->sin6_addr + sizeof(v4_mapped_prefix), &outgoing->v4, sizeof(outgoing->v4));
	} else {
		v6->sin6_addr = outgoing->v6;
		v6->sin6_scope_id = outgoing->v6_scope;
	}
	return sizeof(*v6);
}

bool outgoing_was_used(const struct outgoing *outgoing, const struct sockaddr *target, int fd)
{
	struct sockaddr_storage wanted, local = { 0 };
	socklen_t local_len = sizeof(local);

	if (!outgoing->set)
		return true;
	(void)outgoing_address(outgoing, target, &wanted);
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) < 0 || local.ss_family != wanted.ss_family)
		return false;
	if (wanted.ss_family == AF_INET)
		return ((struct sockaddr_in *)(void *)&local)->sin_addr.s_addr ==
		       ((struct sockaddr_in *)(void *)&wanted)->sin_addr.s_addr;
	return memcmp(&((struct sockaddr_in6 *)(void *)&local)->sin6_addr, &((struct sockaddr_in6 *)(void *)&wanted)->sin6_addr,
		      sizeof(struct in6_addr)) == 0;
}

/*
 * Is v4 a broadcast address of one of the host's networks: its first or
 * last address, for which the kernel keeps broadcast routes (getifaddrs'
 * own broadcast address is the interface's address when none was set)?
 * Bound, it is no source: the kernel picks another.
 */
static bool is_broadcast_here(struct in_addr v4)
{
	struct ifaddrs *interfaces = NULL;
	bool found = false;

	if (getifaddrs(&interfaces) < 0)
		return false;
	for (const struct ifaddrs *i = interfaces; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET || i->ifa_netmask == NULL)
			continue;
		uint32_t address = ntohl(((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr.s_addr);
		uint32_t mask = ntohl(((const struct sockaddr_in *)(const void *)i->ifa_netmask)->sin_addr.s_addr);
		uint32_t wanted = ntohl(v4.s_addr);
		if (mask != 0xffffffffu && mask != 0xfffffffeu && (wanted == (address & mask) || wanted == (address | ~mask)))
			found = true;
	}
	freeifaddrs(interfaces);
	return found;
}

int outgoing_check(const struct outgoing *outgoing, char *why, size_t why_size)
{
	static const struct sockaddr_in any_v4 = { .sin_family = AF_INET };
	static const struct sockaddr_in6 any_v6 = { .sin6_family = AF_INET6 };
	static const struct sockaddr *const families[] = { (const struct sockaddr *)&any_v4,
							   (const struct sockaddr *)&any_v6 };

	if (!outgoing->set || outgoing->same)
		return 0;
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		struct sockaddr_storage address;
		char text[INET6_ADDRSTRLEN] = "";
		int family = families[i]->sa_family;
		if (!outgoing_serves(outgoing, families[i]))
			continue;
		socklen_t len = outgoing_address(outgoing, families[i], &address);
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
		int error = 0;
		if (fd < 0 || bind(fd, (struct sockaddr *)&address, len) < 0)
			error = errno;
		if (fd >= 0)
			(void)close(fd);
		(void)inet_ntop(family, family == AF_INET ? (const void *)&outgoing->v4 : (const void *)&outgoing->v6, text,
				sizeof(text));
		if (error == 0 && family == AF_INET && is_broadcast_here(outgoing->v4)) {
			(void)snprintf(why, why_size, "outgoing address %s: a broadcast address, which no tunnel leaves from", text);
			return -1;
		}
		if (error == 0)
			continue;
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
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(void *)&local;
	if (is_v4_mapped(&v6->sin6_addr)) {
		memcpy(&resolved->v4, (const uint8_t *)&v6->sin6_addr + sizeof(v4_mapped_prefix), sizeof(resolved->v4));
		resolved->has_v4 = true;
	} else {
		resolved->v6 = v6->sin6_addr;
		resolved->v6_scope = v6->sin6_scope_id; /* a link-local address means nothing without its interface */
		resolved->has_v6 = true;
	}
	return 0;
}
