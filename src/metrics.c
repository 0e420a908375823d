#include "lqs-hookd/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

/* Series are few (labels come from small fixed sets), so each family is a
 * short array searched linearly under one mutex. */
#define MAX_SERIES 128
#define N_BUCKETS 12

static const double buckets[N_BUCKETS] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
					   0.25, 0.5, 1, 5, 30, 120 };

struct series {
	char labels[160];
	double value;                 /* counters */
	uint64_t bucket[N_BUCKETS];   /* histograms: cumulative at render */
	double sum;
	uint64_t count;
};

struct family {
	const char *name, *help, *type;
	struct series s[MAX_SERIES];
	int n;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static struct family f_http = { "lqs_hookd_http_requests_total", "HTTP requests answered, by route and status code.", "counter", .n = 0 };
static struct family f_recv = { "lqs_hookd_events_received_total", "POST /events outcomes: accepted, duplicate, or rejected with a reason.", "counter", .n = 0 };
static struct family f_fin = { "lqs_hookd_events_finished_total", "Attempts ended, by handler and outcome (completed, failed, retrying).", "counter", .n = 0 };
static struct family f_att = { "lqs_hookd_attempts_total", "Handler attempts made.", "counter", .n = 0 };
static struct family f_retry = { "lqs_hookd_retries_total", "Attempts that ended in a retry later.", "counter", .n = 0 };
static struct family f_cut = { "lqs_hookd_connections_cut_total", "Client connections cut for missing a deadline.", "counter", .n = 0 };
static struct family f_refused = { "lqs_hookd_connections_refused_total", "Client connections refused with a 503.", "counter", .n = 0 };
static struct family f_hdur = { "lqs_hookd_handler_duration_seconds", "Duration of handler attempts.", "histogram", .n = 0 };
static struct family f_calls = { "lqs_hookd_lqs_calls_total", "LogQS API calls (each try), by method and status class.", "counter", .n = 0 };
static struct family f_cdur = { "lqs_hookd_lqs_call_duration_seconds", "Duration of LogQS API calls.", "histogram", .n = 0 };

static struct series *series_get(struct family *f, const char *labels)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->s[i].labels, labels) == 0)
			return &f->s[i];
	if (f->n == MAX_SERIES)
		return NULL;   /* bounded: never grows with untrusted input */
	str_copy(f->s[f->n].labels, labels, sizeof(f->s[0].labels));
	return &f->s[f->n++];
}

static void count(struct family *f, const char *labels, double by)
{
	struct series *s;

	pthread_mutex_lock(&mu);
	s = series_get(f, labels);
	if (s)
		s->value += by;
	pthread_mutex_unlock(&mu);
}

static void observe(struct family *f, const char *labels, double v)
{
	struct series *s;

	pthread_mutex_lock(&mu);
	s = series_get(f, labels);
	if (s) {
		for (int i = 0; i < N_BUCKETS; i++)
			if (v <= buckets[i]) {
				s->bucket[i]++;
				break;
			}
		s->sum += v;
		s->count++;
	}
	pthread_mutex_unlock(&mu);
}

void metrics_http_request(const char *route, unsigned status)
{
	char l[160];

	snprintf(l, sizeof(l), "route=\"%s\",code=\"%u\"", route, status);
	count(&f_http, l, 1);
}

void metrics_event_received(const char *outcome, const char *reason)
{
	char l[160];

	snprintf(l, sizeof(l), "outcome=\"%s\",reason=\"%s\"", outcome, reason ? reason : "");
	count(&f_recv, l, 1);
}

void metrics_event_finished(const char *handler, const char *outcome, double seconds)
{
	char l[160];

	snprintf(l, sizeof(l), "handler=\"%s\",outcome=\"%s\"", handler && *handler ? handler : "none", outcome);
	count(&f_fin, l, 1);
	snprintf(l, sizeof(l), "handler=\"%s\"", handler && *handler ? handler : "none");
	count(&f_att, l, 1);
	if (strcmp(outcome, "retrying") == 0)
		count(&f_retry, l, 1);
	snprintf(l, sizeof(l), "handler=\"%s\"", handler && *handler ? handler : "none");
	observe(&f_hdur, l, seconds);
}

void metrics_connection_refused(const char *reason)
{
	char l[160];

	snprintf(l, sizeof(l), "reason=\"%s\"", reason);
	count(&f_refused, l, 1);
}

void metrics_connection_cut(const char *reason)
{
	char l[160];

	snprintf(l, sizeof(l), "reason=\"%s\"", reason);
	count(&f_cut, l, 1);
}

void metrics_lqs_call(const char *method, int status, double seconds)
{
	char l[160];

	if (status > 0)
		snprintf(l, sizeof(l), "method=\"%s\",status_class=\"%dxx\"", method, status / 100);
	else
		snprintf(l, sizeof(l), "method=\"%s\",status_class=\"error\"", method);
	count(&f_calls, l, 1);
	snprintf(l, sizeof(l), "method=\"%s\"", method);
	observe(&f_cdur, l, seconds);
}

static void render_family(struct buf *b, const struct family *f)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
	for (int i = 0; i < f->n; i++) {
		const struct series *s = &f->s[i];
		if (strcmp(f->type, "histogram") != 0) {
			buf_printf(b, "%s{%s} %.17g\n", f->name, s->labels, s->value);
			continue;
		}
		/* name ends in _seconds: the buckets are name_bucket etc. */
		uint64_t cum = 0;
		for (int k = 0; k < N_BUCKETS; k++) {
			cum += s->bucket[k];
			buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", f->name, s->labels, buckets[k],
				   (unsigned long long)cum);
		}
		buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", f->name, s->labels, (unsigned long long)s->count);
		buf_printf(b, "%s_sum{%s} %.17g\n", f->name, s->labels, s->sum);
		buf_printf(b, "%s_count{%s} %llu\n", f->name, s->labels, (unsigned long long)s->count);
	}
}

char *metrics_render(struct store *st, struct workers *w)
{
	struct store_stats ss;
	struct buf b;
	double age = 0;

	buf_init(&b, 0);
	pthread_mutex_lock(&mu);
	render_family(&b, &f_http);
	render_family(&b, &f_recv);
	render_family(&b, &f_fin);
	render_family(&b, &f_att);
	render_family(&b, &f_retry);
	render_family(&b, &f_cut);
	render_family(&b, &f_refused);
	render_family(&b, &f_hdur);
	render_family(&b, &f_calls);
	render_family(&b, &f_cdur);
	pthread_mutex_unlock(&mu);

	store_stats(st, &ss);
	if (ss.oldest_runnable_ms)
		age = (double)(now_ms() - ss.oldest_runnable_ms) / 1000.0;
	buf_printf(&b,
		   "# HELP lqs_hookd_events Events in the store, by state.\n"
		   "# TYPE lqs_hookd_events gauge\n"
		   "lqs_hookd_events{state=\"queued\"} %lld\n"
		   "lqs_hookd_events{state=\"running\"} %lld\n"
		   "lqs_hookd_events{state=\"retrying\"} %lld\n"
		   "lqs_hookd_events{state=\"completed\"} %lld\n"
		   "lqs_hookd_events{state=\"failed\"} %lld\n"
		   "# HELP lqs_hookd_oldest_runnable_age_seconds Age of the oldest event waiting to run (0: none).\n"
		   "# TYPE lqs_hookd_oldest_runnable_age_seconds gauge\n"
		   "lqs_hookd_oldest_runnable_age_seconds %.3f\n"
		   "# HELP lqs_hookd_store_size_bytes Size of the event store files.\n"
		   "# TYPE lqs_hookd_store_size_bytes gauge\n"
		   "lqs_hookd_store_size_bytes %lld\n"
		   "# HELP lqs_hookd_workers Worker threads running.\n"
		   "# TYPE lqs_hookd_workers gauge\n"
		   "lqs_hookd_workers %d\n"
		   "# HELP lqs_hookd_build_info Build information.\n"
		   "# TYPE lqs_hookd_build_info gauge\n"
		   "lqs_hookd_build_info{version=\"%s\"} 1\n",
		   (long long)ss.queued, (long long)ss.running, (long long)ss.retrying,
		   (long long)ss.completed, (long long)ss.failed, age, (long long)ss.size_bytes,
		   workers_alive(w), LQS_VERSION);
	return buf_steal(&b);
}
