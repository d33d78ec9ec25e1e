/*
 * acceptor: accept, fork, and let the child be a one-shot tunneld.
 *
 * The acceptor holds a table of its children (pid, source address, and
 * whether the tunnel is still live), for the limits and for a stop. A
 * child says when its tunnel has ended, before it writes its record and
 * exits (acceptor_tunnel_ended), so a slot is held only while a tunnel is
 * one; a connection over a limit waits a moment for a slot before it is
 * turned away, since a tunnel whose client has just left may not have said
 * so yet. The acceptor waits in one ppoll() with its signals let through
 * there only, as signals.c does for a tunnel:
 *   SIGCHLD          reap at once;
 *   SIGTERM, SIGINT  stop: each tunnel of the service, this acceptor's and
 *                    any an earlier one left, is sent SIGTERM and writes
 *                    its record;
 *   SIGUSR1          restart (the unit's RestartKillSignal=): exit now, the
 *                    tunnels run on to their end;
 *   SIGHUP           reload: the files the options name are copied
 *                    (config_file_pin), `tunneld --check ARGV` proves the
 *                    options and those copies, then the acceptor executes
 *                    itself again with its listeners, its table and the
 *                    same copies: what was checked is what is served. A
 *                    reload asked for while a check runs starts it again
 *                    on fresh copies: the last one asked for is the one
 *                    in force.
 * A resource shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM, a failed fork) stops
 * accepting for a while, doubling up to a second: never a spin.
 */
#include "acceptor.h"

#include "clock.h"
#include "config_file.h"
#include "log.h"
#include "sandbox.h"
#include "signals.h"
#include "systemd.h"
#include "title.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 1000
#define ACCEPTS_PER_WAKEUP 32          /* then the other listeners, and the reaping, get their turn */
#define ENDINGS_PER_WAKEUP 256
#define STOP_GRACE_MS (FINISH_AFTER_STOP_MS + 2000) /* then SIGKILL: a child stuck past its own deadline */
#define RELOAD_CHECK_MAX_MS 30000 /* a check stuck (a file on a hung mount) is killed, the reload refused */
/*
 * How long a connection over a limit waits for a slot. A tunnel's end is
 * told by its child once both directions are done, and a client that
 * closes and connects again at once can be quicker than that by the few
 * milliseconds the child takes to see the close; a second covers a loaded
 * machine, and a valgrind one.
 */
#define LIMIT_WAIT_MS 1000
#define WAITING_MAX 64                 /* connections waiting for a slot at once; more are turned away at once */
#define STATUS_INTERVAL_MS 1000        /* the manager is told the counts at most this often */
#define LOG_WRITE_MAX_MS 100           /* a log line the sink does not take in this time is dropped */
#define ENDING_PROCESSES_MIN 256
#define ORPHANS_MAX 1024               /* an earlier acceptor's tunnels a stop can end at once */
/* The table handed across a reload's exec: "pid/address[/ended],..." */
#define TUNNELS_VARIABLE "TUNNELD_ACCEPTOR_TUNNELS"
/*
 * `tunneld --reload PID` (the unit's ExecReload=) asks with sigqueue(SIGHUP)
 * and waits for RELOAD_ANSWER_SIGNAL from the acceptor: value 0, it
 * reloaded; 1, it refused. Those waiting are handed across the exec too.
 */
#define RELOAD_ANSWER_SIGNAL SIGUSR2
#define RELOAD_WAITERS_VARIABLE "TUNNELD_ACCEPTOR_RELOAD_WAITERS"
/* The channel tunnels tell their end by, handed across a reload's exec: "READ_FD,WRITE_FD". */
#define ENDINGS_VARIABLE "TUNNELD_ACCEPTOR_ENDINGS"
#define RELOAD_WAITERS_MAX 16
#define RELOAD_WAIT_MAX_MS (RELOAD_CHECK_MAX_MS + 10000)

struct tunnel {
	pid_t pid;
	bool live;               /* until the child says its tunnel ended: it may still be writing its record */
	int family;              /* AF_INET, AF_INET6, or 0: no IP source (a unix socket) */
	uint8_t source[16];
};

/* A connection over a limit, waiting LIMIT_WAIT_MS for a slot. */
struct waiting {
	int64_t since_ms;
	struct sockaddr_storage from;
	int fd;
	struct tunnel source;
};

static struct tunnel *tunnels;       /* every child not yet reaped, live or ending */
static unsigned tunnel_count;
static unsigned tunnel_capacity;
static unsigned live_count;

static struct waiting waiting[WAITING_MAX];
static unsigned waiting_count;

/* What the title and the unit's STATUS= say (tunneld(8) "WATCHING AND ENDING TUNNELS"). */
static unsigned turned_away_count;
static char options_read_at[16] = "-"; /* when this process read its options and files: started or reloaded */
static char reload_refused_at[16];     /* the last reload refused since, if any */
static struct tunnel *sources_scratch; /* the live tunnels' sources, sorted to count them */

/*
 * Each child's word that its tunnel ended: a datagram on endings[1], which
 * every child inherits. The kernel attaches the sender's pid
 * (SO_PASSCRED), so a child can only speak for itself.
 */
static int endings[2] = { -1, -1 };
static int ending_fd = -1; /* in a child: endings[1] */

/*
 * Entering the sandbox costs a tunnel more than its fork: Landlock's rules,
 * and a seccomp filter the kernel compiles and runs for every call number
 * (bench/PERFORMANCE.md). The forker enters it once. It is a child of the
 * acceptor, confined as a tunnel is but for recvmsg() and one kind of
 * clone(); it is handed each connection (SCM_RIGHTS, on a seqpacket
 * socket), forks its tunnel with CLONE_PARENT and answers the tunnel's
 * pid. The tunnel is thus the acceptor's child as if the acceptor had
 * forked it: the table, the reaping, a stop and a reload see no
 * difference. Before it reads a byte it takes back what only the forker
 * may do (sandbox_tighten_forked). The forker ends when its socket does:
 * the acceptor stopped, exited, executed itself for a reload, or replaced
 * it because a file its Landlock rules name was replaced. While there is
 * none (it could not start, or was lost), the acceptor forks each tunnel
 * itself, and each enters its sandbox on its own.
 */
#define FORKER_ANSWER_MAX_MS 1000 /* a forker slower than this to fork is lost */
#define FORKER_RETRY_MS 1000      /* after a forker was lost, before another is started */

static struct {
	pid_t pid;                  /* -1: none */
	int socket;                 /* the acceptor's end */
	int64_t retry_at_ms;
	struct sandbox_files files; /* as they were when it entered its sandbox */
} forker = { .pid = -1, .socket = -1 };

/* What a tunnel closes and restores: the acceptor's listeners and its signals' first state. */
static struct {
	int first_fd, count;
	const sigset_t *original_mask;
	bool may_bind;
} served;

static void become_tunnel(int first_fd, int count, const sigset_t *original_mask);

/* A forker found gone or no longer answering: ended (its pid may be reaped later), and another not soon. */
static void forker_end(bool lost, const char *why)
{
	if (forker.pid > 0)
		(void)kill(forker.pid, SIGKILL); /* not reaped yet: the pid is still its */
	if (forker.socket >= 0)
		(void)close(forker.socket);
	forker.pid = -1;
	forker.socket = -1;
	if (!lost)
		return;
	forker.retry_at_ms = clock_now_ms() + FORKER_RETRY_MS;
	log_errorf("acceptor: the forker %s; until another starts, the acceptor forks each tunnel itself", why);
}

static pid_t reload_check_pid = -1;
static int64_t reload_check_deadline_ms;
static bool reload_check_killed;     /* it ran past RELOAD_CHECK_MAX_MS */
static bool reload_check_superseded; /* a later reload came: its copies are stale */

static volatile sig_atomic_t child_exited;
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t restart_requested;
static volatile sig_atomic_t reload_requested;
/* Written by the handler, which runs only inside ppoll(), and read outside it: never both at once. */
static pid_t reload_waiters[RELOAD_WAITERS_MAX];
static volatile sig_atomic_t reload_waiter_count;

static void note_signal(int signal_number, siginfo_t *info, void *context)
{
	(void)context;
	if (signal_number == SIGHUP && info != NULL && info->si_code == SI_QUEUE && info->si_pid > 0 &&
	    reload_waiter_count < RELOAD_WAITERS_MAX)
		reload_waiters[reload_waiter_count++] = info->si_pid;
	switch (signal_number) {
	case SIGCHLD:
		child_exited = 1;
		break;
	case SIGUSR1:
		restart_requested = 1;
		break;
	case SIGHUP:
		reload_requested = 1;
		break;
	default:
		stop_requested = 1;
		break;
	}
}

static const int acceptor_signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
#define ACCEPTOR_SIGNAL_COUNT (sizeof(acceptor_signals) / sizeof(acceptor_signals[0]))

/* Blocks the acceptor's signals and installs its handler; *wait_mask lets them through. */
static void acceptor_signals_setup(sigset_t *wait_mask)
{
	struct sigaction action = { .sa_sigaction = note_signal, .sa_flags = SA_NOCLDSTOP | SA_SIGINFO };
	sigset_t blocked;

	(void)sigemptyset(&blocked);
	for (size_t i = 0; i < ACCEPTOR_SIGNAL_COUNT; i++)
		(void)sigaddset(&blocked, acceptor_signals[i]);
	action.sa_mask = blocked;
	(void)sigprocmask(SIG_BLOCK, &blocked, wait_mask);
	for (size_t i = 0; i < ACCEPTOR_SIGNAL_COUNT; i++) {
		(void)sigaction(acceptor_signals[i], &action, NULL);
		(void)sigdelset(wait_mask, acceptor_signals[i]);
	}
}

/* An IPv4-mapped IPv6 source (a dual-stack listener) counts as the IPv4 address it is. */
static void source_of(const struct sockaddr_storage *address, struct tunnel *tunnel)
{
	static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	tunnel->family = 0;
	(void)memset(tunnel->source, 0, sizeof(tunnel->source));
	if (address->ss_family == AF_INET) {
		tunnel->family = AF_INET;
		(void)memcpy(tunnel->source, &((const struct sockaddr_in *)(const void *)address)->sin_addr, 4);
	} else if (address->ss_family == AF_INET6) {
		const uint8_t *bytes = ((const struct sockaddr_in6 *)(const void *)address)->sin6_addr.s6_addr;
		if (memcmp(bytes, v4_mapped, sizeof(v4_mapped)) == 0) {
			tunnel->family = AF_INET;
			(void)memcpy(tunnel->source, bytes + 12, 4);
		} else {
			tunnel->family = AF_INET6;
			(void)memcpy(tunnel->source, bytes, 16);
		}
	}
}

static unsigned live_tunnels_from(const struct tunnel *source)
{
	unsigned count = 0;

	for (unsigned i = 0; i < tunnel_count; i++)
		if (tunnels[i].live && tunnels[i].family == source->family &&
		    memcmp(tunnels[i].source, source->source, 16) == 0)
			count++;
	return count;
}

static struct tunnel *find_tunnel(pid_t pid)
{
	for (unsigned i = 0; i < tunnel_count; i++)
		if (tunnels[i].pid == pid)
			return &tunnels[i];
	return NULL;
}

static void tunnel_no_longer_live(struct tunnel *tunnel)
{
	if (tunnel->live)
		live_count--;
	tunnel->live = false;
}

static void forget_tunnel(pid_t pid)
{
	struct tunnel *tunnel = find_tunnel(pid);

	if (tunnel == NULL)
		return;
	tunnel_no_longer_live(tunnel);
	*tunnel = tunnels[--tunnel_count];
}

/* Reaps every child that has ended; true if any was a tunnel. */
static bool reap_children(bool *reload_checked, int *reload_status)
{
	bool any = false;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == reload_check_pid) {
			reload_check_pid = -1;
			*reload_checked = true;
			*reload_status = status;
			continue;
		}
		if (pid == forker.pid) {
			forker.pid = -1; /* reaped: its pid is no longer its to signal */
			forker_end(true, WIFSIGNALED(status) ? "was killed" : "exited");
			continue;
		}
		forget_tunnel(pid);
		any = true;
	}
	return any;
}

/* The children that said their tunnel ended: their slots are free, though they are not yet reaped. */
static void read_endings(void)
{
	for (int round = 0; round < ENDINGS_PER_WAKEUP; round++) {
		char byte;
		/* Aligned as a cmsghdr, and room for one SCM_CREDENTIALS. */
		union {
			struct cmsghdr header;
			char space[CMSG_SPACE(sizeof(struct ucred))]; // cppcheck-suppress unusedStructMember
		} control;
		struct iovec iov = { .iov_base = &byte, .iov_len = sizeof(byte) };
		struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
					  .msg_controllen = sizeof(control) };
		if (recvmsg(endings[0], &message, MSG_DONTWAIT) < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
				continue;
			struct ucred sender;
			(void)memcpy(&sender, CMSG_DATA(c), sizeof(sender));
			struct tunnel *tunnel = find_tunnel(sender.pid);
			if (tunnel != NULL)
				tunnel_no_longer_live(tunnel);
		}
	}
}

void acceptor_tunnel_ended(void)
{
	if (ending_fd < 0)
		return;
	/* Never blocks: a full queue loses the word, and the slot is then freed when the child is reaped. */
	(void)send(ending_fd, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	ending_fd = -1;
}

/* The record of a connection turned away: no byte read, none written, the reason says why. */
static void turn_away(int fd, const struct sockaddr_storage *from, int64_t since_ms, const char *reason)
{
	char client[INET6_ADDRSTRLEN + 16];

	log_format_address((const struct sockaddr *)from, client, sizeof(client));
	(void)close(fd);
	turned_away_count++;
	log_connection(&(struct connection_record){ .client = client, .target = "-", .reason = reason,
						    .duration_ms = (long)(clock_now_ms() - since_ms), .socks5_reply = -1 });
}

/* Why a connection from source may not start a tunnel now, in reason; NULL if it may. */
static const char *over_limit(const struct acceptor_limits *limits, const struct tunnel *source, char *reason,
			      size_t size)
{
	if (live_count >= limits->max_tunnels)
		(void)snprintf(reason, size, "turned away: %u tunnels already (--max-tunnels)", live_count);
	else if (limits->max_tunnels_per_source > 0 && source->family != 0 &&
		 live_tunnels_from(source) >= limits->max_tunnels_per_source)
		(void)snprintf(reason, size,
			       "turned away: %u tunnels already from this address (--max-tunnels-per-source)",
			       limits->max_tunnels_per_source);
	else if (tunnel_count >= tunnel_capacity)
		(void)snprintf(reason, size, "turned away: %u tunnel processes still ending", tunnel_count);
	else
		return NULL;
	return reason;
}

static void turn_away_waiting(const char *reason)
{
	for (unsigned i = 0; i < waiting_count; i++)
		turn_away(waiting[i].fd, &waiting[i].from, waiting[i].since_ms, reason);
	waiting_count = 0;
}

struct backoff {
	int delay_ms;
	int64_t until_ms;
};

/*
 * One descriptor held back for the log: the journal's or syslog's socket is
 * opened at the first line, and the first line may well be "out of
 * descriptors". Given up for it then, and taken again once accept() works.
 */
static int log_reserve = -1;

static void back_off(struct backoff *backoff, const char *what, int error)
{
	if ((error == EMFILE || error == ENFILE) && log_reserve >= 0) {
		(void)close(log_reserve);
		log_reserve = -1;
	}
	backoff->delay_ms = backoff->delay_ms == 0 ? BACKOFF_FIRST_MS : backoff->delay_ms * 2;
	if (backoff->delay_ms > BACKOFF_MAX_MS)
		backoff->delay_ms = BACKOFF_MAX_MS;
	backoff->until_ms = clock_now_ms() + backoff->delay_ms;
	log_errorf("acceptor: %s: %s; accepting again in %d ms", what, strerror(error), backoff->delay_ms);
}

static void restore_child_signals(const sigset_t *original_mask)
{
	sigset_t mask = *original_mask;

	for (size_t i = 0; i < ACCEPTOR_SIGNAL_COUNT; i++)
		(void)signal(acceptor_signals[i], SIG_DFL);
	/* After a reload's exec the mask the acceptor was started with holds its own signals: not a tunnel's. */
	(void)sigdelset(&mask, SIGCHLD);
	(void)sigdelset(&mask, SIGUSR1);
	(void)sigprocmask(SIG_SETMASK, &mask, NULL);
	signals_setup(NULL);
}

/* ---- the forker's life, and the acceptor's side of it (what it is: above its state) ---- */

/* The connection the acceptor hands down, or -1 when it is gone. */
static int receive_connection(int sock)
{
	for (;;) {
		char byte;
		union {
			struct cmsghdr header;
			char space[CMSG_SPACE(sizeof(int))]; // cppcheck-suppress unusedStructMember
		} control;
		struct iovec iov = { .iov_base = &byte, .iov_len = sizeof(byte) };
		struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
					  .msg_controllen = sizeof(control) };
		ssize_t n = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&message) : NULL;
		if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len != CMSG_LEN(sizeof(int)) || (message.msg_flags & MSG_CTRUNC) != 0)
			return -1;
		int fd;
		(void)memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		return fd;
	}
}

/* The forker's life, in its own process. Returns only in a tunnel it forked: that tunnel's connection. */
static int forker_serve(int sock)
{
	struct sandbox_report report;
	void *robust_list = NULL;
	size_t robust_list_len = 0;

	become_tunnel(served.first_fd, served.count, served.original_mask);
	/* Its tunnels need none of libsystemd: its mappings would be copied at every fork and undone at every exit. */
	systemd_unload();
	/*
	 * Its tunnels share its Landlock domain, which lets one ptrace another
	 * where no seccomp filter refuses ptrace (a container's kernel): not
	 * dumpable, a process without CAP_SYS_PTRACE (a tunnel keeps none) may
	 * not, as a tunnel of a domain of its own could not either.
	 */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* A clone is not glibc's fork(): the child's robust-mutex list is registered again by hand. */
	(void)syscall(SYS_get_robust_list, 0, &robust_list, &robust_list_len);
	title_forker();
	sandbox_enter_forker(&report, served.may_bind); /* what is missing the acceptor said already */
	for (;;) {
		int fd = receive_connection(sock);
		if (fd < 0)
			_exit(EXIT_SUCCESS);
		/*
		 * Not fork(): the tunnel must be the acceptor's child. No thread
		 * here, so no lock is held in the copy. glibc's cached thread id
		 * stays the forker's in it: tunneld never reads it (raise() and
		 * abort() ask the kernel), and no thread of the tunnel can have
		 * that id while the forker, its owner, lives.
		 */
		long pid = syscall(SYS_clone, (unsigned long)SANDBOX_FORKER_CLONE_FLAGS, NULL, NULL, NULL, NULL);
		if (pid == 0) {
			(void)syscall(SYS_set_robust_list, robust_list, robust_list_len);
			(void)close(sock);
			if (!sandbox_tighten_forked()) {
				log_error("acceptor: a tunnel could not take back the forker's rights: its connection is closed");
				_exit(EXIT_FAILURE);
			}
			return fd;
		}
		int answer = pid > 0 ? (int)pid : -errno;
		(void)close(fd);
		if (send(sock, &answer, sizeof(answer), MSG_NOSIGNAL) != (ssize_t)sizeof(answer))
			_exit(EXIT_SUCCESS);
	}
}

/*
 * Starts a forker; connection (or -1) is the one the acceptor holds now,
 * which is not the forker's to keep. Returns only -1, but in a tunnel that
 * forker forks: its connection.
 */
static int forker_start(int connection)
{
	int pair[2];

	if (!sandbox_forker_possible()) {
		forker.retry_at_ms = INT64_MAX;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		forker.retry_at_ms = clock_now_ms() + FORKER_RETRY_MS;
		log_errorf("acceptor: cannot start a forker: %s; the acceptor forks each tunnel itself", strerror(errno));
		return -1;
	}
	sandbox_files_note(&forker.files); /* before it opens them: a file replaced in between starts another */
	pid_t pid = fork();
	if (pid == 0) {
		(void)close(pair[0]);
		if (connection >= 0)
			(void)close(connection);
		return forker_serve(pair[1]);
	}
	(void)close(pair[1]);
	if (pid < 0) {
		(void)close(pair[0]);
		forker.retry_at_ms = clock_now_ms() + FORKER_RETRY_MS;
		log_errorf("acceptor: cannot start a forker: %s; the acceptor forks each tunnel itself", strerror(errno));
		return -1;
	}
	forker.pid = pid;
	forker.socket = pair[0];
	return -1;
}

/*
 * Every child of this process that is neither a tunnel of the table nor the
 * reload's check: one a lost forker cloned but did not answer for, which
 * would serve a connection uncounted, beside the one turned away for it.
 */
static void kill_untracked_children(void)
{
	char path[64], text[8192];
	(void)snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;

	if (fd >= 0)
		(void)close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	for (char *at = text, *end = NULL;; at = end) {
		long pid = strtol(at, &end, 10);
		if (end == at)
			break;
		if (pid > 0 && pid != (long)reload_check_pid && find_tunnel((pid_t)pid) == NULL)
			(void)kill((pid_t)pid, SIGKILL);
	}
}

/*
 * The forker's tunnel for connection fd: its pid, or -1 with errno. When
 * the forker was lost, forker.pid is -1 and *handed says whether it was so
 * after taking fd: then it may have forked a tunnel for it already, and the
 * connection must not get another.
 */
static pid_t forker_fork(int fd, bool *handed)
{
	char byte = 'c';
	union {
		struct cmsghdr header;
		char space[CMSG_SPACE(sizeof(int))]; // cppcheck-suppress unusedStructMember
	} control;
	(void)memset(&control, 0, sizeof(control));
	struct iovec iov = { .iov_base = &byte, .iov_len = sizeof(byte) };
	struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
				  .msg_controllen = sizeof(control) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&message);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	(void)memcpy(CMSG_DATA(c), &fd, sizeof(fd));

	struct pollfd answered = { .fd = forker.socket, .events = POLLIN };
	int answer = 0;
	siginfo_t info = { 0 };
	*handed = false;
	if (sendmsg(forker.socket, &message, MSG_NOSIGNAL) < 0) {
		forker_end(true, "is gone");
		return -1;
	}
	*handed = true;
	if (poll(&answered, 1, FORKER_ANSWER_MAX_MS) <= 0 ||
	    recv(forker.socket, &answer, sizeof(answer), 0) != (ssize_t)sizeof(answer)) {
		forker_end(true, "did not answer");
	} else if (answer < 0)
		errno = -answer;
	/* Only as trusted as the forker: a pid the stop would signal must be this process's child. */
	else if (waitid(P_PID, (id_t)answer, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
		forker_end(true, "answered a pid not the acceptor's child");
	else
		return (pid_t)answer;
	return -1;
}

/*
 * Forks the tunnel of the connection fd, by the forker if there is one. In
 * a tunnel, its connection's fd; otherwise -1. A fork that fails turns the
 * connection away.
 */
static int start_tunnel(int fd, const struct sockaddr_storage *from, const struct tunnel *source,
			struct backoff *backoff)
{
	struct tunnel tunnel = *source;

	if (forker.pid > 0 && sandbox_files_changed(&forker.files))
		forker_end(false, NULL); /* its tunnels could not read the new file */
	if (forker.pid < 0 && clock_now_ms() >= forker.retry_at_ms) {
		int child_fd = forker_start(fd);
		if (child_fd >= 0)
			return child_fd;
	}
	bool handed = false;
	tunnel.pid = -1;
	if (forker.pid > 0)
		tunnel.pid = forker_fork(fd, &handed);
	if (forker.pid < 0 && handed) {
		kill_untracked_children();
		turn_away(fd, from, clock_now_ms(), "turned away: the forker did not answer");
		return -1;
	}
	if (forker.pid < 0) {
		tunnel.pid = fork();
		if (tunnel.pid == 0) {
			become_tunnel(served.first_fd, served.count, served.original_mask);
			return fd;
		}
	}
	if (tunnel.pid < 0) {
		int error = errno;
		turn_away(fd, from, clock_now_ms(), "turned away: the acceptor could not fork");
		back_off(backoff, "fork", error);
		return -1;
	}
	(void)close(fd);
	tunnel.live = true;
	tunnels[tunnel_count++] = tunnel;
	live_count++;
	backoff->delay_ms = 0;
	if (log_reserve < 0)
		log_reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return -1;
}

/*
 * The connections that waited, in the order they came: each starts its
 * tunnel once a slot is free, or is turned away when its wait is over. In
 * the child, the connection's fd; otherwise -1.
 */
static int admit_waiting(const struct acceptor_limits *limits, struct backoff *backoff)
{
	int64_t now_ms = clock_now_ms();
	unsigned kept = 0;

	if (waiting_count == 0)
		return -1;
	read_endings(); /* the freshest word first */
	/* A connection dealt with is marked, and the list closed up after: a child may return half-way. */
	for (unsigned i = 0; i < waiting_count; i++) {
		struct waiting *w = &waiting[i];
		char reason[96];
		const char *over = over_limit(limits, &w->source, reason, sizeof(reason));
		int fd = w->fd;
		if (over == NULL) {
			w->fd = -1;
			int child_fd = start_tunnel(fd, &w->from, &w->source, backoff);
			if (child_fd >= 0)
				return child_fd;
		} else if (now_ms - w->since_ms >= LIMIT_WAIT_MS) {
			w->fd = -1;
			turn_away(fd, &w->from, w->since_ms, over);
		}
	}
	for (unsigned i = 0; i < waiting_count; i++)
		if (waiting[i].fd >= 0)
			waiting[kept++] = waiting[i];
	waiting_count = kept;
	return -1;
}

/*
 * Accepts what is waiting on listener, up to ACCEPTS_PER_WAKEUP. In the
 * child, the accepted fd; otherwise -1.
 */
static int accept_waiting(int listener, const struct acceptor_limits *limits, struct backoff *backoff)
{
	for (int round = 0; round < ACCEPTS_PER_WAKEUP; round++) {
		struct sockaddr_storage from = { 0 };
		socklen_t from_len = sizeof(from);
		int fd = accept4(listener, (struct sockaddr *)&from, &from_len, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
				continue; /* that connection is gone, or a firewall said no: the next one */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				back_off(backoff, "accept", errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_errorf("acceptor: accept: %s", strerror(errno));
				exit(EXIT_FAILURE);
			}
			return -1;
		}
		struct tunnel source;
		char reason[96];
		source_of(&from, &source);
		const char *over = over_limit(limits, &source, reason, sizeof(reason));
		if (over != NULL) {
			/* The freshest word first: endings already queued free their slots now. */
			read_endings();
			over = over_limit(limits, &source, reason, sizeof(reason));
		}
		if (over != NULL && waiting_count < WAITING_MAX) {
			waiting[waiting_count++] = (struct waiting){ .fd = fd, .from = from, .source = source,
								     .since_ms = clock_now_ms() };
			continue;
		}
		if (over != NULL) {
			turn_away(fd, &from, clock_now_ms(), over);
			continue;
		}
		int child_fd = start_tunnel(fd, &from, &source, backoff);
		if (child_fd >= 0)
			return child_fd;
	}
	return -1;
}

/* ---- reload: check, then execute ourselves again ---- */

/* Tells each `tunneld --reload` waiting how the reload ended. */
static void answer_reload_waiters(bool reloaded)
{
	for (sig_atomic_t i = 0; i < reload_waiter_count; i++)
		(void)sigqueue(reload_waiters[i], RELOAD_ANSWER_SIGNAL, (union sigval){ .sival_int = reloaded ? 0 : 1 });
	reload_waiter_count = 0;
}

/* A reload that will not happen: said in the log, to those waiting, and to the manager (READY again). */
static void clock_text(char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm local;

	if (localtime_r(&now, &local) == NULL || strftime(out, size, "%H:%M:%S", &local) == 0)
		(void)snprintf(out, size, "-");
}

static void refuse_reload(void)
{
	answer_reload_waiters(false);
	clock_text(reload_refused_at, sizeof(reload_refused_at));
	(void)systemd_notify("READY=1\nSTATUS=reload refused; serving with the options it had");
}

/*
 * A file handed over as a credential is systemd's copy, made when the
 * service started: a reload would check and serve that copy, however the
 * file it was loaded from has changed since.
 */
static bool refuse_reload_of_credentials(const struct acceptor_limits *limits)
{
	for (size_t i = 0; i < 2; i++) {
		if (limits->files[i] == NULL || !config_file_is_credential(limits->files[i]))
			continue;
		log_errorf("acceptor: reload refused: %s is a credential (LoadCredential=), which systemd copies only when "
			   "the service starts, so a reload cannot see an edit; restart the service instead (systemctl "
			   "restart: its tunnels run on), or let the acceptor read the file itself (tunneld(8) ACCEPTOR)",
			   limits->files[i]);
		refuse_reload();
		return true;
	}
	return false;
}

static void start_reload_check(char **argv, const struct acceptor_limits *limits)
{
	static char check[] = "--check";
	char paths[2][4096];
	const char *resolved[2];
	int argc = 0;

	if (refuse_reload_of_credentials(limits))
		return;
	while (argv[argc] != NULL)
		argc++;
	(void)systemd_notify("RELOADING=1\nSTATUS=checking a reload");
	for (size_t i = 0; i < 2; i++)
		resolved[i] = limits->files[i] != NULL ? config_file_resolve(limits->files[i], paths[i], sizeof(paths[i])) : NULL;
	config_file_pin(resolved, 2);
	reload_check_superseded = false;
	reload_check_pid = fork();
	if (reload_check_pid == 0) {
		sigset_t none;
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL); /* a check is stopped like any command */
		char **check_argv = calloc((size_t)argc + 2, sizeof(*check_argv));
		if (check_argv == NULL)
			_exit(EXIT_FAILURE);
		/* Right after the name: an argument "--" would make a later one a word, not an option. */
		check_argv[0] = argv[0];
		check_argv[1] = check;
		(void)memcpy(check_argv + 2, argv + 1, (size_t)(argc - 1) * sizeof(*check_argv));
		(void)close(STDOUT_FILENO); /* "options OK" is for a person; the acceptor logs the outcome */
		(void)execv("/proc/self/exe", check_argv);
		_exit(127);
	}
	if (reload_check_pid < 0) {
		log_errorf("acceptor: reload: cannot fork the check: %s; still serving with the options it had",
			   strerror(errno));
		config_file_unpin();
		refuse_reload();
	}
	reload_check_deadline_ms = clock_now_ms() + RELOAD_CHECK_MAX_MS;
	reload_check_killed = false;
}

/* A reload asked for: checked now, or, while a check runs on copies now stale, checked again after it. */
static void request_reload(char **argv, const struct acceptor_limits *limits)
{
	if (reload_check_pid > 0) {
		reload_check_superseded = true;
		(void)kill(reload_check_pid, SIGKILL); /* its answer would be about files since replaced */
		return;
	}
	start_reload_check(argv, limits);
}

/* The table as TUNNELS_VARIABLE's value; NULL if it cannot be made. */
static char *tunnels_text(void)
{
	size_t size = (size_t)tunnel_count * (20 + INET6_ADDRSTRLEN) + 1;
	char *text = malloc(size);
	size_t used = 0;

	if (text == NULL)
		return NULL;
	text[0] = '\0';
	for (unsigned i = 0; i < tunnel_count; i++) {
		char address[INET6_ADDRSTRLEN] = "-";
		if (tunnels[i].family != 0)
			(void)inet_ntop(tunnels[i].family, tunnels[i].source, address, sizeof(address));
		int n = snprintf(text + used, size - used, "%s%ld/%s%s", i > 0 ? "," : "", (long)tunnels[i].pid,
				 address, tunnels[i].live ? "" : "/ended");
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
	return text;
}

/* Those that waited for the reload that executed this process: they are told once it serves. */
static void adopt_reload_waiters(void)
{
	const char *text = getenv(RELOAD_WAITERS_VARIABLE);

	for (const char *at = text; at != NULL && *at != '\0' && reload_waiter_count < RELOAD_WAITERS_MAX;) {
		char *end = NULL;
		long pid = strtol(at, &end, 10);
		if (end == at)
			break;
		if (pid > 1 && pid <= INT32_MAX)
			reload_waiters[reload_waiter_count++] = (pid_t)pid;
		at = *end == ',' ? end + 1 : end;
	}
	(void)unsetenv(RELOAD_WAITERS_VARIABLE);
}

/*
 * Takes the table a reload handed over. The variable is only as trusted as
 * the environment: every pid must be a child of this very process, which
 * waitid() answers without reaping it.
 */
static void adopt_tunnels(void)
{
	const char *text = getenv(TUNNELS_VARIABLE);
	char *copy = text != NULL ? strdup(text) : NULL;
	char *save = NULL;

	(void)unsetenv(TUNNELS_VARIABLE);
	if (text == NULL)
		return;
	if (copy == NULL) {
		log_error("acceptor: reloaded, but out of memory for the tunnels it had: they run on, uncounted");
		return;
	}
	for (char *item = strtok_r(copy, ",", &save); item != NULL && tunnel_count < tunnel_capacity;
	     item = strtok_r(NULL, ",", &save)) {
		struct tunnel tunnel = { .live = true };
		char *slash = strchr(item, '/');
		char *end = NULL;
		siginfo_t info = { 0 };
		if (slash == NULL)
			continue;
		*slash = '\0';
		char *ended = strchr(slash + 1, '/');
		if (ended != NULL) {
			if (strcmp(ended, "/ended") != 0)
				continue;
			*ended = '\0';
			tunnel.live = false;
		}
		long pid = strtol(item, &end, 10);
		if (end == item || *end != '\0' || pid <= 0 || pid > INT32_MAX)
			continue;
		tunnel.pid = (pid_t)pid;
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
			continue;
		if (find_tunnel(tunnel.pid) != NULL) /* once: a pid listed twice would hold a slot no reaping frees */
			continue;
		if (inet_pton(AF_INET, slash + 1, tunnel.source) == 1)
			tunnel.family = AF_INET;
		else if (inet_pton(AF_INET6, slash + 1, tunnel.source) == 1)
			tunnel.family = AF_INET6;
		tunnels[tunnel_count++] = tunnel;
		live_count += tunnel.live ? 1 : 0;
	}
	free(copy);
	char message[96];
	(void)snprintf(message, sizeof(message), "acceptor: reloaded; %u tunnels carried on", live_count);
	log_notice(message);
	adopt_reload_waiters();
}

/* Returns only when the exec failed: the acceptor serves on as it was. */
static void reexecute(int first_fd, int count, char **argv)
{
	char number[32];
	char *table = tunnels_text();

	if (table == NULL) {
		log_error("acceptor: reload: out of memory; still serving with the options it had");
		config_file_unpin();
		refuse_reload();
		return;
	}
	/* A connection waiting for a slot is not handed across; it gets its record. */
	turn_away_waiting("turned away: over the limits when the acceptor reloaded");
	(void)snprintf(number, sizeof(number), "%d", count);
	(void)setenv("LISTEN_FDS", number, 1);
	(void)snprintf(number, sizeof(number), "%ld", (long)getpid());
	(void)setenv("LISTEN_PID", number, 1);
	(void)setenv(TUNNELS_VARIABLE, table, 1);
	free(table);
	char waiters[RELOAD_WAITERS_MAX * 12] = "";
	for (sig_atomic_t i = 0; i < reload_waiter_count; i++) {
		size_t used = strlen(waiters);
		(void)snprintf(waiters + used, sizeof(waiters) - used, "%s%ld", i > 0 ? "," : "", (long)reload_waiters[i]);
	}
	(void)setenv(RELOAD_WAITERS_VARIABLE, waiters, 1);
	/* The channel goes across too: the tunnels carried on still tell their end by it. */
	(void)snprintf(number, sizeof(number), "%d,%d", endings[0], endings[1]);
	(void)setenv(ENDINGS_VARIABLE, number, 1);
	for (int fd = first_fd; fd < first_fd + count; fd++)
		(void)fcntl(fd, F_SETFD, 0);
	(void)fcntl(endings[0], F_SETFD, 0);
	(void)fcntl(endings[1], F_SETFD, 0);
	(void)execv("/proc/self/exe", argv);
	int error = errno;
	for (int fd = first_fd; fd < first_fd + count; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	(void)fcntl(endings[0], F_SETFD, FD_CLOEXEC);
	(void)fcntl(endings[1], F_SETFD, FD_CLOEXEC);
	(void)unsetenv(TUNNELS_VARIABLE);
	(void)unsetenv(RELOAD_WAITERS_VARIABLE);
	(void)unsetenv(ENDINGS_VARIABLE);
	config_file_unpin();
	log_errorf("acceptor: reload: cannot execute /proc/self/exe: %s; still serving with the options it had",
		   strerror(error));
	refuse_reload();
}

static void finish_reload(int status, int first_fd, int count, char **argv)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		reexecute(first_fd, count, argv);
		return;
	}
	config_file_unpin();
	if (!reload_check_killed) /* when it was, the kill said so */
		log_error("acceptor: reload refused: the options or their files do not check (tunneld --check says "
			  "why, above); still serving with the options it had");
	refuse_reload();
}

/* ---- stop ---- */

/* This process's cgroup v2 path ("/system.slice/x.service"), from /proc/PID/cgroup's "0::" line. */
static bool cgroup_of(const char *pid, char *out, size_t size)
{
	char path[64], text[4096];
	int fd;

	(void)snprintf(path, sizeof(path), "/proc/%s/cgroup", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (fd >= 0)
		(void)close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	const char *line = strncmp(text, "0::", 3) == 0 ? text : strstr(text, "\n0::");
	if (line == NULL)
		return false;
	line += line[0] == '\n' ? 4 : 3;
	size_t len = strcspn(line, "\n");
	if (len == 0 || len >= size)
		return false;
	(void)memcpy(out, line, len);
	out[len] = '\0';
	return true;
}

/*
 * The processes an earlier acceptor of this service left running, after a
 * restart or a crash: its tunnels, no longer anybody's children here, but
 * still in the service's control group. That group is this process's own
 * when systemd started it as a service: its parent is the manager, it has
 * an INVOCATION_ID, its cgroup is a .service (under an activator of any
 * other kind there is no such group of its own, and nothing is looked
 * for). Every process in it but this one and its children is one of the
 * service's, which a stop ends, as KillMode=control-group would; /proc
 * cannot tell more, since a restart puts the new acceptor in a user
 * namespace of its own (PrivateUsers=), where the old tunnels' entries are
 * hidden (ProtectProc=invisible). Each is opened as a pidfd, so the process
 * signalled is the one listed. Their pidfds into pidfds; how many.
 */
static unsigned open_orphaned_tunnels(int *pidfds, unsigned capacity)
{
	char cgroup[4096], procs[4200], self[24];
	unsigned count = 0;
	FILE *list = NULL;

	(void)snprintf(self, sizeof(self), "%ld", (long)getpid());
	if (getenv("INVOCATION_ID") == NULL || getppid() != 1 || !cgroup_of(self, cgroup, sizeof(cgroup)) ||
	    strlen(cgroup) < 8 || strcmp(cgroup + strlen(cgroup) - 8, ".service") != 0)
		return 0;
	/* cgroup2 alone, or the hybrid layout's unified hierarchy. */
	static const char *const mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]) && list == NULL; i++) {
		(void)snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", mounts[i], cgroup);
		list = fopen(procs, "re");
	}
	if (list == NULL)
		return 0;
	char line[32];
	while (count < capacity && fgets(line, sizeof(line), list) != NULL) {
		char *end = NULL;
		long pid = strtol(line, &end, 10);
		if (end == line || pid <= 0 || pid > INT32_MAX || pid == (long)getpid() || find_tunnel((pid_t)pid) != NULL)
			continue;
		int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		if (pidfd >= 0)
			pidfds[count++] = pidfd;
	}
	(void)fclose(list);
	return count;
}

static void signal_orphans(const int *pidfds, unsigned count, int signal_number)
{
	for (unsigned i = 0; i < count; i++)
		(void)syscall(SYS_pidfd_send_signal, pidfds[i], signal_number, NULL, 0);
}

static void __attribute__((noreturn)) stop_tunnels(const sigset_t *wait_mask)
{
	static struct pollfd orphans[ORPHANS_MAX];
	static int orphan_fds[ORPHANS_MAX];
	int64_t deadline_ms = clock_now_ms() + STOP_GRACE_MS;
	bool killed = false;

	(void)systemd_notify("STOPPING=1");
	forker_end(false, NULL);
	turn_away_waiting("turned away: the acceptor is stopping");
	if (reload_check_pid > 0)
		(void)kill(reload_check_pid, SIGKILL);
	answer_reload_waiters(false);
	unsigned orphan_count = open_orphaned_tunnels(orphan_fds, ORPHANS_MAX);
	for (unsigned i = 0; i < tunnel_count; i++)
		(void)kill(tunnels[i].pid, SIGTERM);
	signal_orphans(orphan_fds, orphan_count, SIGTERM);
	for (;;) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			forget_tunnel(pid);
		if (pid < 0 && errno == ECHILD)
			tunnel_count = 0;
		/* An orphan that has ended: its pidfd reads as ready. */
		unsigned kept = 0;
		for (unsigned i = 0; i < orphan_count; i++) {
			struct pollfd ended = { .fd = orphan_fds[i], .events = POLLIN };
			if (poll(&ended, 1, 0) > 0)
				(void)close(orphan_fds[i]);
			else
				orphan_fds[kept++] = orphan_fds[i];
		}
		orphan_count = kept;
		if (tunnel_count == 0 && orphan_count == 0)
			break;
		int64_t now_ms = clock_now_ms();
		if (!killed && now_ms >= deadline_ms) {
			for (unsigned i = 0; i < tunnel_count; i++)
				(void)kill(tunnels[i].pid, SIGKILL);
			signal_orphans(orphan_fds, orphan_count, SIGKILL);
			killed = true;
		}
		for (unsigned i = 0; i < orphan_count; i++)
			orphans[i] = (struct pollfd){ .fd = orphan_fds[i], .events = POLLIN };
		int64_t wait_ms = killed ? 1000 : deadline_ms - now_ms;
		struct timespec timeout = { .tv_sec = (time_t)(wait_ms / 1000), .tv_nsec = (long)(wait_ms % 1000) * 1000000L };
		(void)ppoll(orphans, orphan_count, &timeout, wait_mask); /* SIGCHLD, or an orphan's end, ends it */
	}
	exit(EXIT_SUCCESS);
}

/* ---- the loop ---- */

/* In a child: what belongs to the acceptor is closed, and its signals are the tunnel's again. */
static void become_tunnel(int first_fd, int count, const sigset_t *original_mask)
{
	for (int fd = first_fd; fd < first_fd + count; fd++)
		(void)close(fd);
	if (forker.socket >= 0)
		(void)close(forker.socket);
	if (log_reserve >= 0)
		(void)close(log_reserve);
	for (unsigned i = 0; i < waiting_count; i++)
		if (waiting[i].fd >= 0)
			(void)close(waiting[i].fd);
	(void)close(endings[0]);
	ending_fd = endings[1];
	config_file_unpin(); /* forked during a reload: those copies are not the tunnel's */
	free(tunnels);
	log_bound_writes(0); /* a tunnel's record has the bound signals.c gives it */
	restore_child_signals(original_mask);
}

/* An fd the environment names is taken only if it is what the acceptor made: a unix datagram socket. */
static bool is_ending_socket(int fd)
{
	int domain = 0, type = 0;
	socklen_t len = sizeof(int);

	return fd > STDERR_FILENO && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX &&
	       (len = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len)) == 0 && type == SOCK_DGRAM;
}

/* The pair a reload handed over, if it is one; true when taken. */
static bool adopt_endings(void)
{
	const char *text = getenv(ENDINGS_VARIABLE);
	char *comma = NULL, *end = NULL;
	long read_end = text != NULL ? strtol(text, &comma, 10) : -1;
	long write_end = comma != NULL && *comma == ',' ? strtol(comma + 1, &end, 10) : -1;
	bool taken = end != NULL && *end == '\0' && read_end < INT32_MAX && write_end < INT32_MAX &&
		     is_ending_socket((int)read_end) && is_ending_socket((int)write_end);

	(void)unsetenv(ENDINGS_VARIABLE);
	if (!taken)
		return false;
	endings[0] = (int)read_end;
	endings[1] = (int)write_end;
	(void)fcntl(endings[0], F_SETFD, FD_CLOEXEC);
	(void)fcntl(endings[1], F_SETFD, FD_CLOEXEC);
	return true;
}

static void open_endings(void)
{
	int on = 1;

	if (adopt_endings())
		return;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, endings) < 0 ||
	    setsockopt(endings[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		log_errorf("acceptor: cannot open the channel tunnels end by: %s", strerror(errno));
		exit(EXIT_FAILURE);
	}
}

static int compare_sources(const void *a, const void *b)
{
	const struct tunnel *x = a, *y = b;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->source, y->source, sizeof(x->source));
}

/* Distinct client addresses among the live tunnels (a unix socket's clients count as one). */
static unsigned live_sources(void)
{
	unsigned n = 0, distinct = 0;

	for (unsigned i = 0; i < tunnel_count; i++)
		if (tunnels[i].live)
			sources_scratch[n++] = tunnels[i];
	qsort(sources_scratch, n, sizeof(*sources_scratch), compare_sources);
	for (unsigned i = 0; i < n; i++)
		if (i == 0 || compare_sources(&sources_scratch[i - 1], &sources_scratch[i]) != 0)
			distinct++;
	return distinct;
}

/*
 * The title follows every change at once (a memcpy); the manager's STATUS=
 * at most once a STATUS_INTERVAL_MS, since each is a message PID 1 handles.
 * Returns the ms until a change not yet told is due, or -1.
 */
static int report_state(int64_t now_ms)
{
	static unsigned titled_live = UINT32_MAX, titled_waiting = UINT32_MAX;
	static unsigned told_live = UINT32_MAX, told_waiting, told_turned_away;
	static char told_refused_at[sizeof(reload_refused_at)];
	static int64_t told_at_ms = INT64_MIN / 2;

	if (live_count != titled_live || waiting_count != titled_waiting) {
		title_acceptor(live_count, waiting_count);
		titled_live = live_count;
		titled_waiting = waiting_count;
	}
	if (live_count == told_live && waiting_count == told_waiting && turned_away_count == told_turned_away &&
	    strcmp(reload_refused_at, told_refused_at) == 0)
		return -1;
	if (now_ms < told_at_ms + STATUS_INTERVAL_MS)
		return (int)(told_at_ms + STATUS_INTERVAL_MS - now_ms);
	char status[256];
	unsigned sources = live_sources();
	(void)snprintf(status, sizeof(status),
		       "STATUS=%u tunnel%s from %u address%s; %u waiting; %u turned away; options and files read %s%s%s",
		       live_count, live_count == 1 ? "" : "s", sources, sources == 1 ? "" : "es", waiting_count,
		       turned_away_count, options_read_at, reload_refused_at[0] != '\0' ? "; a reload refused at " : "",
		       reload_refused_at);
	(void)systemd_notify(status);
	told_live = live_count;
	told_waiting = waiting_count;
	told_turned_away = turned_away_count;
	(void)memcpy(told_refused_at, reload_refused_at, sizeof(told_refused_at));
	told_at_ms = now_ms;
	return -1;
}

int acceptor_run(int first_fd, int count, const struct acceptor_limits *limits, char **argv,
		 const sigset_t *original_mask)
{
	struct pollfd waits[ACCEPTOR_MAX_LISTENERS + 1];
	struct backoff backoff = { 0 };
	sigset_t wait_mask;
	int64_t idle_since_ms = clock_now_ms();

	acceptor_signals_setup(&wait_mask);
	log_bound_writes(LOG_WRITE_MAX_MS); /* a log sink that stops taking lines must not stop the accepting */
	/* A reload executes /proc/self/exe, which would name the process "exe" in ps, pgrep and the journal. */
	const char *name = strrchr(argv[0], '/');
	(void)prctl(PR_SET_NAME, name != NULL ? name + 1 : argv[0]);
	/*
	 * Room for every live tunnel, and for processes whose tunnel has ended
	 * and that are not reaped yet (their record, their exit): as many again
	 * and 256 more. The table bounds the processes as the limits bound the tunnels.
	 */
	tunnel_capacity = 2 * limits->max_tunnels + ENDING_PROCESSES_MIN;
	tunnels = calloc(tunnel_capacity, sizeof(*tunnels));
	sources_scratch = calloc(tunnel_capacity, sizeof(*sources_scratch));
	clock_text(options_read_at, sizeof(options_read_at));
	if (tunnels == NULL || sources_scratch == NULL) {
		log_error("acceptor: out of memory for the tunnel table");
		exit(EXIT_FAILURE);
	}
	adopt_tunnels();
	open_endings();
	log_reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < count; i++) {
		int fd = first_fd + i;
		int flags = fcntl(fd, F_GETFL);
		/* Never block in accept(): a connection reset before it is taken must not hang the acceptor. */
		if (flags >= 0)
			(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	}
	served.first_fd = first_fd;
	served.count = count;
	served.original_mask = original_mask;
	served.may_bind = limits->may_bind;
	int child_fd = forker_start(-1);
	if (child_fd >= 0)
		return child_fd;
	/* Serving from here: systemctl start (Type=notify) returns now, and a reload waited for is done. */
	(void)systemd_notify("READY=1\nSTATUS=accepting");
	answer_reload_waiters(true);

	for (;;) {
		bool reload_checked = false;
		int reload_status = 0;
		child_exited = 0;
		if (reap_children(&reload_checked, &reload_status))
			idle_since_ms = clock_now_ms();
		if (stop_requested)
			stop_tunnels(&wait_mask);
		if (restart_requested) {
			turn_away_waiting("turned away: the acceptor is restarting");
			answer_reload_waiters(false);
			exit(EXIT_SUCCESS);
		}
		if (reload_checked && reload_check_superseded) {
			config_file_unpin();
			start_reload_check(argv, limits);
		} else if (reload_checked) {
			finish_reload(reload_status, first_fd, count, argv);
		}
		if (reload_requested) {
			reload_requested = 0;
			request_reload(argv, limits);
		}
		child_fd = admit_waiting(limits, &backoff);
		if (child_fd >= 0)
			return child_fd;

		int64_t now_ms = clock_now_ms();
		int timeout_ms = report_state(now_ms);
		if (reload_check_pid > 0 && now_ms >= reload_check_deadline_ms) {
			/* Said now: a check stuck in the kernel may not be reaped for a long time. */
			(void)kill(reload_check_pid, SIGKILL);
			if (!reload_check_killed && !reload_check_superseded)
				log_errorf("acceptor: reload refused: tunneld --check ran past %d s and was killed; still "
					   "serving with the options it had",
					   RELOAD_CHECK_MAX_MS / 1000);
			reload_check_killed = true;
			reload_check_deadline_ms = now_ms + RELOAD_CHECK_MAX_MS;
		}
		if (reload_check_pid > 0 && (timeout_ms < 0 || reload_check_deadline_ms - now_ms < timeout_ms))
			timeout_ms = (int)(reload_check_deadline_ms - now_ms);
		if (waiting_count > 0) {
			int64_t wait_ms = waiting[0].since_ms + LIMIT_WAIT_MS - now_ms;
			for (unsigned i = 1; i < waiting_count; i++)
				if (waiting[i].since_ms + LIMIT_WAIT_MS - now_ms < wait_ms)
					wait_ms = waiting[i].since_ms + LIMIT_WAIT_MS - now_ms;
			if (wait_ms < 0)
				wait_ms = 0;
			if (timeout_ms < 0 || wait_ms < timeout_ms)
				timeout_ms = (int)wait_ms;
		}
		if (limits->exit_idle_seconds > 0 && tunnel_count == 0 && waiting_count == 0 && reload_check_pid < 0) {
			int64_t idle_end_ms = idle_since_ms + (int64_t)limits->exit_idle_seconds * 1000;
			if (now_ms >= idle_end_ms)
				exit(EXIT_SUCCESS); /* the socket unit starts us again on the next connection */
			if (timeout_ms < 0 || idle_end_ms - now_ms < timeout_ms)
				timeout_ms = (int)(idle_end_ms - now_ms);
		}
		bool backing_off = backoff.until_ms > now_ms;
		if (backing_off && (timeout_ms < 0 || backoff.until_ms - now_ms < timeout_ms))
			timeout_ms = (int)(backoff.until_ms - now_ms);
		for (int i = 0; i < count; i++)
			waits[i] = (struct pollfd){ .fd = backing_off ? -1 : first_fd + i, .events = POLLIN };
		waits[count] = (struct pollfd){ .fd = endings[0], .events = POLLIN };

		struct timespec timeout = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
		int ready = ppoll(waits, (nfds_t)count + 1, timeout_ms < 0 ? NULL : &timeout, &wait_mask);
		if (ready <= 0)
			continue;
		if (waits[count].revents != 0)
			read_endings();
		for (int i = 0; i < count; i++) {
			if (waits[i].revents == 0)
				continue;
			child_fd = accept_waiting(first_fd + i, limits, &backoff);
			if (child_fd >= 0)
				return child_fd;
			idle_since_ms = clock_now_ms();
		}
	}
}

int acceptor_request_reload(const char *pid_text)
{
	char *end = NULL;
	long pid = strtol(pid_text, &end, 10);
	sigset_t answer;
	siginfo_t info;

	if (end == pid_text || *end != '\0' || pid <= 1 || pid > INT32_MAX) {
		(void)fprintf(stderr, "tunneld: --reload: '%s' is not an acceptor's pid\n", pid_text);
		return 2;
	}
	(void)sigemptyset(&answer);
	(void)sigaddset(&answer, RELOAD_ANSWER_SIGNAL);
	(void)sigprocmask(SIG_BLOCK, &answer, NULL); /* before asking: an answer cannot come too early */
	if (sigqueue((pid_t)pid, SIGHUP, (union sigval){ .sival_int = 0 }) < 0) {
		(void)fprintf(stderr, "tunneld: --reload: cannot signal %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	int64_t deadline_ms = clock_now_ms() + RELOAD_WAIT_MAX_MS;
	for (;;) {
		int64_t left_ms = deadline_ms - clock_now_ms();
		struct timespec timeout = { .tv_sec = (time_t)(left_ms / 1000), .tv_nsec = (long)(left_ms % 1000) * 1000000L };
		if (left_ms <= 0 || sigtimedwait(&answer, &info, &timeout) < 0) {
			if (left_ms > 0 && errno == EINTR)
				continue;
			(void)fprintf(stderr, "tunneld: --reload: no answer from %ld within %d s\n", pid,
				      RELOAD_WAIT_MAX_MS / 1000);
			return 1;
		}
		if (info.si_pid != (pid_t)pid || info.si_code != SI_QUEUE)
			continue; /* not the acceptor's answer */
		if (info.si_value.sival_int == 0)
			return 0;
		(void)fprintf(stderr, "tunneld: --reload: the acceptor refused the reload, and serves on with the "
				      "options it had; its log says why\n");
		return 1;
	}
}
