/*
 * bench load client.
 *
 *   load setup PORT TARGET_PORT CONNECT ITERATIONS CONCURRENCY
 *       connect, CONNECT (CONNECT 1: HTTP; 2: SOCKS5, greeting and request
 *       each waiting for its answer, as curl does), its success, one 1-byte
 *       echo, close;
 *       prints the median and 90th percentile in microseconds, and the
 *       tunnels set up per second; any failed setup ends it with status 1
 *   load upload|download PORT TARGET_PORT CONNECT BYTES
 *       moves BYTES through one connection; prints MB/s
 *   load hold PORT TARGET_PORT CONNECT SECONDS
 *       opens one tunnel, echoes once, and keeps it idle for SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int proxy_port, target_port, speak_connect, iterations_per_worker;
static double *latencies_us;

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void read_exactly(int fd, unsigned char *buf, size_t len, const char *what)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			errx(1, "no %s from the proxy", what);
		got += (size_t)n;
	}
}

static void socks5_connect(int fd)
{
	unsigned char greeting[] = { 5, 1, 0 };
	unsigned char request[] = { 5, 1, 0, 1, 127, 0, 0, 1, (unsigned char)(target_port >> 8), (unsigned char)target_port };
	unsigned char reply[10];

	if (write(fd, greeting, sizeof(greeting)) != (ssize_t)sizeof(greeting))
		err(1, "write");
	read_exactly(fd, reply, 2, "method choice");
	if (reply[0] != 5 || reply[1] != 0)
		errx(1, "proxy chose method %d", reply[1]);
	if (write(fd, request, sizeof(request)) != (ssize_t)sizeof(request))
		err(1, "write");
	read_exactly(fd, reply, sizeof(reply), "SOCKS5 reply");
	if (reply[1] != 0)
		errx(1, "proxy replied 0x%02x", reply[1]);
}

/* A connected socket through the candidate, past its success if it speaks CONNECT or SOCKS5. */
static int open_tunnel(void)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)proxy_port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int on = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0)
		err(1, "connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (!speak_connect)
		return fd;
	if (speak_connect == 2) {
		socks5_connect(fd);
		return fd;
	}
	char request[64], reply[256];
	int len = snprintf(request, sizeof(request), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", target_port);
	if (write(fd, request, (size_t)len) != len)
		err(1, "write");
	size_t got = 0;
	while (got < 4 || memcmp(reply + got - 4, "\r\n\r\n", 4) != 0) {
		if (got == sizeof(reply) || read(fd, reply + got, 1) != 1)
			errx(1, "no 200 from the proxy");
		got++;
	}
	/* tinyproxy answers HTTP/1.0. */
	if (strncmp(reply, "HTTP/1.", 7) != 0 || strncmp(reply + 8, " 200 ", 5) != 0)
		errx(1, "proxy answered: %.*s", (int)got, reply);
	return fd;
}

static void echo_once(int fd)
{
	char byte = 'x';
	if (write(fd, &byte, 1) != 1 || read(fd, &byte, 1) != 1)
		errx(1, "echo failed");
}

static void *setup_worker(void *arg)
{
	double *out = latencies_us + (size_t)(long)arg * (size_t)iterations_per_worker;
	for (int i = 0; i < iterations_per_worker; i++) {
		double started = now_us();
		int fd = open_tunnel();
		echo_once(fd);
		out[i] = now_us() - started;
		close(fd);
	}
	return NULL;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 6)
		errx(2, "usage: load setup|upload|download|hold PORT TARGET_PORT CONNECT N [CONCURRENCY]");
	proxy_port = atoi(argv[2]);
	target_port = atoi(argv[3]);
	speak_connect = atoi(argv[4]);
	long long n = atoll(argv[5]);

	if (strcmp(argv[1], "setup") == 0) {
		int workers = argc > 6 ? atoi(argv[6]) : 1;
		iterations_per_worker = (int)(n / workers);
		latencies_us = calloc((size_t)workers * (size_t)iterations_per_worker, sizeof(double));
		pthread_t threads[256];
		double started = now_us();
		for (long w = 0; w < workers; w++)
			pthread_create(&threads[w], NULL, setup_worker, (void *)w);
		for (int w = 0; w < workers; w++)
			pthread_join(threads[w], NULL);
		double elapsed_us = now_us() - started;
		size_t count = (size_t)workers * (size_t)iterations_per_worker;
		qsort(latencies_us, count, sizeof(double), compare_doubles);
		printf("%.0f %.0f %.0f\n", latencies_us[count / 2], latencies_us[count * 9 / 10],
		       (double)count * 1e6 / elapsed_us);
		return 0;
	}
	static char buffer[256 * 1024];
	int fd = open_tunnel();
	if (strcmp(argv[1], "hold") == 0) {
		echo_once(fd);
		sleep((unsigned)n);
		return 0;
	}
	double started = now_us();
	long long moved = 0;
	if (strcmp(argv[1], "upload") == 0) {
		memset(buffer, 'u', sizeof(buffer));
		while (moved < n) {
			ssize_t w = write(fd, buffer, n - moved < (long long)sizeof(buffer) ? (size_t)(n - moved) : sizeof(buffer));
			if (w <= 0)
				err(1, "upload");
			moved += w;
		}
		shutdown(fd, SHUT_WR);
		while (read(fd, buffer, sizeof(buffer)) > 0) /* until the sink closes: all of it arrived */
			;
	} else {
		ssize_t r;
		while ((r = read(fd, buffer, sizeof(buffer))) > 0)
			moved += r;
		if (moved != n)
			errx(1, "download: %lld of %lld bytes", moved, n);
	}
	printf("%.1f\n", (double)moved / (now_us() - started));
	return 0;
}
