/*
 * An LD_PRELOAD probe for tests/sandbox.bats: when tunneld calls connect()
 * for its target (so after it has sandboxed itself), it tries what a
 * hijacked tunnel would (sixteen things), and writes one line per attempt to the file named
 * by $SANDBOX_PROBE_OUT (opened at load, before any sandbox):
 * "NAME denied ERRNO-NAME" or "NAME ALLOWED". Then the real connect() runs.
 * When tunneld writes its "200", with the target connected, it tries again
 * what a tunnel could still need before that (an Internet socket, a
 * thread, a connect: its target's socket, disconnected, to anywhere; the
 * resolver's idle thread, put to work through getaddrinfo_a) and what it
 * needs after (a datagram socket for the record), into
 * $SANDBOX_PROBE_AFTER_OUT.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int out = -1, after_out = -1, siblings_out = -1; /* opened at load, by the activator or the acceptor: a tunnel could not */
static int probed, probed_after;
static int target_fd = -1; /* the last Internet socket tunneld connected */

static int open_named_by(const char *variable)
{
	const char *path = getenv(variable);
	return path != NULL ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
}

__attribute__((constructor)) static void open_output(void)
{
	out = open_named_by("SANDBOX_PROBE_OUT");
	after_out = open_named_by("SANDBOX_PROBE_AFTER_OUT");
	siblings_out = open_named_by("SANDBOX_PROBE_SIBLINGS_OUT");
}

static void report_to(int fd, const char *name, long result)
{
	char line[160];
	int len = result < 0 ? snprintf(line, sizeof(line), "%s denied %s\n", name, strerrorname_np(errno))
			     : snprintf(line, sizeof(line), "%s ALLOWED\n", name);
	if (fd >= 0 && len > 0)
		(void)!syscall(SYS_write, fd, line, (size_t)len); /* not through the write() below */
}

static void report(const char *name, long result)
{
	report_to(out, name, result);
}

static long opened(int fd)
{
	if (fd >= 0)
		(void)close(fd);
	return fd;
}

static void probe(int target)
{
	int mark = 1;
	const char *scratch = getenv("SANDBOX_PROBE_SCRATCH");
	char path[4096];

	report("read-/etc/shadow", opened(open("/etc/shadow", O_RDONLY | O_CLOEXEC)));
	report("read-/root-file", opened(open("/root/.tunneld-sandbox-probe", O_RDONLY | O_CLOEXEC)));
	report("list-/root", opened(open("/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
	(void)snprintf(path, sizeof(path), "%s/written-by-tunneld", scratch != NULL ? scratch : "/tmp");
	report("write-scratch-dir", opened(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)));
	report("write-/tmp", opened(open("/tmp/tunneld-sandbox-probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)));
	report("socket-netlink", opened(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)));
	report("socket-packet", opened(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)));
	report("socket-unix-stream", opened(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)));
	/* The kernel makes an AF_PACKET socket of this one: sniffing and forging on every interface. */
	report("socket-inet-packet", opened(socket(AF_INET, SOCK_PACKET | SOCK_CLOEXEC, htons(ETH_P_ALL))));
	report("socket-inet-raw", opened(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP)));
	/* Run as root, a mark would let the tunnel past firewall and routing rules keyed on it. */
	report("setsockopt-mark", setsockopt(target, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)));
	/* With no outgoing address configured, no socket may be bound: no UDP listener, no source of its choosing. */
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	report("bind-inet-dgram", udp < 0 ? -1 : bind(udp, (struct sockaddr *)&any, sizeof(any)));
	if (udp >= 0)
		(void)close(udp);
	report("ptrace-parent", ptrace(PTRACE_ATTACH, getppid(), NULL, NULL));
	report("mount-tmpfs", mount("none", "/mnt", "tmpfs", 0, NULL));
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	if (child > 0)
		(void)waitpid(child, NULL, 0);
	report("fork", child);
	/* Last: had it worked, the process would be a shell now, and its line would never come. */
	char *const argv[] = { "sh", "-c", "exit 0", NULL };
	report("execve-shell", execve("/bin/sh", argv, environ));
}

/*
 * SANDBOX_PROBE_NO_SECCOMP: a kernel that refuses seccomp filters (a
 * container's), Landlock kept. SANDBOX_PROBE_SIBLINGS_OUT: at the connect,
 * ptrace every process of the 400 pids below this one but its parent: the
 * acceptor's forker, other tunnels.
 */
static bool seccomp_refused(void)
{
	return getenv("SANDBOX_PROBE_NO_SECCOMP") != NULL;
}

long syscall(long number, ...)
{
	static long (*real_syscall)(long, ...);
	va_list args;
	long a[6];

	va_start(args, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(args, long);
	va_end(args);
	if (number == SYS_seccomp && seccomp_refused()) {
		errno = EINVAL;
		return -1;
	}
	if (real_syscall == NULL)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int prctl(int option, ...)
{
	static int (*real_prctl)(int, ...);
	va_list args;
	unsigned long a[4];

	va_start(args, option);
	for (int i = 0; i < 4; i++)
		a[i] = va_arg(args, unsigned long);
	va_end(args);
	if (option == PR_SET_SECCOMP && seccomp_refused()) {
		errno = EINVAL;
		return -1;
	}
	if (real_prctl == NULL)
		real_prctl = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
	return real_prctl(option, a[0], a[1], a[2], a[3]);
}

static void probe_siblings(void)
{
	int fd = siblings_out;
	pid_t self = getpid();
	char line[160];
	int len = 0;

	for (pid_t pid = self - 1; pid > 1 && pid > self - 400 && len == 0; pid--) {
		if (pid == getppid() || ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
			continue;
		len = snprintf(line, sizeof(line), "ptrace-sibling ALLOWED %d\n", (int)pid);
		(void)ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	if (len == 0)
		len = snprintf(line, sizeof(line), "ptrace-sibling denied\n");
	if (fd >= 0)
		(void)!syscall(SYS_write, fd, line, (size_t)len);
}

int connect(int fd, const struct sockaddr *address, socklen_t len)
{
	static int (*real_connect)(int, const struct sockaddr *, socklen_t);

	if (real_connect == NULL)
		real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
	if (address->sa_family == AF_INET || address->sa_family == AF_INET6)
		target_fd = fd;
	if (!probed && (address->sa_family == AF_INET || address->sa_family == AF_INET6)) {
		probed = 1;
		int saved = errno;
		probe(fd);
		if (siblings_out >= 0)
			probe_siblings();
		errno = saved;
	}
	return real_connect(fd, address, len);
}

static void *thread_body(void *unused)
{
	return unused;
}

static volatile int resolver_thread_ran;

/* Run by the resolver's thread, once the lookup is done: what could it do there? */
static void resolver_notified(union sigval unused)
{
	(void)unused;
	report_to(after_out, "resolver-thread-socket", opened(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
	resolver_thread_ran = 1;
}

/*
 * getaddrinfo_a hands the lookup to the resolver's thread, idle for a second
 * after tunneld's own lookup, and that thread starts the notification's.
 * Either thread refused its socket, or never started, is what is wanted.
 */
static void probe_resolver_thread(void)
{
	struct gaicb request = { .ar_name = "localhost" };
	struct gaicb *list[] = { &request };
	struct sigevent notify = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = resolver_notified };

	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &notify) == 0) {
		struct timespec most = { .tv_sec = 2 }, tick = { .tv_nsec = 10 * 1000 * 1000 };
		(void)gai_suspend((const struct gaicb *const *)list, 1, &most);
		for (int i = 0; i < 100 && !resolver_thread_ran; i++)
			(void)nanosleep(&tick, NULL);
	}
	if (!resolver_thread_ran) {
		errno = EAGAIN;
		report_to(after_out, "resolver-thread-socket", -1); /* no thread of its own to try in */
	}
}

static void probe_after_connect(void)
{
	pthread_t thread;
	int error = pthread_create(&thread, NULL, thread_body, NULL);
	struct sockaddr unspecified = { .sa_family = AF_UNSPEC };

	report_to(after_out, "socket-inet-stream", opened(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
	report_to(after_out, "socket-inet6-dgram", opened(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
	if (error == 0)
		(void)pthread_join(thread, NULL);
	errno = error;
	report_to(after_out, "thread", error == 0 ? 0 : -1);
	report_to(after_out, "socket-unix-dgram", opened(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
	/* The one family it may still open must not become a listener of its own, in the abstract namespace. */
	int unix_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un abstract = { .sun_family = AF_UNIX, .sun_path = "\0tunneld-sandbox-probe" };
	report_to(after_out, "bind-unix-abstract",
		  bind(unix_fd, (struct sockaddr *)&abstract, (socklen_t)(sizeof(sa_family_t) + 22)));
	if (unix_fd >= 0)
		(void)close(unix_fd);
	/* A TCP socket that connects to AF_UNSPEC is disconnected, free to connect elsewhere. */
	report_to(after_out, "disconnect-target", connect(target_fd, &unspecified, sizeof(unspecified)));
	if (getenv("SANDBOX_PROBE_RESOLVER") != NULL)
		probe_resolver_thread();
}

ssize_t write(int fd, const void *buffer, size_t len)
{
	static const char established[] = "HTTP/1.1 200 ";

	if (!probed_after && len >= sizeof(established) - 1 && memcmp(buffer, established, sizeof(established) - 1) == 0) {
		probed_after = 1;
		int saved = errno;
		probe_after_connect();
		errno = saved;
	}
	return syscall(SYS_write, fd, buffer, len);
}
