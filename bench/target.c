/*
 * bench target: the far end of every tunnel the benchmark opens.
 *
 *   target PORTFILE echo            echo, many connections at once (epoll)
 *   target PORTFILE sink            read to EOF, then close; one at a time
 *   target PORTFILE source BYTES    send BYTES, then close; one at a time
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char buffer[256 * 1024];

static int listen_loopback(const char *port_file)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(address);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&address, &len) < 0)
		err(1, "listen");
	FILE *f = fopen(port_file, "w");
	if (f == NULL)
		err(1, "%s", port_file);
	fprintf(f, "%u\n", ntohs(address.sin_port));
	fclose(f);
	return fd;
}

static void serve_echo(int listener)
{
	int epoll = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event event = { .events = EPOLLIN, .data.fd = listener };
	epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
	for (;;) {
		struct epoll_event events[64];
		int n = epoll_wait(epoll, events, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			if (fd == listener) {
				int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
				int on = 1;
				if (client < 0)
					continue;
				setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
				event = (struct epoll_event){ .events = EPOLLIN, .data.fd = client };
				epoll_ctl(epoll, EPOLL_CTL_ADD, client, &event);
				continue;
			}
			ssize_t got = read(fd, buffer, sizeof(buffer));
			if (got <= 0 || write(fd, buffer, (size_t)got) != got)
				close(fd); /* echo replies are small: a short write is a dead peer */
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		errx(2, "usage: target PORTFILE echo|sink|source BYTES");
	signal(SIGPIPE, SIG_IGN); /* a reader that left (readiness probes do) must not end the target */
	int listener = listen_loopback(argv[1]);
	if (strcmp(argv[2], "echo") == 0)
		serve_echo(listener);
	long long source_bytes = argc > 3 ? atoll(argv[3]) : 0;
	memset(buffer, 'x', sizeof(buffer));
	for (;;) {
		int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (strcmp(argv[2], "sink") == 0) {
			while (read(fd, buffer, sizeof(buffer)) > 0)
				;
		} else {
			for (long long left = source_bytes; left > 0;) {
				ssize_t n = write(fd, buffer, left < (long long)sizeof(buffer) ? (size_t)left : sizeof(buffer));
				if (n <= 0)
					break;
				left -= n;
			}
		}
		close(fd);
	}
}
