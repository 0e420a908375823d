/* Benchmark baselines: the floor of this stack. libmicrohttpd + jansson with
 * the daemon's own bearer check and event validation, same threading, and
 * one of three ways to answer a valid event:
 *   plain    202 at once, nothing stored (the floor);
 *   handoff  suspend the connection, hand the event to a second thread,
 *            which resumes it: the daemon's path to its answer, with no
 *            store behind it;
 *   fsync    the same, and that thread appends the batch's bodies to a
 *            preallocated file with one write and one fdatasync before it
 *            resumes them: the least any server that syncs before its 202
 *            must do, with no database, index or recovery.
 *   bench-floor PORT SECRET [plain|handoff|fsync FILE] */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/event.h"

static char *secrets[1];

enum mode { PLAIN, HANDOFF, FSYNC };
static enum mode mode = PLAIN;

struct req {
	struct buf body;
	struct MHD_Connection *conn;
	struct req *next;
	bool queued, done;
};

/* Events waiting for the second thread; the file it appends to. */
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct req *q_head, *q_tail;
static int log_fd = -1;
static off_t log_off;
#define LOG_SIZE (64L << 20)

static void *syncer(void *arg)
{
	static char batch[1 << 20];

	(void)arg;
	for (;;) {
		struct req *list, *r;
		size_t n = 0;

		pthread_mutex_lock(&q_mu);
		while (!q_head)
			pthread_cond_wait(&q_cv, &q_mu);
		list = q_head;
		q_head = q_tail = NULL;
		pthread_mutex_unlock(&q_mu);
		if (mode == FSYNC) {
			for (r = list; r; r = r->next)
				if (n + r->body.len + 1 <= sizeof(batch)) {
					memcpy(batch + n, r->body.data, r->body.len);
					n += r->body.len;
					batch[n++] = '\n';
				}
			if (log_off + (off_t)n > LOG_SIZE)
				log_off = 0;   /* overwrite from the start: the file never grows */
			if (pwrite(log_fd, batch, n, log_off) != (ssize_t)n || fdatasync(log_fd) != 0) {
				perror("bench-floor: append");
				exit(1);
			}
			log_off += (off_t)n;
		}
		for (r = list; r;) {
			struct req *next = r->next;
			r->done = true;
			MHD_resume_connection(r->conn);
			r = next;
		}
	}
	return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text)
{
	union { const char *c; void *v; } cast = { .c = text };
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), cast.v, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	struct event ev;
	json_t *detail = NULL;

	(void)cls;
	(void)version;
	if (!r) {
		if (strcmp(url, "/events") != 0 || strcmp(method, "POST") != 0)
			return reply(c, 404, "{\"detail\":\"Not Found\"}");
		if (auth_check_bearer(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), secrets, 1) != AUTH_OK)
			return reply(c, 401, "{\"detail\":\"Invalid authorization token\"}");
		r = calloc(1, sizeof(*r));
		buf_init(&r->body, 65536);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		buf_append(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->done)
		return reply(c, 202, "{\"status\":\"accepted\"}");
	if (r->queued)
		return MHD_YES;
	switch (event_parse(r->body.data ? r->body.data : "", r->body.len, &ev, &detail)) {
	case EVENT_OK:
		event_free(&ev);
		if (mode == PLAIN)
			return reply(c, 202, "{\"status\":\"accepted\"}");
		r->conn = c;
		r->queued = true;
		MHD_suspend_connection(c);
		pthread_mutex_lock(&q_mu);
		if (q_tail)
			q_tail->next = r;
		else
			q_head = r;
		q_tail = r;
		pthread_cond_signal(&q_cv);
		pthread_mutex_unlock(&q_mu);
		return MHD_YES;
	default:
		json_decref(detail);
		return reply(c, 422, "{\"detail\":\"invalid\"}");
	}
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r) {
		buf_free(&r->body);
		free(r);
	}
}

int main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	sigset_t set;
	pthread_t t;
	int sig;

	if (argc < 3 || argc > 5)
		return 2;
	secrets[0] = argv[2];
	if (argc >= 4 && strcmp(argv[3], "handoff") == 0) {
		mode = HANDOFF;
	} else if (argc == 5 && strcmp(argv[3], "fsync") == 0) {
		static char zero[1 << 16];
		mode = FSYNC;
		log_fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (log_fd < 0)
			return 1;
		/* written, not just allocated: overwriting it later changes no metadata */
		for (long off = 0; off < LOG_SIZE; off += (long)sizeof(zero))
			if (write(log_fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero))
				return 1;
		if (fsync(log_fd) != 0)
			return 1;
	} else if (argc != 3 && !(argc == 4 && strcmp(argv[3], "plain") == 0)) {
		return 2;
	}
	if (mode != PLAIN && pthread_create(&t, NULL, syncer, NULL) != 0)
		return 1;
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)strtol(argv[1], NULL, 10), NULL, NULL,
			     on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
			     MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT, 2048u, MHD_OPTION_END);
	if (!d)
		return 1;
	printf("READY\n");
	fflush(stdout);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
