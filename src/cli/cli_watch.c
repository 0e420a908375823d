/* `watch` and `status ID --watch`: the daemon's GET {events}/stream read
 * with libcurl, one server-sent event at a time. A dropped stream is
 * taken up again where it ended (Last-Event-ID). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/util.h"
#include "cli_int.h"

/* The longest line of the stream taken; a longer one is not ours. */
#define WATCH_MAX_LINE (1024 * 1024)
/* Waits before taking a dropped stream up again: from 1 s, doubling, to 30 s. */
#define WATCH_RETRY_MIN_MS 1000
#define WATCH_RETRY_MAX_MS 30000

/* Exit statuses of status --watch. */
#define WATCH_EXIT_COMPLETED 0
#define WATCH_EXIT_FAILED 1
#define WATCH_EXIT_TIMEOUT 3
#define WATCH_EXIT_ERROR 4

struct sse {
	struct buf line;
	char id[96], event[48];
	struct buf data;
	bool got_any;              /* the stream answered (its first bytes) */
	/* what to do with each event; false ends the transfer */
	bool (*on_event)(struct sse *s, const char *event, json_t *data);
	/* status --watch */
	const struct config *cfg;
	const struct cli_opts *o;
	const char *event_id;
	int result;                /* -1 while not finished */
	bool checked;              /* the event was looked up once the stream was open */
};

static void print_change(const struct cli_opts *o, const char *event, json_t *d)
{
	if (o->json_out) {
		char *t = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (t)
			puts(t);
		free(t);
	} else if (strcmp(event, "batch_opened") == 0) {
		printf("%-24s  %-15s  %-9s  %-36s  %s s3://%s/%s\n", s_or(json_object_get(d, "at"), "-"), event, "open",
		       s_or(json_object_get(d, "batch_id"), "-"), s_or(json_object_get(d, "watch"), "-"),
		       s_or(json_object_get(d, "bucket"), "?"), s_or(json_object_get(d, "prefix"), ""));
	} else {
		json_t *att = json_object_get(d, "attempt");
		char attempt[24] = "";
		if (json_is_integer(att))
			snprintf(attempt, sizeof(attempt), " #%lld", (long long)json_integer_value(att));
		printf("%-24s  %-15s  %-9s  %-36s  %s %s %s%s%s%s\n", s_or(json_object_get(d, "at"), "-"), event,
		       s_or(json_object_get(d, "state"), "-"), s_or(json_object_get(d, "event_id"), "-"),
		       s_or(json_object_get(d, "process_type"), "-"), s_or(json_object_get(d, "resource_id"), "-"),
		       s_or(json_object_get(d, "handler"), "(unrouted)"), attempt,
		       json_is_string(json_object_get(d, "error")) ? "  ! " : "", s_or(json_object_get(d, "error"), ""));
	}
	fflush(stdout);
}

/* One line of the stream (without its newline). */
static bool sse_line(struct sse *s, const char *l)
{
	if (!*l) {
		bool go = true;
		if (s->data.len && s->on_event) {
			json_error_t jerr;
			json_t *d = json_loadb(s->data.data, s->data.len, 0, &jerr);
			if (d)
				go = s->on_event(s, s->event[0] ? s->event : "message", d);
			json_decref(d);
		}
		buf_reset(&s->data);
		s->event[0] = '\0';
		return go;
	}
	if (*l == ':')
		return true;   /* a comment: the heartbeat */
	const char *colon = strchr(l, ':');
	size_t n = colon ? (size_t)(colon - l) : strlen(l);
	const char *v = colon ? colon + 1 + (colon[1] == ' ') : "";
	if (n == 2 && strncmp(l, "id", 2) == 0)
		str_copy(s->id, v, sizeof(s->id));
	else if (n == 5 && strncmp(l, "event", 5) == 0)
		str_copy(s->event, v, sizeof(s->event));
	else if (n == 4 && strncmp(l, "data", 4) == 0) {
		if (s->data.len)
			buf_append(&s->data, "\n", 1);
		buf_append_str(&s->data, v);
	}
	return true;
}

static bool check_once(struct sse *s);

static size_t sse_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sse *s = ud;
	size_t n = size * nmemb;

	s->got_any = true;
	if (s->event_id && !s->checked && !check_once(s))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r')
			continue;
		if (p[i] != '\n') {
			if (buf_append(&s->line, p + i, 1) != 0) {
				buf_init(&s->line, WATCH_MAX_LINE);
				return 0;   /* not a stream of ours */
			}
			continue;
		}
		bool go = sse_line(s, s->line.data ? s->line.data : "");
		buf_reset(&s->line);
		if (!go)
			return 0;
	}
	return n;
}

/* One connection to the stream, until it ends. Returns the HTTP status
 * (0: not reached; err says why). */
static long sse_follow(struct sse *s, const char *path, double timeout_s, CURLcode *cc, char *err, size_t errlen)
{
	char url[1024], last[140];
	struct curl_slist *h;
	CURL *e = cli_easy(s->cfg, s->o->listen, path, &h, url, sizeof(url), err, errlen);
	long status = 0;

	if (!e)
		return 0;
	if (s->id[0]) {
		snprintf(last, sizeof(last), "Last-Event-ID: %s", s->id);
		h = curl_slist_append(h, last);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sse_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	if (timeout_s > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
	/* a quiet stream still has its heartbeat: none in a minute is a dead one */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	*cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (*cc != CURLE_OK && *cc != CURLE_WRITE_ERROR && !status)
		snprintf(err, errlen, "cannot reach lqs-hookd at %s: %s", url, curl_easy_strerror(*cc));
	cli_easy_done(e, h);
	return status;
}

static bool watch_event(struct sse *s, const char *event, json_t *d)
{
	print_change(s->o, event, d);
	return true;
}

/* Sleep the wait before taking a dropped stream up again; the next one. */
static long pause_then_next(long wait)
{
	struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	return wait * 2 > WATCH_RETRY_MAX_MS ? WATCH_RETRY_MAX_MS : wait * 2;
}

/* The reader's buffers, and the stream's path in q (filters follow). */
static void sse_begin(struct sse *s, struct buf *q, const struct config *cfg)
{
	buf_init(q, 8192);
	buf_init(&s->line, WATCH_MAX_LINE);
	buf_init(&s->data, WATCH_MAX_LINE);
	buf_printf(q, "%s/stream", cfg->events_path);
}

static void sse_end(struct sse *s, struct buf *q)
{
	buf_free(q);
	buf_free(&s->line);
	buf_free(&s->data);
}

int cmd_watch(const struct config *cfg, const struct cli_opts *o)
{
	struct sse s = { .cfg = cfg, .o = o, .on_event = watch_event, .result = -1 };
	struct buf q;
	long wait = WATCH_RETRY_MIN_MS;
	bool ever = false;

	sse_begin(&s, &q, cfg);
	query_add(&q, "state", o->state);
	query_add(&q, "handler", o->handler);
	query_add(&q, "resource_id", o->resource_id);
	query_add(&q, "process_type", o->process_type);
	if (!o->json_out)
		printf("%-24s  %-15s  %-9s  %-36s  %s\n", "AT", "CHANGE", "STATE", "EVENT_ID",
		       "PROCESS RESOURCE HANDLER");
	for (;;) {
		char err[4096] = "";
		CURLcode cc = CURLE_OK;
		s.got_any = false;
		long status = q.data ? sse_follow(&s, q.data, 0, &cc, err, sizeof(err)) : 0;
		if (status && status != 200) {
			/* an answer that is not the stream: say it and stop */
			fprintf(stderr, "lqs-hookd: the daemon answered HTTP %ld to GET %s\n", status, q.data);
			break;
		}
		if (!status && !ever) {
			fprintf(stderr, "lqs-hookd: %s\n", err[0] ? err : "cannot reach the daemon");
			break;
		}
		if (s.got_any) {
			ever = true;
			wait = WATCH_RETRY_MIN_MS;
		}
		fprintf(stderr, "lqs-hookd: the stream ended (%s); taking it up again in %ld s\n",
			err[0] ? err : curl_easy_strerror(cc), wait / 1000);
		wait = pause_then_next(wait);
	}
	sse_end(&s, &q);
	return 1;   /* it follows until interrupted: ending is an error */
}

/* ---- status ID --watch ---- */

static int state_exit(const char *state)
{
	if (strcmp(state, "completed") == 0)
		return WATCH_EXIT_COMPLETED;
	if (strcmp(state, "failed") == 0)
		return WATCH_EXIT_FAILED;
	return -1;
}

/* Once the stream is open (so nothing after this is missed), the event as
 * it is now: finished already ends the wait. */
static bool check_once(struct sse *s)
{
	char path[512], err[4096];
	json_t *doc = NULL;
	long status;

	s->checked = true;
	snprintf(path, sizeof(path), "%s/%s", s->cfg->events_path, s->event_id);
	status = cli_call(s->cfg, s->o->listen, "GET", path, CLI_TIMEOUT_MS, &doc, err, sizeof(err));
	if (status != 200) {
		daemon_error(status, doc, err);
		s->result = WATCH_EXIT_ERROR;
	} else {
		s->result = state_exit(s_or(json_object_get(doc, "state"), ""));
		if (s->result >= 0 && s->o->json_out)
			print_json(doc);
	}
	json_decref(doc);
	return s->result < 0;
}

static bool status_event(struct sse *s, const char *event, json_t *d)
{
	const char *state = s_or(json_object_get(d, "state"), "");

	if (!s->o->json_out)
		print_change(s->o, event, d);
	s->result = state_exit(state);
	if (s->result >= 0 && s->o->json_out) {
		/* the whole status, as `status --format json` prints it */
		check_once(s);
	}
	return s->result < 0;
}

int cmd_status_watch(const struct config *cfg, const struct cli_opts *o, const char *id)
{
	struct sse s = { .cfg = cfg, .o = o, .on_event = status_event, .event_id = id, .result = -1 };
	struct buf q;
	double deadline = o->timeout_s > 0 ? mono_s() + o->timeout_s : 0;
	long wait = WATCH_RETRY_MIN_MS;

	sse_begin(&s, &q, cfg);
	query_add(&q, "event_id", id);
	while (s.result < 0 && q.data) {
		char err[4096] = "";
		CURLcode cc = CURLE_OK;
		double left = deadline ? deadline - mono_s() : 0;
		if (deadline && left <= 0)
			break;
		s.checked = false;   /* looked up again on each connection: nothing slips between */
		long status = sse_follow(&s, q.data, left, &cc, err, sizeof(err));
		if (s.result >= 0)
			break;
		if (status && status != 200) {
			fprintf(stderr, "lqs-hookd: the daemon answered HTTP %ld to GET %s\n", status, q.data);
			s.result = WATCH_EXIT_ERROR;
			break;
		}
		if (!status) {
			fprintf(stderr, "lqs-hookd: %s\n", err[0] ? err : "cannot reach the daemon");
			s.result = WATCH_EXIT_ERROR;
			break;
		}
		if (cc == CURLE_OPERATION_TIMEDOUT && deadline)
			break;
		wait = pause_then_next(wait);
	}
	if (s.result < 0) {
		fprintf(stderr, "lqs-hookd: %s has not finished within --timeout\n", id);
		s.result = WATCH_EXIT_TIMEOUT;
	} else if (!o->json_out && s.result <= WATCH_EXIT_FAILED) {
		printf("%s: %s\n", id, s.result == WATCH_EXIT_COMPLETED ? "completed" : "failed");
	}
	sse_end(&s, &q);
	return s.result;
}
