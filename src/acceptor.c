/*
 * acceptor: accept, fork, and let the child be a one-shot tunneld.
 *
 * The acceptor holds a table of its children (pid and source address), for
 * the limits and for a stop. It waits in one ppoll() with its signals let
 * through there only, as signals.c does for a tunnel:
 *   SIGCHLD          reap at once, free the slot;
 *   SIGTERM, SIGINT  stop: each tunnel is sent SIGTERM and writes its record;
 *   SIGUSR1          restart (the unit's RestartKillSignal=): exit now, the
 *                    tunnels run on to their end;
 *   SIGHUP           reload: the files the options name are copied
 *                    (config_file_pin), `tunneld --check ARGV` proves the
 *                    options and those copies, then the acceptor executes
 *                    itself again with its listeners, its table and the
 *                    same copies: what was checked is what is served.
 * A resource shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM, a failed fork) stops
 * accepting for a while, doubling up to a second: never a spin.
 */
#include "acceptor.h"

#include "clock.h"
#include "config_file.h"
#include "log.h"
#include "signals.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 1000
#define ACCEPTS_PER_WAKEUP 32          /* then the other listeners, and the reaping, get their turn */
#define STOP_GRACE_MS (FINISH_AFTER_STOP_MS + 2000) /* then SIGKILL: a child stuck past its own deadline */
#define RELOAD_CHECK_MAX_MS 30000 /* a check stuck (a file on a hung mount) is killed, the reload refused */
/* The table handed across a reload's exec: "pid/address,pid/address,..." */
#define TUNNELS_VARIABLE "TUNNELD_ACCEPTOR_TUNNELS"

struct tunnel {
	pid_t pid;
	int family;              /* AF_INET, AF_INET6, or 0: no IP source (a unix socket) */
	uint8_t source[16];
};

static struct tunnel *tunnels;
static unsigned tunnel_count;
static unsigned tunnel_capacity;

static pid_t reload_check_pid = -1;
static int64_t reload_check_deadline_ms;
static bool reload_check_killed; /* it ran past RELOAD_CHECK_MAX_MS */

static volatile sig_atomic_t child_exited;
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t restart_requested;
static volatile sig_atomic_t reload_requested;

static void note_signal(int signal_number)
{
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
	struct sigaction action = { .sa_handler = note_signal, .sa_flags = SA_NOCLDSTOP };
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

static unsigned tunnels_from(const struct tunnel *source)
{
	unsigned count = 0;

	for (unsigned i = 0; i < tunnel_count; i++)
		if (tunnels[i].family == source->family && memcmp(tunnels[i].source, source->source, 16) == 0)
			count++;
	return count;
}

static void forget_tunnel(pid_t pid)
{
	for (unsigned i = 0; i < tunnel_count; i++)
		if (tunnels[i].pid == pid) {
			tunnels[i] = tunnels[--tunnel_count];
			return;
		}
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
		forget_tunnel(pid);
		any = true;
	}
	return any;
}

/* The record of a connection turned away: no byte read, none written, the reason says why. */
static void turn_away(int fd, const struct sockaddr_storage *from, const char *reason)
{
	char client[INET6_ADDRSTRLEN + 16];

	log_format_address((const struct sockaddr *)from, client, sizeof(client));
	(void)close(fd);
	log_connection(&(struct connection_record){ .client = client, .target = "-", .reason = reason,
						    .socks5_reply = -1 });
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
	signals_setup();
}

/*
 * Accepts what is waiting on listener, up to ACCEPTS_PER_WAKEUP. In the
 * child, *child_fd is set and the caller returns it at once.
 */
static void accept_waiting(int listener, const struct acceptor_limits *limits, struct backoff *backoff,
			   int *child_fd)
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
			return;
		}
		struct tunnel tunnel;
		source_of(&from, &tunnel);
		if (tunnel_count >= limits->max_tunnels) {
			char reason[96];
			(void)snprintf(reason, sizeof(reason), "turned away: %u tunnels already (--max-tunnels)",
				       tunnel_count);
			turn_away(fd, &from, reason);
			continue;
		}
		if (limits->max_tunnels_per_source > 0 && tunnel.family != 0 &&
		    tunnels_from(&tunnel) >= limits->max_tunnels_per_source) {
			char reason[96];
			(void)snprintf(reason, sizeof(reason),
				       "turned away: %u tunnels already from this address (--max-tunnels-per-source)",
				       limits->max_tunnels_per_source);
			turn_away(fd, &from, reason);
			continue;
		}
		tunnel.pid = fork();
		if (tunnel.pid == 0) {
			*child_fd = fd;
			return;
		}
		if (tunnel.pid < 0) {
			int error = errno;
			turn_away(fd, &from, "turned away: the acceptor could not fork");
			back_off(backoff, "fork", error);
			return;
		}
		(void)close(fd);
		tunnels[tunnel_count++] = tunnel;
		backoff->delay_ms = 0;
		if (log_reserve < 0)
			log_reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
}

/* ---- reload: check, then execute ourselves again ---- */

static void start_reload_check(char **argv, const struct acceptor_limits *limits)
{
	static char check[] = "--check";
	char paths[2][4096];
	const char *resolved[2];
	int argc = 0;

	if (reload_check_pid > 0)
		return; /* one is running: its answer covers this request too */
	while (argv[argc] != NULL)
		argc++;
	for (size_t i = 0; i < 2; i++)
		resolved[i] = limits->files[i] != NULL ? config_file_resolve(limits->files[i], paths[i], sizeof(paths[i])) : NULL;
	config_file_pin(resolved, 2);
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
	}
	reload_check_deadline_ms = clock_now_ms() + RELOAD_CHECK_MAX_MS;
	reload_check_killed = false;
}

/* The table as TUNNELS_VARIABLE's value; NULL if it cannot be made. */
static char *tunnels_text(void)
{
	size_t size = (size_t)tunnel_count * (12 + INET6_ADDRSTRLEN) + 1;
	char *text = malloc(size);
	size_t used = 0;

	if (text == NULL)
		return NULL;
	text[0] = '\0';
	for (unsigned i = 0; i < tunnel_count; i++) {
		char address[INET6_ADDRSTRLEN] = "-";
		if (tunnels[i].family != 0)
			(void)inet_ntop(tunnels[i].family, tunnels[i].source, address, sizeof(address));
		int n = snprintf(text + used, size - used, "%s%ld/%s", i > 0 ? "," : "", (long)tunnels[i].pid,
				 address);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
	return text;
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
		struct tunnel tunnel = { 0 };
		char *slash = strchr(item, '/');
		char *end = NULL;
		siginfo_t info = { 0 };
		if (slash == NULL)
			continue;
		*slash = '\0';
		long pid = strtol(item, &end, 10);
		if (end == item || *end != '\0' || pid <= 0 || pid > INT32_MAX)
			continue;
		tunnel.pid = (pid_t)pid;
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
			continue;
		bool listed = false; /* once: a pid listed twice would hold a slot no reaping frees */
		for (unsigned i = 0; i < tunnel_count && !listed; i++)
			listed = tunnels[i].pid == tunnel.pid;
		if (listed)
			continue;
		if (inet_pton(AF_INET, slash + 1, tunnel.source) == 1)
			tunnel.family = AF_INET;
		else if (inet_pton(AF_INET6, slash + 1, tunnel.source) == 1)
			tunnel.family = AF_INET6;
		tunnels[tunnel_count++] = tunnel;
	}
	free(copy);
	char message[96];
	(void)snprintf(message, sizeof(message), "acceptor: reloaded; %u tunnels carried on", tunnel_count);
	log_notice(message);
}

/* Returns only when the exec failed: the acceptor serves on as it was. */
static void reexecute(int first_fd, int count, char **argv)
{
	char number[32];
	char *table = tunnels_text();

	if (table == NULL) {
		log_error("acceptor: reload: out of memory; still serving with the options it had");
		return;
	}
	(void)snprintf(number, sizeof(number), "%d", count);
	(void)setenv("LISTEN_FDS", number, 1);
	(void)snprintf(number, sizeof(number), "%ld", (long)getpid());
	(void)setenv("LISTEN_PID", number, 1);
	(void)setenv(TUNNELS_VARIABLE, table, 1);
	free(table);
	for (int fd = first_fd; fd < first_fd + count; fd++)
		(void)fcntl(fd, F_SETFD, 0);
	(void)execv("/proc/self/exe", argv);
	int error = errno;
	for (int fd = first_fd; fd < first_fd + count; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	(void)unsetenv(TUNNELS_VARIABLE);
	config_file_unpin();
	log_errorf("acceptor: reload: cannot execute /proc/self/exe: %s; still serving with the options it had",
		   strerror(error));
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
}

/* ---- stop ---- */

static void __attribute__((noreturn)) stop_tunnels(const sigset_t *wait_mask)
{
	int64_t deadline_ms = clock_now_ms() + STOP_GRACE_MS;
	bool killed = false;

	for (unsigned i = 0; i < tunnel_count; i++)
		(void)kill(tunnels[i].pid, SIGTERM);
	for (;;) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			forget_tunnel(pid);
		if (tunnel_count == 0 || (pid < 0 && errno == ECHILD))
			break;
		int64_t now_ms = clock_now_ms();
		if (!killed && now_ms >= deadline_ms) {
			for (unsigned i = 0; i < tunnel_count; i++)
				(void)kill(tunnels[i].pid, SIGKILL);
			killed = true;
		}
		int64_t wait_ms = killed ? 1000 : deadline_ms - now_ms;
		struct timespec timeout = { .tv_sec = (time_t)(wait_ms / 1000), .tv_nsec = (long)(wait_ms % 1000) * 1000000L };
		(void)ppoll(NULL, 0, &timeout, wait_mask); /* SIGCHLD ends it */
	}
	exit(EXIT_SUCCESS);
}

/* ---- the loop ---- */

int acceptor_run(int first_fd, int count, const struct acceptor_limits *limits, char **argv,
		 const sigset_t *original_mask)
{
	struct pollfd listeners[ACCEPTOR_MAX_LISTENERS];
	struct backoff backoff = { 0 };
	sigset_t wait_mask;
	int64_t idle_since_ms = clock_now_ms();

	acceptor_signals_setup(&wait_mask);
	/* A reload executes /proc/self/exe, which would name the process "exe" in ps, pgrep and the journal. */
	const char *name = strrchr(argv[0], '/');
	(void)prctl(PR_SET_NAME, name != NULL ? name + 1 : argv[0]);
	tunnel_capacity = limits->max_tunnels;
	tunnels = calloc(tunnel_capacity, sizeof(*tunnels));
	if (tunnels == NULL) {
		log_error("acceptor: out of memory for the tunnel table");
		exit(EXIT_FAILURE);
	}
	adopt_tunnels();
	log_reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < count; i++) {
		int fd = first_fd + i;
		int flags = fcntl(fd, F_GETFL);
		/* Never block in accept(): a connection reset before it is taken must not hang the acceptor. */
		if (flags >= 0)
			(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		listeners[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}

	for (;;) {
		bool reload_checked = false;
		int reload_status = 0;
		child_exited = 0;
		if (reap_children(&reload_checked, &reload_status))
			idle_since_ms = clock_now_ms();
		if (stop_requested)
			stop_tunnels(&wait_mask);
		if (restart_requested)
			exit(EXIT_SUCCESS);
		if (reload_checked)
			finish_reload(reload_status, first_fd, count, argv);
		if (reload_requested) {
			reload_requested = 0;
			start_reload_check(argv, limits);
		}

		int64_t now_ms = clock_now_ms();
		int timeout_ms = -1;
		if (reload_check_pid > 0 && now_ms >= reload_check_deadline_ms) {
			/* Said now: a check stuck in the kernel may not be reaped for a long time. */
			(void)kill(reload_check_pid, SIGKILL);
			if (!reload_check_killed)
				log_errorf("acceptor: reload refused: tunneld --check ran past %d s and was killed; still "
					   "serving with the options it had",
					   RELOAD_CHECK_MAX_MS / 1000);
			reload_check_killed = true;
			reload_check_deadline_ms = now_ms + RELOAD_CHECK_MAX_MS;
		}
		if (reload_check_pid > 0)
			timeout_ms = (int)(reload_check_deadline_ms - now_ms);
		if (limits->exit_idle_seconds > 0 && tunnel_count == 0 && reload_check_pid < 0) {
			int64_t idle_end_ms = idle_since_ms + (int64_t)limits->exit_idle_seconds * 1000;
			if (now_ms >= idle_end_ms)
				exit(EXIT_SUCCESS); /* the socket unit starts us again on the next connection */
			timeout_ms = (int)(idle_end_ms - now_ms);
		}
		bool backing_off = backoff.until_ms > now_ms;
		if (backing_off && (timeout_ms < 0 || backoff.until_ms - now_ms < timeout_ms))
			timeout_ms = (int)(backoff.until_ms - now_ms);
		for (int i = 0; i < count; i++)
			listeners[i].fd = backing_off ? -1 : first_fd + i;

		struct timespec timeout = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
		int ready = ppoll(listeners, (nfds_t)count, timeout_ms < 0 ? NULL : &timeout, &wait_mask);
		if (ready <= 0)
			continue;
		for (int i = 0; i < count; i++) {
			if (listeners[i].revents == 0)
				continue;
			int child_fd = -1;
			accept_waiting(first_fd + i, limits, &backoff, &child_fd);
			if (child_fd >= 0) {
				for (int fd = first_fd; fd < first_fd + count; fd++)
					(void)close(fd);
				if (log_reserve >= 0)
					(void)close(log_reserve);
				config_file_unpin(); /* forked during a reload: those copies are not the tunnel's */
				free(tunnels);
				restore_child_signals(original_mask);
				return child_fd;
			}
			idle_since_ms = clock_now_ms();
		}
	}
}
