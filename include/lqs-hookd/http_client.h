/* A generic HTTP client: libcurl multi, up to max_parallel transfers at
 * once, each request retried with backoff (jittered, Retry-After honoured,
 * never longer inline than max_inline_wait_s), ended early by an abort
 * flag. What a try means is its owner's to judge: the LogQS client today;
 * AWS and REST-trigger clients reuse the same loop. */
#ifndef LQS_HTTP_CLIENT_H
#define LQS_HTTP_CLIENT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

struct buf;
struct http_client;

struct hc_options {
	size_t max_parallel;       /* transfers at once */
	size_t max_response;       /* a larger body fails the try (CURLE_WRITE_ERROR) */
	long timeout_ms;           /* one try */
	int retry_count;           /* retries after the first try */
	double retry_delay;        /* first backoff, seconds; doubles */
	double max_inline_wait_s;  /* a longer wait gives up instead (the caller reschedules) */
};

/* One finished try, for its judge. */
struct hc_try {
	size_t idx;
	const char *method, *label;
	CURLcode cc;               /* not CURLE_OK: no answer */
	const char *curl_error;    /* curl's detail, "" when none */
	long status;
	const char *content_type;  /* may be NULL */
	struct buf *body;          /* the judge may take it (buf_steal) */
	double retry_after;        /* seconds the server asked for, 0 if none */
	int try_no;                /* from 1 */
	int64_t started_ms, duration_ms;
};

enum hc_verdict {
	HC_DONE,    /* this request is over (answered, or its failure is the caller's) */
	HC_RETRY,   /* try it again, if retries and time allow */
	HC_STOP,    /* end the whole batch now */
};

struct hc_batch {
	const char *method;
	size_t n;
	const char *body;                           /* NULL: none */
	char *(*url)(void *ctx, size_t i);          /* malloc'd; the client frees it */
	const char *(*label)(void *ctx, size_t i);  /* for the judge and traces */
	enum hc_verdict (*judge)(void *ctx, const struct hc_try *t);
	void *ctx;
};

enum hc_result {
	HC_OK = 0,        /* every request done */
	HC_STOPPED = -1,  /* the judge said stop */
	HC_GAVE_UP = -2,  /* a retry was due, but the retries or the inline wait ran out */
	HC_ABORTED = -3,  /* the abort flag was raised */
};

struct http_client *hc_new(const struct hc_options *o);
void hc_free(struct http_client *c);
/* Headers sent with every request (the caller keeps the list). */
void hc_set_headers(struct http_client *c, const struct curl_slist *headers);
/* Backoff sleeps and transfers end early when *flag becomes true. */
void hc_set_abort(struct http_client *c, const atomic_bool *flag);
int hc_run(struct http_client *c, const struct hc_batch *b);

#endif
