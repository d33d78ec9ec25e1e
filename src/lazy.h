/*
 * lazy: shared libraries loaded on first use.
 *
 * A library linked at build time is mapped and relocated at every exec, and
 * every tunnel is an exec: libsystemd and the six libraries it pulls in cost
 * about 0.8 ms and 137 KiB of private memory per tunnel, libcrypt a little
 * of both, while most tunnels never call either (systemd itself dlopen()s its
 * optional libraries the same way).
 */
#ifndef TUNNELD_LAZY_H
#define TUNNELD_LAZY_H

#include <string.h>

/* The symbol name of library (its soname), opening it into *handle first; NULL if either is missing. */
void *lazy_symbol(void **handle, const char *library, const char *name);

/*
 * Declares pointer, of the type of function, from the library: POSIX
 * guarantees dlsym's object pointer converts to a function pointer, ISO C
 * does not, hence the memcpy.
 */
#define LAZY_FUNCTION(pointer, handle, library, function)               \
	__typeof__(function) *pointer = NULL;                           \
	do {                                                            \
		void *symbol_ = lazy_symbol(handle, library, #function); \
		if (symbol_ != NULL)                                    \
			memcpy(&pointer, &symbol_, sizeof(pointer));    \
	} while (0)

#endif
