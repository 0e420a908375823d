#include "lqs-hookd/http_client.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/backoff.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/util.h"

/* Bytes libcurl reads from a socket at once (its default is 16 KiB). */
#define HC_RECV_BUFFER (64L * 1024)

struct slot {
	CURL *easy;
	struct buf body;
	char errbuf[CURL_ERROR_SIZE];
	char *url;
	size_t idx;
	int tries;            /* tries made so far */
	int64_t not_before;   /* mono ms */
	int64_t started;      /* wall ms of this try */
	bool assigned, in_multi;
};

struct http_client {
	struct hc_options o;
	const struct curl_slist *headers;
	CURLM *multi;
	struct slot *slots;
	const atomic_bool *abort_flag;
	unsigned rng;
};

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

struct http_client *hc_new(const struct hc_options *o)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->o = *o;
	if (c->o.max_parallel < 1)
		c->o.max_parallel = 1;
	c->rng = (unsigned)(now_ms() ^ (int64_t)(uintptr_t)c);
	c->multi = curl_multi_init();
	c->slots = calloc(c->o.max_parallel, sizeof(*c->slots));
	if (!c->multi || !c->slots) {
		hc_free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->o.max_parallel);
	for (size_t i = 0; i < c->o.max_parallel; i++) {
		c->slots[i].easy = curl_easy_init();
		buf_init(&c->slots[i].body, c->o.max_response);
		if (!c->slots[i].easy) {
			hc_free(c);
			return NULL;
		}
	}
	return c;
}

void hc_free(struct http_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->slots && i < c->o.max_parallel; i++) {
		struct slot *s = &c->slots[i];
		if (s->in_multi)
			curl_multi_remove_handle(c->multi, s->easy);
		if (s->easy)
			curl_easy_cleanup(s->easy);
		buf_free(&s->body);
		free(s->url);
	}
	free(c->slots);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
}

void hc_set_headers(struct http_client *c, const struct curl_slist *headers)
{
	c->headers = headers;
}

void hc_set_abort(struct http_client *c, const atomic_bool *flag)
{
	c->abort_flag = flag;
}

static void slot_start(struct http_client *c, struct slot *s, const char *method, const char *body)
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
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->o.timeout_ms < 10000 ? c->o.timeout_ms : 10000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* fewer, larger reads for large bodies */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, HC_RECV_BUFFER);
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

static void slot_clear(struct http_client *c, struct slot *s)
{
	if (s->in_multi)
		curl_multi_remove_handle(c->multi, s->easy);
	s->in_multi = false;
	s->assigned = false;
	free(s->url);
	s->url = NULL;
	buf_reset(&s->body);
}

/* A finished transfer, as its judge sees it. */
static void describe(const struct hc_batch *b, struct slot *s, CURLcode cc, struct hc_try *t)
{
	curl_off_t ra = 0;
	char *ctype = NULL;

	memset(t, 0, sizeof(*t));
	t->idx = s->idx;
	t->method = b->method;
	t->label = b->label(b->ctx, s->idx);
	t->cc = cc;
	t->curl_error = s->errbuf;
	t->body = &s->body;
	t->try_no = s->tries;
	t->started_ms = s->started;
	t->duration_ms = now_ms() - s->started;
	if (cc != CURLE_OK)
		return;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &t->status);
	curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ctype);
	t->content_type = ctype;
	if ((t->status < 200 || t->status >= 300) &&
	    curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		t->retry_after = (double)ra;
}

/* Fill free slots with the next requests; start those whose backoff is
 * over. Returns how long the next one waiting must still wait (ms). */
static int64_t fill(struct http_client *c, const struct hc_batch *b, size_t *next)
{
	int64_t now = mono_ms(), wait = 200;

	for (size_t i = 0; i < c->o.max_parallel; i++) {
		struct slot *s = &c->slots[i];
		if (!s->assigned && *next < b->n) {
			s->url = b->url(b->ctx, *next);
			s->idx = (*next)++;
			s->tries = 0;
			s->not_before = 0;
			s->assigned = true;
		}
		if (s->assigned && !s->in_multi) {
			if (s->not_before <= now)
				slot_start(c, s, b->method, b->body);
			else if (s->not_before - now < wait)
				wait = s->not_before - now;
		}
	}
	return wait;
}

/* A try its judge wants again: when, or HC_GAVE_UP. */
static int schedule_retry(struct http_client *c, struct slot *s, const struct hc_try *t)
{
	double d;

	if (s->tries > c->o.retry_count)
		return HC_GAVE_UP;
	d = backoff_delay(c->o.retry_delay, s->tries - 1, (double)rand_r(&c->rng) / (double)RAND_MAX);
	if (t->retry_after > d)
		d = t->retry_after;
	/* a long wait does not hold the caller: it gives up, and reschedules */
	if (d > c->o.max_inline_wait_s)
		return HC_GAVE_UP;
	s->not_before = mono_ms() + (int64_t)(d * 1000.0);
	return HC_OK;
}

/* The finished transfers, judged. Returns HC_OK to go on. */
static int collect(struct http_client *c, const struct hc_batch *b, size_t *done)
{
	CURLMsg *m;
	int msgs;

	while ((m = curl_multi_info_read(c->multi, &msgs)) != NULL) {
		struct slot *s = NULL;
		struct hc_try t;
		int rc;

		if (m->msg != CURLMSG_DONE)
			continue;
		for (size_t i = 0; i < c->o.max_parallel; i++)
			if (c->slots[i].easy == m->easy_handle)
				s = &c->slots[i];
		if (!s)
			continue;
		describe(b, s, m->data.result, &t);
		curl_multi_remove_handle(c->multi, s->easy);
		s->in_multi = false;
		switch (b->judge(b->ctx, &t)) {
		case HC_DONE:
			slot_clear(c, s);
			(*done)++;
			continue;
		case HC_STOP:
			return HC_STOPPED;
		case HC_RETRY:
			if ((rc = schedule_retry(c, s, &t)) != HC_OK)
				return rc;
			continue;
		}
	}
	return HC_OK;
}

/* Nothing in flight: if a slot is waiting out a backoff, sleep towards it
 * (a little at a time, so that an abort is seen). */
static void idle(struct http_client *c, int64_t wait)
{
	bool backing_off = false;

	for (size_t i = 0; i < c->o.max_parallel; i++)
		if (c->slots[i].assigned && !c->slots[i].in_multi)
			backing_off = true;
	if (backing_off && wait > 0) {
		struct timespec ts = { 0, (long)(wait > 50 ? 50 : wait) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int hc_run(struct http_client *c, const struct hc_batch *b)
{
	size_t next = 0, done = 0;
	int rc = HC_OK;

	while (done < b->n && rc == HC_OK) {
		int running = 0;
		size_t done_before = done;
		int64_t wait;

		if (c->abort_flag && atomic_load(c->abort_flag)) {
			rc = HC_ABORTED;
			break;
		}
		wait = fill(c, b, &next);
		curl_multi_perform(c->multi, &running);
		rc = collect(c, b, &done);
		if (rc != HC_OK || done >= b->n)
			break;
		if (done != done_before && next < b->n)
			continue;   /* slots were freed: start their next transfers now */
		if (running)
			curl_multi_poll(c->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
		else
			idle(c, wait);
	}
	for (size_t i = 0; i < c->o.max_parallel; i++)
		if (c->slots[i].assigned)
			slot_clear(c, &c->slots[i]);
	return rc;
}
