/* Test helper: send a file's bytes over TCP exactly as they are and print
 * what comes back.
 *
 *   rawhttp [-s SRCADDR] [-t TIMEOUT_MS] [-d DELAY_MS -c CHUNK] HOST PORT FILE
 *
 * -d/-c trickle the request in CHUNK-byte pieces DELAY_MS apart. Exit status:
 * 0 an answer arrived (printed), 3 the server closed without answering,
 * 4 timed out without an answer, 1 usage or connect error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Is a complete final (non-1xx) response in buf? */
static int complete(const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;

	for (;;) {
		const char *hdr_end = NULL;
		for (const char *q = p; q + 3 < end; q++)
			if (q[0] == '\r' && q[1] == '\n' && q[2] == '\r' && q[3] == '\n') {
				hdr_end = q + 4;
				break;
			}
		if (!hdr_end)
			return 0;
		if (end - p > 12 && p[9] == '1') {   /* "HTTP/1.1 1xx": interim */
			p = hdr_end;
			continue;
		}
		long cl = -1;
		for (const char *q = p; q < hdr_end; q++) {
			if ((q == p || q[-1] == '\n') && strncasecmp(q, "Content-Length:", 15) == 0) {
				cl = strtol(q + 15, NULL, 10);
				break;
			}
		}
		if (cl < 0)
			return 0;   /* read until close */
		return end - hdr_end >= cl;
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *src = NULL;
	long timeout = 5000, delay = 0, chunk = 0;
	int opt, fd;
	struct sockaddr_in sa;
	FILE *f;
	static char req[4 << 20];
	size_t len, off = 0;
	static char buf[1 << 20];
	size_t got = 0;
	long long deadline;

	while ((opt = getopt(argc, argv, "s:t:d:c:")) != -1) {
		switch (opt) {
		case 's': src = optarg; break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		case 'd': delay = strtol(optarg, NULL, 10); break;
		case 'c': chunk = strtol(optarg, NULL, 10); break;
		default: return 1;
		}
	}
	if (argc - optind != 3) {
		fprintf(stderr, "usage: rawhttp [-s SRC] [-t MS] [-d MS -c N] HOST PORT FILE\n");
		return 1;
	}
	f = fopen(argv[optind + 2], "rb");
	if (!f) {
		perror(argv[optind + 2]);
		return 1;
	}
	len = fread(req, 1, sizeof(req), f);
	fclose(f);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (src) {
		struct sockaddr_in s = { .sin_family = AF_INET };
		inet_pton(AF_INET, src, &s.sin_addr);
		if (bind(fd, (struct sockaddr *)&s, sizeof(s)) != 0) {
			perror("bind");
			return 1;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)strtol(argv[optind + 1], NULL, 10));
	inet_pton(AF_INET, argv[optind], &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("connect");
		return 1;
	}
	deadline = now_ms() + timeout;
	while (off < len) {
		size_t n = chunk > 0 && (size_t)chunk < len - off ? (size_t)chunk : len - off;
		ssize_t w = send(fd, req + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;   /* the server may close early (e.g. a 413 on headers) */
		off += (size_t)w;
		if (delay > 0 && off < len) {
			struct timespec ts = { delay / 1000, (delay % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = recv(fd, buf + got, sizeof(buf) - got - 1, 0);
		if (r <= 0)
			break;
		fwrite(buf + got, 1, (size_t)r, stdout);
		got += (size_t)r;
		if (complete(buf, got) || got >= sizeof(buf) - 1)
			break;
	}
	close(fd);
	if (got)
		return 0;
	return now_ms() >= deadline ? 4 : 3;
}
