/* http_trigger: when a batch closes, call a REST endpoint (a workflow's
 * "execute", an event bus, a job queue) with a JSON body rendered from the
 * batch. 2xx is success, its answer kept in the event's result; the
 * statuses LogQS calls treat as permanent fail the event, anything else is
 * retried like a LogQS call, then with the event's own retries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/handlers.h"
#include "lqs-hookd/http_client.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/trigger.h"
#include "lqs-hookd/util.h"

/* The answer kept in the result (and the history) at most. */
#define TRIGGER_KEEP_BODY 4096
/* A trigger's own answer is small; a larger one is not read. */
#define TRIGGER_MAX_RESPONSE (1024 * 1024)
#define TRIGGER_TOKEN_MAX 8192

static const char *const trigger_settings[] = { "url", "method", "body", "headers", "token_file", "token_header",
						 NULL };

static const char *setting(const json_t *s, const char *key)
{
	return json_string_value(json_object_get(s, key));
}

static int trigger_check(const json_t *s, char *why, size_t whylen)
{
	const char *url = setting(s, "url"), *method = setting(s, "method"), *body = setting(s, "body");
	const char *headers = setting(s, "headers"), *token = setting(s, "token_file");
	/* a sample with every field a batch or a hook event has */
	json_t *batch = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[], s:s, s:s, s:s, s:s, s:n, s:n, s:n, s:n}",
				  "bucket", "b", "prefix", "p/", "path", "s3://b/p/", "batch_id", "x", "reason", "count",
				  "watch", "w", "closed_at", "t", "count", 1, "objects", "resource_id", "r", "process_type",
				  "digestion", "current_state", "finalizing", "previous_state", "processing", "workflow_id",
				  "hook_id", "datastore_id", "datastore_endpoint");
	char *rendered;
	json_t *h = NULL;
	int rc = -1;

	if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		snprintf(why, whylen, "url: an http:// or https:// URL is required");
	else if (method && strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
		snprintf(why, whylen, "method: POST or PUT, not '%s'", method);
	else if (headers && (!(h = json_loads(headers, 0, NULL)) || !json_is_object(h)))
		snprintf(why, whylen, "headers: a JSON object of header names to strings");
	else if (token && access(token, R_OK) != 0)
		snprintf(why, whylen, "token_file: cannot read '%s'", token);
	else if (!(rendered = trigger_render(body ? body : trigger_default_body, batch, why, whylen)))
		;   /* why says which placeholder */
	else {
		json_t *doc = json_loads(rendered, 0, NULL);
		if (!doc)
			snprintf(why, whylen, "body: the template does not render to JSON");
		else
			rc = 0;
		json_decref(doc);
		free(rendered);
	}
	json_decref(h);
	json_decref(batch);
	return rc;
}

struct call {
	long status;
	char *answer;
	char error[512];
	double retry_after;
	const char *url;
};

static char *call_url(void *ctx, size_t i)
{
	(void)i;
	return strdup(((struct call *)ctx)->url);
}

static const char *call_label(void *ctx, size_t i)
{
	(void)i;
	return ((struct call *)ctx)->url;
}

static enum hc_verdict judge(void *ctx, const struct hc_try *t)
{
	struct call *c = ctx;

	c->status = t->cc == CURLE_OK ? t->status : 0;
	c->retry_after = t->retry_after;
	if (t->cc != CURLE_OK) {
		snprintf(c->error, sizeof(c->error), "%s: %s", curl_easy_strerror(t->cc), t->curl_error);
		return HC_RETRY;
	}
	if (t->status >= 200 && t->status < 300) {
		size_t n = t->body && t->body->len < TRIGGER_KEEP_BODY ? t->body->len : TRIGGER_KEEP_BODY;
		c->answer = strndup(t->body && t->body->data ? t->body->data : "", n);
		return HC_DONE;
	}
	snprintf(c->error, sizeof(c->error), "HTTP %ld: %.300s", t->status,
		 t->body && t->body->data ? t->body->data : "");
	return lqs_status_retryable((int)t->status, false) ? HC_RETRY : HC_STOP;
}

/* The request's headers: the configured ones, the token, a JSON type. */
static struct curl_slist *headers_of(const json_t *s, char *why, size_t whylen)
{
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
	const char *token_file = setting(s, "token_file"), *token_header = setting(s, "token_header"), *k;
	json_t *h = setting(s, "headers") ? json_loads(setting(s, "headers"), 0, NULL) : NULL, *v;
	char line[TRIGGER_TOKEN_MAX + 300];

	json_object_foreach(h, k, v) {
		snprintf(line, sizeof(line), "%s: %s", k, json_string_value(v) ? json_string_value(v) : "");
		l = curl_slist_append(l, line);
	}
	json_decref(h);
	if (token_file) {
		size_t len;
		char *tok = file_read_all(token_file, TRIGGER_TOKEN_MAX, &len);
		if (!tok) {
			snprintf(why, whylen, "token_file: cannot read '%s'", token_file);
			curl_slist_free_all(l);
			return NULL;
		}
		while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r'))
			tok[--len] = '\0';
		/* "Authorization: Bearer <token>", or a header of its own ("token: <jwt>") */
		if (token_header && *token_header)
			snprintf(line, sizeof(line), "%s: %s", token_header, tok);
		else
			snprintf(line, sizeof(line), "Authorization: Bearer %s", tok);
		l = curl_slist_append(l, line);
		secure_zero(line, sizeof(line));
		secure_zero(tok, len);
		free(tok);
	}
	return l;
}

static enum handler_status trigger_run(struct handler_ctx *ctx, struct handler_out *out)
{
	const char *watch = json_string_value(json_object_get(ctx->event, "watch"));
	const struct watch_cfg *w = watch ? config_watch(ctx->cfg, watch) : NULL;
	/* a closed batch has its watch's settings; a hook event its route's */
	const struct route *rt = watch ? NULL
			       : router_route_of(ctx->cfg, json_string_value(json_object_get(ctx->event, "process_type")) ?: "",
						 json_string_value(json_object_get(ctx->event, "current_state")) ?: "");
	const json_t *s = w ? w->settings : rt ? rt->settings : NULL;
	const char *dflt = watch ? trigger_default_body : trigger_default_event_body;
	struct call c = { .url = setting(s, "url") };
	struct hc_options o = { .max_parallel = 1, .max_response = TRIGGER_MAX_RESPONSE,
				.timeout_ms = (long)(ctx->cfg->request_timeout * 1000.0),
				.retry_count = (int)ctx->cfg->retry_count, .retry_delay = ctx->cfg->retry_delay,
				.max_inline_wait_s = 30 };
	struct curl_slist *headers;
	struct http_client *hc;
	char *body;
	int rc;

	if (!c.url) {
		snprintf(out->error, sizeof(out->error), "%s '%s' is no longer configured with a url",
			 watch ? "watch" : "the route of", watch ? watch : "this event");
		str_copy(out->error_name, "NotConfigured", sizeof(out->error_name));
		return HANDLER_FAIL;
	}
	body = trigger_render(setting(s, "body") ? setting(s, "body") : dflt, ctx->event, out->error,
			      sizeof(out->error));
	headers = body ? headers_of(s, out->error, sizeof(out->error)) : NULL;
	if (!body || !headers) {
		free(body);
		str_copy(out->error_name, "BadTemplate", sizeof(out->error_name));
		return HANDLER_FAIL;
	}
	hc = hc_new(&o);
	hc_set_headers(hc, headers);
	rc = hc_run(hc, &(struct hc_batch){ .method = setting(s, "method") ? setting(s, "method") : "POST", .n = 1,
					    .body = body, .url = call_url, .label = call_label, .judge = judge, .ctx = &c });
	hc_free(hc);
	curl_slist_free_all(headers);
	free(body);
	if (rc == HC_OK) {
		json_t *ans = c.answer ? json_loads(c.answer, JSON_DECODE_ANY, NULL) : NULL;
		out->result = json_pack("{s:s, s:I, s:o}", "url", c.url, "status", (json_int_t)c.status, "answer",
					ans ? ans : json_string(c.answer ? c.answer : ""));
		free(c.answer);
		return HANDLER_OK;
	}
	free(c.answer);
	snprintf(out->error_name, sizeof(out->error_name), "HTTP%ld", c.status);
	snprintf(out->error, sizeof(out->error), "trigger %s %s: %s", setting(s, "method") ? setting(s, "method") : "POST",
		 c.url, c.error[0] ? c.error : "interrupted");
	out->retry_after = c.retry_after;
	return rc == HC_STOPPED ? HANDLER_FAIL : HANDLER_RETRY;
}

const struct handler_def handler_http_trigger = {
	.name = "http_trigger",
	.description = "call a REST endpoint with a JSON body rendered from a closed batch or a hook event",
	.run = trigger_run,
	.events = true,
	.batches = true,
	.settings = trigger_settings,
	.check = trigger_check,
};
