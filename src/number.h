/* number: strtonum-style parsing for options and option lists. */
#ifndef TUNNELD_NUMBER_H
#define TUNNELD_NUMBER_H

#include <errno.h>
#include <stdlib.h>

/* A decimal number in [min, max] that fills the whole of text: 0, or -1. No sign, no spaces. */
static inline int parse_decimal(const char *text, long min, long max, long *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return -1;
	*out = value;
	return 0;
}

#endif
