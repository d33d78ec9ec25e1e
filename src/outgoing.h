/*
 * outgoing: the address a tunnel leaves from (tunneld(8) "Leaving from an
 * address"): none (the kernel's choice), one per family, or the address
 * the client reached (as tinyproxy's BindSame). Set by
 * --outgoing-address, or by a rule's "outgoing"; the connector binds each
 * attempt to it. Pure but for outgoing_check() and outgoing_of_client().
 */
#ifndef TUNNELD_OUTGOING_H
#define TUNNELD_OUTGOING_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define OUTGOING_TEXT_MAX_BYTES 96 /* "v4,v6" or "same", as the record and --explain say it */

struct outgoing {
	bool set;      /* false: the kernel chooses */
	bool same;     /* the address the client reached, until outgoing_of_client() makes it an address */
	bool has_v4;
	bool has_v6;
	struct in_addr v4;
	struct in6_addr v6;
	uint32_t v6_scope; /* same: the interface of a link-local address the client reached; else 0 */
};

/*
 * "same", or one or two addresses, one per family, comma-separated: 0, or
 * -1 with *why. Never an address no tunnel can leave from: unspecified,
 * multicast, 255.255.255.255, or an IPv6 link-local one (it wants an
 * interface the text cannot name).
 */
int outgoing_parse(const char *text, struct outgoing *out, const char **why);

/* The text outgoing_parse() takes for it, into out. */
void outgoing_format(const struct outgoing *outgoing, char *out, size_t size);

/* The family a tunnel to target leaves by: an IPv4-mapped IPv6 address's is IPv4. */
int outgoing_family(const struct sockaddr *target);

/*
 * Is there an address to leave from for target? Its family's, an
 * IPv4-mapped IPv6 target's being IPv4. True when none is set: the kernel chooses.
 */
bool outgoing_serves(const struct outgoing *outgoing, const struct sockaddr *target);

/*
 * What a socket of target's family binds to, port 0, to reach target from
 * outgoing's address: an IPv4-mapped one for an IPv4-mapped target. Its length.
 */
socklen_t outgoing_address(const struct outgoing *outgoing, const struct sockaddr *target,
			   struct sockaddr_storage *address);

/* Did a socket connected to target leave from where outgoing says (the kernel may pick another for a broadcast address)? */
bool outgoing_was_used(const struct outgoing *outgoing, const struct sockaddr *target, int fd);

/*
 * Can this host leave from each address (a bind to it, port 0, then
 * closed)? 0, or -1 with why, naming the address. "same" is not looked at.
 */
int outgoing_check(const struct outgoing *outgoing, char *why, size_t why_size);

/*
 * "same" made the address the client reached: the local address of its
 * socket fd, an IPv4-mapped one as IPv4. 0, or -1 when fd is no IP
 * socket (pipes, a Unix socket); anything else is copied as it is.
 */
int outgoing_of_client(const struct outgoing *outgoing, int fd, struct outgoing *resolved);

#endif
