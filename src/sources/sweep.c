/* The sweeper: one thread that runs every enabled sweep when it is due,
 * and the runs operators ask for. When a sweep is due comes from its record
 * in the store (started_at + every), so a restart does not run it twice in
 * a row, and a run cut short (started, never finished) runs again at once.
 * A run takes the store's advisory lock "sweep:NAME" and reads the record
 * again under it, so of several daemons on one store only one runs it. It
 * never blocks receiving or workers: its LogQS calls are its own, and its
 * events reach the store through the intake like any other. */
#include "lqs-hookd/sweep.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/jsonx.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "sweep_int.h"

/* After LogQS refused a sweep's list call (401/403), it calls again this
 * much later at the soonest (or after a reload, or when asked to run). */
#define SWEEP_REFUSED_RETRY_MS (3600LL * 1000)
/* While the LogQS check fails, how often a due sweep looks again. */
#define SWEEP_PAUSED_POLL_MS 1000LL
/* A run whose start could not be recorded is tried again this much later. */
#define SWEEP_STORE_RETRY_MS (30LL * 1000)

struct sched {
	char name[64];
	int64_t next_ms;        /* when due; 0: not scheduled (disabled) */
	bool paused;            /* due, but the LogQS check fails */
	bool refused;           /* LogQS refused its last list call */
	char pause_why[512];
};

struct sweeper {
	struct store *st;
	struct intake *in;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stopping;
	bool kicked;
	struct sweep_request *req_head, *req_tail;
	struct sched sched[CONFIG_MAX_SWEEPS];   /* under mu */
	int n_sched;
	char running[64];                          /* under mu */
};

static struct sched *sched_of(struct sweeper *sw, const char *name)
{
	for (int i = 0; i < sw->n_sched; i++)
		if (strcmp(sw->sched[i].name, name) == 0)
			return &sw->sched[i];
	return NULL;
}

/* When a sweep is due, from its record: never ran or cut short: now. */
static int64_t due_from(const struct sweep_cfg *s, const struct store_sweep *rec, int64_t now)
{
	if (!s->enabled)
		return 0;
	if (rec->started_ms == 0 || rec->finished_ms == 0)
		return now;
	return rec->started_ms + (int64_t)(s->every * 1000.0);
}

/* Rebuild the schedule from the configuration and the store (at start,
 * after a reload). A sweep keeps its refused/paused state by name. */
static void reschedule(struct sweeper *sw)
{
	struct config_ref *ref = config_current();
	struct sched old[CONFIG_MAX_SWEEPS];
	int n_old, n = 0;
	int64_t now = now_ms();

	pthread_mutex_lock(&sw->mu);
	memcpy(old, sw->sched, sizeof(old));
	n_old = sw->n_sched;
	pthread_mutex_unlock(&sw->mu);
	struct sched fresh[CONFIG_MAX_SWEEPS];
	memset(fresh, 0, sizeof(fresh));
	for (int i = 0; i < ref->cfg.n_sweeps; i++) {
		const struct sweep_cfg *s = &ref->cfg.sweeps[i];
		struct store_sweep rec;
		struct sched *f = &fresh[n++];
		if (store_sweep_get(sw->st, s->name, &rec) == STORE_ERROR)
			memset(&rec, 0, sizeof(rec));   /* try now; the run says what is wrong */
		str_copy(f->name, s->name, sizeof(f->name));
		f->next_ms = due_from(s, &rec, now);
		for (int k = 0; k < n_old; k++)
			if (strcmp(old[k].name, s->name) == 0) {
				f->paused = old[k].paused;   /* a reload forgives a refusal */
				str_copy(f->pause_why, old[k].pause_why, sizeof(f->pause_why));
			}
	}
	pthread_mutex_lock(&sw->mu);
	memcpy(sw->sched, fresh, sizeof(fresh));
	sw->n_sched = n;
	pthread_mutex_unlock(&sw->mu);
	config_put(ref);
}

static json_t *report_json(const struct sweep_cfg *s, const struct store_sweep *rec, struct sweep_outcome *o)
{
	char a[32], b[32];

	iso8601_ms(rec->started_ms, a);
	iso8601_ms(rec->finished_ms, b);
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:s?, s:O}", "sweep", s->name, "started_at", a,
			 "finished_at", b, "listed", (json_int_t)o->listed, "found", (json_int_t)o->found, "enqueued",
			 (json_int_t)o->enqueued, "duplicates", (json_int_t)o->duplicates, "truncated", o->truncated,
			 "error", o->error[0] ? o->error : NULL, "events", o->events);
}

/* The one log line of a run. */
static void log_run(const struct sweep_cfg *s, const struct sweep_outcome *o, int64_t ms, int64_t next_in_ms)
{
	char age[32], next[32];

	duration_text(s->min_age, age, sizeof(age));
	duration_text((double)(next_in_ms / 1000), next, sizeof(next));
	if (o->error[0])
		log_warn("sweep %s: run FAILED after %lld %s(s) listed, %lld enqueued: %s; next run in %s%s", s->name,
			 (long long)o->listed, s->process_type, (long long)o->enqueued, o->error, next,
			 o->auth_status ? " (LogQS refused the key: no sweep call until then, a reload, or "
					  "`sweep NAME --now`)" : "");
	else
		log_info("sweep %s: %lld %s(s) in %s for %s or more (%lld listed)%s: enqueued %lld, %lld already held; "
			 "%lld LogQS call(s) in %.1f s; next run in %s", s->name, (long long)o->found, s->process_type,
			 s->state, age, (long long)o->listed, o->truncated ? " (max_per_run reached)" : "",
			 (long long)o->enqueued, (long long)o->duplicates, (long long)o->lqs_calls, (double)ms / 1000.0,
			 next);
}

/* Run sweep s now, under its lock, with its record kept. requested: an
 * operator asked (runs even if another daemon just ran it). Returns the
 * report when requested. */
static json_t *run_locked(struct sweeper *sw, const struct config *cfg, const struct sweep_cfg *s, bool requested)
{
	char key[80];
	struct store_sweep rec;
	struct sweep_outcome o;
	int64_t now = now_ms(), next;
	json_t *report = NULL;
	struct sched *sc;

	snprintf(key, sizeof(key), "sweep:%s", s->name);
	store_lock(sw->st, key);
	if (store_sweep_get(sw->st, s->name, &rec) == STORE_ERROR) {
		store_unlock(sw->st, key);
		log_error("sweep %s: cannot read its record from the store; tried again in %llds", s->name,
			  SWEEP_STORE_RETRY_MS / 1000);
		next = now + SWEEP_STORE_RETRY_MS;
		goto schedule;
	}
	if (!requested && rec.finished_ms && rec.started_ms + (int64_t)(s->every * 1000.0) > now) {
		/* another daemon on this store ran it meanwhile */
		store_unlock(sw->st, key);
		next = rec.started_ms + (int64_t)(s->every * 1000.0);
		goto schedule;
	}
	rec.started_ms = now;
	rec.finished_ms = 0;
	str_copy(rec.owner, store_owner(sw->st), sizeof(rec.owner));
	if (store_sweep_put(sw->st, &rec) != STORE_OK) {
		store_unlock(sw->st, key);
		log_error("sweep %s: cannot record the start of a run in the store; tried again in %llds", s->name,
			  SWEEP_STORE_RETRY_MS / 1000);
		next = now + SWEEP_STORE_RETRY_MS;
		goto schedule;
	}
	pthread_mutex_lock(&sw->mu);
	str_copy(sw->running, s->name, sizeof(sw->running));
	pthread_mutex_unlock(&sw->mu);
	sweep_run(sw->in, cfg, s, &sw->stopping, &o);
	pthread_mutex_lock(&sw->mu);
	sw->running[0] = '\0';
	pthread_mutex_unlock(&sw->mu);
	if (atomic_load(&sw->stopping) && o.error[0]) {
		/* cut short by the stop: left unfinished, it runs again at start */
		store_unlock(sw->st, key);
		json_decref(o.events);
		return NULL;
	}
	rec.finished_ms = now_ms();
	rec.found = o.found;
	rec.enqueued = o.enqueued;
	rec.duplicates = o.duplicates;
	rec.runs++;
	rec.errors += o.error[0] ? 1 : 0;
	str_copy(rec.error, o.error, sizeof(rec.error));
	if (store_sweep_put(sw->st, &rec) != STORE_OK)
		log_error("sweep %s: cannot record the end of its run; it runs again at the next start", s->name);
	store_unlock(sw->st, key);
	metrics_sweep_run(s->name, o.error_kind, o.found, o.enqueued);
	next = rec.started_ms + (int64_t)(s->every * 1000.0);
	if (o.auth_status && next < now + SWEEP_REFUSED_RETRY_MS)
		next = now + SWEEP_REFUSED_RETRY_MS;
	log_run(s, &o, rec.finished_ms - now, next - now);
	if (requested)
		report = report_json(s, &rec, &o);
	json_decref(o.events);
	pthread_mutex_lock(&sw->mu);
	sc = sched_of(sw, s->name);
	if (sc) {
		sc->refused = o.auth_status != 0;
		if (sc->refused)
			snprintf(sc->pause_why, sizeof(sc->pause_why), "LogQS refused the list call (HTTP %d)",
				 o.auth_status);
	}
	pthread_mutex_unlock(&sw->mu);
schedule:
	pthread_mutex_lock(&sw->mu);
	sc = sched_of(sw, s->name);
	if (sc && s->enabled)
		sc->next_ms = next;
	pthread_mutex_unlock(&sw->mu);
	return report;
}

/* A due sweep: not while the LogQS check fails (its calls would fail the
 * same way); said once when it starts waiting, once when it goes on. */
static void run_due(struct sweeper *sw, const struct config *cfg, const struct sweep_cfg *s)
{
	char why[512];
	bool failing = lqs_check_state(why, sizeof(why)) == LQS_CHECK_FAILING, was;
	struct sched *sc;

	pthread_mutex_lock(&sw->mu);
	sc = sched_of(sw, s->name);
	was = sc && sc->paused;
	if (sc) {
		sc->paused = failing;
		if (failing) {
			str_copy(sc->pause_why, why, sizeof(sc->pause_why));
			sc->next_ms = now_ms() + SWEEP_PAUSED_POLL_MS;   /* no LogQS call: look again soon */
		}
	}
	pthread_mutex_unlock(&sw->mu);
	if (failing && !was)
		log_warn("sweep %s: waiting while the LogQS check fails (%s); it runs once the check passes", s->name,
			 why);
	if (failing)
		return;
	if (was)
		log_info("sweep %s: the LogQS check passes again; running", s->name);
	run_locked(sw, cfg, s, false);
}

static void serve_request(struct sweeper *sw, struct sweep_request *r)
{
	struct config_ref *ref = config_current();
	const struct sweep_cfg *s = config_sweep(&ref->cfg, r->name);
	char names[1024] = "";
	size_t at = 0;

	if (!s) {
		for (int i = 0; i < ref->cfg.n_sweeps && at < sizeof(names); i++)
			at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
					       ref->cfg.sweeps[i].name);
		char detail[1200];
		snprintf(detail, sizeof(detail), "no sweep named '%s' (configured: %s)", r->name, names);
		r->status = 404;
		r->report = json_pack("{s:s}", "detail", detail);
	} else if (!router_sweep_handler(&ref->cfg, s)) {
		r->status = 409;
		r->report = json_pack("{s:s}", "detail", "no route for the sweep's process_type and state, and no "
				      "handler set: its events would run nothing");
	} else {
		r->report = run_locked(sw, &ref->cfg, s, true);
		r->status = r->report ? 200 : 503;
		if (!r->report)
			r->report = json_pack("{s:s}", "detail", atomic_load(&sw->stopping)
					      ? "stopping: the run was cut short; it runs again at start"
					      : "the store cannot record the run (see the log); try again later");
	}
	config_put(ref);
	r->done(r);
}

static void run_named(struct sweeper *sw, const char *name)
{
	struct config_ref *ref = config_current();
	const struct sweep_cfg *s = config_sweep(&ref->cfg, name);
	struct sched *sc;

	if (s && s->enabled) {
		run_due(sw, &ref->cfg, s);
	} else {
		pthread_mutex_lock(&sw->mu);
		if ((sc = sched_of(sw, name)) != NULL)
			sc->next_ms = 0;   /* gone or off since: a reload reschedules */
		pthread_mutex_unlock(&sw->mu);
	}
	config_put(ref);
}

/* The sweep due first (its time; 0 with *which -1 when none is enabled). */
static int64_t earliest_locked(struct sweeper *sw, int *which)
{
	int64_t best = 0;

	*which = -1;
	for (int i = 0; i < sw->n_sched; i++) {
		int64_t at = sw->sched[i].next_ms;
		if (at && (best == 0 || at < best)) {
			best = at;
			*which = i;
		}
	}
	return best;
}

static void *sweeper_main(void *arg)
{
	struct sweeper *sw = arg;

	pthread_setname_np(pthread_self(), "lqs-sweep");
	reschedule(sw);
	pthread_mutex_lock(&sw->mu);
	while (!atomic_load(&sw->stopping)) {
		struct sweep_request *r = sw->req_head;
		int which;
		int64_t due, now = now_ms();

		if (r) {
			sw->req_head = r->next;
			if (!sw->req_head)
				sw->req_tail = NULL;
			pthread_mutex_unlock(&sw->mu);
			serve_request(sw, r);
			pthread_mutex_lock(&sw->mu);
			continue;
		}
		if (sw->kicked) {
			sw->kicked = false;
			pthread_mutex_unlock(&sw->mu);
			reschedule(sw);
			pthread_mutex_lock(&sw->mu);
			continue;
		}
		due = earliest_locked(sw, &which);
		if (which >= 0 && (sw->sched[which].next_ms <= now)) {
			char name[64];
			str_copy(name, sw->sched[which].name, sizeof(name));
			pthread_mutex_unlock(&sw->mu);
			run_named(sw, name);
			pthread_mutex_lock(&sw->mu);
			continue;
		}
		if (due == 0) {
			pthread_cond_wait(&sw->cv, &sw->mu);
		} else {
			struct timespec until = deadline_in_us((due - now) * 1000);
			pthread_cond_timedwait(&sw->cv, &sw->mu, &until);
		}
	}
	/* what is still asked for is answered: the daemon is stopping */
	while (sw->req_head) {
		struct sweep_request *r = sw->req_head;
		sw->req_head = r->next;
		r->status = 503;
		r->report = json_pack("{s:s}", "detail", "stopping; run the sweep again once the daemon is back");
		pthread_mutex_unlock(&sw->mu);
		r->done(r);
		pthread_mutex_lock(&sw->mu);
	}
	sw->req_tail = NULL;
	pthread_mutex_unlock(&sw->mu);
	return NULL;
}

struct sweeper *sweeper_start(struct store *st, struct intake *in)
{
	struct sweeper *sw = calloc(1, sizeof(*sw));

	if (!sw)
		return NULL;
	sw->st = st;
	sw->in = in;
	pthread_mutex_init(&sw->mu, NULL);
	pthread_cond_init(&sw->cv, NULL);
	if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
		pthread_mutex_destroy(&sw->mu);
		pthread_cond_destroy(&sw->cv);
		free(sw);
		return NULL;
	}
	sw->started = true;
	return sw;
}

void sweeper_kick(struct sweeper *sw)
{
	if (!sw)
		return;
	pthread_mutex_lock(&sw->mu);
	sw->kicked = true;
	pthread_cond_signal(&sw->cv);
	pthread_mutex_unlock(&sw->mu);
}

void sweeper_stop(struct sweeper *sw)
{
	if (!sw)
		return;
	pthread_mutex_lock(&sw->mu);
	atomic_store(&sw->stopping, true);
	pthread_cond_signal(&sw->cv);
	pthread_mutex_unlock(&sw->mu);
	if (sw->started)
		pthread_join(sw->thread, NULL);
	sw->started = false;
}

void sweeper_free(struct sweeper *sw)
{
	if (!sw)
		return;
	sweeper_stop(sw);
	pthread_mutex_destroy(&sw->mu);
	pthread_cond_destroy(&sw->cv);
	free(sw);
}

bool sweeper_request(struct sweeper *sw, struct sweep_request *r)
{
	bool ok;

	r->next = NULL;
	r->report = NULL;
	r->status = 0;
	pthread_mutex_lock(&sw->mu);
	ok = !atomic_load(&sw->stopping);
	if (ok) {
		if (sw->req_tail)
			sw->req_tail->next = r;
		else
			sw->req_head = r;
		sw->req_tail = r;
		pthread_cond_signal(&sw->cv);
	}
	pthread_mutex_unlock(&sw->mu);
	return ok;
}

static json_t *status_one(struct sweeper *sw, const struct config *cfg, const struct sweep_cfg *s)
{
	const char *handler = router_sweep_handler(cfg, s);
	struct store_sweep rec;
	enum store_result r = store_sweep_get(sw->st, s->name, &rec);
	json_t *o = json_pack("{s:s, s:b, s:s, s:s, s:f, s:f, s:s?, s:I, s:s?}", "name", s->name, "enabled", s->enabled,
			      "process_type", s->process_type, "state", s->state, "every_s", s->every, "min_age_s",
			      s->min_age, "handler", handler, "max_per_run", (json_int_t)s->max_per_run, "datastore",
			      s->datastore[0] ? s->datastore : cfg->datastore_id && *cfg->datastore_id ? cfg->datastore_id
												  : NULL);
	struct sched *sc;

	if (r == STORE_OK) {
		json_object_set_new(o, "last_run", json_pack("{s:o, s:o, s:I, s:I, s:I, s:s?, s:s?}", "started_at",
				    json_time_or_null(rec.started_ms), "finished_at", json_time_or_null(rec.finished_ms), "found",
				    (json_int_t)rec.found, "enqueued", (json_int_t)rec.enqueued, "duplicates",
				    (json_int_t)rec.duplicates, "error", rec.error[0] ? rec.error : NULL, "owner",
				    rec.owner[0] ? rec.owner : NULL));
		json_object_set_new(o, "runs", json_integer(rec.runs));
		json_object_set_new(o, "errors", json_integer(rec.errors));
	} else {
		json_object_set_new(o, "last_run", json_null());
		json_object_set_new(o, "runs", json_integer(0));
		json_object_set_new(o, "errors", json_integer(0));
		if (r == STORE_ERROR)
			json_object_set_new(o, "store_error", json_true());
	}
	pthread_mutex_lock(&sw->mu);
	sc = sched_of(sw, s->name);
	json_object_set_new(o, "running", json_boolean(strcmp(sw->running, s->name) == 0));
	json_object_set_new(o, "next_run_at", json_time_or_null(sc && s->enabled ? sc->next_ms : 0));
	json_object_set_new(o, "waiting", sc && (sc->paused || sc->refused) ? json_string(sc->pause_why) : json_null());
	pthread_mutex_unlock(&sw->mu);
	return o;
}

json_t *sweeper_status(struct sweeper *sw)
{
	struct config_ref *ref = config_current();
	json_t *arr = json_array();

	for (int i = 0; i < ref->cfg.n_sweeps; i++)
		json_array_append_new(arr, status_one(sw, &ref->cfg, &ref->cfg.sweeps[i]));
	config_put(ref);
	return json_pack("{s:o}", "sweeps", arr);
}
