/* Test helper: misbehaving clients, bound to a chosen loopback source address.
 *
 *   slowclients slowloris SRC HOST PORT N INTERVAL_MS DURATION_MS
 *       N connections each trickling one header byte every INTERVAL_MS
 *   slowclients hold SRC HOST PORT N DURATION_MS
 *       N connections that send the first byte of a request, then nothing
 *       (a connection that sends nothing at all is not even accepted: the
 *       listening socket defers accepting until bytes arrive)
 *   slowclients noread SRC HOST PORT REQUESTS PATH DURATION_MS
 *       one connection pipelining REQUESTS GETs of PATH, never reading
 *
 * Prints "opened=N refused=R cut=C alive=A cut_ms=MIN..MAX": refused are
 * closed by the server within 300 ms without having been served, cut are
 * closed later, alive still open at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 4096

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_conn(const char *src, const char *host, int port)
{
	struct sockaddr_in s = { .sin_family = AF_INET }, d = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, src, &s.sin_addr);
	inet_pton(AF_INET, host, &d.sin_addr);
	d.sin_port = htons((unsigned short)port);
	if (bind(fd, (struct sockaddr *)&s, sizeof(s)) != 0 || connect(fd, (struct sockaddr *)&d, sizeof(d)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Has the server closed (or reset) this connection? Drains any answer. */
static int closed(int fd)
{
	char b[65536];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, 0) > 0) {
		ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return 1;
		if (r < 0)
			return 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static int fds[MAXC];
	static long long opened_at[MAXC], closed_at[MAXC];
	static const char hdr[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	int n, port, refused = 0, cut = 0, alive = 0, failed = 0;
	long interval = 0, duration;
	long long start, next_byte, cut_min = -1, cut_max = -1;
	const char *mode, *src, *host;

	if (argc < 7)
		goto usage;
	mode = argv[1];
	src = argv[2];
	host = argv[3];
	port = (int)strtol(argv[4], NULL, 10);
	n = (int)strtol(argv[5], NULL, 10);
	if (strcmp(mode, "slowloris") == 0 && argc == 8) {
		interval = strtol(argv[6], NULL, 10);
		duration = strtol(argv[7], NULL, 10);
	} else if (strcmp(mode, "hold") == 0 && argc == 7) {
		duration = strtol(argv[6], NULL, 10);
	} else if (strcmp(mode, "noread") == 0 && argc == 8) {
		duration = strtol(argv[7], NULL, 10);
	} else {
		goto usage;
	}
	if (strcmp(mode, "noread") == 0) {
		/* one connection, n pipelined requests, never read */
		char req[1024];
		int fd = open_conn(src, host, port);
		long long t0 = now_ms();
		if (fd < 0)
			return 1;
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", argv[6]);
		for (int i = 0; i < n; i++)
			if (send(fd, req, strlen(req), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0)
				break;
		while (now_ms() - t0 < duration) {
			struct pollfd p = { .fd = fd, .events = POLLRDHUP };
			poll(&p, 1, 100);
			if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) {
				printf("opened=1 refused=0 cut=1 alive=0 cut_ms=%lld..%lld\n", now_ms() - t0, now_ms() - t0);
				return 0;
			}
		}
		printf("opened=1 refused=0 cut=0 alive=1 cut_ms=-1..-1\n");
		return 0;
	}
	if (n > MAXC)
		n = MAXC;
	start = now_ms();
	for (int i = 0; i < n; i++) {
		fds[i] = open_conn(src, host, port);
		opened_at[i] = now_ms();
		closed_at[i] = 0;
		if (fds[i] < 0) {
			failed++;
			closed_at[i] = opened_at[i];
		} else {
			send(fds[i], hdr, 1, MSG_NOSIGNAL);
		}
	}
	next_byte = now_ms() + interval;
	while (now_ms() - start < duration) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
		for (int i = 0; i < n; i++) {
			if (fds[i] < 0 || closed_at[i])
				continue;
			if (closed(fds[i]))
				closed_at[i] = now_ms();
		}
		if (interval && now_ms() >= next_byte) {
			for (int i = 0; i < n; i++) {
				size_t k = (size_t)((now_ms() - start) / interval) % (sizeof(hdr) - 1);
				if (fds[i] >= 0 && !closed_at[i] && send(fds[i], hdr + k, 1, MSG_NOSIGNAL) < 0)
					closed_at[i] = now_ms();
			}
			next_byte += interval;
		}
	}
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0 || !closed_at[i]) {
			alive += fds[i] >= 0;
		} else if (closed_at[i] - opened_at[i] <= 300) {
			refused++;
		} else {
			long long d = closed_at[i] - opened_at[i];
			cut++;
			if (cut_min < 0 || d < cut_min)
				cut_min = d;
			if (d > cut_max)
				cut_max = d;
		}
		if (fds[i] >= 0)
			close(fds[i]);
	}
	printf("opened=%d refused=%d cut=%d alive=%d cut_ms=%lld..%lld\n", n - failed, refused + failed, cut, alive,
	       cut_min, cut_max);
	return 0;
usage:
	fprintf(stderr, "usage: see the comment at the top of slowclients.c\n");
	return 2;
}
