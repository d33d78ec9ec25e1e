/*
 * sandbox: rlimits, no_new_privs, Landlock and a seccomp-BPF allow-list,
 * entered once the options are read and before the client's first byte
 * (tunneld(8) "Sandbox").
 *
 * What is left to a tunnel: reading the few files the resolver and the
 * lazily loaded libraries (libnss_*, libsystemd, libcrypt) need; sockets of
 * AF_INET and AF_INET6, and AF_UNIX datagrams for the journal or syslog;
 * threads, for the resolver, but no processes and no exec; nothing written
 * to any file. Everything else fails with EPERM (seccomp) or EACCES
 * (Landlock), which the code already treats as any other failure: a client
 * cannot tell a sandboxed tunnel from another.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sockios.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* As many as a tunnel can use: the client's, the target's and its Happy Eyeballs attempts, splice pipes, the log, the resolver. */
#define SANDBOX_FILES_MAX 64

/* ---- Landlock ---- */

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

/* Every right Landlock ABI 1 knows: all of them are handled, so all but reading are refused. */
#define FS_RIGHTS_ABI_1                                                                                         \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |             \
	 LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |           \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |               \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/*
 * What may be read: the libraries dlopen() loads (merged /usr, and /lib*
 * where it is not), and the files the resolver and the C library read.
 * A path that does not exist is skipped. The directories come first.
 */
static const char *const readable_paths[] = {
	"/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/gai.conf", "/etc/services", "/etc/localtime",
};
#define READABLE_DIRECTORIES 3
_Static_assert(sizeof(readable_paths) / sizeof(readable_paths[0]) == SANDBOX_FILES_NOTED, "each is noted");
_Static_assert(SANDBOX_FILES_NOTED + 2 <= 16, "struct opened_paths holds every path");

/*
 * A sanitizer build (make sanitize-check) writes its reports as files here,
 * and reads /proc/self/maps and /proc/self/task to write them: all of
 * /proc, since the acceptor's forker enters the sandbox for its tunnels,
 * whose /proc/self is not its own.
 */
#ifdef SANITIZER_LOG_DIR
static const char *const writable_paths[] = { SANITIZER_LOG_DIR };
static const char *const sanitizer_readable_paths[] = { "/proc" };
#endif

/* The rights a file can be given; those on a directory's entries apply to directories only. */
#define FILE_RIGHTS (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

/*
 * The paths' descriptors, closed together once the rules hold: a system
 * call costs a new process about a microsecond here, so each path costs
 * two (open and the rule), not four.
 */
struct opened_paths {
	int fds[16]; /* every path of enter_landlock() at once: the 11 readable, and the sanitizer build's 2 */
	size_t count;
};

/* Opened one after another, they are usually consecutive: one close_range() then. */
static void close_opened(const struct opened_paths *opened)
{
	if (opened->count == 0)
		return;
	int first = opened->fds[0], last = opened->fds[opened->count - 1];
	if (last - first + 1 == (int)opened->count && syscall(SYS_close_range, first, last, 0) == 0)
		return;
	for (size_t i = 0; i < opened->count; i++)
		(void)close(opened->fds[i]);
}

/*
 * A path expected to be a directory is given all of access, and only a
 * file's rights if the kernel says it is not one (EINVAL); any other path,
 * a file's rights, which hold for a directory's files too.
 */
static void allow_beneath(int ruleset_fd, const char *path, uint64_t access, bool directory,
			  struct opened_paths *opened)
{
	int path_fd = open(path, O_PATH | O_CLOEXEC);
	if (path_fd < 0 && errno == EMFILE && opened->count > 0) {
		/* Out of room (a tunnel handed many descriptors, under its limit of 64): those held are closed first. */
		close_opened(opened);
		opened->count = 0;
		path_fd = open(path, O_PATH | O_CLOEXEC);
	}
	if (path_fd < 0)
		return;
	opened->fds[opened->count++] = path_fd;
	struct landlock_path_beneath_attr beneath = { .parent_fd = path_fd,
						      .allowed_access = directory ? access : access & FILE_RIGHTS };
	if (syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0 && errno == EINVAL &&
	    directory) {
		beneath.allowed_access &= FILE_RIGHTS;
		(void)syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
	}
}

static uint64_t fs_rights_for(int abi)
{
	uint64_t rights = FS_RIGHTS_ABI_1;
	if (abi >= 2)
		rights |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return rights;
}

/* The Landlock ABI in force afterwards, or 0 with why filled. */
static int enter_landlock(char *why, size_t size)
{
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		(void)snprintf(why, size, "no Landlock (%s)", strerror(errno));
		return 0;
	}
	struct landlock_ruleset_attr ruleset = { .handled_access_fs = fs_rights_for(abi) };
	int ruleset_fd = (int)syscall(SYS_landlock_create_ruleset, &ruleset, sizeof(ruleset), 0);
	if (ruleset_fd < 0) {
		(void)snprintf(why, size, "Landlock ruleset: %s", strerror(errno));
		return 0;
	}
	struct opened_paths opened = { .count = 0 };
	for (size_t i = 0; i < sizeof(readable_paths) / sizeof(readable_paths[0]); i++)
		allow_beneath(ruleset_fd, readable_paths[i], LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR,
			      i < READABLE_DIRECTORIES, &opened);
#ifdef SANITIZER_LOG_DIR
	for (size_t i = 0; i < sizeof(sanitizer_readable_paths) / sizeof(sanitizer_readable_paths[0]); i++)
		allow_beneath(ruleset_fd, sanitizer_readable_paths[i],
			      LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR, true, &opened);
	for (size_t i = 0; i < sizeof(writable_paths) / sizeof(writable_paths[0]); i++)
		allow_beneath(ruleset_fd, writable_paths[i], fs_rights_for(abi) & ~LANDLOCK_ACCESS_FS_EXECUTE, true,
			      &opened);
#endif
	long restricted = syscall(SYS_landlock_restrict_self, ruleset_fd, 0);
	int saved = errno;
	close_opened(&opened);
	(void)close(ruleset_fd);
	if (restricted < 0) {
		(void)snprintf(why, size, "Landlock: %s", strerror(saved));
		return 0;
	}
	return abi;
}

/* ---- seccomp ---- */

/*
 * Not in a sanitizer build: LeakSanitizer stops the world from a process of
 * its own, with ptrace, which the allow-list refuses. Landlock stays.
 */
#if defined(SANITIZER_LOG_DIR)
#elif defined(__x86_64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SANDBOX_AUDIT_ARCH

/*
 * Allowed whatever their arguments: what tunnels were seen to make (strace
 * over the HTTP, SOCKS5, auth, rules, parents, logging and relay suites),
 * and the journal's sendmsg (log.c: never a memfd), abort()'s gettid.
 */
static const int allowed_calls[] = {
	SYS_read, SYS_write, SYS_ppoll, SYS_rt_sigpending, SYS_splice, SYS_rt_sigprocmask, SYS_rt_sigaction,
	SYS_rt_sigreturn, SYS_newfstatat, SYS_fstat, SYS_fcntl, SYS_close, SYS_setsockopt, SYS_getsockopt, SYS_brk,
	SYS_setitimer, SYS_exit_group, SYS_exit, SYS_shutdown, SYS_pipe2, SYS_rseq, SYS_mmap, SYS_set_robust_list,
	SYS_openat, SYS_mprotect, SYS_getrandom, SYS_connect, SYS_madvise, SYS_futex, SYS_getpeername,
	SYS_getsockname, SYS_munmap, SYS_getpid, SYS_gettid, SYS_lseek, SYS_uname, SYS_getuid, SYS_sendto,
	SYS_recvfrom, SYS_sendmmsg, SYS_sendmsg, SYS_restart_syscall, SYS_clock_gettime,
	SYS_writev, SYS_readv, /* the resolver's queries over TCP (a truncated answer, options use-vc) */
#ifdef SYS_poll
	SYS_poll, /* the resolver's, on machines that have it */
#endif
};

#define SYSCALL_NUMBER offsetof(struct seccomp_data, nr)
#define SYSCALL_ARCH offsetof(struct seccomp_data, arch)
#define SYSCALL_ARG_LOW(n) offsetof(struct seccomp_data, args[n]) /* the low 32 bits, on these little-endian machines */

#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define FORKED_FILTER_LEN 12
#define FAIL_WITH(error) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((error) & SECCOMP_RET_DATA))

/*
 * The calls allowed only for some arguments: each has a block of its own,
 * which the search below jumps to with the call's number still loaded.
 */
enum special {
	SPECIAL_NONE,
	SPECIAL_IOCTL,
	SPECIAL_SIGNAL_SELF,
	SPECIAL_SECCOMP,
	SPECIAL_CLONE3,
	SPECIAL_CLONE,
	SPECIAL_SOCKET,
	SPECIAL_COUNT
};

static const struct {
	int call;
	enum special block;
} special_calls[] = {
	{ SYS_ioctl, SPECIAL_IOCTL },	      { SYS_rt_sigqueueinfo, SPECIAL_SIGNAL_SELF },
	{ SYS_tgkill, SPECIAL_SIGNAL_SELF },  { SYS_seccomp, SPECIAL_SECCOMP },
	{ SYS_clone3, SPECIAL_CLONE3 },	      { SYS_clone, SPECIAL_CLONE },
	{ SYS_socket, SPECIAL_SOCKET },
};

enum {
	CALLS = sizeof(allowed_calls) / sizeof(allowed_calls[0]),
	SPECIALS = sizeof(special_calls) / sizeof(special_calls[0]),
	/* bind() is the one more call a configuration may allow, recvmsg() the forker's */
	KEYS_MAX = CALLS + SPECIALS + 2,
	/* Each call and the gap after it a range, a comparison each; the verdicts and the blocks. */
	FILTER_MAX = 4 + (2 * KEYS_MAX + 1) + 64
};

/*
 * Jumps are 8 bits: from the search's first comparison, past the rest of
 * it, to the end of the last block; and a range's index, and a place in
 * the filter, fit a byte. 2^7 ranges at most: a search of 7 levels.
 */
#define SEARCH_LEVELS_MAX 7
_Static_assert(FILTER_MAX < 256 && 2 * KEYS_MAX + 1 <= (1 << SEARCH_LEVELS_MAX), "the call search fits its jumps");

/* Where a range of call numbers goes: allowed, refused, or a block's checks. */
enum target { TARGET_ALLOW = SPECIAL_COUNT, TARGET_REFUSE };

struct range {
	uint32_t first; /* to the next range's first - 1 */
	uint8_t target; /* an enum special (a block) or an enum target */
};

struct key {
	int call;
	uint8_t target;
};

/* By number; a call listed twice is allowed whatever its arguments, as the allow-list says, whatever the sort. */
static int by_call(const void *a, const void *b)
{
	const struct key *first = a, *second = b;

	if (first->call != second->call)
		return first->call < second->call ? -1 : 1;
	return (second->target == TARGET_ALLOW) - (first->target == TARGET_ALLOW);
}

/* Every call number, from 0 up, in ranges of one target each, in order; how many. */
static size_t call_ranges(struct range *ranges, bool may_bind, bool forker)
{
	struct key keys[KEYS_MAX];
	size_t key_count = 0, count = 0;

	for (size_t i = 0; i < CALLS; i++)
		keys[key_count++] = (struct key){ allowed_calls[i], TARGET_ALLOW };
	for (size_t i = 0; i < SPECIALS; i++)
		keys[key_count++] = (struct key){ special_calls[i].call, (uint8_t)special_calls[i].block };
	/*
	 * bind(): only where the configuration names an outgoing address
	 * (tunneld(8) "Leaving from an address"), for the target's socket
	 * before its connect; a filter cannot read the address it is given.
	 */
	if (may_bind)
		keys[key_count++] = (struct key){ SYS_bind, TARGET_ALLOW };
	if (forker) /* the connections it is handed; each tunnel it forks refuses it again */
		keys[key_count++] = (struct key){ SYS_recvmsg, TARGET_ALLOW };
	qsort(keys, key_count, sizeof(keys[0]), by_call);
	ranges[count++] = (struct range){ 0, TARGET_REFUSE };
	for (size_t i = 0; i < key_count; i++) {
		uint32_t call = (uint32_t)keys[i].call;
		if (i > 0 && keys[i].call == keys[i - 1].call)
			continue; /* listed twice: the first, and the ranges ascend */
		if (ranges[count - 1].first == call) /* call 0, or the one after the last */
			ranges[count - 1].target = keys[i].target;
		else
			ranges[count++] = (struct range){ call, keys[i].target };
		ranges[count++] = (struct range){ call + 1, TARGET_REFUSE };
	}
	/* Neighbours with one target are one range. */
	size_t kept = 1;
	for (size_t i = 1; i < count; i++)
		if (ranges[i].target != ranges[kept - 1].target)
			ranges[kept++] = ranges[i];
	return kept;
}

/* A comparison's branch whose place is known once the tree is laid out. */
struct pending_jump {
	uint8_t at;
	bool when_true; /* its jt; else its jf */
	uint8_t target;
};

/*
 * A binary search over the ranges: one comparison per level, its branches
 * going to the subtree that follows or, for a single range, straight to
 * that range's target (patched later). Not a chain of comparisons: when a
 * filter is loaded the kernel runs it for every call number to learn which
 * it always allows, under a lock, and with a chain that cost about 4 us a
 * comparison, at every connection. Laid out in preorder, each left subtree
 * right after its comparison.
 */
static size_t emit_search(struct sock_filter *filter, size_t n, const struct range *ranges, size_t range_count,
			  struct pending_jump *jumps, size_t *jump_count)
{
	/* Waiting: at most a right subtree for each level above, and the one next. */
	struct subtree {
		uint8_t first, last;
		uint8_t parent; /* whose jt comes here, or UINT8_MAX: the root, or a left subtree (jf 0) */
	} stack[SEARCH_LEVELS_MAX + 1];
	size_t depth = 0;

	stack[depth++] = (struct subtree){ 0, (uint8_t)(range_count - 1), UINT8_MAX };
	while (depth > 0) {
		struct subtree tree = stack[--depth];
		uint8_t middle = (uint8_t)(tree.first + (tree.last - tree.first + 1) / 2);
		size_t split = n++;
		if (tree.parent != UINT8_MAX)
			filter[tree.parent].jt = (uint8_t)(split - tree.parent - 1);
		filter[split] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, ranges[middle].first, 0, 0);
		if (middle == tree.last)
			jumps[(*jump_count)++] = (struct pending_jump){ (uint8_t)split, true, ranges[tree.last].target };
		else
			stack[depth++] = (struct subtree){ middle, tree.last, (uint8_t)split };
		if (middle - 1 == tree.first)
			jumps[(*jump_count)++] = (struct pending_jump){ (uint8_t)split, false, ranges[tree.first].target };
		else
			stack[depth++] = (struct subtree){ tree.first, (uint8_t)(middle - 1), UINT8_MAX }; /* next: jf 0 */
	}
	return n;
}

/* The checks of one block, entered with the call's number loaded; each ends in a verdict. */
static size_t emit_block(struct sock_filter *filter, size_t n, enum special block, bool forker)
{
	switch (block) {
	case SPECIAL_IOCTL:
		/*
		 * FIONREAD (SIOCINQ), which the resolver asks of its UDP socket and
		 * the relay of a source, and SIOCOUTQ, the relay's before a reset.
		 */
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(1));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FIONREAD, 1, 0);
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SIOCOUTQ, 0, 1);
		filter[n++] = (struct sock_filter)ALLOW;
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		break;
	case SPECIAL_SIGNAL_SELF:
		/*
		 * Signals to this process only: the resolver's completion
		 * (getaddrinfo_a's SIGEV_SIGNAL is an rt_sigqueueinfo), raise() and abort().
		 * The forker's tunnels each check their own pid (forked_filter).
		 */
		if (forker) {
			filter[n++] = (struct sock_filter)ALLOW;
			break;
		}
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)getpid(), 0, 1);
		filter[n++] = (struct sock_filter)ALLOW;
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		break;
	case SPECIAL_SECCOMP:
		/*
		 * The tightening after connect, put on every thread at once (TSYNC:
		 * an idle resolver thread of getaddrinfo_a would keep only this
		 * filter otherwise). Nothing but that one operation and flag; the
		 * tightening then refuses seccomp() itself.
		 */
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_SET_MODE_FILTER, 0, 3);
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(1));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_FILTER_FLAG_TSYNC, 0, 1);
		filter[n++] = (struct sock_filter)ALLOW;
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		break;
	case SPECIAL_CLONE3:
		/* Its flags are in memory a filter cannot read: ENOSYS sends glibc back to clone(). */
		filter[n++] = (struct sock_filter)FAIL_WITH(ENOSYS);
		break;
	case SPECIAL_CLONE:
		/* Threads (the resolver's), never a process; but the forker's tunnels, which refuse it again. */
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, forker ? 1 : 0, forker ? 0 : 1);
		if (forker)
			filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_FORKER_CLONE_FLAGS, 0, 1);
		filter[n++] = (struct sock_filter)ALLOW;
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		break;
	case SPECIAL_SOCKET:
		/*
		 * Streams and datagrams of the Internet (the target, the resolver),
		 * and a datagram to the journal or syslog. Not SOCK_RAW, nor
		 * SOCK_PACKET, which the kernel makes a packet socket of AF_INET.
		 */
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 2, 0);
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 1, 0);
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 4, 8);
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(1));
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf); /* the type, without SOCK_CLOEXEC and SOCK_NONBLOCK */
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 4, 0);
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_DGRAM, 3, 4);
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(1));
		filter[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf);
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_DGRAM, 0, 1);
		filter[n++] = (struct sock_filter)ALLOW;
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
		break;
	case SPECIAL_NONE:
	case SPECIAL_COUNT:
		break;
	}
	return n;
}

/* The program: the architecture, then the call's number searched for, then the blocks of checks by argument. */
static size_t build_filter(struct sock_filter *filter, bool may_bind, bool forker)
{
	struct range ranges[2 * KEYS_MAX + 1];
	struct pending_jump jumps[2 * KEYS_MAX + 1];
	size_t targets[TARGET_REFUSE + 1] = { 0 };
	size_t n = 0, jump_count = 0;

	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARCH);
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_AUDIT_ARCH, 1, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_NUMBER);
	/* At least three ranges: the calls below the first allowed, it, and those above the last. */
	n = emit_search(filter, n, ranges, call_ranges(ranges, may_bind, forker), jumps, &jump_count);
	targets[TARGET_ALLOW] = n;
	filter[n++] = (struct sock_filter)ALLOW;
	targets[TARGET_REFUSE] = n;
	filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
	for (int block = SPECIAL_NONE + 1; block < SPECIAL_COUNT; block++) {
		targets[block] = n;
		n = emit_block(filter, n, (enum special)block, forker);
	}
	for (size_t j = 0; j < jump_count; j++) {
		uint8_t offset = (uint8_t)(targets[jumps[j].target] - jumps[j].at - 1);
		if (jumps[j].when_true)
			filter[jumps[j].at].jt = offset;
		else
			filter[jumps[j].at].jf = offset;
	}
	return n;
}

static bool enter_seccomp(bool may_bind, bool forker, char *why, size_t size)
{
	/* On the stack, whose pages later calls dirty anyway: in static storage it was a page of private memory of its own. */
	struct sock_filter filter[FILTER_MAX];
	struct sock_fprog program = { .len = (unsigned short)build_filter(filter, may_bind, forker), .filter = filter };

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) < 0) {
		(void)snprintf(why, size, "no seccomp filter (%s)", strerror(errno));
		return false;
	}
	return true;
}

/*
 * Stacked on the allow-list once the target is connected, on every thread,
 * when the tunnel has made every Internet socket, connection and thread it
 * will ever need, and the record's syslog socket is connected ahead
 * (log_connect_ahead): a tunnel taken over while it relays can then open
 * no socket but the journal's datagram, connect nothing (not even its own
 * sockets again, elsewhere, after an AF_UNSPEC connect), start no thread,
 * and stack no filter. The kernel runs both filters on every call and the
 * stricter answer wins, so this one need not repeat the architecture check.
 */
bool sandbox_tighten_after_connect(void)
{
	struct sock_filter filter[] = { /* on the stack, whose pages are dirty already: no more private memory */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_NUMBER),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 5, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_bind, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 1),
		FAIL_WITH(EPERM),
		ALLOW,
	};
	struct sock_fprog program = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program) == 0;
}

/*
 * The forker's filter (build_filter's forker) less what only the forker
 * needs: recvmsg(), a process, a signal to another. Stacked on it in each
 * tunnel the forker forks, the two give every call the verdict the
 * tunnel's own allow-list gives (tests/sandbox.bats judges both).
 */
static size_t forked_filter(struct sock_filter *filter)
{
	size_t n = 0;

	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_NUMBER);
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_recvmsg, 9, 0);
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 3, 0);
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_tgkill, 4, 0);
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigqueueinfo, 3, 0);
	filter[n++] = (struct sock_filter)ALLOW;
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 2, 3);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SYSCALL_ARG_LOW(0));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)getpid(), 0, 1);
	filter[n++] = (struct sock_filter)ALLOW;
	filter[n++] = (struct sock_filter)FAIL_WITH(EPERM);
	return n;
}

static bool tighten_forked(void)
{
	struct sock_filter filter[FORKED_FILTER_LEN];
	struct sock_fprog program = { .len = (unsigned short)forked_filter(filter), .filter = filter };

	/* TSYNC: the one way the forker's filter lets seccomp() be called (a tunnel has no thread yet). */
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program) == 0;
}

#else

static bool tighten_forked(void)
{
	return false;
}

bool sandbox_tighten_after_connect(void)
{
	return false;
}

static bool enter_seccomp(bool may_bind, bool forker, char *why, size_t size)
{
	(void)may_bind;
	(void)forker;
#ifdef SANITIZER_LOG_DIR
	(void)why;
	(void)size; /* by design, not a lack to report */
#else
	(void)snprintf(why, size, "no seccomp filter for this architecture");
#endif
	return false;
}

#endif

/* ---- all of it ---- */

static void limit(int resource, rlim_t most)
{
	static const struct rlimit none = { 0, 0 };
	struct rlimit current;

	if (most == 0) { /* nothing is below it: no need to ask first */
		(void)setrlimit(resource, &none);
		return;
	}
	if (getrlimit(resource, &current) < 0)
		current.rlim_cur = current.rlim_max = most;
	if (current.rlim_cur > most)
		current.rlim_cur = most;
	if (current.rlim_max > most)
		current.rlim_max = most;
	(void)setrlimit(resource, &current);
}

/*
 * Run as root (by hand, an activator without a user), a tunnel would keep
 * every capability: raw sockets, SO_MARK, forged SCM_CREDENTIALS. It needs
 * none, so it keeps none.
 */
static void drop_capabilities(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	(void)syscall(SYS_capset, &header, none);
}

/*
 * What sandbox_enter() would find missing, found without entering it: the
 * Landlock ABI asked for, and a seccomp filter load that the kernel would
 * take answered with EFAULT for the program it is not given.
 */
bool sandbox_probe(char *why, size_t size)
{
	char landlock_why[80] = "", seccomp_why[80] = "";

	why[0] = '\0';
	if (syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) < 1)
		(void)snprintf(landlock_why, sizeof(landlock_why), "no Landlock (%s)", strerror(errno));
#ifdef SANDBOX_AUDIT_ARCH
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) == 0 || errno != EFAULT)
		(void)snprintf(seccomp_why, sizeof(seccomp_why), "no seccomp filter (%s)", strerror(errno));
#elif !defined(SANITIZER_LOG_DIR)
	(void)snprintf(seccomp_why, sizeof(seccomp_why), "no seccomp filter for this architecture");
#endif
	if (landlock_why[0] == '\0' && seccomp_why[0] == '\0')
		return false;
	(void)snprintf(why, size, "sandbox: %s%s%s", landlock_why, landlock_why[0] != '\0' && seccomp_why[0] != '\0' ? "; " : "",
		       seccomp_why);
	return true;
}

/*
 * What the forker entered, which each tunnel it forks inherits in its
 * memory as it inherits the sandbox itself; entered is false elsewhere.
 */
static struct {
	bool entered;
	struct sandbox_report report;
} forker;

static void enter(struct sandbox_report *report, bool may_bind, bool for_forker)
{
	char landlock_why[80] = "", seccomp_why[80] = "";

	memset(report, 0, sizeof(*report));
	drop_capabilities();
	limit(RLIMIT_CORE, 0); /* a crash leaves no image of a tunnel's memory (passwords, the head) */
	limit(RLIMIT_NOFILE, SANDBOX_FILES_MAX);
	report->no_new_privs = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
	report->landlock_abi = enter_landlock(landlock_why, sizeof(landlock_why));
	/* Without no_new_privs an unprivileged process may not install a filter; as root it may, and still should. */
	report->seccomp = enter_seccomp(may_bind, for_forker, seccomp_why, sizeof(seccomp_why));
	if (landlock_why[0] != '\0' || seccomp_why[0] != '\0')
		(void)snprintf(report->why, sizeof(report->why), "sandbox: %s%s%s", landlock_why,
			       landlock_why[0] != '\0' && seccomp_why[0] != '\0' ? "; " : "", seccomp_why);
}

void sandbox_enter(struct sandbox_report *report, bool may_bind)
{
	if (forker.entered) /* forked by a forker: in it already, and tightened (sandbox_tighten_forked) */
		*report = forker.report;
	else
		enter(report, may_bind, false);
}

void sandbox_enter_forker(struct sandbox_report *report, bool may_bind)
{
	enter(report, may_bind, true);
	forker.report = *report;
	forker.entered = true;
}

bool sandbox_tighten_forked(void)
{
	return !forker.report.seccomp || tighten_forked();
}

void sandbox_files_note(struct sandbox_files *files)
{
	for (size_t i = 0; i < SANDBOX_FILES_NOTED; i++) {
		struct stat st;
		if (stat(readable_paths[i], &st) == 0)
			files->noted[i] = (struct sandbox_file){ .device = st.st_dev, .inode = st.st_ino };
		else
			files->noted[i] = (struct sandbox_file){ 0 };
	}
}

bool sandbox_files_changed(const struct sandbox_files *files)
{
	struct sandbox_files now;

	sandbox_files_note(&now);
	return memcmp(&now, files, sizeof(now)) != 0;
}

bool sandbox_forker_possible(void)
{
#ifdef SANDBOX_AUDIT_ARCH
	uint32_t action = SECCOMP_RET_ALLOW;
	/* Any answer but ENOSYS: the call is there (an old kernel may not know this operation). */
	return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0 || errno != ENOSYS;
#else
	return true;
#endif
}
