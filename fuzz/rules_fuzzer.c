/*
 * libFuzzer harness for the rules file and the parent proxies' answers.
 * The input is a rules file; when it parses, requests made from its last
 * bytes are judged before and after a lookup, as a connection would judge
 * them. The same bytes are then read as a parent's HTTP head and SOCKS5
 * reply. A bad file must be refused with a message, never crash.
 *
 * A file that parses is compiled into an image (rules_image.h), which must
 * give the same table; then the image is damaged at places its last bytes
 * choose, and must be refused or judged with, never crash.
 */
#include "../src/rules.h"
#include "../src/rules_file.h"
#include "../src/rules_image.h"
#include "../src/upstream.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rules rules;
static struct rules_errors errors;
static struct rules streamed;
static struct rules_errors streamed_errors;
static struct rules mapped;
static struct rules_errors mapped_errors;
/* Room for the image of the largest table, aligned as a mapping is. */
static uint64_t image[(sizeof(struct rules_tables) + RULES_FILE_MAX_BYTES + 4096) / sizeof(uint64_t)];


/* The text of an error after "NAME:", so that errors about two names compare. */
static const char *after_name(const char *message, const char *name)
{
	size_t len = strlen(name);
	return strncmp(message, name, len) == 0 ? message + len : message;
}

static void check_verdict(const struct rules *judged, const struct rules_verdict *verdict, bool before_lookup)
{
	if (verdict->why == NULL || verdict->rule < -1 ||
	    (verdict->rule >= 0 && (unsigned)verdict->rule >= judged->rule_count))
		__builtin_trap();
	if (!before_lookup && verdict->action == RULES_NEEDS_ADDRESSES)
		__builtin_trap();
	if (verdict->action == RULES_VIA && judged->rules[verdict->rule].parent >= judged->parent_count)
		__builtin_trap();
}

static void judge_some_requests(const struct rules *judged, const uint8_t *data, size_t size)
{
	static const char *const hosts[] = { "db1.internal", "127.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::1",
					     "a.example.", "10.1.2.3", "9.9.9.9" };
	static const char *const users[] = { "alice", "bob", "nobody" };
	uint8_t tail[24] = { 0 };
	memcpy(tail, data + size - (size < sizeof(tail) ? size : sizeof(tail)), size < sizeof(tail) ? size : sizeof(tail));

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		struct rules_subject subject = {
			.user = tail[0] % 4 < 3 ? users[tail[0] % 4] : NULL,
			.has_source = tail[1] % 2 == 1,
			.source_family = tail[1] % 4 < 2 ? AF_INET : AF_INET6,
			.protocol = tail[2] % 2 ? RULE_PROTOCOL_SOCKS5 : RULE_PROTOCOL_HTTP,
			.host = hosts[i],
			.host_is_ip_literal = strchr(hosts[i], ':') != NULL || (hosts[i][0] >= '0' && hosts[i][0] <= '9'),
			.port = (unsigned)(tail[3] << 8 | tail[4]) % 65535 + 1,
		};
		struct rules_verdict verdict;
		memcpy(subject.source, tail + 5, sizeof(subject.source));
		static struct policy policy;
		static bool policy_ready;
		if (!policy_ready) {
			policy_init(&policy);
			policy_ready = true;
		}
		(void)rules_judge_request(judged, &policy, &subject, &verdict);
		check_verdict(judged, &verdict, true);
		struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
		memcpy(&v6.sin6_addr, tail + 8, 16);
		(void)rules_judge_address(judged, &policy, &subject, (struct sockaddr *)&v6, &verdict);
		check_verdict(judged, &verdict, false);
		struct sockaddr_in v4 = { .sin_family = AF_INET };
		memcpy(&v4.sin_addr, tail + 20, 4);
		(void)rules_judge_address(judged, &policy, &subject, (struct sockaddr *)&v4, &verdict);
		check_verdict(judged, &verdict, false);
		(void)rules_judge_address(judged, &policy, &subject, NULL, &verdict);
		check_verdict(judged, &verdict, false);
	}
}

/*
 * rules_load() reads a file through a small buffer, rules_parse() takes it
 * whole: both must build the same table, and find the same errors at the
 * same places.
 */
static void compare_with_streamed(const uint8_t *data, size_t size)
{
	static char path[64];
	static int fd = -1;

	if (fd < 0) {
		(void)snprintf(path, sizeof(path), "/tmp/rules-fuzzer-%ld", (long)getpid());
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			abort();
		(void)unlink(path);
		(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	unsigned count = rules_load(&streamed, path, &streamed_errors);
	if (rules_image_is(data, size)) {
		/* rules_load() reads it as an image: its own checks decide; as text, its first line is no rule. */
		if (errors.count == 0)
			__builtin_trap();
		if (count == 0)
			judge_some_requests(&streamed, data, size);
		return;
	}
	if (count != errors.count)
		__builtin_trap();
	for (unsigned i = 0; i < count && i < RULES_ERRORS_MAX; i++) {
		/* Messages are cut at RULES_ERROR_MAX_BYTES, the one with the longer name sooner. */
		const char *whole = after_name(errors.messages[i], "fuzz");
		const char *cut = after_name(streamed_errors.messages[i], path);
		if (strncmp(whole, cut, strlen(cut)) != 0)
			__builtin_trap();
	}
	if (count == 0 && !rules_tables_equal(&streamed, &rules))
		__builtin_trap();
}

/* The table's image gives the same table; damaged, it is refused or judged with, never misread. */
static void compile_and_damage(const uint8_t *data, size_t size)
{
	size_t image_size = rules_image_build(&rules, (const char *)data, size, image, sizeof(image));
	if (image_size == 0 || rules_image_use(&mapped, image, image_size, "image", &mapped_errors) != 0 ||
	    !rules_tables_equal(&mapped, &rules) || mapped.source_len != size || memcmp(mapped.source, data, size) != 0)
		__builtin_trap();
	mapped_errors.count = 0;
	uint8_t *bytes = (uint8_t *)image;
	for (size_t i = 0; i + 3 <= size && i < 12; i += 3) {
		size_t at = ((size_t)data[size - 1 - i] << 8 | data[size - 2 - i]) * 7919u % image_size;
		bytes[at] ^= data[size - 3 - i] | 1u;
	}
	/* Mostly sealed again, so that the checks behind the checksum see the damage. */
	if (size > 1 && data[1] % 4 != 0)
		rules_image_seal(image, image_size);
	/* Cut short too, at a place its first byte chooses. */
	size_t kept = size > 0 && data[0] % 8 == 0 ? image_size - (data[0] % image_size) : image_size;
	if (rules_image_use(&mapped, image, kept, "image", &mapped_errors) == 0)
		judge_some_requests(&mapped, data, size);
	else if (mapped_errors.count == 0 || strncmp(mapped_errors.messages[0], "compiled rules image: ", 22) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[RULES_LINE_MAX_BYTES + 1];
	int status;
	size_t total;

	unsigned count = rules_parse(&rules, (const char *)data, size, "fuzz", &errors);
	if (count != errors.count)
		__builtin_trap();
	compare_with_streamed(data, size);
	for (unsigned i = 0; i < count && i < RULES_ERRORS_MAX; i++)
		if (strncmp(errors.messages[i], "fuzz:", 5) != 0)
			__builtin_trap();
	if (count == 0) {
		for (unsigned i = 0; i < rules.rule_count; i++) {
			rules_line_text(&rules, rules_line(&rules, (int)i), line, sizeof(line));
			if (rules.rules[i].verb == RULE_VERB_VIA && strchr(rules.parents[rules.rules[i].parent].display, '@') != NULL)
				__builtin_trap(); /* a login must never reach what records show */
		}
		judge_some_requests(&rules, data, size);
		compile_and_damage(data, size);
	}

	/* The same bytes as a parent's answers. */
	size_t head_len = size < UPSTREAM_HEAD_MAX_BYTES ? size : UPSTREAM_HEAD_MAX_BYTES;
	for (size_t len = 0; len <= head_len; len++) {
		enum upstream_verdict verdict = upstream_parse_http_head((const char *)data, len, &status);
		if (verdict == UPSTREAM_OK && (status < 100 || status > 599))
			__builtin_trap();
		if (verdict != UPSTREAM_INCOMPLETE)
			break;
	}
	for (size_t len = 0; len <= size && len <= 5; len++) {
		enum upstream_verdict verdict = upstream_socks5_reply_length(data, len, &total);
		if (verdict == UPSTREAM_OK && (total < 7 || total > 5 + 255 + 2))
			__builtin_trap();
		if (verdict != UPSTREAM_INCOMPLETE)
			break;
	}
	return 0;
}
