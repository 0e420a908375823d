/* LogQS REST client: URL layout, auth, envelopes, retries, paging and
 * parallel fetches (libcurl multi). One client per worker thread. */
#ifndef LQS_LQS_H
#define LQS_LQS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct lqs_client;

struct lqs_error {
	int status;              /* HTTP status, 0 for transport errors */
	bool retryable;
	double retry_after;      /* seconds from Retry-After, 0 if none */
	char name[64];           /* e.g. "NotFound", "HTTP503", "ConnectionError" */
	char message[768];
};

/* One finished HTTP exchange, reported to the trace callback. */
struct lqs_call {
	const char *method;
	const char *path;        /* resource path relative to .../api/ */
	int status;              /* 0 on transport error */
	int64_t started_ms;
	int64_t duration_ms;
	int try_no;              /* 1 for the first try */
	const char *error;       /* NULL on success */
};
typedef void (*lqs_trace_fn)(void *ctx, const struct lqs_call *call);

struct lqs_client *lqs_client_new(const struct config *cfg);
void lqs_client_free(struct lqs_client *c);
/* Per-event settings: the event's datastore (NULL: configured one), and
 * where to report calls. */
void lqs_client_begin(struct lqs_client *c, const char *datastore_id, lqs_trace_fn fn, void *ctx);
/* Retry sleeps end early when *flag becomes true (shutdown). */
void lqs_client_set_abort(struct lqs_client *c, const atomic_bool *flag);

/* URL of a resource path ("digestions/<id>"), with an optional query. */
char *lqs_url(const struct lqs_client *c, const char *path, const char *query);

/* Single requests; *data receives the envelope's "data" member (owned). */
int lqs_get(struct lqs_client *c, const char *path, json_t **data, struct lqs_error *err);
int lqs_patch(struct lqs_client *c, const char *path, json_t *body, json_t **data,
	      struct lqs_error *err);

/* Create a resource (POST). A retried POST whose first answer was lost may
 * have created it already: callers that must not create twice look first. */
int lqs_post(struct lqs_client *c, const char *path, json_t *body, json_t **data, struct lqs_error *err);
/* A query value as the client writes it: percent-encoded, '/' kept. */
char *lqs_query_escape(const char *s);
/* List every page of a collection; cb sees each item (borrowed) and returns
 * 0 to go on, non-zero to stop with that value. */
typedef int (*lqs_item_fn)(void *ctx, json_t *item);
int lqs_list(struct lqs_client *c, const char *path, const char *filter, lqs_item_fn cb, void *ctx,
	     struct lqs_error *err);

/* Fetch many resources concurrently (at most max_parallel_requests at once);
 * cb(ctx, i, data) for each, in completion order. */
typedef int (*lqs_many_fn)(void *ctx, size_t i, json_t *data);
int lqs_get_many(struct lqs_client *c, char *const *paths, size_t n, lqs_many_fn cb, void *ctx,
		 struct lqs_error *err);

/* The same, handing each response body over unparsed (for a streaming
 * reader). The body is only valid during the call, unless the callback
 * takes it with buf_steal(). */
struct buf;
typedef int (*lqs_raw_fn)(void *ctx, size_t i, struct buf *body);
int lqs_get_many_raw(struct lqs_client *c, char *const *paths, size_t n, lqs_raw_fn cb, void *ctx,
		     struct lqs_error *err);

/* The client's retry policy, exposed for tests. */
bool lqs_status_retryable(int status, bool aggressive);

#endif
