/*
 * A target that never rests, for the tests: on 127.0.0.1, port 0, it writes
 * its port to PORTFILE, accepts one connection, and sends zeros without end
 * from one thread while another reads and drops whatever arrives, both as
 * fast as the kernel lets them, so that a relay in front of it always has
 * a descriptor ready. (python3 and socat leave gaps.)
 *
 * usage: flood PORTFILE
 */
#include <arpa/inet.h>
#include <err.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int connection;

static void *send_zeros(void *unused)
{
	static char zeros[1 << 20];
	(void)unused;
	while (write(connection, zeros, sizeof(zeros)) > 0)
		continue;
	return NULL;
}

int main(int argc, char **argv)
{
	static char sink[1 << 22];
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(address);
	pthread_t sender;
	FILE *port_file;
	int listener = socket(AF_INET, SOCK_STREAM, 0);

	if (argc != 2)
		errx(2, "usage: flood PORTFILE");
	if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(listener, 1) < 0 ||
	    getsockname(listener, (struct sockaddr *)&address, &len) < 0)
		err(1, "listen");
	if ((port_file = fopen(argv[1], "w")) == NULL)
		err(1, "%s", argv[1]);
	fprintf(port_file, "%u\n", ntohs(address.sin_port));
	fclose(port_file);
	if ((connection = accept(listener, NULL, NULL)) < 0)
		err(1, "accept");
	pthread_create(&sender, NULL, send_zeros, NULL);
	while (read(connection, sink, sizeof(sink)) > 0)
		continue;
	return 0;
}
