/*
 * rules_image: a rules file compiled once by `tunneld --compile` and read
 * whole by every connection, its table used as it lies (tunneld(8)
 * "Compiled rules"). A 1,000-rule text file is parsed at every connection;
 * its image costs a read.
 */
#ifndef TUNNELD_RULES_IMAGE_H
#define TUNNELD_RULES_IMAGE_H

#include "rules.h"

#include <stdbool.h>
#include <stddef.h>

#define RULES_IMAGE_MAGIC "tunneld rules 1\n"
#define RULES_IMAGE_MAGIC_BYTES 16
#define RULES_IMAGE_ALIGN 8

/* Do these bytes start an image? */
bool rules_image_is(const void *start, size_t len);

/*
 * The image in fd, which fstat() gave size bytes, read whole into memory of
 * the process's own (a file changed later changes nothing here) and checked
 * whole: its checksum, every count, index and offset within its table. A
 * file that is not size bytes long while it is read is refused. name is for
 * messages. Returns the number of errors. The copy lives as long as the process.
 */
unsigned rules_image_read(struct rules *rules, int fd, size_t size, const char *name, struct rules_errors *errors);

/* The same on an image already in memory (RULES_IMAGE_ALIGN-aligned), which then holds rules' arrays. */
unsigned rules_image_use(struct rules *rules, void *image, size_t size, const char *name, struct rules_errors *errors);

/*
 * Reads the rules file at path whole, parses it and, when it has no error,
 * writes its image to image_path through a temporary file renamed into
 * place (the text's mode less any write or execute bit, and 0400 at most
 * when it holds a password). Returns the number
 * of errors, each in errors; rules holds the parsed table.
 */
unsigned rules_compile(struct rules *rules, const char *path, const char *image_path, struct rules_errors *errors);

/* The image of a parsed table, with its source text, into out (capacity bytes); its size, or 0 when it does not fit. */
size_t rules_image_build(const struct rules *rules, const char *source, size_t source_len, void *out, size_t capacity);

/* Whether a table parsed from an image's text equals the image's: --check's proof of the image; the error count. */
unsigned rules_image_check_source(const struct rules *rules, const char *name, struct rules_errors *errors);

/* Two tables, entry for entry. */
bool rules_tables_equal(const struct rules *a, const struct rules *b);

/* Writes an image's checksum again after its bytes were changed (the fuzzer's way past it to the other checks). */
void rules_image_seal(void *image, size_t size);

#endif
