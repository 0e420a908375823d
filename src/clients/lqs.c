#include "lqs-hookd/lqs.h"

#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/backoff.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/http_client.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* A per-call wait longer than this is not slept through inside the call:
 * the call fails as retryable and the worker reschedules the whole event,
 * so a long Retry-After never holds a worker. */
#define LQS_MAX_INLINE_WAIT_S 30.0

struct lqs_client {
	struct http_client *hc;   /* transfers, retries, backoff */
	char *base;               /* api_url + prefix, no trailing slash */
	char *cfg_datastore;
	const char *datastore;
	struct curl_slist *headers;
	bool aggressive;
	int64_t page_limit;
	lqs_trace_fn trace;
	void *trace_ctx;
};

bool lqs_status_retryable(int status, bool aggressive)
{
	if (status >= 200 && status < 300)
		return false;
	if (aggressive)
		return true;
	switch (status) {
	case 400: case 401: case 403: case 404: case 409: case 413: case 423:
		return false;
	default:
		return true;
	}
}

static char *trim_slashes(const char *s, bool leading)
{
	struct buf b;
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		n--;
	buf_init(&b, 0);
	if (leading && n && s[0] != '/')
		buf_append(&b, "/", 1);
	buf_append(&b, s, n);
	return buf_steal(&b);
}

static int header_overridden(json_t *extra, const char *name)
{
	const char *k;
	json_t *v;

	json_object_foreach(extra, k, v) {
		(void)v;
		if (strcasecmp(k, name) == 0)
			return 1;
	}
	return 0;
}

struct lqs_client *lqs_client_new(const struct config *cfg)
{
	struct lqs_client *c = calloc(1, sizeof(*c));
	char *api, *prefix;
	json_t *extra = NULL;
	json_error_t jerr;
	struct buf b;

	if (!c)
		return NULL;
	api = trim_slashes(cfg->api_url, false);
	prefix = trim_slashes(cfg->api_endpoint_prefix ? cfg->api_endpoint_prefix : "", true);
	buf_init(&b, 0);
	buf_printf(&b, "%s%s", api, prefix);
	c->base = buf_steal(&b);
	free(api);
	free(prefix);
	if (cfg->datastore_id && *cfg->datastore_id) {
		char canon[37];
		c->cfg_datastore = strdup(uuid_canonical(cfg->datastore_id, canon) ? canon : cfg->datastore_id);
	}
	c->aggressive = cfg->retry_aggressive;
	c->page_limit = cfg->page_limit;

	if (cfg->additional_headers)
		extra = json_loads(cfg->additional_headers, 0, &jerr);
	if (!json_is_object(extra)) {
		json_decref(extra);
		extra = json_object();
	}
	if (!header_overridden(extra, "Content-Type"))
		c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
	if (!header_overridden(extra, "Accept"))
		c->headers = curl_slist_append(c->headers, "Accept: application/json");
	if (cfg->api_key_id && *cfg->api_key_id && cfg->api_key_secret && *cfg->api_key_secret &&
	    !header_overridden(extra, "Authorization")) {
		char auth[1200], line[1300];
		if (auth_basic_bearer(cfg->api_key_id, cfg->api_key_secret, auth, sizeof(auth)) == 0) {
			snprintf(line, sizeof(line), "Authorization: %s", auth);
			c->headers = curl_slist_append(c->headers, line);
			secure_zero(line, sizeof(line));
			secure_zero(auth, sizeof(auth));
		}
	}
	/* Merged last, as the LogQS client does. */
	{
		const char *k;
		json_t *v;
		json_object_foreach(extra, k, v) {
			char line[1024];
			if (!json_is_string(v))
				continue;
			snprintf(line, sizeof(line), "%s: %s", k, json_string_value(v));
			c->headers = curl_slist_append(c->headers, line);
		}
	}
	json_decref(extra);
	/* Without Expect, curl would wait for "100 Continue" on larger PATCHes. */
	c->headers = curl_slist_append(c->headers, "Expect:");

	{
		struct hc_options o = { .max_parallel = (size_t)cfg->max_parallel_requests,
					.max_response = (size_t)cfg->max_response,
					.timeout_ms = (long)(cfg->request_timeout * 1000.0),
					.retry_count = (int)cfg->retry_count, .retry_delay = cfg->retry_delay,
					.max_inline_wait_s = LQS_MAX_INLINE_WAIT_S };
		c->hc = hc_new(&o);
	}
	if (!c->hc || !c->base) {
		lqs_client_free(c);
		return NULL;
	}
	hc_set_headers(c->hc, c->headers);
	c->datastore = c->cfg_datastore;
	return c;
}

void lqs_client_free(struct lqs_client *c)
{
	if (!c)
		return;
	hc_free(c->hc);
	if (c->headers) {
		/* The list holds the API key's bearer line: wipe before freeing. */
		for (struct curl_slist *h = c->headers; h; h = h->next)
			secure_zero(h->data, strlen(h->data));
		curl_slist_free_all(c->headers);
	}
	free(c->base);
	free(c->cfg_datastore);
	free(c);
}

void lqs_client_begin(struct lqs_client *c, const char *datastore_id, lqs_trace_fn fn, void *ctx)
{
	c->datastore = datastore_id && *datastore_id ? datastore_id : c->cfg_datastore;
	c->trace = fn;
	c->trace_ctx = ctx;
}

void lqs_client_set_abort(struct lqs_client *c, const atomic_bool *flag)
{
	hc_set_abort(c->hc, flag);
}

char *lqs_url(const struct lqs_client *c, const char *path, const char *query)
{
	struct buf b;

	buf_init(&b, 0);
	if (c->datastore && *c->datastore)
		buf_printf(&b, "%s/lqs/%s/api/%s", c->base, c->datastore, path);
	else
		buf_printf(&b, "%s/lqs/api/%s", c->base, path);
	if (query && *query)
		buf_printf(&b, "?%s", query);
	return buf_steal(&b);
}

typedef int (*doc_fn)(void *ctx, size_t i, json_t *doc);

/* raw: bodies are handed over unparsed (JSON content type still required) */
struct raw_sink {
	lqs_raw_fn fn;
	void *ctx;
};

/* One batch of LogQS requests: paths[i] may carry "?query". */
struct batch {
	struct lqs_client *c;
	const char *const *paths;
	doc_fn cb;
	void *ctx;
	const struct raw_sink *raw;
	struct lqs_error err;   /* the last try's error */
	int cb_rc;              /* what a callback returned to stop */
};

static char *batch_url(void *ctx, size_t i)
{
	struct batch *b = ctx;
	const char *p = b->paths[i], *q = strchr(p, '?');
	char *path = q ? strndup(p, (size_t)(q - p)) : strdup(p);
	char *url = lqs_url(b->c, path ? path : "", q ? q + 1 : NULL);

	free(path);
	return url;
}

static const char *batch_label(void *ctx, size_t i)
{
	return ((struct batch *)ctx)->paths[i];
}

/* "[NotFound] no such digestion" -> name "NotFound". */
static void error_from_body(const struct hc_try *t, struct lqs_error *err)
{
	json_error_t jerr;
	json_t *doc = t->body->data ? json_loadb(t->body->data, t->body->len, 0, &jerr) : NULL;
	const char *msg = NULL;

	if (json_is_object(doc)) {
		json_t *m = json_object_get(doc, "message");
		if (!json_is_string(m))
			m = json_object_get(doc, "detail");
		if (json_is_string(m))
			msg = json_string_value(m);
	}
	snprintf(err->name, sizeof(err->name), "HTTP%ld", t->status);
	if (msg && msg[0] == '[') {
		const char *close = strchr(msg, ']');
		if (close && close - msg - 1 > 0 && (size_t)(close - msg - 1) < sizeof(err->name)) {
			memcpy(err->name, msg + 1, (size_t)(close - msg - 1));
			err->name[close - msg - 1] = '\0';
		}
	}
	snprintf(err->message, sizeof(err->message), "LogQS %s %s: HTTP %ld%s%s", t->method, t->label, t->status,
		 msg ? ": " : "", msg ? msg : "");
	json_decref(doc);
}

static void report(struct lqs_client *c, const struct hc_try *t, const char *error)
{
	struct lqs_call call = { .method = t->method, .path = t->label, .status = (int)t->status,
				 .started_ms = t->started_ms, .duration_ms = t->duration_ms, .try_no = t->try_no,
				 .error = error };

	metrics_lqs_call(t->method, (int)t->status, (double)t->duration_ms / 1000.0);
	if (c->trace)
		c->trace(c->trace_ctx, &call);
}

/* Classify one finished try under the LogQS client's policy; 0 and *doc
 * (unless raw) on success, else -1 with err. */
static int classify(struct lqs_client *c, const struct hc_try *t, json_t **doc, struct lqs_error *err)
{
	json_error_t jerr;

	memset(err, 0, sizeof(*err));
	if (t->cc != CURLE_OK) {
		bool too_big = t->cc == CURLE_WRITE_ERROR;
		err->retryable = !too_big;
		str_copy(err->name, too_big ? "ResponseTooLarge" : "ConnectionError", sizeof(err->name));
		snprintf(err->message, sizeof(err->message), "LogQS %s %s: %s%s%s", t->method, t->label,
			 too_big ? "response larger than max_response" : curl_easy_strerror(t->cc),
			 t->curl_error[0] && !too_big ? ": " : "", too_big ? "" : t->curl_error);
		return -1;
	}
	err->status = (int)t->status;
	if (t->status < 200 || t->status >= 300) {
		err->retry_after = t->retry_after;
		err->retryable = lqs_status_retryable((int)t->status, c->aggressive);
		error_from_body(t, err);
		return -1;
	}
	/* JSON only when the server says so (logqs-api.md, section 3). A raw
	 * reader (doc NULL) parses the body itself. */
	if (!t->content_type || strncasecmp(t->content_type, "application/json", 16) != 0 ||
	    (doc && !(*doc = json_loadb(t->body->data ? t->body->data : "", t->body->len, 0, &jerr)))) {
		err->retryable = true;
		str_copy(err->name, "InvalidResponse", sizeof(err->name));
		snprintf(err->message, sizeof(err->message), "LogQS %s %s: HTTP %ld with a non-JSON body", t->method,
			 t->label, t->status);
		return -1;
	}
	return 0;
}

static enum hc_verdict judge(void *ctx, const struct hc_try *t)
{
	struct batch *b = ctx;
	json_t *doc = NULL;
	int crc;

	if (classify(b->c, t, b->raw ? NULL : &doc, &b->err) != 0) {
		report(b->c, t, b->err.message);
		return b->err.retryable ? HC_RETRY : HC_STOP;
	}
	report(b->c, t, NULL);
	crc = b->raw ? b->raw->fn(b->raw->ctx, t->idx, t->body) : b->cb ? b->cb(b->ctx, t->idx, doc) : 0;
	json_decref(doc);
	if (crc) {
		b->cb_rc = crc;
		return HC_STOP;
	}
	return HC_DONE;
}

/* Run n requests with at most max_parallel in flight, each retried under the
 * client's policy. Returns 0, or -1 with err (or what a callback returned,
 * err cleared). */
static int run_batch(struct lqs_client *c, const char *method, const char *const *paths, size_t n,
		     const char *body, doc_fn cb, void *ctx, struct lqs_error *err, const struct raw_sink *raw)
{
	struct batch b = { .c = c, .paths = paths, .cb = cb, .ctx = ctx, .raw = raw };
	struct hc_batch hb = { .method = method, .n = n, .body = body, .url = batch_url, .label = batch_label,
			       .judge = judge, .ctx = &b };
	int rc = hc_run(c->hc, &hb);

	memset(err, 0, sizeof(*err));
	switch (rc) {
	case HC_OK:
		return 0;
	case HC_ABORTED:
		err->retryable = true;
		str_copy(err->name, "ShuttingDown", sizeof(err->name));
		str_copy(err->message, "interrupted by shutdown", sizeof(err->message));
		return -1;
	case HC_STOPPED:
		if (b.cb_rc)
			return b.cb_rc;
		*err = b.err;
		return -1;
	default:   /* gave up retrying: the last try's error, still retryable */
		*err = b.err;
		return -1;
	}
}

struct one_ctx {
	json_t *doc;
};

static int keep_doc(void *ctx, size_t i, json_t *doc)
{
	(void)i;
	((struct one_ctx *)ctx)->doc = json_incref(doc);
	return 0;
}

static int envelope_data(json_t *doc, const char *method, const char *path, json_t **data,
			 struct lqs_error *err)
{
	json_t *d = json_is_object(doc) ? json_object_get(doc, "data") : NULL;

	if (!d) {
		memset(err, 0, sizeof(*err));
		str_copy(err->name, "InvalidResponse", sizeof(err->name));
		snprintf(err->message, sizeof(err->message), "LogQS %s %s: response has no \"data\" member",
			 method, path);
		return -1;
	}
	if (data)
		*data = json_incref(d);
	return 0;
}

static int request_one(struct lqs_client *c, const char *method, const char *path, json_t *body,
		       json_t **data, struct lqs_error *err)
{
	struct one_ctx oc = { NULL };
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *paths[1] = { path };
	int rc;

	if (data)
		*data = NULL;
	rc = run_batch(c, method, paths, 1, text, keep_doc, &oc, err, NULL);
	free(text);
	if (rc == 0)
		rc = envelope_data(oc.doc, method, path, data, err);
	json_decref(oc.doc);
	return rc;
}

int lqs_get(struct lqs_client *c, const char *path, json_t **data, struct lqs_error *err)
{
	return request_one(c, "GET", path, NULL, data, err);
}

int lqs_patch(struct lqs_client *c, const char *path, json_t *body, json_t **data,
	      struct lqs_error *err)
{
	return request_one(c, "PATCH", path, body, data, err);
}

int lqs_post(struct lqs_client *c, const char *path, json_t *body, json_t **data, struct lqs_error *err)
{
	return request_one(c, "POST", path, body, data, err);
}

int lqs_list(struct lqs_client *c, const char *path, const char *filter, lqs_item_fn cb, void *ctx,
	     struct lqs_error *err)
{
	int64_t offset = 0;

	for (;;) {
		struct one_ctx oc = { NULL };
		struct buf q;
		const char *paths[1];
		json_t *data, *count;
		size_t got, i;
		int rc;

		buf_init(&q, 0);
		buf_printf(&q, "%s?include_count=True&offset=%lld&limit=%lld&order=created_at&sort=ASC%s%s",
			   path, (long long)offset, (long long)c->page_limit, filter && *filter ? "&" : "",
			   filter ? filter : "");
		paths[0] = q.data;
		rc = run_batch(c, "GET", paths, 1, NULL, keep_doc, &oc, err, NULL);
		if (rc == 0) {
			data = json_is_object(oc.doc) ? json_object_get(oc.doc, "data") : NULL;
			if (!json_is_array(data)) {
				memset(err, 0, sizeof(*err));
				str_copy(err->name, "InvalidResponse", sizeof(err->name));
				snprintf(err->message, sizeof(err->message),
					 "LogQS GET %s: list response has no \"data\" array", q.data);
				rc = -1;
			}
		}
		buf_free(&q);
		if (rc) {
			json_decref(oc.doc);
			return rc;
		}
		got = json_array_size(data);
		json_array_foreach(data, i, count) {
			rc = cb(ctx, count);
			if (rc) {
				json_decref(oc.doc);
				memset(err, 0, sizeof(*err));
				return rc;
			}
		}
		count = json_object_get(oc.doc, "count");
		offset += (int64_t)got;
		/* Page until offset reaches count, whatever page size the
		 * server chose; without a count, until a short page. */
		bool more = got > 0 && (json_is_integer(count) ? offset < json_integer_value(count)
							       : (int64_t)got >= c->page_limit);
		json_decref(oc.doc);
		if (!more)
			return 0;
	}
}

struct many_ctx {
	lqs_many_fn cb;
	void *ctx;
	char *const *paths;
	struct lqs_error *err;
};

static int many_doc(void *ctx, size_t i, json_t *doc)
{
	struct many_ctx *m = ctx;
	json_t *data = NULL;

	if (envelope_data(doc, "GET", m->paths[i], &data, m->err))
		return -1;
	int rc = m->cb(m->ctx, i, data);
	json_decref(data);
	return rc;
}

int lqs_get_many(struct lqs_client *c, char *const *paths, size_t n, lqs_many_fn cb, void *ctx,
		 struct lqs_error *err)
{
	struct lqs_error inner;
	struct many_ctx m = { cb, ctx, paths, &inner };
	int rc;

	memset(&inner, 0, sizeof(inner));
	rc = run_batch(c, "GET", (const char *const *)paths, n, NULL, many_doc, &m, err, NULL);
	if (rc && inner.name[0])
		*err = inner;
	return rc;
}

int lqs_get_many_raw(struct lqs_client *c, char *const *paths, size_t n, lqs_raw_fn cb, void *ctx,
		     struct lqs_error *err)
{
	struct raw_sink raw = { cb, ctx };

	return run_batch(c, "GET", (const char *const *)paths, n, NULL, NULL, NULL, err, &raw);
}

char *lqs_query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf b;

	buf_init(&b, 0);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~/", *p))
			buf_append(&b, p, 1);
		else
			buf_printf(&b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
	return b.data ? buf_steal(&b) : strdup("");
}
