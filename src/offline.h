/*
 * offline: --check, --compile and --explain (src/offline.c), which talk to a
 * person and exit.
 */
#ifndef TUNNELD_OFFLINE_H
#define TUNNELD_OFFLINE_H

#include "options.h"
#include "rules.h"

/* --check, and --compile's report: the options and the rules file are good, exit 0 (options_parse() exits 2 if not). */
/* Every outgoing address, the option's and the rules', bound once: each one the host lacks said on stderr, then exit 2. */
void offline_check_outgoing(const struct options *options, const struct rules *rules);

void __attribute__((noreturn)) offline_check(const struct options *options, const struct rules *rules);

/*
 * --explain WORD...: user=NAME from=ADDRESS to=HOST:PORT protocol=http|socks5,
 * what the options or the rules decide, step by step; exit 0 for allow or
 * via, 1 for deny, 2 for a usage error.
 */
void __attribute__((noreturn)) offline_explain(const struct options *options, const struct rules *rules, int count,
					       char **words);

#endif
