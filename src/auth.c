/*
 * auth: htpasswd-style "user:hash" lines, checked with crypt(3).
 *
 * Hashes are vetted at load with crypt_checksalt(), which costs nothing,
 * rather than by hashing, which for bcrypt costs tens of milliseconds a user
 * at every connection. An unknown user is hashed against another user's hash
 * all the same, so that the time of a 407 does not tell which names exist.
 */
#include "auth.h"

#include "config_file.h"
#include "lazy.h"
#include "signals.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LIBCRYPT "libcrypt.so.1"

static void *libcrypt;

static int read_file(const char *path, char *buffer, size_t size, size_t *len)
{
	int fd = config_file_open(path);
	if (fd < 0)
		return -1;
	*len = 0;
	for (;;) {
		ssize_t n = read(fd, buffer + *len, size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = errno;
			(void)close(fd);
			errno = saved;
			return n < 0 ? -1 : 0;
		}
		*len += (size_t)n;
		if (*len == size) {
			(void)close(fd);
			errno = EFBIG;
			return -1;
		}
	}
}

/*
 * 0, or -1 with why filled: the hash must be one crypt(3) takes. Legacy
 * types (sha256crypt is one to libxcrypt) are still taken, as crypt(3) takes
 * them; the man page recommends bcrypt.
 */
static int vet_hash(const char *hash, const char *location, const char *user, char *why, size_t why_size)
{
	LAZY_FUNCTION(check_salt, &libcrypt, LIBCRYPT, crypt_checksalt);
	if (check_salt == NULL) {
		(void)snprintf(why, why_size, "%s: cannot load %s for crypt(3)", location, LIBCRYPT);
		return -1;
	}
	switch (check_salt(hash)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_METHOD_LEGACY:
	case CRYPT_SALT_TOO_CHEAP:
		return 0;
	default:
		(void)snprintf(why, why_size,
			       "%s: user %s: hash type not supported by crypt(3) (Apache's $apr1$ is not); "
			       "create it with htpasswd -B (bcrypt)",
			       location, user);
		return -1;
	}
}

static int parse_line(struct auth *auth, char *line, const char *location, char *why, size_t why_size)
{
	char *colon = strchr(line, ':');
	size_t user_len = colon != NULL ? (size_t)(colon - line) : 0;

	if (colon == NULL || user_len == 0 || user_len > AUTH_USER_MAX_BYTES || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) > AUTH_HASH_MAX_BYTES) {
		(void)snprintf(why, why_size, "%s: not a user:hash line", location);
		return -1;
	}
	if (auth->user_count >= AUTH_USERS_MAX) {
		(void)snprintf(why, why_size, "%s: more than %d users", location, AUTH_USERS_MAX);
		return -1;
	}
	*colon = '\0';
	if (vet_hash(colon + 1, location, line, why, why_size) < 0)
		return -1;
	struct auth_user *user = &auth->users[auth->user_count++];
	memcpy(user->name, line, user_len + 1);
	memcpy(user->hash, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

int auth_load(struct auth *auth, const char *path, char *why, size_t why_size)
{
	static char text[AUTH_FILE_MAX_BYTES + 1];
	char full_path[4096];
	size_t len;
	unsigned line_number = 0;

	char name_buffer[512];

	auth->user_count = 0;
	const char *resolved = config_file_resolve(path, full_path, sizeof(full_path));
	if (resolved == NULL) {
		(void)snprintf(why, why_size, "auth file path too long");
		return -1;
	}
	const char *name = config_file_name(path, resolved, name_buffer, sizeof(name_buffer));
	if (read_file(resolved, text, sizeof(text) - 1, &len) < 0) {
		int error = errno;
		(void)snprintf(why, why_size, "cannot read auth file %s: %s%s", name,
			       error == EFBIG ? "larger than 64 KiB" : strerror(error), config_file_hint(error));
		return -1;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		(void)snprintf(why, why_size, "auth file %s is not text", name);
		return -1;
	}
	char *saveptr = NULL;
	for (char *line = strtok_r(text, "\n", &saveptr); line != NULL; line = strtok_r(NULL, "\n", &saveptr)) {
		char location[4200];
		size_t line_len = strlen(line);
		line_number++;
		if (line_len > 0 && line[line_len - 1] == '\r')
			line[--line_len] = '\0';
		if (line_len == 0 || line[0] == '#')
			continue;
		(void)snprintf(location, sizeof(location), "auth file %s line %u", name, line_number);
		if (parse_line(auth, line, location, why, why_size) < 0)
			return -1;
	}
	if (auth->user_count == 0) {
		(void)snprintf(why, why_size, "auth file %s has no users", name);
		return -1;
	}
	return 0;
}

static int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict RFC 4648 §4 with padding; the decoded length, or -1. */
static long base64_decode(const char *text, size_t len, unsigned char *out, size_t out_size)
{
	size_t n = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int values[4];
		size_t padding = 0;
		for (size_t j = 0; j < 4; j++) {
			if (text[i + j] == '=' && i + 4 == len && j >= 2 && (j == 3 || text[i + 3] == '=')) {
				values[j] = 0;
				padding++;
				continue;
			}
			values[j] = base64_value(text[i + j]);
			if (values[j] < 0 || padding > 0)
				return -1;
		}
		uint32_t group = (uint32_t)values[0] << 18 | (uint32_t)values[1] << 12 | (uint32_t)values[2] << 6 |
				 (uint32_t)values[3];
		size_t bytes = 3 - padding;
		if (n + bytes > out_size)
			return -1;
		for (size_t b = 0; b < bytes; b++)
			out[n++] = (unsigned char)(group >> (16 - 8 * b));
	}
	return (long)n;
}

int auth_parse_basic(const char *credentials, char *user, size_t user_size, char *password, size_t password_size)
{
	unsigned char decoded[AUTH_USER_MAX_BYTES + AUTH_PASSWORD_MAX_BYTES + 1];

	if (strncasecmp(credentials, "Basic ", 6) != 0)
		return -1;
	const char *token = credentials + 6;
	while (*token == ' ')
		token++;
	long len = base64_decode(token, strlen(token), decoded, sizeof(decoded));
	if (len < 0 || memchr(decoded, '\0', (size_t)len) != NULL)
		return -1;
	const unsigned char *colon = memchr(decoded, ':', (size_t)len);
	if (colon == NULL)
		return -1;
	size_t user_len = (size_t)(colon - decoded);
	size_t password_len = (size_t)len - user_len - 1;
	if (user_len == 0 || user_len >= user_size || password_len >= password_size)
		return -1;
	memcpy(user, decoded, user_len);
	user[user_len] = '\0';
	memcpy(password, colon + 1, password_len);
	password[password_len] = '\0';
	return 0;
}

static bool equal_in_constant_time(const char *a, const char *b)
{
	size_t len = strlen(a);
	unsigned char difference = len != strlen(b);
	for (size_t i = 0; i < len && b[i] != '\0'; i++)
		difference |= (unsigned char)(a[i] ^ b[i]);
	return difference == 0;
}

/*
 * Everything the hashing thread reads or writes. A bcrypt cost that an
 * admin chose can take seconds, and a stop signal must not wait for it: the
 * hash runs in a thread of its own, waited for with signals_poll(), and the
 * process may exit while the thread still hashes. So, as for the resolver
 * (connector.h), this is static, never freed, and used once per process.
 */
static struct {
	bool started;
	__typeof__(crypt_r) *crypt_reentrant;
	struct crypt_data workspace;
	char password[AUTH_PASSWORD_MAX_BYTES + 1];
	const char *setting;
	const char *computed;
	int done[2];    /* a pipe: the thread closes its end when the hash is there */
} hashing;

static void *hash_password(void *unused)
{
	(void)unused;
	hashing.computed = hashing.crypt_reentrant(hashing.password, hashing.setting, &hashing.workspace);
	(void)close(hashing.done[1]);
	return NULL;
}

/* crypt(3) of hashing.password with setting: 0, -1 if it could not run, 1 if a stop signal came first. */
static int hash_in_thread(const char *setting)
{
	pthread_attr_t attributes;
	pthread_t thread;
	struct pollfd done = { .events = POLLIN };

	hashing.setting = setting;
	if (pipe2(hashing.done, O_CLOEXEC) < 0 || pthread_attr_init(&attributes) != 0)
		return -1;
	(void)pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
	int status = pthread_create(&thread, &attributes, hash_password, NULL);
	(void)pthread_attr_destroy(&attributes);
	if (status != 0)
		return -1;
	done.fd = hashing.done[0];
	while (!signals_stop_requested()) {
		if (signals_poll(&done, 1, -1) > 0)
			return 0;
	}
	return 1;
}

/*
 * The check itself, for hashing.password and name: the same work whether or
 * not the user exists, so the time taken does not tell a name that is in
 * the file from one that is not.
 */
static enum auth_verdict check_password(const struct auth *auth, const char *name, const char **user)
{
	const struct auth_user *found = NULL;

	for (unsigned i = 0; i < auth->user_count && found == NULL; i++)
		if (strcmp(auth->users[i].name, name) == 0)
			found = &auth->users[i];

	LAZY_FUNCTION(crypt_reentrant, &libcrypt, LIBCRYPT, crypt_r);
	if (crypt_reentrant == NULL) {
		explicit_bzero(hashing.password, sizeof(hashing.password));
		return AUTH_UNAVAILABLE;
	}
	hashing.crypt_reentrant = crypt_reentrant;
	/* The same work for an unknown user: hash against the first user's hash. */
	const char *hash = found != NULL ? found->hash : auth->users[0].hash;
	switch (hash_in_thread(hash)) {
	case 1:
		return AUTH_STOPPED;
	case -1:
		explicit_bzero(hashing.password, sizeof(hashing.password));
		return AUTH_UNAVAILABLE;
	default:
		break;
	}
	const char *computed = hashing.computed;
	explicit_bzero(hashing.password, sizeof(hashing.password));
	if (found == NULL)
		return AUTH_UNKNOWN_USER;
	*user = found->name;
	if (computed == NULL || computed[0] == '*' || !equal_in_constant_time(computed, hash))
		return AUTH_WRONG_PASSWORD;
	return AUTH_GRANTED;
}

enum auth_verdict auth_check(const struct auth *auth, const char *credentials, const char **user)
{
	char name[AUTH_USER_MAX_BYTES + 1];

	*user = NULL;
	if (credentials[0] == '\0')
		return AUTH_MISSING;
	if (hashing.started)
		return AUTH_UNAVAILABLE;
	hashing.started = true;
	if (auth_parse_basic(credentials, name, sizeof(name), hashing.password, sizeof(hashing.password)) < 0)
		return AUTH_MALFORMED;
	return check_password(auth, name, user);
}

enum auth_verdict auth_check_login(const struct auth *auth, const char *name, const char *password, const char **user)
{
	size_t password_len = strlen(password);

	*user = NULL;
	if (hashing.started)
		return AUTH_UNAVAILABLE;
	hashing.started = true;
	if (password_len >= sizeof(hashing.password))
		return AUTH_MALFORMED;
	memcpy(hashing.password, password, password_len + 1);
	/* A name longer than any in the file is unknown, and costs what a known one does. */
	return check_password(auth, strlen(name) > AUTH_USER_MAX_BYTES ? "" : name, user);
}
