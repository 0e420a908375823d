#include "lqs-hookd/gauges.h"

#include "lqs-hookd/buf.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

static struct {
	struct store *st;
	struct workers *w;
} G;

static void collect(void *ctx, struct buf *b)
{
	struct store_stats ss;
	double age = 0;

	(void)ctx;
	store_stats(G.st, &ss);
	if (ss.oldest_runnable_ms)
		age = (double)(now_ms() - ss.oldest_runnable_ms) / 1000.0;
	buf_printf(b,
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
		   "# HELP lqs_hookd_batches_open Batches of objects open (waiting for their count, quiet time, max_age or marker).\n"
		   "# TYPE lqs_hookd_batches_open gauge\n"
		   "lqs_hookd_batches_open %lld\n",
		   (long long)ss.queued, (long long)ss.running, (long long)ss.retrying, (long long)ss.completed,
		   (long long)ss.failed, age, (long long)ss.size_bytes, workers_alive(G.w),
		   (long long)store_batches_open(G.st));
}

void gauges_register(struct store *st, struct workers *w)
{
	G.st = st;
	G.w = w;
	metrics_add_collector(collect, NULL);
}
