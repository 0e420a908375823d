/* digestion_stats: the LogQS tutorial's job, done completely. For a
 * digestion in `finalizing`: read every part's index, compute record
 * statistics, store them in the log's context, mark the digestion completed. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/dstats.h"
#include "lqs-hookd/handlers.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/util.h"

/* A second scanner: while the worker's thread drives the transfers (and
 * scans what it cannot hand over), this one scans fetched parts on the
 * other core. Parts queue here without a copy, bounded in bytes. */
#define HELPER_MIN_PARTS 32
#define HELPER_QUEUE_BYTES (1u << 20)

struct helper_item {
	char *body;
	size_t len;
	size_t i;
	struct helper_item *next;
};

struct helper {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct helper_item *head, *tail;
	size_t queued_bytes;
	bool closing, failed;
	struct digestion_stats stats;
	char *const *paths;
	char err[768];
};

struct run {
	struct helper helper;
	struct digestion_stats stats;
	struct handler_ctx *ctx;
	int64_t parts_listed, parts_fetched, bytes_fetched;
	char **fetch;          /* parts whose index was not in the listing */
	size_t n_fetch, cap_fetch;
	char digestion_id[37];
	char err[768];
};

static int part_id(json_t *part, char out[37])
{
	json_t *id = json_object_get(part, "id");

	return json_is_string(id) && uuid_canonical(json_string_value(id), out) ? 0 : -1;
}

/* Progress for GET /events/{id}: step, and counts within it. Built only
 * when the worker says a report is due. */
struct progress_doc {
	const struct run *r;
	const char *step;
};

static json_t *build_progress(void *arg)
{
	const struct progress_doc *d = arg;
	const struct run *r = d->r;

	return json_pack("{s:s, s:I, s:I, s:I, s:I}", "step", d->step, "parts_listed", (json_int_t)r->parts_listed,
			 "parts_to_fetch", (json_int_t)r->n_fetch, "parts_fetched", (json_int_t)r->parts_fetched,
			 "bytes_fetched", (json_int_t)r->bytes_fetched);
}

static void progress(struct run *r, const char *step)
{
	struct progress_doc d = { r, step };

	if (r->ctx->progress)
		r->ctx->progress(r->ctx, step, build_progress, &d);
}

static int on_listed_part(void *ctx, json_t *part)
{
	struct run *r = ctx;
	char id[37];
	json_t *index;

	r->parts_listed++;
	progress(r, "listing parts");
	if (!json_is_object(part) || part_id(part, id)) {
		snprintf(r->err, sizeof(r->err), "digestion %s: a listed part has no valid id", r->digestion_id);
		return -1;
	}
	index = json_object_get(part, "index");
	if (json_is_array(index))
		return dstats_add_index(&r->stats, index, id, r->err, sizeof(r->err));
	if (index && !json_is_null(index)) {
		snprintf(r->err, sizeof(r->err), "part %s: index is not an array", id);
		return -1;
	}
	if (r->n_fetch == r->cap_fetch) {
		size_t ncap = r->cap_fetch ? r->cap_fetch * 2 : 64;
		char **nf = realloc(r->fetch, ncap * sizeof(*nf));
		if (!nf)
			return -1;
		r->fetch = nf;
		r->cap_fetch = ncap;
	}
	size_t plen = strlen(r->digestion_id) + 64;
	/* fetched parts count themselves in dstats_scan_part */
	r->fetch[r->n_fetch] = malloc(plen);
	if (!r->fetch[r->n_fetch])
		return -1;
	snprintf(r->fetch[r->n_fetch++], plen, "digestions/%s/parts/%s", r->digestion_id, id);
	return 0;
}

static const char *fetched_part_id(char *const *paths, size_t i)
{
	return strrchr(paths[i], '/') + 1;
}

static void *helper_main(void *arg)
{
	struct helper *h = arg;

	pthread_setname_np(pthread_self(), "lqs-scan");
	pthread_mutex_lock(&h->mu);
	for (;;) {
		struct helper_item *it;
		while (!h->head && !h->closing)
			pthread_cond_wait(&h->cv, &h->mu);
		if (!h->head)
			break;
		it = h->head;
		h->head = it->next;
		if (!h->head)
			h->tail = NULL;
		pthread_mutex_unlock(&h->mu);
		int rc = h->failed ? 0 : dstats_scan_part(&h->stats, it->body, it->len,
							   fetched_part_id(h->paths, it->i), h->err, sizeof(h->err));
		pthread_mutex_lock(&h->mu);
		h->queued_bytes -= it->len;
		if (rc)
			h->failed = true;
		free(it->body);
		free(it);
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static void helper_start(struct helper *h, char *const *paths)
{
	dstats_init(&h->stats);
	h->paths = paths;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->started = pthread_create(&h->thread, NULL, helper_main, h) == 0;
	if (!h->started) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
	}
}

/* Hand a part over (the helper takes the body): 1 if taken, 0 if the
 * worker must scan it itself (no helper, queue full, out of memory), -1 if
 * the helper stopped on a bad part (stop fetching too). */
static int helper_offer(struct helper *h, size_t i, struct buf *body)
{
	struct helper_item *it;
	int taken = 0;

	if (!h->started)
		return 0;
	pthread_mutex_lock(&h->mu);
	if (h->failed)
		taken = -1;
	else if (body->data && h->queued_bytes + body->len <= HELPER_QUEUE_BYTES &&
		 (it = malloc(sizeof(*it))) != NULL) {
		it->len = body->len;
		it->body = buf_steal(body);
		it->i = i;
		it->next = NULL;
		if (h->tail)
			h->tail->next = it;
		else
			h->head = it;
		h->tail = it;
		h->queued_bytes += it->len;
		pthread_cond_broadcast(&h->cv);
		taken = 1;
	}
	pthread_mutex_unlock(&h->mu);
	return taken;
}

/* Wait for the helper to finish what it has; 0, or -1 with its error. */
static int helper_finish(struct helper *h, char *err, size_t errlen)
{
	int rc = 0;

	if (!h->started)
		return 0;
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	h->started = false;
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	if (h->failed) {
		str_copy(err, h->err, errlen);
		rc = -1;
	}
	return rc;
}

/* A fetched part's body goes straight through the streaming scanner: no
 * JSON tree is built for its (often large) index. */
static int on_fetched_part(void *ctx, size_t i, struct buf *body)
{
	struct run *r = ctx;

	r->parts_fetched++;
	r->bytes_fetched += (int64_t)body->len;
	progress(r, "fetching parts");
	int taken = helper_offer(&r->helper, i, body);

	if (taken)
		return taken > 0 ? 0 : -1;
	return dstats_scan_part(&r->stats, body->data ? body->data : "", body->len, fetched_part_id(r->fetch, i),
				r->err, sizeof(r->err));
}

static enum handler_status fail(struct handler_out *out, const char *name, const char *msg)
{
	str_copy(out->error_name, name, sizeof(out->error_name));
	str_copy(out->error, msg, sizeof(out->error));
	return HANDLER_FAIL;
}

static enum handler_status write_context(struct handler_ctx *ctx, const char *log_id, json_t *stats,
					 struct handler_out *out)
{
	struct lqs_error e;
	json_t *log = NULL, *context, *body, *patched = NULL;
	char path[96];
	enum handler_status st = HANDLER_OK;

	snprintf(path, sizeof(path), "logs/%s", log_id);
	/* Read-modify-write of the context: one writer per log at a time. */
	ctx->lock(ctx, log_id);
	if (lqs_get(ctx->lqs, path, &log, &e)) {
		st = handler_from_lqs(&e, out);
		goto out;
	}
	if (!json_is_object(log)) {
		st = fail(out, "InvalidResponse", "log is not an object");
		goto out;
	}
	context = json_object_get(log, "context");
	if (json_is_object(context))
		context = json_deep_copy(context);
	else if (!context || json_is_null(context))
		context = json_object();
	else {
		st = fail(out, "InvalidResponse", "log context is neither an object nor null");
		goto out;
	}
	json_object_set(context, "digestion_stats", stats);
	body = json_pack("{s:o}", "context", context);
	if (lqs_patch(ctx->lqs, path, body, &patched, &e))
		st = handler_from_lqs(&e, out);
	json_decref(body);
	json_decref(patched);
out:
	ctx->unlock(ctx, log_id);
	json_decref(log);
	return st;
}

/* What to do with the digestion, by its state: GO on, or DONE (out set:
 * already completed, skipped, or a failure). *was_failed: computed again
 * from failed; log gets its log id. */
enum verdict { GO, DONE };

static enum verdict check_digestion(struct handler_ctx *ctx, const char *rid, json_t *dig, char log[37],
				    bool *was_failed, struct handler_out *out, enum handler_status *st)
{
	json_t *state = json_object_get(dig, "state"), *log_id = json_object_get(dig, "log_id");
	const char *s = json_string_value(state);

	*st = HANDLER_OK;
	if (!s) {
		*st = fail(out, "InvalidResponse", "digestion has no state");
		return DONE;
	}
	if (strcmp(s, "completed") == 0) {
		/* A repeated delivery: the work is already done. */
		out->result = json_pack("{s:s, s:s}", "status", "already_completed", "digestion_id", rid);
		return DONE;
	}
	/* Failed by this event's own earlier attempt (on_failure = patch), or
	 * replayed by an operator after fixing the cause: redo the work and
	 * complete it. Failed by anyone else, cancelled or archived: skip. */
	*was_failed = strcmp(s, "failed") == 0;
	if (*was_failed && ctx->redo_failed) {
		log_event(LOG_LVL_INFO, ctx->event_id, rid,
			  "digestion is failed, but this event was replayed or failed it itself: computing it again");
	} else if (*was_failed || strcmp(s, "cancelled") == 0 || strcmp(s, "archived") == 0) {
		char why[128];
		snprintf(why, sizeof(why), "digestion is %s", s);
		out->result = json_pack("{s:s, s:s, s:s}", "status", "skipped", "reason", why, "digestion_id", rid);
		return DONE;
	}
	if (!json_is_string(log_id) || !uuid_canonical(json_string_value(log_id), log)) {
		*st = fail(out, "InvalidResponse", "digestion has no valid log_id");
		return DONE;
	}
	return GO;
}

/* Every part: those listed with their index are counted as the pages
 * arrive; the rest are fetched in parallel and counted on arrival (by two
 * scanners for many parts), so no more than a page and a few parts are
 * held at once. The figures end up in r->stats. */
static enum handler_status read_parts(struct handler_ctx *ctx, struct run *r, struct handler_out *out)
{
	struct lqs_error e;
	char path[96];

	snprintf(path, sizeof(path), "digestions/%s/parts", r->digestion_id);
	progress(r, "listing parts");
	if (lqs_list(ctx->lqs, path, NULL, on_listed_part, r, &e))
		return e.name[0] ? handler_from_lqs(&e, out) : fail(out, "InvalidPartData", r->err);
	if (r->n_fetch >= HELPER_MIN_PARTS)
		helper_start(&r->helper, r->fetch);
	progress(r, "fetching parts");
	if (r->n_fetch && lqs_get_many_raw(ctx->lqs, r->fetch, r->n_fetch, on_fetched_part, r, &e)) {
		char herr[sizeof(r->err)];
		/* a bad part seen by the helper is the reason the worker stopped */
		if (!e.name[0] && !r->err[0] && helper_finish(&r->helper, herr, sizeof(herr)))
			str_copy(r->err, herr, sizeof(r->err));
		return e.name[0] ? handler_from_lqs(&e, out) : fail(out, "InvalidPartData", r->err[0] ? r->err : "malformed part");
	}
	if (helper_finish(&r->helper, r->err, sizeof(r->err)))
		return fail(out, "InvalidPartData", r->err);
	log_debug("digestion %s: %lld of %zu fetched parts scanned by the helper", r->digestion_id,
		  (long long)r->helper.stats.part_count, r->n_fetch);
	if (dstats_merge(&r->stats, &r->helper.stats))
		return fail(out, "OutOfMemory", "out of memory merging statistics");
	return HANDLER_OK;
}

/* Advance the digestion to completed (from failed too: then its error
 * fields, which no longer hold, are cleared). */
static enum handler_status complete(struct handler_ctx *ctx, const char *rid, bool was_failed,
				    struct handler_out *out)
{
	struct lqs_error e;
	json_t *body, *patched = NULL;
	char path[96];
	enum handler_status st = HANDLER_OK;

	snprintf(path, sizeof(path), "digestions/%s", rid);
	body = was_failed ? json_pack("{s:s, s:n, s:n}", "state", "completed", "error_name", "error_message")
			  : json_pack("{s:s}", "state", "completed");
	if (lqs_patch(ctx->lqs, path, body, &patched, &e))
		st = handler_from_lqs(&e, out);
	json_decref(body);
	json_decref(patched);
	return st;
}

static void run_free(struct run *r)
{
	char ignored[8];

	helper_finish(&r->helper, ignored, sizeof(ignored));
	/* its queue is empty once it has ended: free what it counted */
	dstats_free(&r->helper.stats);
	for (size_t i = 0; i < r->n_fetch; i++)
		free(r->fetch[i]);
	free(r->fetch);
	dstats_free(&r->stats);
}

static enum handler_status stats_run(struct handler_ctx *ctx, struct handler_out *out)
{
	struct lqs_error e;
	struct run r;
	json_t *dig = NULL, *stats = NULL;
	const char *rid = json_string_value(json_object_get(ctx->event, "resource_id"));
	const char *ptype = json_string_value(json_object_get(ctx->event, "process_type"));
	char path[96], log[37];
	enum handler_status st = HANDLER_OK;
	bool was_failed = false;

	if (!rid || !ptype || strcmp(ptype, "digestion") != 0)
		return fail(out, "UnsupportedEvent", "digestion_stats handles digestion events only");
	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	dstats_init(&r.stats);
	str_copy(r.digestion_id, rid, sizeof(r.digestion_id));

	/* 1. The digestion, and whether there is anything to do. */
	snprintf(path, sizeof(path), "digestions/%s", rid);
	if (lqs_get(ctx->lqs, path, &dig, &e))
		return handler_from_lqs(&e, out);
	if (check_digestion(ctx, rid, dig, log, &was_failed, out, &st) == GO) {
		/* 2–3. Every part's index. */
		st = read_parts(ctx, &r, out);
		if (st == HANDLER_OK) {
			/* 4. The log's context, keeping every other key. */
			stats = dstats_to_json(&r.stats, rid);
			progress(&r, "writing the log context");
			st = write_context(ctx, log, stats, out);
		}
		/* 5. Done: the digestion completed. */
		if (st == HANDLER_OK) {
			progress(&r, "completing the digestion");
			st = complete(ctx, rid, was_failed, out);
		}
		if (st == HANDLER_OK)
			out->result = json_incref(stats);
	}
	run_free(&r);
	json_decref(dig);
	json_decref(stats);
	return st;
}

static void stats_on_failure(struct handler_ctx *ctx, const struct handler_out *f)
{
	const char *rid = json_string_value(json_object_get(ctx->event, "resource_id"));
	struct lqs_error e;
	json_t *body, *patched = NULL;
	char path[96];

	if (!rid || strcmp(ctx->cfg->on_failure, "leave") == 0)
		return;
	snprintf(path, sizeof(path), "digestions/%s", rid);
	body = json_pack("{s:s, s:s, s:s}", "state", "failed", "error_name", f->error_name,
			 "error_message", f->error);
	if (lqs_patch(ctx->lqs, path, body, &patched, &e))
		log_event(LOG_LVL_ERROR, ctx->event_id, rid, "could not mark digestion failed: %s",
			  e.message);
	json_decref(body);
	json_decref(patched);
}

const struct handler_def handler_digestion_stats = {
	.name = "digestion_stats",
	.description = "record statistics of a digestion into its log's context, then complete it",
	.run = stats_run,
	.events = true,
	.on_failure = stats_on_failure,
};
