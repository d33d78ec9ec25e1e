#include "lazy.h"

#include <dlfcn.h>

void *lazy_symbol(void **handle, const char *library, const char *name)
{
	if (*handle == NULL)
		*handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
	return *handle != NULL ? dlsym(*handle, name) : NULL;
}
