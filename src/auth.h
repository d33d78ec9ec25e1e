/*
 * auth: Basic proxy authentication against an htpasswd-style file, hashes
 * checked with crypt(3) (tunneld(8) "OPTIONS", --auth-file).
 */
#ifndef TUNNELD_AUTH_H
#define TUNNELD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_FILE_MAX_BYTES (64 * 1024)
#define AUTH_USERS_MAX 256
#define AUTH_USER_MAX_BYTES 64
#define AUTH_HASH_MAX_BYTES 192
#define AUTH_PASSWORD_MAX_BYTES 512

struct auth_user {
	char name[AUTH_USER_MAX_BYTES + 1];
	char hash[AUTH_HASH_MAX_BYTES + 1];
};

struct auth {
	unsigned user_count;
	struct auth_user users[AUTH_USERS_MAX];
};

enum auth_verdict {
	AUTH_GRANTED,
	AUTH_MISSING,        /* no Proxy-Authorization */
	AUTH_MALFORMED,      /* not "Basic base64(user:password)" */
	AUTH_UNKNOWN_USER,
	AUTH_WRONG_PASSWORD,
	AUTH_UNAVAILABLE,    /* crypt(3) could not be called */
	AUTH_STOPPED,        /* a stop signal came while hashing */
};

/*
 * Loads path; a relative path is taken in $CREDENTIALS_DIRECTORY (systemd
 * LoadCredential=) when that is set. 0, or -1 with why filled for the log.
 */
int auth_load(struct auth *auth, const char *path, char *why, size_t why_size);

/*
 * Pure: splits a Proxy-Authorization value "Basic <base64>" into user and
 * password (RFC 7617). 0, or -1 if it is not well-formed.
 */
int auth_parse_basic(const char *credentials, char *user, size_t user_size, char *password, size_t password_size);

/*
 * Checks credentials (the field value, "" when absent); *user is set for a
 * known user. Once per process: the hash runs in a thread that may outlive
 * the call (see auth.c).
 */
enum auth_verdict auth_check(const struct auth *auth, const char *credentials, const char **user);

/* The same check for a name and password that came apart (SOCKS5, RFC 1929); same once-per-process rule. */
enum auth_verdict auth_check_login(const struct auth *auth, const char *name, const char *password, const char **user);

#endif
