/* The batch timers (see batcher.h). */
#include "lqs-hookd/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"

/* The longest the thread sleeps: a batch opened meanwhile may be due
 * sooner than the ones it knew of. */
#define BATCHER_POLL_MS 1000LL
/* Batches closed in one transaction at most. */
#define BATCHER_CHUNK 64

struct batcher {
	struct store *st;
	void (*on_runnable)(void *ctx, int n);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
};

static void *batcher_main(void *arg)
{
	struct batcher *b = arg;
	struct store_closed closed[BATCHER_CHUNK];

	pthread_setname_np(pthread_self(), "lqs-batch");
	pthread_mutex_lock(&b->mu);
	while (!b->stopping) {
		int64_t now, next = 0, wait;
		int n;
		pthread_mutex_unlock(&b->mu);
		now = now_ms();
		n = store_batches_close_due(b->st, now, closed, BATCHER_CHUNK, &next);
		if (n < 0)
			log_error("batches: cannot close the batches that are due; tried again in %llds",
				  BATCHER_POLL_MS / 1000);
		for (int i = 0; i < n; i++) {
			log_info("batch %s closed (%s); trigger event %s", closed[i].batch_id, closed[i].reason,
				 closed[i].trigger_id);
			metrics_batch_closed(closed[i].reason);
		}
		if (n > 0 && b->on_runnable)
			b->on_runnable(b->ctx, n);
		pthread_mutex_lock(&b->mu);
		if (n == BATCHER_CHUNK)
			continue;   /* more may be due */
		wait = next && next > now ? next - now : BATCHER_POLL_MS;
		if (wait > BATCHER_POLL_MS)
			wait = BATCHER_POLL_MS;
		struct timespec until = deadline_in_us(wait * 1000);
		while (!b->stopping && pthread_cond_timedwait(&b->cv, &b->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

struct batcher *batcher_start(struct store *st, void (*on_runnable)(void *ctx, int n), void *ctx)
{
	struct batcher *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->st = st;
	b->on_runnable = on_runnable;
	b->ctx = ctx;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
		pthread_mutex_destroy(&b->mu);
		pthread_cond_destroy(&b->cv);
		free(b);
		return NULL;
	}
	return b;
}

void batcher_stop(struct batcher *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stopping = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thread, NULL);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}
