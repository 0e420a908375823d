#include "lqs-hookd/worker.h"
#include "work_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lqs-hookd/backoff.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"

/* A Retry-After longer than this is treated as this (one hour). */
#define WORKER_MAX_RETRY_AFTER_S 3600.0

struct worker {
	struct workers *pool;
	pthread_t thread;
	int index;
	bool started;
	bool exited;      /* retired by a shrink; joined later */
};

struct workers {
	struct store *st;
	struct worker *w;
	int cap;          /* slots allocated: the configured maximum */
	int n;            /* slots ever started */
	int target;       /* workers wanted; those with index >= target retire */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned kicks;
	bool stopping;
	atomic_bool abort_calls;    /* read by lqs clients' retry loops */
	atomic_int alive;
	atomic_int busy;
	pthread_t lease_thread;
	pthread_cond_t lease_cv;   /* its own: a kick must wake a worker, not it */
	bool lease_started;
};

double worker_retry_delay(double base, double max, int attempt, double retry_after, double jitter01)
{
	double d = backoff_delay(base, attempt - 1, jitter01);

	if (d > max)
		d = max;
	if (retry_after > d)
		d = retry_after > WORKER_MAX_RETRY_AFTER_S ? WORKER_MAX_RETRY_AFTER_S : retry_after;
	return d;
}

static void *worker_main(void *arg)
{
	struct worker *self = arg;
	struct workers *pool = self->pool;
	struct lqs_client *client = NULL;
	unsigned client_gen = 0, seed = (unsigned)(now_ms() + self->index * 7919);

	atomic_fetch_add(&pool->alive, 1);
	pthread_setname_np(pthread_self(), "lqs-worker");
	{
		/* Background work: under CPU pressure, answering LogQS comes first. */
		struct config_ref *r = config_current();
		if (r && r->cfg.worker_nice > 0 &&
		    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)r->cfg.worker_nice) != 0)
			log_warn("cannot lower the workers' priority: %s", strerror(errno));
		if (r)
			config_put(r);
	}
	struct store_claim c, next;
	struct attempt_env env = { .st = pool->st, .abort_calls = &pool->abort_calls };
	int got = 0;
	for (;;) {
		int64_t next_due = 0;
		unsigned seen;
		bool staying;

		pthread_mutex_lock(&pool->mu);
		if (pool->stopping || self->index >= pool->target) {
			self->exited = true;
			pthread_mutex_unlock(&pool->mu);
			if (got == 1)   /* claimed in the last commit but not started: back it goes */
				store_requeue(pool->st, c.id, now_ms(), "worker stopped before starting it");
			if (got == 1)
				store_claim_release(&c);
			break;
		}
		seen = pool->kicks;
		pthread_mutex_unlock(&pool->mu);

		if (got != 1)
			got = store_claim(pool->st, now_ms(), &c, &next_due);
		if (got == 1) {
			int got_next = 0;
			pthread_mutex_lock(&pool->mu);
			staying = !pool->stopping && self->index < pool->target;
			pthread_mutex_unlock(&pool->mu);
			atomic_fetch_add(&pool->busy, 1);
			attempt_one(&env, &client, &client_gen, &c, &seed, staying ? &next : NULL, &got_next, &next_due);
			atomic_fetch_sub(&pool->busy, 1);
			store_claim_release(&c);
			if (staying && got_next == 1) {
				c = next;       /* already claimed: run it next */
				continue;
			}
			got = 0;
			if (!staying || got_next != 0)
				continue;
		}
		/* Nothing due: sleep until kicked, the next retry is due, or 1 s
		 * (a resource freed by another worker does not kick). */
		int64_t wait_ms = 1000;
		if (next_due) {
			int64_t d = next_due - now_ms();
			if (d < wait_ms)
				wait_ms = d < 1 ? 1 : d;
		}
		struct timespec ts;
		ts = deadline_in_us(wait_ms * 1000);
		pthread_mutex_lock(&pool->mu);
		while (!pool->stopping && pool->kicks == seen && self->index < pool->target) {
			if (pthread_cond_timedwait(&pool->cv, &pool->mu, &ts) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&pool->mu);
	}
	lqs_client_free(client);
	atomic_fetch_sub(&pool->alive, 1);
	return NULL;
}

/* Renews this daemon's leases every third of the lease, and makes
 * runnable again the events whose owner stopped renewing (another daemon
 * that died; here, one that was stuck longer than a lease). */
static void *lease_main(void *arg)
{
	struct workers *pool = arg;

	pthread_setname_np(pthread_self(), "lqs-lease");
	pthread_mutex_lock(&pool->mu);
	while (!pool->stopping) {
		struct config_ref *r = config_current();
		int64_t every = (int64_t)(r->cfg.lease * 1000.0 / 3);
		struct timespec until;
		int n;

		config_put(r);
		until = deadline_in_us(every * 1000);
		if (pthread_cond_timedwait(&pool->lease_cv, &pool->mu, &until) != ETIMEDOUT)
			continue;   /* woken: stopping; look again */
		pthread_mutex_unlock(&pool->mu);
		store_renew(pool->st);
		n = store_recover(pool->st);
		if (n > 0) {
			log_warn("%d event(s) runnable again: their lease ran out (their daemon stopped renewing it)", n);
			workers_kick_n(pool, n);
		}
		pthread_mutex_lock(&pool->mu);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* The most workers a pool can ever have: the bound of the workers setting. */
#define WORKERS_MAX 256

static void start_slot(struct workers *pool, int i)
{
	struct worker *w = &pool->w[i];
	bool exited;

	pthread_mutex_lock(&pool->mu);
	exited = w->exited;
	pthread_mutex_unlock(&pool->mu);
	if (w->started && !exited)
		return;
	if (w->started)
		pthread_join(w->thread, NULL);   /* a retired thread in this slot */
	w->pool = pool;
	w->index = i;
	w->exited = false;
	w->started = pthread_create(&w->thread, NULL, worker_main, w) == 0;
	if (!w->started)
		log_error("cannot start worker %d: %s", i, strerror(errno));
}

struct workers *workers_start(struct store *st, int n)
{
	struct workers *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return NULL;
	pool->st = st;
	pool->cap = WORKERS_MAX;
	pool->w = calloc((size_t)pool->cap, sizeof(*pool->w));
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	pthread_cond_init(&pool->lease_cv, NULL);
	if (!pool->w) {
		free(pool);
		return NULL;
	}
	workers_resize(pool, n);
	pool->lease_started = pthread_create(&pool->lease_thread, NULL, lease_main, pool) == 0;
	if (!pool->lease_started)
		log_error("cannot start the lease renewer: %s", strerror(errno));
	return pool;
}

void workers_resize(struct workers *pool, int n)
{
	if (n < 1)
		n = 1;
	if (n > pool->cap)
		n = pool->cap;
	pthread_mutex_lock(&pool->mu);
	pool->target = n;
	pthread_cond_broadcast(&pool->cv);   /* retiring workers notice at once */
	pthread_mutex_unlock(&pool->mu);
	/* A retiring worker finishes its current attempt first. */
	for (int i = 0; i < n; i++)
		start_slot(pool, i);
	if (n > pool->n)
		pool->n = n;
}

void workers_kick_n(struct workers *pool, int n)
{
	if (!pool || n <= 0)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->kicks++;
	/* wake as many workers as there is new work for, not all of them */
	if (n >= pool->target)
		pthread_cond_broadcast(&pool->cv);
	else
		for (int i = 0; i < n; i++)
			pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

void workers_kick(struct workers *pool)
{
	workers_kick_n(pool, 1);
}

void workers_stop(struct workers *pool, double drain_s)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cv);
	pthread_cond_broadcast(&pool->lease_cv);
	pthread_mutex_unlock(&pool->mu);
	if (!drain_wait(&pool->busy, drain_s))
		log_warn("drain timeout reached with %d attempt(s) running; interrupting them",
			 atomic_load(&pool->busy));
	atomic_store(&pool->abort_calls, true);
	if (pool->lease_started)
		pthread_join(pool->lease_thread, NULL);
	for (int i = 0; i < pool->n; i++)
		if (pool->w[i].started)
			pthread_join(pool->w[i].thread, NULL);
	pool->n = 0;
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	pthread_cond_destroy(&pool->lease_cv);
	free(pool->w);
	free(pool);
}

int workers_alive(struct workers *pool)
{
	return pool ? atomic_load(&pool->alive) : 0;
}
