/* Benchmark baseline: the floor of this stack. libmicrohttpd + jansson with
 * the daemon's own bearer check and event validation, same threading, but
 * nothing stored: answers 202 as soon as the event is valid.
 *   bench-floor PORT SECRET */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/event.h"

static char *secrets[1];

struct req {
	struct buf body;
};

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
	switch (event_parse(r->body.data ? r->body.data : "", r->body.len, &ev, &detail)) {
	case EVENT_OK:
		event_free(&ev);
		return reply(c, 202, "{\"status\":\"accepted\"}");
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
	int sig;

	if (argc != 3)
		return 2;
	secrets[0] = argv[2];
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)strtol(argv[1], NULL, 10), NULL, NULL,
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
