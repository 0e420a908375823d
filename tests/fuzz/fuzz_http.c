/* libFuzzer: the whole request path in-process — the real HTTP front, store
 * and workers on loopback; each input is sent as raw bytes on a fresh
 * connection and the answer read. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/http.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/worker.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* tmpfs when there is one: the store fsyncs every commit */
	static char shm_dir[] = "/dev/shm/lqs-fuzz-http-XXXXXX", tmp_dir[] = "/tmp/lqs-fuzz-http-XXXXXX";
	char *dir = access("/dev/shm", W_OK) == 0 ? shm_dir : tmp_dir;
	char store_path[128], err[4096];
	struct config cfg;
	struct config_overrides ov = { .listen = "127.0.0.1:0" };
	struct store *st;
	struct workers *w;
	struct http *h;
	struct intake *in;

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(store_path, sizeof(store_path), "%s/fuzz.db", dir);
	ov.store = store_path;
	/* the corpus's secret, so that seeds get past authentication */
	setenv("LQS_EXPECTED_SECRET", "corpus-secret", 1);
	setenv("LQS_API_URL", "http://127.0.0.1:9", 1);
	setenv("LQS_RETRY_COUNT", "0", 1);
	setenv("LQS_HOOKD_RETRY_BASE", "1h", 1);
	setenv("LQS_HOOKD_RETRY_MAX_DELAY", "1h", 1);
	setenv("LQS_HOOKD_DEDUPE_WINDOW", "0", 1);
	setenv("LQS_HOOKD_HEADER_TIMEOUT", "2s", 1);
	setenv("LQS_HOOKD_MAX_QUEUED", "100000000", 1);
	log_set_level(LOG_LVL_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (config_load(&cfg, NULL, &ov, err, sizeof(err))) {
		fputs(err, stderr);
		abort();
	}
	config_install(&cfg);
	if (store_open(&st, store_path, err, sizeof(err)))
		abort();
	w = workers_start(st, 1);
	in = intake_start(st, NULL, NULL, err, sizeof(err));
	h = in ? http_start(st, w, in, NULL, -1, err, sizeof(err)) : NULL;
	if (!h) {
		fputs(err, stderr);
		abort();
	}
	port = http_port(h);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[65536];
	size_t off = 0;

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (off < size) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	/* wait for the first bytes of an answer, then until the daemon goes
	 * quiet: a kept-alive connection never closes by itself */
	for (int wait_ms = 300;; wait_ms = 20) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, wait_ms) <= 0 || recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
	return 0;
}
