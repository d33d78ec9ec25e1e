/*
 * rules_file: where a table comes from. A rules file is text (rules.h
 * parses it) or a compiled image (rules_image.h reads it); this loader
 * tells which, and yields the same table either way.
 */
#ifndef TUNNELD_RULES_FILE_H
#define TUNNELD_RULES_FILE_H

#include "rules.h"

/*
 * Reads path (relative paths from $CREDENTIALS_DIRECTORY, as --auth-file)
 * and parses it, or reads its image whole when it is one. A file that
 * names a parent's password must not be readable by group or others.
 * Returns the number of errors, each in errors.
 */
unsigned rules_load(struct rules *rules, const char *path, struct rules_errors *errors);

/* The text of line number (1-based) of the parsed source, without its newline and with any password as ***, into out. */
void rules_line_text(const struct rules *rules, unsigned number, char *out, size_t size);

#endif
