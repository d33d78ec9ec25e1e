/*
 * rules_image: the compiled form of a rules file (tunneld(8) "Compiled
 * rules").
 *
 * An image is the table as this build lays it out: a header with the
 * counts and the build's struct sizes, then each array at an 8-byte
 * boundary, then the source text (for --explain, never read by a
 * connection). A connection maps the file read-only and uses the arrays in
 * place: no parse and no fresh pages, which is what a text file costs.
 * The image is as trusted as the file it was made from, yet every count,
 * index and offset is checked before the judge sees it, so a damaged or
 * foreign image is refused with a message, as a broken text file is.
 */
#include "rules_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { LAYOUT_SIZES = 6, ARRAYS = 8 }; /* the arrays: the 7 of the table, then the source */

struct image_header {
	char magic[RULES_IMAGE_MAGIC_BYTES];
	uint32_t layout[LAYOUT_SIZES];   /* the sizes this build gives its structs: another build's image is refused */
	uint32_t counts[ARRAYS];         /* elements of each array, in the order of arrays[] */
	uint32_t has_login;
	uint32_t reserved;               /* zero */
	uint64_t checksum;               /* of the table's arrays, padding and all: see checksum_of() */
};

static const char image_magic[RULES_IMAGE_MAGIC_BYTES] = RULES_IMAGE_MAGIC;

static void layout_of(uint32_t *layout)
{
	layout[0] = sizeof(struct image_header);
	layout[1] = sizeof(struct rule);
	layout[2] = sizeof(struct rule_item);
	layout[3] = sizeof(struct rule_net);
	layout[4] = sizeof(struct rules_group);
	layout[5] = sizeof(struct parent);
}

/* Each array's element size and most elements, in image order. */
static const struct {
	size_t element;
	size_t most;
} arrays[ARRAYS] = {
	{ sizeof(struct rule), RULES_MAX },
	{ sizeof(struct rule_item), RULE_ITEMS_MAX },
	{ sizeof(struct rule_net), RULE_ITEMS_MAX },
	{ sizeof(struct rules_group), RULES_GROUPS_MAX },
	{ sizeof(uint32_t), RULE_ITEMS_MAX },
	{ sizeof(struct parent), RULES_PARENTS_MAX },
	{ 1, RULES_TEXT_MAX_BYTES },
	{ 1, RULES_FILE_MAX_BYTES },
};

static size_t aligned(size_t offset)
{
	return (offset + RULES_IMAGE_ALIGN - 1) / RULES_IMAGE_ALIGN * RULES_IMAGE_ALIGN;
}

/* Where each array starts, and the image's size, from counts already checked against arrays[].most. */
static size_t place_arrays(const uint32_t *counts, size_t *offsets)
{
	size_t at = sizeof(struct image_header);

	for (size_t i = 0; i < ARRAYS; i++) {
		at = aligned(at);
		offsets[i] = at;
		at += counts[i] * arrays[i].element;
	}
	return at;
}

/*
 * Not a defence against whoever may write the image (root may write the
 * rules anyway) but against damage, and against an image written in place
 * while a connection has it mapped: a 64-bit mix of each 8-byte word, a few
 * microseconds for 1,000 rules. len is a multiple of RULES_IMAGE_ALIGN.
 */
static uint64_t checksum_of(const char *start, size_t len)
{
	uint64_t sum = 0x9e3779b97f4a7c15u;

	for (size_t at = 0; at < len; at += sizeof(uint64_t)) {
		uint64_t word;
		memcpy(&word, start + at, sizeof(word));
		sum = (sum ^ word) * 0x100000001b3u;
		sum ^= sum >> 29;
	}
	return sum;
}

bool rules_image_is(const void *start, size_t len)
{
	return len >= RULES_IMAGE_MAGIC_BYTES && memcmp(start, image_magic, RULES_IMAGE_MAGIC_BYTES) == 0;
}

static bool names_text(const struct rules *rules, uint32_t offset)
{
	return offset < rules->text_len;
}

static bool string_ends(const char *text, size_t size)
{
	return memchr(text, '\0', size) != NULL;
}

/* A bool's byte, read as a byte: any other value in a bool is undefined behaviour, so it is looked at this way first. */
static bool is_bool(const bool *field)
{
	uint8_t byte;
	memcpy(&byte, field, 1);
	return byte <= 1;
}

static bool item_is_sound(const struct rules *rules, const struct rule_item *item)
{
	switch ((enum rule_item_kind)item->kind) {
	case ITEM_USER:
	case ITEM_DEST_NAME:
		return names_text(rules, item->u.name);
	case ITEM_GROUP:
		return item->u.group < rules->group_count;
	case ITEM_SOURCE_NET:
	case ITEM_DEST_NET:
		return item->u.net < rules->net_count;
	case ITEM_PORT:
		return item->u.ports.first >= 1 && item->u.ports.first <= item->u.ports.last;
	case ITEM_DEST_PUBLIC:
	case ITEM_DEST_ANY:
		return true;
	}
	return false;
}

static bool parent_is_sound(const struct parent *parent)
{
	if (!is_bool(&parent->has_login) ||
	    (!parent->has_login && (parent->user[0] != '\0' || parent->password[0] != '\0')))
		return false;
	return (parent->scheme == PARENT_HTTP || parent->scheme == PARENT_SOCKS5) &&
	       (parent->host_kind == HOST_NAME || parent->host_kind == HOST_IPV4 || parent->host_kind == HOST_IPV6) &&
	       parent->port >= 1 && parent->port <= 65535 && string_ends(parent->host, sizeof(parent->host)) &&
	       parent->host[0] != '\0' && string_ends(parent->user, sizeof(parent->user)) &&
	       string_ends(parent->password, sizeof(parent->password)) &&
	       string_ends(parent->display, sizeof(parent->display));
}

/* "outgoing": same alone, or one address of each family at most, as /32 and /128 in the nets; never on a deny. */
static bool outgoing_is_sound(const struct rules *rules, const struct rule *rule)
{
	bool has_v4 = false, has_v6 = false;

	if (!is_bool(&rule->outgoing_same) || rule->outgoing_nets > 2 ||
	    (rule->outgoing_same && rule->outgoing_nets > 0) ||
	    ((rule->outgoing_same || rule->outgoing_nets > 0) && rule->verb == RULE_VERB_DENY) ||
	    rule->outgoing_first_net > rules->net_count || rule->outgoing_nets > rules->net_count - rule->outgoing_first_net)
		return false;
	for (uint32_t i = 0; i < rule->outgoing_nets; i++) {
		const struct rule_net *net = &rules->nets[rule->outgoing_first_net + i];
		bool v4 = net->family == AF_INET && net->prefix == 32 && !has_v4;
		bool v6 = net->family == AF_INET6 && net->prefix == 128 && !has_v6;
		if (!v4 && !v6)
			return false;
		has_v4 = has_v4 || v4;
		has_v6 = has_v6 || v6;
	}
	return true;
}

/* Every index and offset within its array, every string ended: 0, or the error count. */
static unsigned check_tables(const struct rules *rules, const char *name, struct rules_errors *errors)
{
	if (rules->text_len > 0 && rules->text[rules->text_len - 1] != '\0')
		return rules_error(errors, "compiled rules %s: damaged (names)", name);
	for (uint32_t i = 0; i < rules->rule_count; i++) {
		const struct rule *rule = &rules->rules[i];
		if (rule->first_item > rules->item_count || rule->item_count > rules->item_count - rule->first_item ||
		    rule->verb > RULE_VERB_VIA || (rule->verb == RULE_VERB_VIA && rule->parent >= rules->parent_count) ||
		    rule->protocols > (RULE_PROTOCOL_HTTP | RULE_PROTOCOL_SOCKS5 | RULE_PROTOCOL_JUMP) || rule->line == 0 ||
		    !is_bool(&rule->has_who) || !is_bool(&rule->has_from) || !is_bool(&rule->has_to) ||
		    !is_bool(&rule->has_port) || !outgoing_is_sound(rules, rule))
			return rules_error(errors, "compiled rules %s: damaged (rule %u)", name, i + 1);
	}
	for (uint32_t i = 0; i < rules->item_count; i++)
		if (!item_is_sound(rules, &rules->items[i]))
			return rules_error(errors, "compiled rules %s: damaged (value %u)", name, i + 1);
	for (uint32_t i = 0; i < rules->net_count; i++) {
		const struct rule_net *net = &rules->nets[i];
		if (!((net->family == AF_INET && net->prefix <= 32) || (net->family == AF_INET6 && net->prefix <= 128)))
			return rules_error(errors, "compiled rules %s: damaged (network %u)", name, i + 1);
	}
	for (uint32_t i = 0; i < rules->group_count; i++) {
		const struct rules_group *group = &rules->groups[i];
		if (!names_text(rules, group->name) || group->first_member > rules->member_count ||
		    group->member_count > rules->member_count - group->first_member)
			return rules_error(errors, "compiled rules %s: damaged (group %u)", name, i + 1);
	}
	for (uint32_t i = 0; i < rules->member_count; i++)
		if (!names_text(rules, rules->member_offsets[i]))
			return rules_error(errors, "compiled rules %s: damaged (group member %u)", name, i + 1);
	bool any_login = false;
	for (uint32_t i = 0; i < rules->parent_count; i++) {
		if (!parent_is_sound(&rules->parents[i]))
			return rules_error(errors, "compiled rules %s: damaged (parent %u)", name, i + 1);
		any_login = any_login || rules->parents[i].has_login;
	}
	/* The file's mode is judged by has_login: it must say what the parents hold. */
	if (any_login != rules->has_login)
		return rules_error(errors, "compiled rules %s: damaged (logins)", name);
	return 0;
}

unsigned rules_image_use(struct rules *rules, void *image, size_t size, const char *name, struct rules_errors *errors)
{
	struct image_header header;
	uint32_t layout[LAYOUT_SIZES];
	size_t offsets[ARRAYS];
	char *base = image;

	if (size < sizeof(header) || !rules_image_is(image, size))
		return rules_error(errors, "compiled rules %s: damaged (header)", name);
	if ((uintptr_t)image % RULES_IMAGE_ALIGN != 0)
		return rules_error(errors, "compiled rules %s: not aligned in memory", name);
	memcpy(&header, image, sizeof(header));
	layout_of(layout);
	if (memcmp(header.layout, layout, sizeof(layout)) != 0)
		return rules_error(errors, "compiled rules %s: made by another build of tunneld; compile it again", name);
	for (size_t i = 0; i < ARRAYS; i++)
		if (header.counts[i] > arrays[i].most)
			return rules_error(errors, "compiled rules %s: damaged (counts out of range)", name);
	if (header.has_login > 1 || header.reserved != 0)
		return rules_error(errors, "compiled rules %s: damaged (header)", name);
	size_t expected = place_arrays(header.counts, offsets);
	if (expected != size)
		return rules_error(errors, "compiled rules %s: damaged (%zu bytes, the header says %zu)", name, size, expected);
	if (checksum_of(base + offsets[0], offsets[ARRAYS - 1] - offsets[0]) != header.checksum)
		return rules_error(errors, "compiled rules %s: damaged (checksum)", name);
	rules->rule_count = header.counts[0];
	rules->rules = (struct rule *)(void *)(base + offsets[0]);
	rules->item_count = header.counts[1];
	rules->items = (struct rule_item *)(void *)(base + offsets[1]);
	rules->net_count = header.counts[2];
	rules->nets = (struct rule_net *)(void *)(base + offsets[2]);
	rules->group_count = header.counts[3];
	rules->groups = (struct rules_group *)(void *)(base + offsets[3]);
	rules->member_count = header.counts[4];
	rules->member_offsets = (uint32_t *)(void *)(base + offsets[4]);
	rules->parent_count = header.counts[5];
	rules->parents = (struct parent *)(void *)(base + offsets[5]);
	rules->text_len = header.counts[6];
	rules->text = base + offsets[6];
	rules->source = base + offsets[7];
	rules->source_len = header.counts[7];
	rules->has_login = header.has_login == 1;
	rules->compiled = true;
	return check_tables(rules, name, errors);
}

unsigned rules_image_read(struct rules *rules, int fd, size_t size, const char *name, struct rules_errors *errors)
{
	size_t capacity = sizeof(struct image_header) + (size_t)ARRAYS * RULES_IMAGE_ALIGN;

	for (size_t i = 0; i < ARRAYS; i++)
		capacity += arrays[i].element * arrays[i].most;
	if (size < sizeof(struct image_header))
		return rules_error(errors, "compiled rules %s: damaged (header)", name);
	if (size > capacity)
		return rules_error(errors, "compiled rules %s: damaged (larger than any image)", name);
	/*
	 * A copy, not a mapping of the file: an image rewritten in place (cp)
	 * would change a mapping under its reader, and one cut short would end
	 * it with SIGBUS. Its pages are given in one call (MAP_POPULATE), not a
	 * fault each; one byte more than the file holds shows a file that grew.
	 */
	char *image = mmap(NULL, size + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (image == MAP_FAILED)
		return rules_error(errors, "compiled rules %s: out of memory", name);
	size_t len = 0;
	while (len <= size) {
		ssize_t n = pread(fd, image + len, size + 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			(void)munmap(image, size + 1);
			return rules_error(errors, "cannot read compiled rules %s: %s", name, strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len != size) {
		(void)munmap(image, size + 1);
		return rules_error(errors, "compiled rules %s: changed while read (%zu bytes, then %zu); replace an image by rename",
				   name, size, len);
	}
	(void)mprotect(image, size + 1, PROT_READ);
	return rules_image_use(rules, image, size, name, errors);
}

size_t rules_image_build(const struct rules *rules, const char *source, size_t source_len, void *out, size_t capacity)
{
	struct image_header header = { .has_login = rules->has_login ? 1 : 0 };
	const void *starts[ARRAYS] = { rules->rules, rules->items, rules->nets, rules->groups,
				       rules->member_offsets, rules->parents, rules->text, source };
	size_t offsets[ARRAYS];
	char *base = out;

	memcpy(header.magic, image_magic, sizeof(header.magic));
	layout_of(header.layout);
	header.counts[0] = rules->rule_count;
	header.counts[1] = rules->item_count;
	header.counts[2] = rules->net_count;
	header.counts[3] = rules->group_count;
	header.counts[4] = rules->member_count;
	header.counts[5] = rules->parent_count;
	header.counts[6] = rules->text_len;
	if (source_len > arrays[ARRAYS - 1].most)
		return 0;
	header.counts[7] = (uint32_t)source_len;
	size_t size = place_arrays(header.counts, offsets);
	if (size > capacity)
		return 0;
	/* Zeroed first: the padding between arrays is part of the file, and must say nothing. */
	memset(out, 0, size);
	for (size_t i = 0; i < ARRAYS; i++)
		if (header.counts[i] > 0)
			memcpy(base + offsets[i], starts[i], header.counts[i] * arrays[i].element);
	header.checksum = checksum_of(base + offsets[0], offsets[ARRAYS - 1] - offsets[0]);
	memcpy(out, &header, sizeof(header));
	return size;
}

/* The whole file at path into a new buffer (which the caller frees); its length in *len, or NULL with an error. */
static char *read_whole(const char *path, size_t *len, struct stat *st, struct rules_errors *errors)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		(void)rules_error(errors, "cannot open rules file %s: %s", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
		(void)rules_error(errors, "rules file %s: not a regular file", path);
	else if ((size_t)st->st_size > RULES_FILE_MAX_BYTES)
		(void)rules_error(errors, "rules file %s: larger than %zu bytes", path, RULES_FILE_MAX_BYTES);
	else if ((text = malloc(RULES_FILE_MAX_BYTES + 1)) == NULL)
		(void)rules_error(errors, "rules file %s: out of memory", path);
	*len = 0;
	while (text != NULL) {
		/* One byte more than the limit may hold: a file that grew since fstat is still caught. */
		ssize_t n = read(fd, text + *len, RULES_FILE_MAX_BYTES + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || *len + (size_t)n > RULES_FILE_MAX_BYTES) {
			(void)rules_error(errors, n < 0 ? "cannot read rules file %s: %s" : "rules file %s: larger than the limit%s",
					  path, n < 0 ? strerror(errno) : "");
			free(text);
			text = NULL;
			break;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	(void)close(fd);
	return text;
}

/* All of size bytes at data to path, made new (mode), fsynced, then renamed into place. */
static unsigned write_replacing(const char *path, const void *data, size_t size, mode_t mode,
				struct rules_errors *errors)
{
	char temporary[4096];

	if ((size_t)snprintf(temporary, sizeof(temporary), "%s.XXXXXX", path) >= sizeof(temporary))
		return rules_error(errors, "%s: path too long", path);
	int fd = mkostemp(temporary, O_CLOEXEC);
	if (fd < 0)
		return rules_error(errors, "cannot create %s: %s", temporary, strerror(errno));
	const char *failed = NULL;
	int saved = 0;
	for (size_t done = 0; failed == NULL && done < size;) {
		ssize_t n = write(fd, (const char *)data + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			failed = "write";
			saved = n < 0 ? errno : EIO;
		} else {
			done += (size_t)n;
		}
	}
	if (failed == NULL && fchmod(fd, mode) < 0)
		failed = "chmod", saved = errno;
	if (failed == NULL && fsync(fd) < 0)
		failed = "fsync", saved = errno;
	if (close(fd) < 0 && failed == NULL)
		failed = "close", saved = errno;
	/* Renamed into place: a connection maps the old image or the new one, never half of one. */
	if (failed == NULL && rename(temporary, path) < 0)
		failed = "rename into place", saved = errno;
	if (failed != NULL) {
		(void)unlink(temporary);
		return rules_error(errors, "cannot write %s (%s): %s", path, failed, strerror(saved));
	}
	return 0;
}

/* What --compile replaces must be nothing yet, or an image: never the text, nor any other file named by mistake. */
static unsigned refuse_replacing_other_file(const char *image_path, struct rules_errors *errors)
{
	char magic[RULES_IMAGE_MAGIC_BYTES];
	struct stat st;

	if (lstat(image_path, &st) < 0)
		return errno == ENOENT ? 0 : rules_error(errors, "%s: %s", image_path, strerror(errno));
	int fd = S_ISREG(st.st_mode) ? open(image_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW) : -1;
	bool is_image = fd >= 0 && pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
			rules_image_is(magic, sizeof(magic));
	if (fd >= 0)
		(void)close(fd);
	if (!is_image)
		return rules_error(errors, "%s: exists and is not a compiled image; not replaced", image_path);
	return 0;
}

unsigned rules_compile(struct rules *rules, const char *path, const char *image_path, struct rules_errors *errors)
{
	struct stat st;
	size_t len;

	errors->count = 0;
	char *source = read_whole(path, &len, &st, errors);
	if (source == NULL)
		return errors->count;
	if (rules_image_is(source, len)) {
		free(source);
		return rules_error(errors, "%s: already compiled; compile its text", path);
	}
	if (refuse_replacing_other_file(image_path, errors) == 0 && rules_parse(rules, source, len, path, errors) == 0 &&
	    rules_refuse_exposed_secret(rules, st.st_mode, path, errors) == 0) {
		size_t capacity = sizeof(struct image_header) + (size_t)ARRAYS * RULES_IMAGE_ALIGN;
		for (size_t i = 0; i < ARRAYS; i++)
			capacity += arrays[i].element * arrays[i].most;
		void *image = malloc(capacity);
		size_t size = image != NULL ? rules_image_build(rules, source, len, image, capacity) : 0;
		if (size == 0)
			(void)rules_error(errors, "%s: cannot build its image (out of memory)", path);
		else
			/*
			 * The image carries the text: no one may read it who may not read
			 * the text, and with a password in it only its owner. No one
			 * writes it either: it is replaced whole, by --compile.
			 */
			(void)write_replacing(image_path, image, size, st.st_mode & (rules->has_login ? 0400 : 0444), errors);
		free(image);
	}
	rules->source = NULL; /* the text is freed: --explain after this reads the file again */
	rules->path = path;
	free(source);
	return errors->count;
}

void rules_image_seal(void *image, size_t size)
{
	struct image_header header;
	size_t offsets[ARRAYS];

	if (size < sizeof(header))
		return;
	memcpy(&header, image, sizeof(header));
	for (size_t i = 0; i < ARRAYS; i++)
		if (header.counts[i] > arrays[i].most)
			return;
	if (place_arrays(header.counts, offsets) > size)
		return;
	header.checksum = checksum_of((char *)image + offsets[0], offsets[ARRAYS - 1] - offsets[0]);
	memcpy(image, &header, sizeof(header));
}

bool rules_tables_equal(const struct rules *a, const struct rules *b)
{
	return a->rule_count == b->rule_count && a->item_count == b->item_count && a->net_count == b->net_count &&
	       a->text_len == b->text_len && a->group_count == b->group_count && a->member_count == b->member_count &&
	       a->parent_count == b->parent_count && a->has_login == b->has_login &&
	       memcmp(a->rules, b->rules, a->rule_count * sizeof(a->rules[0])) == 0 &&
	       memcmp(a->items, b->items, a->item_count * sizeof(a->items[0])) == 0 &&
	       memcmp(a->nets, b->nets, a->net_count * sizeof(a->nets[0])) == 0 &&
	       memcmp(a->groups, b->groups, a->group_count * sizeof(a->groups[0])) == 0 &&
	       memcmp(a->member_offsets, b->member_offsets, a->member_count * sizeof(a->member_offsets[0])) == 0 &&
	       memcmp(a->parents, b->parents, a->parent_count * sizeof(a->parents[0])) == 0 &&
	       memcmp(a->text, b->text, a->text_len) == 0;
}

unsigned rules_image_check_source(const struct rules *rules, const char *name, struct rules_errors *errors)
{
	static struct rules parsed;
	static struct rules_errors parse_errors;

	if (!rules->compiled)
		return 0;
	/* --check and --explain only: what a connection trusts must be what its text says. */
	if (rules_parse(&parsed, rules->source, rules->source_len, name, &parse_errors) != 0 ||
	    !rules_tables_equal(&parsed, rules))
		return rules_error(errors, "compiled rules %s: its table is not its text's; compile the text again", name);
	return 0;
}
