/*
 * config_file: how the files the options name (the rules, the passwords)
 * are found and opened.
 *
 * A relative path is looked up in $CREDENTIALS_DIRECTORY when systemd set
 * one (LoadCredential=). And during an acceptor's reload, a file is opened
 * from the copy the acceptor took before the reload began: the check of the
 * options and the acceptor executed after it must read the same bytes, or a
 * file edited between the two would pass the one and stop the other.
 */
#ifndef TUNNELD_CONFIG_FILE_H
#define TUNNELD_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

/* path, or $CREDENTIALS_DIRECTORY/path for a relative one; NULL if that does not fit in out. */
const char *config_file_resolve(const char *path, char *out, size_t size);

/* Is the path the options give a credential: a relative name systemd's LoadCredential= put in $CREDENTIALS_DIRECTORY? */
bool config_file_is_credential(const char *path);

/*
 * How messages name the file the options give: the path resolved, or for
 * a credential its name and where the file an administrator edits is
 * named, since the path resolved is systemd's copy. out has size bytes.
 */
const char *config_file_name(const char *path, const char *resolved, char *out, size_t size);

/* What to add to a message that opening a file failed with error: a hint when a service's user may not read it. */
const char *config_file_hint(int error);

/* Opens the resolved path for reading (O_CLOEXEC), from its pinned copy if it has one; -1 and errno. */
int config_file_open(const char *resolved_path);

/*
 * The acceptor, before a reload: copies each file (resolved paths) into a
 * sealed memory file that the check and the executed acceptor inherit, and
 * names them in the environment. A file that cannot be read is not pinned:
 * the check then fails on it, as it should.
 */
void config_file_pin(const char *const *resolved_paths, size_t count);

/* Closes the pinned copies and forgets them: after the options are read, or when a reload is refused. */
void config_file_unpin(void);

#endif
