/* The HTTP front: validate, store, answer. Never waits on LogQS. */
#ifndef LQS_HTTP_H
#define LQS_HTTP_H
#include <stddef.h>

struct intake;
struct store;
struct workers;
struct sweeper;
struct http;

/* listen_fd >= 0: serve that already-bound socket (socket activation).
 * POST /events hands its events to in; /sweeps asks sw (NULL: none). */
struct http *http_start(struct store *st, struct workers *w, struct intake *in, struct sweeper *sw, int listen_fd,
			char *err, size_t errlen);
unsigned http_port(struct http *h);
/* SIGHUP: take the configured certificate (when serving TLS), or keep the
 * one in use and say why. */
void http_tls_reload(struct http *h);
/* Header and whole-request deadlines (reload). */
void http_set_timeouts(struct http *h, double header_s, double read_s);
/* Stop accepting new connections; requests in flight go on. */
void http_quiesce(struct http *h);
/* Wait (bounded) for requests in flight, stop the intake (which answers
 * what it holds), then stop serving. */
void http_stop(struct http *h, double wait_s);

#endif
