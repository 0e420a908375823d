#include "lqs-hookd/intake.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* Most jobs one commit takes. */
#define COMMIT_BATCH_MAX 512
/* How long the committer may wait for more jobs while submissions are
 * expected: a commit writes and syncs the same pages for 1 event or 100, so
 * a short wait under load buys far more throughput than it costs latency. */
#define COMMIT_LINGER_US 2000

struct intake {
	struct store *st;
	void (*on_runnable)(void *ctx, int n);
	void *ctx;
	pthread_mutex_t mu;
	pthread_cond_t commit_cv, sync_cv;
	struct intake_ticket *pending_head, *pending_tail;
	struct intake_ticket *committed_head, *committed_tail;
	bool committer_waiting, syncer_waiting, syncing, committer_done, stopping;
	atomic_int expected;    /* submissions a source may still make */
	atomic_int submitted;   /* of those, made */
	pthread_t committer, syncer;
	bool committer_started, syncer_started;
};

/* Whether every expected submission is in (or past), so that waiting
 * longer would gather nothing more. */
static bool all_in(struct intake *in)
{
	return atomic_load(&in->submitted) >= atomic_load(&in->expected);
}

static void append(struct intake_ticket **head, struct intake_ticket **tail, struct intake_ticket *t)
{
	t->next = NULL;
	if (*tail)
		(*tail)->next = t;
	else
		*head = t;
	*tail = t;
}

/* The committer: writes the jobs waiting in one transaction, not yet
 * synced, and hands them to the syncer. While the syncer is busy there is
 * no hurry (nothing can be acknowledged before its sync ends), so it lets
 * the batch grow until every expected submission is in, the sync ends, or
 * COMMIT_LINGER_US passes. */
static void *committer_main(void *arg)
{
	struct intake *in = arg;
	static _Thread_local struct store_item items[COMMIT_BATCH_MAX];
	struct intake_ticket *batch[COMMIT_BATCH_MAX];

	pthread_setname_np(pthread_self(), "lqs-commit");
	for (;;) {
		size_t n = 0, nt = 0;
		struct config_ref *ref;
		struct timespec until = { 0, 0 };

		pthread_mutex_lock(&in->mu);
		for (;;) {
			if (in->pending_head && (in->stopping || !in->syncing || all_in(in)))
				break;
			if (!in->pending_head && in->stopping)
				break;
			in->committer_waiting = true;
			if (!in->pending_head) {
				pthread_cond_wait(&in->commit_cv, &in->mu);
				until.tv_sec = 0;
			} else {
				if (!until.tv_sec) {
					until = deadline_in_us(COMMIT_LINGER_US);
				}
				if (pthread_cond_timedwait(&in->commit_cv, &in->mu, &until) != 0) {
					in->committer_waiting = false;
					break;   /* lingered long enough */
				}
			}
			in->committer_waiting = false;
		}
		if (!in->pending_head) {
			/* stopping, and nothing left: the syncer may end too */
			in->committer_done = true;
			pthread_cond_signal(&in->sync_cv);
			pthread_mutex_unlock(&in->mu);
			break;
		}
		/* whole submissions, as many as fit (the first one always) */
		while (in->pending_head && nt < COMMIT_BATCH_MAX &&
		       (nt == 0 || n + in->pending_head->n <= COMMIT_BATCH_MAX)) {
			batch[nt++] = in->pending_head;
			n += in->pending_head->n;
			in->pending_head = in->pending_head->next;
		}
		if (!in->pending_head)
			in->pending_tail = NULL;
		pthread_mutex_unlock(&in->mu);

		ref = config_current();
		int64_t t0 = mono_ms();
		struct store_limits lim = { (int64_t)(ref->cfg.dedupe_window * 1000.0), ref->cfg.max_queued };
		if (nt == 1) {
			/* one submission (of any size): written from its own jobs */
			store_submit(in->st, batch[0]->jobs, n, &lim);
		} else {
			/* several, together at most a batch: one transaction */
			size_t k = 0;
			for (size_t i = 0; i < nt; k += batch[i]->n, i++)
				memcpy(items + k, batch[i]->jobs, batch[i]->n * sizeof(*items));
			store_submit(in->st, items, n, &lim);
			k = 0;
			for (size_t i = 0; i < nt; k += batch[i]->n, i++)
				memcpy(batch[i]->jobs, items + k, batch[i]->n * sizeof(*items));
		}
		log_debug("committed %zu job(s) in %lld ms", n, (long long)(mono_ms() - t0));
		config_put(ref);

		pthread_mutex_lock(&in->mu);
		for (size_t i = 0; i < nt; i++)
			append(&in->committed_head, &in->committed_tail, batch[i]);
		if (in->syncer_waiting)
			pthread_cond_signal(&in->sync_cv);
		pthread_mutex_unlock(&in->mu);
	}
	return NULL;
}

/* The syncer: one sync for everything committed when it starts, then the
 * tickets. Only after the sync may a source acknowledge. */
static void *syncer_main(void *arg)
{
	struct intake *in = arg;

	pthread_setname_np(pthread_self(), "lqs-sync");
	for (;;) {
		struct intake_ticket *list, *t;
		bool need_sync = false;
		int runnable = 0, rc = 0;

		pthread_mutex_lock(&in->mu);
		while (!in->committed_head && !in->committer_done) {
			in->syncer_waiting = true;
			pthread_cond_wait(&in->sync_cv, &in->mu);
			in->syncer_waiting = false;
		}
		if (!in->committed_head) {
			pthread_mutex_unlock(&in->mu);
			break;
		}
		list = in->committed_head;
		in->committed_head = in->committed_tail = NULL;
		in->syncing = true;
		pthread_mutex_unlock(&in->mu);

		for (t = list; t; t = t->next)
			for (size_t i = 0; i < t->n; i++)
				need_sync |= store_result_stored(t->jobs[i].result);
		if (need_sync)
			rc = store_durable(in->st);
		for (t = list; t;) {
			struct intake_ticket *next = t->next;
			for (size_t i = 0; i < t->n; i++) {
				struct store_item *j = &t->jobs[i];
				if (rc != 0 && store_result_stored(j->result))
					j->result = STORE_ERROR;   /* not known to be durable: no 2xx */
				/* an object that closed its batch made a trigger event */
				runnable += j->result == STORE_OK && (j->obj ? j->obj->trigger_id[0] != '\0' : j->handler != NULL);
			}
			t->done(t);
			t = next;   /* t may be freed from here on */
		}
		if (runnable && in->on_runnable)
			in->on_runnable(in->ctx, runnable);

		pthread_mutex_lock(&in->mu);
		in->syncing = false;
		if (in->committer_waiting)
			pthread_cond_signal(&in->commit_cv);
		pthread_mutex_unlock(&in->mu);
	}
	return NULL;
}

struct intake *intake_start(struct store *st, void (*on_runnable)(void *ctx, int n), void *ctx, char *err,
			    size_t errlen)
{
	struct intake *in = calloc(1, sizeof(*in));

	if (!in) {
		str_copy(err, "out of memory", errlen);
		return NULL;
	}
	in->st = st;
	in->on_runnable = on_runnable;
	in->ctx = ctx;
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->commit_cv, NULL);
	pthread_cond_init(&in->sync_cv, NULL);
	in->syncer_started = pthread_create(&in->syncer, NULL, syncer_main, in) == 0;
	in->committer_started = in->syncer_started && pthread_create(&in->committer, NULL, committer_main, in) == 0;
	if (!in->committer_started) {
		str_copy(err, "cannot start the commit threads", errlen);
		intake_free(in);
		return NULL;
	}
	return in;
}

void intake_expect(struct intake *in)
{
	atomic_fetch_add(&in->expected, 1);
}

void intake_release(struct intake *in, bool submitted)
{
	if (submitted)
		atomic_fetch_sub(&in->submitted, 1);
	atomic_fetch_sub(&in->expected, 1);
}

bool intake_submit(struct intake *in, struct intake_ticket *t)
{
	bool ok;

	atomic_fetch_add(&in->submitted, 1);
	pthread_mutex_lock(&in->mu);
	ok = !in->stopping;
	if (ok) {
		append(&in->pending_head, &in->pending_tail, t);
		/* wake the committer only when it can act on this */
		if (in->committer_waiting && (!in->syncing || all_in(in)))
			pthread_cond_signal(&in->commit_cv);
	}
	pthread_mutex_unlock(&in->mu);
	return ok;
}

void intake_stop(struct intake *in)
{
	if (!in)
		return;
	pthread_mutex_lock(&in->mu);
	if (in->stopping && !in->committer_started && !in->syncer_started) {
		pthread_mutex_unlock(&in->mu);
		return;   /* stopped before */
	}
	in->stopping = true;
	if (!in->committer_started)
		in->committer_done = true;
	pthread_cond_broadcast(&in->commit_cv);
	pthread_cond_broadcast(&in->sync_cv);
	pthread_mutex_unlock(&in->mu);
	if (in->committer_started)
		pthread_join(in->committer, NULL);
	/* the committer said it is done: the syncer ends once it has run
	 * every ticket committed */
	if (in->syncer_started)
		pthread_join(in->syncer, NULL);
	in->committer_started = in->syncer_started = false;
}

void intake_free(struct intake *in)
{
	if (!in)
		return;
	intake_stop(in);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->commit_cv);
	pthread_cond_destroy(&in->sync_cv);
	free(in);
}

struct wait_ticket {
	struct intake_ticket t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void wait_ticket_done(struct intake_ticket *t)
{
	struct wait_ticket *w = t->ctx;

	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

bool intake_submit_wait(struct intake *in, struct store_item *items, size_t n)
{
	struct wait_ticket w = { .t = { .jobs = items, .n = n, .done = wait_ticket_done } };
	bool ok;

	w.t.ctx = &w;
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	intake_expect(in);
	ok = intake_submit(in, &w.t);
	if (ok) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	intake_release(in, true);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return ok;
}
