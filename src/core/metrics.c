#include "lqs-hookd/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/util.h"

/* Series are few (labels come from small fixed sets), so each family is a
 * short array searched linearly under one mutex. */
#define MAX_SERIES 128
#define N_BUCKETS 18

/* From 100 µs (an answer to POST /events is a sync away) to 2 minutes (a
 * large digestion). */
static const double buckets[N_BUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					   0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120 };

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
static struct family f_fin = { "lqs_hookd_events_finished_total", "Events finished for good, by handler and outcome (completed, failed).", "counter", .n = 0 };
static struct family f_att = { "lqs_hookd_attempts_total", "Handler attempts ended, by handler and outcome (completed, failed, or retrying: the event runs again later).", "counter", .n = 0 };
static struct family f_retry = { "lqs_hookd_retries_total", "Attempts that ended in a retry later.", "counter", .n = 0 };
static struct family f_cut = { "lqs_hookd_connections_cut_total", "Client connections cut, by reason (header_timeout, read_timeout; tls_on_plain_port, not_http: answered 400 and closed).", "counter", .n = 0 };
static struct family f_refused = { "lqs_hookd_connections_refused_total", "Client connections refused with a 503.", "counter", .n = 0 };
static struct family f_hdur = { "lqs_hookd_handler_duration_seconds", "Duration of handler attempts.", "histogram", .n = 0 };
static struct family f_calls = { "lqs_hookd_lqs_calls_total", "LogQS API calls (each try), by method and HTTP status code (transport_error: no answer).", "counter", .n = 0 };
static struct family f_rdur = { "lqs_hookd_event_receive_duration_seconds", "Time to answer POST /events, from its headers to the answer (the store's sync included).", "histogram", .n = 0 };
static struct family f_reload = { "lqs_hookd_config_reloads_total", "Configuration reloads (SIGHUP), by result (success, failure).", "counter", .n = 0 };
static struct family f_sruns = { "lqs_hookd_sweep_runs_total", "Sweep runs ended, by sweep and result (ok, error).", "counter", .n = 0 };
static struct family f_sfound = { "lqs_hookd_sweep_resources_found_total", "Resources a sweep found in its state for at least min_age.", "counter", .n = 0 };
static struct family f_senq = { "lqs_hookd_sweep_events_enqueued_total", "Events a sweep stored (resources with no event already held).", "counter", .n = 0 };
static struct family f_serr = { "lqs_hookd_sweep_errors_total", "Sweep runs that failed, by sweep and kind (lqs, auth, store, queue_full).", "counter", .n = 0 };
static struct family f_objs = { "lqs_hookd_objects_received_total", "Object event records received, by outcome (stored, duplicate, marker, not_routed, ignored; rejected or unavailable: a request refused).", "counter", .n = 0 };
static struct family f_bclosed = { "lqs_hookd_batches_closed_total", "Batches closed, by reason (count, quiet, max_age, marker).", "counter", .n = 0 };
static struct family f_sqsrecv = { "lqs_hookd_sqs_messages_received_total", "SQS messages received, by queue.", "counter", .n = 0 };
static struct family f_sqsleft = { "lqs_hookd_sqs_messages_left_total", "SQS messages left on the queue (unreadable: for its redrive policy; store_refused: held until the store takes them), by queue and reason.", "counter", .n = 0 };
static struct family f_sqsdel = { "lqs_hookd_sqs_messages_deleted_total", "SQS messages deleted once every record they held was durable, by queue.", "counter", .n = 0 };
static struct family f_sqserr = { "lqs_hookd_sqs_poll_errors_total", "SQS calls that failed, by queue and kind (auth, throttled, server, network, client, credentials, store).", "counter", .n = 0 };
static struct family f_sqslat = { "lqs_hookd_sqs_receive_duration_seconds", "Duration of SQS ReceiveMessage calls (long polls included), by queue.", "histogram", .n = 0 };
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

void metrics_attempt(const char *handler, const char *outcome, double seconds)
{
	char l[160];
	const char *h = handler && *handler ? handler : "none";

	snprintf(l, sizeof(l), "handler=\"%s\",outcome=\"%s\"", h, outcome);
	count(&f_att, l, 1);
	if (strcmp(outcome, "retrying") != 0)
		count(&f_fin, l, 1);
	snprintf(l, sizeof(l), "handler=\"%s\"", h);
	if (strcmp(outcome, "retrying") == 0)
		count(&f_retry, l, 1);
	observe(&f_hdur, l, seconds);
}

void metrics_unrouted_finished(void)
{
	count(&f_fin, "handler=\"none\",outcome=\"completed\"", 1);
}

void metrics_receive_duration(double seconds)
{
	observe(&f_rdur, "", seconds);
}

static _Atomic int lqs_check_state = -1;   /* -1 not yet known, 0 failing, 1 ok */
static _Atomic int64_t reload_ok_ms, reload_last_ms;
static atomic_int reload_last_ok = 1;
/* Counters and gauges without labels: atomics, rendered at the end. */
static atomic_int stream_subs;
static atomic_llong stream_cut, stream_refused, archive_events, archive_errors, tls_expiry;
static atomic_llong notes_sent, notes_heard;

void metrics_store_notifications(bool sent, int n)
{
	atomic_fetch_add(sent ? &notes_sent : &notes_heard, n);
}

void metrics_tls_expiry(int64_t epoch_s)
{
	atomic_store(&tls_expiry, epoch_s);
}

void metrics_archive_events(int n)
{
	atomic_fetch_add(&archive_events, n);
}

void metrics_archive_error(void)
{
	atomic_fetch_add(&archive_errors, 1);
}

void metrics_stream_subscribers(int n)
{
	atomic_store(&stream_subs, n);
}

void metrics_stream_cut(void)
{
	atomic_fetch_add(&stream_cut, 1);
}

void metrics_stream_refused(void)
{
	atomic_fetch_add(&stream_refused, 1);
}

void metrics_lqs_check(bool ok)
{
	atomic_store(&lqs_check_state, ok ? 1 : 0);
}

void metrics_sqs_messages_received(const char *queue, int n)
{
	char l[160];

	snprintf(l, sizeof(l), "queue=\"%s\"", queue);
	count(&f_sqsrecv, l, n);
}

void metrics_sqs_message(const char *queue, const char *outcome)
{
	char l[160];

	snprintf(l, sizeof(l), "queue=\"%s\",reason=\"%s\"", queue, outcome);
	count(&f_sqsleft, l, 1);
}

void metrics_sqs_deleted(const char *queue, int n)
{
	char l[160];

	snprintf(l, sizeof(l), "queue=\"%s\"", queue);
	count(&f_sqsdel, l, n);
}

void metrics_sqs_error(const char *queue, const char *kind)
{
	char l[160];

	snprintf(l, sizeof(l), "queue=\"%s\",kind=\"%s\"", queue, kind);
	count(&f_sqserr, l, 1);
}

void metrics_sqs_receive(const char *queue, double seconds)
{
	char l[160];

	snprintf(l, sizeof(l), "queue=\"%s\"", queue);
	observe(&f_sqslat, l, seconds);
}

void metrics_object_received(const char *outcome)
{
	char l[160];

	snprintf(l, sizeof(l), "outcome=\"%s\"", outcome);
	count(&f_objs, l, 1);
}

void metrics_batch_closed(const char *reason)
{
	char l[160];

	snprintf(l, sizeof(l), "reason=\"%s\"", reason);
	count(&f_bclosed, l, 1);
}

void metrics_sweep_run(const char *sweep, const char *error_kind, int64_t found, int64_t enqueued)
{
	char l[160];

	snprintf(l, sizeof(l), "sweep=\"%s\"", sweep);
	count(&f_sfound, l, (double)found);
	count(&f_senq, l, (double)enqueued);
	snprintf(l, sizeof(l), "sweep=\"%s\",result=\"%s\"", sweep, error_kind && *error_kind ? "error" : "ok");
	count(&f_sruns, l, 1);
	if (error_kind && *error_kind) {
		snprintf(l, sizeof(l), "sweep=\"%s\",kind=\"%s\"", sweep, error_kind);
		count(&f_serr, l, 1);
	}
}

void metrics_config_reload(bool ok)
{
	int64_t now = now_ms();

	count(&f_reload, ok ? "result=\"success\"" : "result=\"failure\"", 1);
	atomic_store(&reload_last_ok, ok);
	atomic_store(&reload_last_ms, now);
	if (ok)
		atomic_store(&reload_ok_ms, now);
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
		snprintf(l, sizeof(l), "method=\"%s\",code=\"%d\"", method, status);
	else
		snprintf(l, sizeof(l), "method=\"%s\",code=\"transport_error\"", method);
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
		const char *comma = s->labels[0] ? "," : "";
		for (int k = 0; k < N_BUCKETS; k++) {
			cum += s->bucket[k];
			buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, comma, buckets[k],
				   (unsigned long long)cum);
		}
		buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, comma,
			   (unsigned long long)s->count);
		buf_printf(b, "%s_sum{%s} %.17g\n", f->name, s->labels, s->sum);
		buf_printf(b, "%s_count{%s} %llu\n", f->name, s->labels, (unsigned long long)s->count);
	}
}

/* The process_* metrics every Prometheus client library exports. */
static void render_process(struct buf *b)
{
	char text[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	int fds = 0;
	DIR *d;

	if (f) {
		size_t n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[n] = '\0';
		/* fields after the command name, which may hold spaces and ')' */
		char *p = strrchr(text, ')');
		unsigned long long utime, stime, start, vsize;
		long long rss;
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
			       "%*d %llu %llu %lld", &utime, &stime, &start, &vsize, &rss) == 5 && tick > 0) {
			double boot = 0;
			FILE *sf = fopen("/proc/stat", "r");
			char line[256];
			while (sf && fgets(line, sizeof(line), sf))
				if (sscanf(line, "btime %lf", &boot) == 1)
					break;
			if (sf)
				fclose(sf);
			buf_printf(b,
				   "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
				   "# TYPE process_cpu_seconds_total counter\n"
				   "process_cpu_seconds_total %.2f\n"
				   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
				   "# TYPE process_resident_memory_bytes gauge\n"
				   "process_resident_memory_bytes %lld\n"
				   "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
				   "# TYPE process_virtual_memory_bytes gauge\n"
				   "process_virtual_memory_bytes %llu\n"
				   "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
				   "# TYPE process_start_time_seconds gauge\n"
				   "process_start_time_seconds %.2f\n",
				   (double)(utime + stime) / (double)tick, rss * page, vsize,
				   boot + (double)start / (double)tick);
		}
	}
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			fds += e->d_name[0] != '.';
		closedir(d);
		buf_printf(b,
			   "# HELP process_open_fds Number of open file descriptors.\n"
			   "# TYPE process_open_fds gauge\n"
			   "process_open_fds %d\n", fds - 1 /* the one reading the directory */);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		buf_printf(b,
			   "# HELP process_max_fds Maximum number of open file descriptors.\n"
			   "# TYPE process_max_fds gauge\n"
			   "process_max_fds %.0f\n", rl.rlim_cur == RLIM_INFINITY ? 1e18 : (double)rl.rlim_cur);
}

/* Gauges other modules own, read at render time: metrics depends on no
 * module, they register with it. */
#define MAX_COLLECTORS 8
static struct {
	metrics_collect_fn fn;
	void *ctx;
} collectors[MAX_COLLECTORS];
static int n_collectors;

void metrics_add_collector(metrics_collect_fn fn, void *ctx)
{
	pthread_mutex_lock(&mu);
	if (n_collectors < MAX_COLLECTORS) {
		collectors[n_collectors].fn = fn;
		collectors[n_collectors].ctx = ctx;
		n_collectors++;
	}
	pthread_mutex_unlock(&mu);
}

void metrics_clear_collectors(void)
{
	pthread_mutex_lock(&mu);
	n_collectors = 0;
	pthread_mutex_unlock(&mu);
}

char *metrics_render(void)
{
	struct buf b;

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
	render_family(&b, &f_rdur);
	render_family(&b, &f_reload);
	render_family(&b, &f_sqsrecv);
	render_family(&b, &f_sqsleft);
	render_family(&b, &f_sqsdel);
	render_family(&b, &f_sqserr);
	render_family(&b, &f_sqslat);
	render_family(&b, &f_objs);
	render_family(&b, &f_bclosed);
	render_family(&b, &f_sruns);
	render_family(&b, &f_sfound);
	render_family(&b, &f_senq);
	render_family(&b, &f_serr);
	pthread_mutex_unlock(&mu);

	for (int i = 0; i < n_collectors; i++)
		collectors[i].fn(collectors[i].ctx, &b);
	buf_printf(&b,
		   "# HELP lqs_hookd_build_info Build information.\n"
		   "# TYPE lqs_hookd_build_info gauge\n"
		   "lqs_hookd_build_info{version=\"%s\",commit=\"%s\"} 1\n",
		   LQS_VERSION, lqs_build_commit);
	{
		int lc = atomic_load(&lqs_check_state);
		buf_printf(&b,
			   "# HELP lqs_hookd_lqs_check_ok Whether the last check of the LogQS settings (users/me) "
			   "succeeded: 1 yes, 0 no, -1 not checked yet.\n"
			   "# TYPE lqs_hookd_lqs_check_ok gauge\n"
			   "lqs_hookd_lqs_check_ok %d\n"
			   "# HELP lqs_hookd_config_last_reload_successful Whether the last reload succeeded (1 before any).\n"
			   "# TYPE lqs_hookd_config_last_reload_successful gauge\n"
			   "lqs_hookd_config_last_reload_successful %d\n"
			   "# HELP lqs_hookd_config_last_reload_success_timestamp_seconds When the configuration was last "
			   "loaded successfully (start or reload).\n"
			   "# TYPE lqs_hookd_config_last_reload_success_timestamp_seconds gauge\n"
			   "lqs_hookd_config_last_reload_success_timestamp_seconds %.3f\n",
			   lc, atomic_load(&reload_last_ok), (double)atomic_load(&reload_ok_ms) / 1000.0);
	}
	buf_printf(&b,
		   "# HELP lqs_hookd_stream_subscribers Clients following GET /events/stream now.\n"
		   "# TYPE lqs_hookd_stream_subscribers gauge\n"
		   "lqs_hookd_stream_subscribers %d\n"
		   "# HELP lqs_hookd_stream_cut_total Stream subscribers cut for reading too slowly (or at shutdown).\n"
		   "# TYPE lqs_hookd_stream_cut_total counter\n"
		   "lqs_hookd_stream_cut_total %lld\n"
		   "# HELP lqs_hookd_stream_refused_total Stream subscriptions refused (stream_max_subscribers reached).\n"
		   "# TYPE lqs_hookd_stream_refused_total counter\n"
		   "lqs_hookd_stream_refused_total %lld\n"
		   "# HELP lqs_hookd_archive_events_total Finished events written to archive_dir (and synced).\n"
		   "# TYPE lqs_hookd_archive_events_total counter\n"
		   "lqs_hookd_archive_events_total %lld\n"
		   "# HELP lqs_hookd_archive_errors_total Archive passes that failed (the events stay in the store).\n"
		   "# TYPE lqs_hookd_archive_errors_total counter\n"
		   "lqs_hookd_archive_errors_total %lld\n"
		   "# HELP lqs_hookd_store_notifications_total Change notifications this daemon sent to, and heard "
		   "from, the daemons sharing a PostgreSQL store.\n"
		   "# TYPE lqs_hookd_store_notifications_total counter\n"
		   "lqs_hookd_store_notifications_total{direction=\"sent\"} %lld\n"
		   "lqs_hookd_store_notifications_total{direction=\"heard\"} %lld\n",
		   atomic_load(&stream_subs), (long long)atomic_load(&stream_cut),
		   (long long)atomic_load(&stream_refused), (long long)atomic_load(&archive_events),
		   (long long)atomic_load(&archive_errors), (long long)atomic_load(&notes_sent),
		   (long long)atomic_load(&notes_heard));
	if (atomic_load(&tls_expiry) > 0)
		buf_printf(&b,
			   "# HELP lqs_hookd_tls_cert_expiry_timestamp_seconds When the certificate in use (tls_cert) expires.\n"
			   "# TYPE lqs_hookd_tls_cert_expiry_timestamp_seconds gauge\n"
			   "lqs_hookd_tls_cert_expiry_timestamp_seconds %lld\n",
			   (long long)atomic_load(&tls_expiry));
	render_process(&b);
	return buf_steal(&b);
}
