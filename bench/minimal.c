/*
 * The reference: a minimal one-shot CONNECT helper, the floor tunneld is
 * measured against. Reads the head, connects to the IPv4 literal it names,
 * answers 200 and relays with read/write through 64 KiB buffers and
 * half-close. No policy, no logging, no libraries beyond libc.
 *
 * Handed a listening socket (LISTEN_FDS=1, systemd's Accept=no), it is the
 * floor of tunneld's acceptor instead: accept, fork, and the child serves
 * the connection as above; no limits, no sandbox, no records.
 *
 * With MINIMAL_SPARES=N as well, it forks ahead instead: N children wait in
 * accept() themselves, each serves one connection and exits, and the parent
 * forks a replacement as each one ends. The fork is then off a tunnel's path;
 * what is left is what a fresh process costs a tunnel here.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char head[8192], up[65536], down[65536];

static int pump(int from, int to, char *buffer, size_t size)
{
	ssize_t n = read(from, buffer, size);
	if (n <= 0) {
		shutdown(to, SHUT_WR);
		return 0;
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buffer + off, (size_t)(n - off));
		if (w <= 0)
			return 0;
		off += w;
	}
	return 1;
}

static int tunnel(void)
{
	size_t len = 0;
	char host[64];
	unsigned port;
	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
		ssize_t n = read(0, head + len, 1);
		if (n <= 0 || ++len == sizeof(head))
			return 1;
	}
	if (sscanf(head, "CONNECT %63[0-9.]:%u ", host, &port) != 2)
		return 1;
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int target = socket(AF_INET, SOCK_STREAM, 0);
	if (inet_pton(AF_INET, host, &address.sin_addr) != 1 || connect(target, (struct sockaddr *)&address, sizeof(address)) < 0)
		return 1;
	static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	if (write(1, established, sizeof(established) - 1) < 0)
		return 1;
	struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = target, .events = POLLIN } };
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		if (poll(fds, 2, -1) < 0)
			return 1;
		if (fds[0].revents && !pump(0, target, up, sizeof(up)))
			fds[0].fd = -1;
		if (fds[1].revents && !pump(target, 1, down, sizeof(down)))
			fds[1].fd = -1;
	}
	return 0;
}

static void fork_spare(void)
{
	if (fork() != 0)
		return;
	/* The relay's buffers are touched now, not on the tunnel's path. */
	memset(up, 0, sizeof(up));
	memset(down, 0, sizeof(down));
	int connection;
	do
		connection = accept(3, NULL, NULL);
	while (connection < 0);
	close(3);
	dup2(connection, 0);
	dup2(connection, 1);
	close(connection);
	_exit(tunnel());
}

int main(void)
{
	const char *listen_fds = getenv("LISTEN_FDS"), *listen_pid = getenv("LISTEN_PID");
	if (listen_fds == NULL || strcmp(listen_fds, "1") != 0 || listen_pid == NULL || atol(listen_pid) != (long)getpid())
		return tunnel();
	const char *spares_text = getenv("MINIMAL_SPARES");
	int spares = spares_text != NULL ? atoi(spares_text) : 0;
	if (spares > 0) {
		for (int i = 0; i < spares; i++)
			fork_spare();
		for (;;) {
			if (wait(NULL) < 0)
				sleep(1); /* no child left: a fork failed */
			fork_spare();
		}
	}
	signal(SIGCHLD, SIG_IGN); /* the kernel reaps */
	for (;;) {
		int connection = accept(3, NULL, NULL);
		if (connection < 0)
			continue;
		if (fork() == 0) {
			close(3);
			dup2(connection, 0);
			dup2(connection, 1);
			close(connection);
			_exit(tunnel());
		}
		close(connection);
	}
}
