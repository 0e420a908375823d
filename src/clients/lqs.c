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
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* A per-call wait longer than this is not slept through inside the call:
 * the call fails as retryable and the worker reschedules the whole event,
 * so a long Retry-After never holds a worker. */
#define LQS_MAX_INLINE_WAIT_S 30.0
/* Bytes libcurl reads from a socket at once (its default is 16 KiB). */
#define LQS_RECV_BUFFER (64L * 1024)

struct slot {
	CURL *easy;
	struct buf body;
	char errbuf[CURL_ERROR_SIZE];
	char *url;
	char *trace_path;
	size_t idx;
	int tries;            /* tries made so far */
	int64_t not_before;   /* mono ms */
	int64_t started;      /* wall ms of this try */
	bool assigned, in_multi;
};

struct lqs_client {
	char *base;           /* api_url + prefix, no trailing slash */
	char *cfg_datastore;
	const char *datastore;
	struct curl_slist *headers;
	int64_t retry_count;
	double retry_delay;
	bool aggressive;
	long timeout_ms;
	size_t max_parallel;
	int64_t page_limit;
	size_t max_response;
	CURLM *multi;
	struct slot *slots;
	lqs_trace_fn trace;
	void *trace_ctx;
	const atomic_bool *abort_flag;
	unsigned rng;
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

static double rand01(struct lqs_client *c)
{
	return (double)rand_r(&c->rng) / (double)RAND_MAX;
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
	c->retry_count = cfg->retry_count;
	c->retry_delay = cfg->retry_delay;
	c->aggressive = cfg->retry_aggressive;
	c->timeout_ms = (long)(cfg->request_timeout * 1000.0);
	c->max_parallel = (size_t)cfg->max_parallel_requests;
	c->page_limit = cfg->page_limit;
	c->max_response = (size_t)cfg->max_response;
	c->rng = (unsigned)(now_ms() ^ (int64_t)(uintptr_t)c);

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

	c->multi = curl_multi_init();
	c->slots = calloc(c->max_parallel, sizeof(*c->slots));
	if (!c->multi || !c->slots || !c->base) {
		lqs_client_free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->max_parallel);
	for (size_t i = 0; i < c->max_parallel; i++) {
		c->slots[i].easy = curl_easy_init();
		buf_init(&c->slots[i].body, c->max_response);
		if (!c->slots[i].easy) {
			lqs_client_free(c);
			return NULL;
		}
	}
	c->datastore = c->cfg_datastore;
	return c;
}

void lqs_client_free(struct lqs_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->slots && i < c->max_parallel; i++) {
		struct slot *s = &c->slots[i];
		if (s->in_multi)
			curl_multi_remove_handle(c->multi, s->easy);
		if (s->easy)
			curl_easy_cleanup(s->easy);
		buf_free(&s->body);
		free(s->url);
		free(s->trace_path);
	}
	free(c->slots);
	if (c->multi)
		curl_multi_cleanup(c->multi);
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
	c->abort_flag = flag;
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

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct slot *s = ud;
	size_t n = size * nmemb;

	if (s->body.len == 0) {
		/* the first bytes: room for the whole body in one allocation */
		curl_off_t cl = -1;
		if (curl_easy_getinfo(s->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0)
			buf_expect(&s->body, (size_t)cl);
	}
	if (buf_append(&s->body, p, n))
		return 0;   /* curl reports CURLE_WRITE_ERROR; body is empty again */
	return n;
}

/* "[NotFound] no such digestion" -> name "NotFound". */
static void error_from_body(const struct slot *s, const char *method, int status, struct lqs_error *err)
{
	json_error_t jerr;
	json_t *doc = s->body.data ? json_loadb(s->body.data, s->body.len, 0, &jerr) : NULL;
	const char *msg = NULL;

	if (json_is_object(doc)) {
		json_t *m = json_object_get(doc, "message");
		if (!json_is_string(m))
			m = json_object_get(doc, "detail");
		if (json_is_string(m))
			msg = json_string_value(m);
	}
	snprintf(err->name, sizeof(err->name), "HTTP%d", status);
	if (msg && msg[0] == '[') {
		const char *close = strchr(msg, ']');
		if (close && close - msg - 1 > 0 && (size_t)(close - msg - 1) < sizeof(err->name)) {
			memcpy(err->name, msg + 1, (size_t)(close - msg - 1));
			err->name[close - msg - 1] = '\0';
		}
	}
	snprintf(err->message, sizeof(err->message), "LogQS %s %s: HTTP %d%s%s", method, s->trace_path, status,
		 msg ? ": " : "", msg ? msg : "");
	json_decref(doc);
}

static void slot_start(struct lqs_client *c, struct slot *s, const char *method, const char *body)
{
	CURL *e = s->easy;

	buf_reset(&s->body);
	s->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, s->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* fewer, larger reads for large part indexes */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, LQS_RECV_BUFFER);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	if (body) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	}
	s->started = now_ms();
	s->tries++;
	curl_multi_add_handle(c->multi, e);
	s->in_multi = true;
}

static void slot_clear(struct lqs_client *c, struct slot *s)
{
	if (s->in_multi)
		curl_multi_remove_handle(c->multi, s->easy);
	s->in_multi = false;
	s->assigned = false;
	free(s->url);
	free(s->trace_path);
	s->url = NULL;
	s->trace_path = NULL;
	buf_reset(&s->body);
}

static void report(struct lqs_client *c, const char *method, const struct slot *s, int status,
		   const char *error)
{
	struct lqs_call call = { .method = method, .path = s->trace_path, .status = status,
				 .started_ms = s->started, .duration_ms = now_ms() - s->started,
				 .try_no = s->tries, .error = error };

	metrics_lqs_call(method, status, (double)call.duration_ms / 1000.0);
	if (c->trace)
		c->trace(c->trace_ctx, &call);
}

/* Classify one finished try. Returns 0 and *doc on success, else fills err. */
static int finish_try(struct lqs_client *c, const char *method, struct slot *s, CURLcode cc,
		      json_t **doc, struct lqs_error *err)
{
	long status = 0;
	char *ctype = NULL;
	curl_off_t ra = 0;
	json_error_t jerr;

	memset(err, 0, sizeof(*err));
	if (cc != CURLE_OK) {
		bool too_big = cc == CURLE_WRITE_ERROR;
		err->retryable = !too_big;
		str_copy(err->name, too_big ? "ResponseTooLarge" : "ConnectionError", sizeof(err->name));
		snprintf(err->message, sizeof(err->message), "LogQS %s %s: %s%s%s", method, s->trace_path,
			 too_big ? "response larger than max_response" : curl_easy_strerror(cc),
			 s->errbuf[0] && !too_big ? ": " : "", too_big ? "" : s->errbuf);
		report(c, method, s, 0, err->message);
		return -1;
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ctype);
	err->status = (int)status;
	if (status < 200 || status >= 300) {
		if (curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			err->retry_after = (double)ra;
		err->retryable = lqs_status_retryable((int)status, c->aggressive);
		error_from_body(s, method, (int)status, err);
		report(c, method, s, (int)status, err->message);
		return -1;
	}
	/* JSON only when the server says so (logqs-api.md, section 3). A raw
	 * reader (doc NULL) parses the body itself. */
	if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 ||
	    (doc && !(*doc = json_loadb(s->body.data ? s->body.data : "", s->body.len, 0, &jerr)))) {
		err->retryable = true;
		str_copy(err->name, "InvalidResponse", sizeof(err->name));
		snprintf(err->message, sizeof(err->message), "LogQS %s %s: HTTP %ld with a non-JSON body",
			 method, s->trace_path, status);
		report(c, method, s, (int)status, err->message);
		return -1;
	}
	report(c, method, s, (int)status, NULL);
	return 0;
}

typedef int (*doc_fn)(void *ctx, size_t i, json_t *doc);

/* raw: bodies are handed over unparsed (JSON content type still required) */
struct raw_sink {
	lqs_raw_fn fn;
	void *ctx;
};

/* Run n requests with at most max_parallel in flight, each retried under the
 * client's policy. paths[i] may carry "?query". Returns 0, or -1 with err. */
static int run_batch(struct lqs_client *c, const char *method, const char *const *paths, size_t n,
		     const char *body, doc_fn cb, void *ctx, struct lqs_error *err, const struct raw_sink *raw)
{
	size_t next = 0, done = 0;
	int rc = 0;

	memset(err, 0, sizeof(*err));
	while (done < n && rc == 0) {
		int64_t now = mono_ms(), wait = 200;
		int running = 0, msgs;
		size_t done_before = done;
		CURLMsg *m;

		if (c->abort_flag && atomic_load(c->abort_flag)) {
			err->retryable = true;
			str_copy(err->name, "ShuttingDown", sizeof(err->name));
			str_copy(err->message, "interrupted by shutdown", sizeof(err->message));
			rc = -1;
			break;
		}
		for (size_t i = 0; i < c->max_parallel; i++) {
			struct slot *s = &c->slots[i];
			if (!s->assigned && next < n) {
				const char *p = paths[next];
				const char *q = strchr(p, '?');
				char *path = q ? strndup(p, (size_t)(q - p)) : strdup(p);
				s->url = lqs_url(c, path ? path : "", q ? q + 1 : NULL);
				s->trace_path = strdup(p);
				free(path);
				s->idx = next++;
				s->tries = 0;
				s->not_before = 0;
				s->assigned = true;
			}
			if (s->assigned && !s->in_multi) {
				if (s->not_before <= now)
					slot_start(c, s, method, body);
				else if (s->not_before - now < wait)
					wait = s->not_before - now;
			}
		}
		curl_multi_perform(c->multi, &running);
		while ((m = curl_multi_info_read(c->multi, &msgs)) != NULL) {
			struct slot *s = NULL;
			json_t *doc = NULL;
			struct lqs_error e;

			if (m->msg != CURLMSG_DONE)
				continue;
			for (size_t i = 0; i < c->max_parallel; i++)
				if (c->slots[i].easy == m->easy_handle)
					s = &c->slots[i];
			if (!s)
				continue;
			CURLcode cc = m->data.result;
			curl_multi_remove_handle(c->multi, s->easy);
			s->in_multi = false;
			if (finish_try(c, method, s, cc, raw ? NULL : &doc, &e) == 0) {
				int crc = raw ? raw->fn(raw->ctx, s->idx, &s->body) : cb ? cb(ctx, s->idx, doc) : 0;
				json_decref(doc);
				slot_clear(c, s);
				done++;
				if (crc) {
					rc = crc;
					err->retryable = false;
					break;
				}
				continue;
			}
			if (e.retryable && s->tries <= c->retry_count) {
				double d = backoff_delay(c->retry_delay, s->tries - 1, rand01(c));
				if (e.retry_after > d)
					d = e.retry_after;
				if (d <= LQS_MAX_INLINE_WAIT_S) {
					s->not_before = mono_ms() + (int64_t)(d * 1000.0);
					continue;
				}
			}
			*err = e;
			rc = -1;
			break;
		}
		if (rc || done >= n)
			break;
		if (done != done_before && next < n)
			continue;   /* slots were freed: start their next transfers now */
		if (running) {
			curl_multi_poll(c->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
		} else {
			/* Nothing in flight: if a slot is waiting out a retry backoff,
			 * sleep towards it; otherwise go straight on and start the next
			 * transfers (finished ones just freed their slots). */
			bool backing_off = false;
			for (size_t i = 0; i < c->max_parallel; i++)
				if (c->slots[i].assigned && !c->slots[i].in_multi)
					backing_off = true;
			if (backing_off && wait > 0) {
				struct timespec ts = { 0, (long)(wait > 50 ? 50 : wait) * 1000000L };
				nanosleep(&ts, NULL);
			}
		}
	}
	for (size_t i = 0; i < c->max_parallel; i++)
		if (c->slots[i].assigned)
			slot_clear(c, &c->slots[i]);
	return rc;
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
