/* One attempt: claim in hand, the handler runs (with its LogQS calls
 * traced as history steps, its progress written, the store's advisory
 * locks at hand), then the outcome is recorded and logged. */
#include "work_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

/* How many times (a second apart) an outcome is offered to a failing store. */
#define WORKER_FINISH_TRIES 300
/* Progress of a running attempt is written at most this often (a new step
 * is always written at once). */
#define PROGRESS_INTERVAL_MS 500
/* The largest result (as JSON) also kept in the outcome's history step. */
#define HISTORY_RESULT_MAX 4096

/* Per-attempt history: each LogQS call becomes a step. */
struct attempt_trace {
	struct store_hist *rows;
	json_t **details;
	size_t n, cap;
	char **errors;
};

static void trace_call(void *ctx, const struct lqs_call *call)
{
	struct attempt_trace *t = ctx;

	lqs_check_note(call->status, call->error);
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		struct store_hist *nr = realloc(t->rows, ncap * sizeof(*nr));
		if (!nr)
			return;
		t->rows = nr;
		json_t **nd = realloc(t->details, ncap * sizeof(*nd));
		if (!nd)
			return;
		t->details = nd;
		char **ne = realloc(t->errors, ncap * sizeof(*ne));
		if (!ne)
			return;
		t->errors = ne;
		t->cap = ncap;
	}
	t->details[t->n] = json_pack("{s:s, s:s, s:i, s:i}", "method", call->method, "path", call->path,
				     "status", call->status, "try", call->try_no);
	t->errors[t->n] = call->error ? strdup(call->error) : NULL;
	t->rows[t->n] = (struct store_hist){ .step = "lqs_call", .started_ms = call->started_ms,
					     .ended_ms = call->started_ms + call->duration_ms,
					     .detail = t->details[t->n], .error = t->errors[t->n] };
	t->n++;
}

/* The store's advisory locks, for handlers. */
static void lock_key(struct handler_ctx *ctx, const char *key)
{
	store_lock(ctx->lock_ctx, key);
}

static void unlock_key(struct handler_ctx *ctx, const char *key)
{
	store_unlock(ctx->lock_ctx, key);
}

/* What a handler reports while it runs, written to the event's row. */
struct progress_sink {
	struct store *st;
	const char *id;
	int64_t last_ms;
	char last_step[64];
};

static void report_progress(struct handler_ctx *ctx, const char *step, json_t *(*build)(void *arg), void *arg)
{
	struct progress_sink *p = ctx->progress_ctx;
	int64_t now = mono_ms();
	bool new_step = step && strcmp(step, p->last_step) != 0;
	json_t *doc;

	/* decided before anything is built: most reports are not due */
	if (!new_step && now - p->last_ms < PROGRESS_INTERVAL_MS)
		return;
	p->last_ms = now;
	if (step)
		str_copy(p->last_step, step, sizeof(p->last_step));
	doc = build(arg);
	/* best effort: a progress row that cannot be written costs nothing */
	if (doc)
		store_progress(p->st, p->id, doc);
	json_decref(doc);
}

static void trace_free(struct attempt_trace *t)
{
	for (size_t i = 0; i < t->n; i++) {
		json_decref(t->details[i]);
		free(t->errors[i]);
	}
	free(t->rows);
	free(t->details);
	free(t->errors);
	memset(t, 0, sizeof(*t));
}

/* The worker's LogQS client, new after a reload (its settings changed). */
static struct lqs_client *client_for(const struct attempt_env *pool, struct lqs_client **client, unsigned *gen,
				     const struct config_ref *ref)
{
	if (!*client || *gen != ref->generation) {
		lqs_client_free(*client);
		*client = lqs_client_new(&ref->cfg);
		*gen = ref->generation;
		if (*client)
			lqs_client_set_abort(*client, pool->abort_calls);
	}
	return *client;
}

/* Run the event's handler (and, when it fails for good, its on_failure).
 * *requeued: interrupted by shutdown, and already given back. */
static enum handler_status attempt_run(const struct attempt_env *pool, struct lqs_client **client, unsigned *client_gen,
				       struct store_claim *c, const struct config_ref *ref, struct handler_out *out,
				       struct attempt_trace *trace, bool *requeued)
{
	const struct config *cfg = &ref->cfg;
	const struct handler_def *def;
	const char *ds = json_string_value(json_object_get(c->event, "datastore_id"));
	struct progress_sink sink = { .st = pool->st, .id = c->id };
	struct handler_ctx hctx = { .event_id = c->id, .event = c->event, .cfg = cfg,
				    .redo_failed = c->flags & (EVENT_FLAG_REPLAYED | EVENT_FLAG_MARKED_FAILED),
				    .progress = report_progress, .progress_ctx = &sink,
				    .lock = lock_key, .unlock = unlock_key, .lock_ctx = pool->st };
	enum handler_status hs;

	*requeued = false;
	if (!c->handler[0]) {
		/* stored unrouted by an older release (today's store finishes
		 * such events as it stores them) */
		out->result = event_not_routed(json_string_value(json_object_get(c->event, "process_type")),
					       json_string_value(json_object_get(c->event, "current_state")));
		return HANDLER_OK;
	}
	if (!(def = router_handler_find(c->handler))) {
		snprintf(out->error, sizeof(out->error), "unknown handler '%s'", c->handler);
		str_copy(out->error_name, "UnknownHandler", sizeof(out->error_name));
		return HANDLER_FAIL;
	}
	if (!client_for(pool, client, client_gen, ref)) {
		str_copy(out->error_name, "OutOfMemory", sizeof(out->error_name));
		str_copy(out->error, "cannot create the LogQS client", sizeof(out->error));
		return c->attempt >= cfg->max_attempts ? HANDLER_FAIL : HANDLER_RETRY;
	}
	lqs_client_begin(*client, ds, trace_call, trace);
	hctx.lqs = *client;
	hs = def->run(&hctx, out);
	if (hs == HANDLER_RETRY && atomic_load(pool->abort_calls)) {
		/* Interrupted by shutdown: not the event's fault. */
		store_requeue(pool->st, c->id, c->claimed_ms, "interrupted by shutdown; will run at the next start");
		log_event(LOG_LVL_INFO, c->id, c->resource_id, "attempt interrupted by shutdown; requeued");
		*requeued = true;
		return hs;
	}
	if (hs == HANDLER_RETRY && c->attempt >= cfg->max_attempts) {
		char msg[sizeof(out->error) + 64];
		snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", c->attempt, out->error);
		str_copy(out->error, msg, sizeof(out->error));
		hs = HANDLER_FAIL;
	}
	if (hs == HANDLER_FAIL && def->on_failure) {
		/* Said before the resource may be set failed, so that any later
		 * attempt of this event (a replay, or a rerun after a crash right
		 * here) redoes the work instead of skipping a resource this daemon
		 * failed itself. */
		store_mark(pool->st, c->id, EVENT_FLAG_MARKED_FAILED);
		lqs_client_begin(*client, ds, trace_call, trace);
		def->on_failure(&hctx, out);
	}
	return hs;
}

/* The store may refuse for a while (disk full): keep trying rather than
 * leave the event "running" until its lease runs out. */
static void write_outcome(const struct attempt_env *pool, const struct store_claim *c, const struct store_outcome *o,
			  struct store_claim *next, int *got_next, int64_t *next_due)
{
	for (int tries = 0;; tries++) {
		enum store_result r = store_finish(pool->st, o, tries == 0 ? next : NULL, got_next, next_due);
		if (r == STORE_OK)
			return;
		if (r == STORE_CONFLICT) {
			/* this attempt outlived its lease: the event was made
			 * runnable again, and its next attempt's outcome counts */
			log_event(LOG_LVL_WARN, c->id, c->resource_id,
				  "outcome (%s) not recorded: the attempt outlived its lease and the event runs again",
				  o->state);
			return;
		}
		if (tries == 0)
			log_event(LOG_LVL_ERROR, c->id, c->resource_id,
				  "could not record the outcome (%s); retrying every second", o->state);
		if (atomic_load(pool->abort_calls) || tries >= WORKER_FINISH_TRIES) {
			log_event(LOG_LVL_ERROR, c->id, c->resource_id,
				  "giving up recording the outcome; the event runs again when its lease runs out");
			return;
		}
		struct timespec ts = { 1, 0 };
		nanosleep(&ts, NULL);
	}
}

/* Record how the attempt ended (with its history rows) and log it. */
static void attempt_record(const struct attempt_env *pool, const struct store_claim *c, const struct config *cfg,
			   enum handler_status hs, const struct handler_out *out, struct attempt_trace *trace,
			   unsigned *seed, double t0, struct store_claim *next, int *got_next, int64_t *next_due)
{
	int64_t t1 = now_ms(), next_run = 0;
	size_t n = trace->n;
	const char *state = hs == HANDLER_OK ? ST_COMPLETED : hs == HANDLER_RETRY ? ST_RETRYING : ST_FAILED;
	struct store_hist *rows;
	char err[1200];
	json_t *detail, *adetail;

	if (hs == HANDLER_RETRY)
		next_run = t1 + (int64_t)(worker_retry_delay(cfg->retry_base, cfg->retry_max_delay, c->attempt,
							     out->retry_after, (double)rand_r(seed) / RAND_MAX) * 1000.0);
	snprintf(err, sizeof(err), "%s: %s", out->error_name, out->error);
	detail = json_pack("{s:s, s:i, s:s?}", "state", state, "attempt", c->attempt, "handler",
			   c->handler[0] ? c->handler : NULL);
	if (next_run) {
		char ts[32];
		iso8601_ms(next_run, ts);
		json_object_set_new(detail, "next_attempt_at", json_string(ts));
	}
	/* a small result goes into the history too (what a REST target
	 * answered, say): a replay replaces the result, the history keeps it */
	if (out->result) {
		char *text = json_dumps(out->result, JSON_COMPACT);
		if (text && strlen(text) <= HISTORY_RESULT_MAX)
			json_object_set(detail, "result", out->result);
		free(text);
	}
	/* the attempt's own row, then its LogQS calls, then the outcome */
	adetail = json_pack("{s:i}", "attempt", c->attempt);
	rows = realloc(trace->rows, (n + 2) * sizeof(*rows));
	if (rows) {
		trace->rows = rows;
		memmove(rows + 1, rows, n * sizeof(*rows));
		rows[0] = (struct store_hist){ .step = "attempt", .started_ms = c->claimed_ms, .ended_ms = t1,
					       .detail = adetail };
		rows[n + 1] = (struct store_hist){ .step = "outcome", .started_ms = t1, .ended_ms = t1, .detail = detail,
						   .error = hs == HANDLER_OK ? NULL : err };
		n += 2;
	}
	write_outcome(pool, c,
		      &(struct store_outcome){ .id = c->id, .state = state, .result = out->result,
					       .error = hs == HANDLER_OK ? NULL : err, .next_run_ms = next_run,
					       .hist = trace->rows, .n_hist = n },
		      next, got_next, next_due);
	json_decref(detail);
	json_decref(adetail);

	double secs = mono_s() - t0;
	struct log_field lf[] = { { "attempt", c->attempt }, { "duration_ms", round(secs * 1e6) / 1e3 } };
	metrics_attempt(c->handler, state, secs);
	if (hs == HANDLER_OK)
		log_event_fields(LOG_LVL_INFO, c->id, c->resource_id, lf, 2, "event completed (attempt %d, %.1f ms)",
				 c->attempt, secs * 1e3);
	else
		log_event_fields(hs == HANDLER_RETRY ? LOG_LVL_WARN : LOG_LVL_ERROR, c->id, c->resource_id, lf, 2,
				 "attempt %d %s: %s", c->attempt,
				 hs == HANDLER_RETRY ? "failed, will retry" : "failed for good", err);
}

/* Run one claimed event. When next is non-NULL, the commit that records
 * this outcome also claims the worker's next event (*got_next as in
 * store_claim), saving a commit per event. */
void attempt_one(const struct attempt_env *pool, struct lqs_client **client, unsigned *client_gen,
		    struct store_claim *c, unsigned *seed, struct store_claim *next, int *got_next,
		    int64_t *next_due)
{
	struct config_ref *ref = config_current();
	struct attempt_trace trace = { 0 };
	struct handler_out out;
	double t0 = mono_s();
	bool requeued;
	enum handler_status hs;

	memset(&out, 0, sizeof(out));
	hs = attempt_run(pool, client, client_gen, c, ref, &out, &trace, &requeued);
	if (!requeued)
		attempt_record(pool, c, &ref->cfg, hs, &out, &trace, seed, t0, next, got_next, next_due);
	json_decref(out.result);
	trace_free(&trace);
	config_put(ref);
}

