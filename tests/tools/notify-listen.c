/* Test helper: stand in for systemd's notification socket. Binds a datagram
 * socket at PATH and prints every message (one line each, assignments
 * separated by spaces) until STOPPING=1 arrives or SECONDS pass. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa;
	int fd, seconds;
	time_t end;
	char msg[4096];

	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: notify-listen PATH SECONDS\n");
		return 2;
	}
	seconds = (int)strtol(argv[2], NULL, 10);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
	unlink(argv[1]);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("notify-listen");
		return 1;
	}
	printf("LISTENING\n");
	fflush(stdout);
	end = time(NULL) + seconds;
	while (time(NULL) < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (msg[i] == '\n')
				msg[i] = ' ';
		printf("%s\n", msg);
		fflush(stdout);
		if (strstr(msg, "STOPPING=1"))
			break;
	}
	unlink(argv[1]);
	return 0;
}
