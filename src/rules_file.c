/*
 * rules_file: the one loader of a rules file, text or compiled image
 * (tunneld(8) "RULES", "Compiled rules"): either way the caller gets the
 * same table, and neither form's code knows of the other.
 */
#include "rules_file.h"

#include "config_file.h"
#include "rules_image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Maps in [start, start + len) of zeroed static storage with one call
 * (MADV_POPULATE_WRITE, Linux 5.14; elsewhere a no-op) where touching it
 * would take a fault a page. A file is parsed at every connection, and on a
 * virtual machine a fault costs ten times what populating a page does.
 */
static void prefault(void *start, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t offset = (uintptr_t)start % page;

	if (len > 0)
		(void)madvise((char *)start - offset, len + offset, MADV_POPULATE_WRITE);
}

static size_t at_most(size_t value, size_t limit)
{
	return value < limit ? value : limit;
}

/* What a file of size bytes fills, as such files are written: a rule in 32 bytes, a value in 12, a network in 48. */
static void prefault_for(struct rules *rules, size_t size, char *buffer, size_t buffer_size)
{
	prefault(buffer, at_most(size, buffer_size));
	prefault(rules->rules, at_most(size / 32 + 1, RULES_MAX) * sizeof(rules->rules[0]));
	prefault(rules->items, at_most(size / 12 + 1, RULE_ITEMS_MAX) * sizeof(rules->items[0]));
	prefault(rules->nets, at_most(size / 48 + 1, RULE_ITEMS_MAX) * sizeof(rules->nets[0]));
	prefault(rules->text, at_most(size / 5, RULES_TEXT_MAX_BYTES));
}

unsigned rules_load(struct rules *rules, const char *path, struct rules_errors *errors)
{
	static char full_path[4096];
	static char buffer[RULES_READ_BUFFER_BYTES];
	static char name_buffer[512];
	struct rules_text text;
	struct stat st;
	size_t held = 0, total = 0;
	bool skipping = false; /* the rest of a line too long to hold */

	const char *resolved = config_file_resolve(path, full_path, sizeof(full_path));
	const char *name = resolved != NULL ? config_file_name(path, resolved, name_buffer, sizeof(name_buffer)) : path;
	rules_text_begin(&text, rules, name, errors);
	if (resolved == NULL) {
		(void)rules_error(errors, "rules file path too long");
		return errors->count;
	}
	rules->path = resolved;
	int fd = config_file_open(resolved);
	if (fd < 0) {
		int error = errno;
		(void)rules_error(errors, "cannot open rules file %s: %s%s", name, strerror(error), config_file_hint(error));
		return errors->count;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)rules_error(errors, "rules file %s: not a regular file", name);
		(void)close(fd);
		return errors->count;
	}
	char magic[RULES_IMAGE_MAGIC_BYTES];
	if (pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) && rules_image_is(magic, sizeof(magic))) {
		(void)rules_image_read(rules, fd, (size_t)st.st_size, name, errors);
		(void)close(fd);
		return rules_refuse_exposed_secret(rules, st.st_mode, name, errors);
	}
	prefault_for(rules, (size_t)st.st_size, buffer, sizeof(buffer));
	/* Read through one small buffer, a line at a time: the file is never held whole. */
	for (;;) {
		ssize_t n = read(fd, buffer + held, sizeof(buffer) - held);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			(void)rules_error(errors, "cannot read rules file %s: %s", name, strerror(errno));
			break;
		}
		total += (size_t)n;
		if (total > RULES_FILE_MAX_BYTES) {
			(void)rules_error(errors, "rules file %s: larger than %zu bytes", name, RULES_FILE_MAX_BYTES);
			break;
		}
		held += (size_t)n;
		if (skipping) {
			const char *newline = memchr(buffer, '\n', held);
			size_t dropped = newline != NULL ? (size_t)(newline - buffer) + 1 : held;
			memmove(buffer, buffer + dropped, held - dropped);
			held -= dropped;
			skipping = newline == NULL;
		}
		size_t taken = rules_text_feed(&text, buffer, held, n == 0);
		memmove(buffer, buffer + taken, held - taken);
		held -= taken;
		if (held == sizeof(buffer)) {
			/* No line end in a full buffer: that line is too long; the error names it, the rest is skipped. */
			rules_text_line(&text, buffer, held);
			held = 0;
			skipping = true;
		}
		if (n == 0)
			break;
	}
	(void)close(fd);
	return rules_refuse_exposed_secret(rules, st.st_mode, name, errors);
}

/* "scheme://user:password@host" with the password written as ***, in place within out. */
static void mask_passwords(char *out, size_t size)
{
	for (char *scheme_end = strstr(out, "://"); scheme_end != NULL; scheme_end = strstr(scheme_end + 3, "://")) {
		char *userinfo = scheme_end + 3;
		size_t word_len = strcspn(userinfo, " \t,#");
		char *at_sign = NULL;
		for (size_t i = 0; i < word_len; i++)
			if (userinfo[i] == '@')
				at_sign = userinfo + i;
		char *colon = at_sign != NULL ? memchr(userinfo, ':', (size_t)(at_sign - userinfo)) : NULL;
		if (colon == NULL)
			continue;
		size_t tail = strlen(at_sign) + 1;
		if ((size_t)(colon + 1 - out) + 3 + tail > size) {
			/* No room for the rest after ***: the line is cut there, never left unmasked. */
			size_t room = size - (size_t)(colon + 1 - out);
			(void)snprintf(colon + 1, room, "***");
			return;
		}
		memmove(colon + 4, at_sign, tail);
		colon[1] = colon[2] = colon[3] = '*';
		scheme_end = colon;
	}
}

void rules_line_text(const struct rules *rules, unsigned number, char *out, size_t size)
{
	out[0] = '\0';
	if (rules->source == NULL) {
		/* For --explain only: the file is read again, as rules_load() keeps none of it. */
		FILE *file = rules->path != NULL ? fopen(rules->path, "re") : NULL;
		char *line = NULL;
		size_t capacity = 0;
		for (unsigned n = 1; file != NULL && getline(&line, &capacity, file) >= 0; n++)
			if (n == number) {
				(void)snprintf(out, size, "%s", line);
				break;
			}
		free(line);
		if (file != NULL)
			(void)fclose(file);
	} else {
		size_t start = 0;
		for (unsigned n = 1; start < rules->source_len; n++) {
			const char *newline = memchr(rules->source + start, '\n', rules->source_len - start);
			size_t end = newline != NULL ? (size_t)(newline - rules->source) : rules->source_len;
			if (n == number) {
				(void)snprintf(out, size, "%.*s", (int)(end - start), rules->source + start);
				break;
			}
			start = end + 1;
		}
	}
	size_t len = strlen(out);
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' '))
		out[--len] = '\0';
	mask_passwords(out, size);
}
