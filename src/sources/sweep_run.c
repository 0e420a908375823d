/* One run of a sweep: list the resources LogQS holds in the sweep's state
 * (every page, filtered by updated_at as the API allows), keep those that
 * have been in it for min_age, and store for each the event a hook would
 * have sent. The store's sweep rule makes a resource that already has an
 * unfinished, failed or recent event a duplicate, so a sweep never doubles
 * a hook's work. */
#include "sweep_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/event.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"

/* Events handed to the intake in one submission. */
#define SWEEP_SUBMIT_CHUNK 256
/* lqs_list's callback value: max_per_run reached (not an error). */
#define LIST_ENOUGH 2

struct found {
	char id[37];
	char previous_state[16];
	char workflow_id[37];
};

struct list_ctx {
	const struct sweep_cfg *s;
	int64_t cutoff_ms;
	struct found *rows;
	size_t n, cap;
	struct sweep_outcome *out;
};

static const char *str_of(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Each listed resource: in the state, and in it since before the cut-off
 * (transitioned_at, or updated_at when the server has no transition time). */
static int on_item(void *arg, json_t *item)
{
	struct list_ctx *lc = arg;
	const char *state = str_of(item, "state"), *when = str_of(item, "transitioned_at");
	char canon[37];
	int64_t at;

	lc->out->listed++;
	if (!when)
		when = str_of(item, "updated_at");
	if (!uuid_canonical(str_of(item, "id") ? str_of(item, "id") : "", canon) || !state ||
	    strcmp(state, lc->s->state) != 0 || !when || iso8601_parse(when, &at) != 0 || at > lc->cutoff_ms)
		return 0;
	if (lc->n == lc->cap) {
		size_t ncap = lc->cap ? lc->cap * 2 : 64;
		struct found *nr = realloc(lc->rows, ncap * sizeof(*nr));
		if (!nr)
			return -1;
		lc->rows = nr;
		lc->cap = ncap;
	}
	struct found *f = &lc->rows[lc->n++];
	memset(f, 0, sizeof(*f));
	str_copy(f->id, canon, sizeof(f->id));
	if (str_of(item, "previous_state") && event_state_valid(str_of(item, "previous_state")))
		str_copy(f->previous_state, str_of(item, "previous_state"), sizeof(f->previous_state));
	if (str_of(item, "workflow_id") && uuid_canonical(str_of(item, "workflow_id"), canon))
		str_copy(f->workflow_id, canon, sizeof(f->workflow_id));
	return (int64_t)lc->n >= lc->s->max_per_run ? LIST_ENOUGH : 0;
}

static void count_call(void *ctx, const struct lqs_call *call)
{
	struct sweep_outcome *out = ctx;

	out->lqs_calls++;
	lqs_check_note(call->status, call->error);
}

static const char *collection_of(const char *process_type)
{
	return strcmp(process_type, "ingestion") == 0 ? "ingestions" : "digestions";
}

/* Phase one: what LogQS holds. 0, or -1 with out->error set. */
static int list_resources(const struct config *cfg, const struct sweep_cfg *s, const atomic_bool *abort,
			  struct list_ctx *lc)
{
	struct lqs_client *c = lqs_client_new(cfg);
	struct lqs_error err;
	char cutoff[32], filter[160];
	int rc;

	if (!c) {
		str_copy(lc->out->error, "out of memory", sizeof(lc->out->error));
		str_copy(lc->out->error_kind, "lqs", sizeof(lc->out->error_kind));
		return -1;
	}
	lqs_client_begin(c, s->datastore[0] ? s->datastore : NULL, count_call, lc->out);
	lqs_client_set_abort(c, abort);
	/* updated_at is never before transitioned_at, so this filter loses
	 * nothing old enough and leaves the busy recent ones to LogQS */
	iso8601_ms(lc->cutoff_ms, cutoff);
	snprintf(filter, sizeof(filter), "state=%s&updated_at_lte=%s", s->state, cutoff);
	memset(&err, 0, sizeof(err));
	rc = lqs_list(c, collection_of(s->process_type), filter, on_item, lc, &err);
	lqs_client_free(c);
	if (rc == LIST_ENOUGH) {
		lc->out->truncated = true;
		return 0;
	}
	if (rc == 0)
		return 0;
	if (err.status == 401 || err.status == 403) {
		lc->out->auth_status = err.status;
		str_copy(lc->out->error_kind, "auth", sizeof(lc->out->error_kind));
	} else {
		str_copy(lc->out->error_kind, "lqs", sizeof(lc->out->error_kind));
	}
	str_copy(lc->out->error, err.message[0] ? err.message : "listing failed", sizeof(lc->out->error));
	return -1;
}

static void fill_event(struct event *ev, const struct found *f, const struct config *cfg, const struct sweep_cfg *s)
{
	char canon[37];

	memset(ev, 0, sizeof(*ev));
	str_copy(ev->previous_state, f->previous_state, sizeof(ev->previous_state));
	str_copy(ev->current_state, s->state, sizeof(ev->current_state));
	str_copy(ev->process_type, s->process_type, sizeof(ev->process_type));
	str_copy(ev->resource_id, f->id, sizeof(ev->resource_id));
	str_copy(ev->workflow_id, f->workflow_id, sizeof(ev->workflow_id));
	if (s->datastore[0])
		str_copy(ev->datastore_id, s->datastore, sizeof(ev->datastore_id));
	else if (cfg->datastore_id && uuid_canonical(cfg->datastore_id, canon))
		str_copy(ev->datastore_id, canon, sizeof(ev->datastore_id));
}

/* Phase two: one chunk of found resources into the store. */
static void enqueue_chunk(struct intake *in, const struct config *cfg, const struct sweep_cfg *s,
			  const struct found *rows, size_t n, struct sweep_outcome *out)
{
	struct event ev[SWEEP_SUBMIT_CHUNK];
	struct store_item items[SWEEP_SUBMIT_CHUNK];
	char source[80];
	const char *handler = router_sweep_handler(cfg, s);
	size_t refused = 0;
	bool full = false;

	snprintf(source, sizeof(source), "sweep:%s", s->name);
	memset(items, 0, sizeof(items));
	for (size_t i = 0; i < n; i++) {
		fill_event(&ev[i], &rows[i], cfg, s);
		items[i] = (struct store_item){ .ev = &ev[i], .handler = handler, .body = store_event_body(&ev[i]),
						.source = source, .recent_ms = (int64_t)(s->min_age * 1000.0) };
		if (!items[i].body)
			items[i].result = STORE_ERROR;
	}
	if (!intake_submit_wait(in, items, n))
		for (size_t i = 0; i < n; i++)
			items[i].result = STORE_ERROR;
	for (size_t i = 0; i < n; i++) {
		enum store_result r = items[i].result;
		if (store_result_stored(r))
			json_array_append_new(out->events, json_pack("{s:s, s:s, s:b}", "resource_id", rows[i].id,
								     "event_id", items[i].id, "new", r == STORE_OK));
		if (r == STORE_OK)
			out->enqueued++;
		else if (r == STORE_DUPLICATE)
			out->duplicates++;
		else
			refused++;
		full |= r == STORE_FULL;
		free(items[i].body);
	}
	if (refused && !out->error[0]) {
		str_copy(out->error_kind, full ? "queue_full" : "store", sizeof(out->error_kind));
		snprintf(out->error, sizeof(out->error), "%zu event(s) not stored (%s); the next run finds them again",
			 refused, full ? "max_queued unfinished events already held" : "the store refused them");
	}
}

void sweep_run(struct intake *in, const struct config *cfg, const struct sweep_cfg *s, const atomic_bool *abort,
	       struct sweep_outcome *out)
{
	struct list_ctx lc = { .s = s, .out = out };

	memset(out, 0, sizeof(*out));
	out->events = json_array();
	lc.cutoff_ms = now_ms() - (int64_t)(s->min_age * 1000.0);
	/* what a failed listing found before it failed is stored all the same */
	list_resources(cfg, s, abort, &lc);
	for (size_t at = 0; at < lc.n; at += SWEEP_SUBMIT_CHUNK) {
		size_t k = lc.n - at < SWEEP_SUBMIT_CHUNK ? lc.n - at : SWEEP_SUBMIT_CHUNK;
		enqueue_chunk(in, cfg, s, lc.rows + at, k, out);
	}
	out->found = (int64_t)lc.n;
	free(lc.rows);
}
