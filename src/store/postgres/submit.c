/* Intake's side of the PostgreSQL store: jobs written in one synchronous
 * transaction, so a COMMIT that has returned is on the server's disk and
 * store_durable() has nothing left to do. Before it looks for an earlier
 * delivery, the transaction locks what makes one a duplicate: the same
 * delivery received by two daemons at once is stored once. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* How often the store's size is measured again, with max_store_size set. */
#define PG_SIZE_EVERY_MS 5000

static const char SQL_SIZE[] =
	"SELECT coalesce(sum(pg_total_relation_size(c)), 0) FROM "
	"unnest(ARRAY['events','history','objects','batches','sweeps']::regclass[]) AS c";

/* One lock covers both rules: a resource reaching a state (the sweep's)
 * holds every delivery of that transition (the hook's). */
static int64_t event_lock_key(const struct event *ev)
{
	char what[128];

	snprintf(what, sizeof(what), "%s|%s", ev->process_type, ev->current_state);
	return pg_key('d', ev->resource_id, what);
}

static enum store_result held_already(struct pgs *st, struct pgc *c, const char *sql, const struct pgp *p,
				      struct store_item *it)
{
	PGresult *r = pg_q(st, c, sql, p);

	if (!r)
		return pg_fail(c);
	if (PQntuples(r) > 0) {
		str_copy(it->id, pg_str(r, 0, 0), sizeof(it->id));
		PQclear(r);
		return STORE_DUPLICATE;
	}
	PQclear(r);
	return STORE_OK;
}

static enum store_result enqueue_one(struct pgs *st, struct pgc *c, struct store_item *it, int64_t now,
				     int64_t dedupe_ms, int64_t max_queued, int64_t *added)
{
	char key[200], *result = NULL;
	struct pgp p = { .n = 0 };
	enum store_result r;

	store_dedupe_key(it->ev, key, sizeof(key));
	if (it->source) {
		pgp_text(&p, it->ev->resource_id);
		pgp_text(&p, it->ev->process_type);
		pgp_text(&p, it->ev->current_state);
		pgp_int(&p, now - it->recent_ms);
		r = held_already(st, c, "SELECT id FROM events WHERE resource_id=$1 AND process_type=$2 AND "
				 "current_state=$3 AND (state IN ('queued','running','retrying','failed') OR "
				 "received_at>=$4) ORDER BY seq DESC LIMIT 1", &p, it);
		if (r != STORE_OK)
			return r;
	} else if (dedupe_ms > 0) {
		pgp_text(&p, it->ev->resource_id);
		pgp_int(&p, now - dedupe_ms);
		pgp_text(&p, key);
		r = held_already(st, c, "SELECT id FROM events WHERE resource_id=$1 AND received_at>=$2 "
				 "AND dedupe_key=$3 ORDER BY seq LIMIT 1", &p, it);
		if (r != STORE_OK)
			return r;
	}
	if (max_queued > 0 && atomic_load(&st->unfinished) + *added >= max_queued)
		return STORE_FULL;
	uuid_new(it->id);
	if (!it->handler) {
		json_t *res = event_not_routed(it->ev->process_type, it->ev->current_state);
		result = res ? json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(res);
		if (!result)
			return STORE_ERROR;
	}
	p.n = 0;
	pgp_text(&p, it->id);
	pgp_int(&p, now);
	pgp_text(&p, it->ev->process_type);
	pgp_text(&p, it->ev->current_state);
	pgp_text(&p, it->ev->resource_id);
	pgp_text(&p, key);
	pgp_text(&p, it->body);
	pgp_text(&p, it->handler);
	pgp_text(&p, it->handler ? ST_QUEUED : ST_COMPLETED);
	pgp_text(&p, result);
	if (it->handler)
		pgp_null(&p);
	else
		pgp_int(&p, now);
	pgp_text(&p, it->source);
	r = pg_do(st, c, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id, "
			 "dedupe_key, body, handler, state, result, finished_at, source) "
			 "VALUES ($1,$2,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)", &p);
	free(result);
	if (r == STORE_OK && it->handler)
		(*added)++;
	return r;
}

/* Over max_store_size (measured every few seconds): NOSPACE, as a full
 * disk would answer. */
static bool over_size(struct pgs *st, struct pgc *c)
{
	int64_t max = atomic_load(&st->max_size), now = mono_ms();

	if (max <= 0)
		return false;
	if (!atomic_load(&st->sized_at) || now - atomic_load(&st->sized_at) >= PG_SIZE_EVERY_MS) {
		PGresult *r = pg_q(st, c, SQL_SIZE, NULL);
		if (r) {
			atomic_store(&st->size_bytes, pg_int(r, 0, 0));
			atomic_store(&st->sized_at, now);
		}
		PQclear(r);
	}
	return atomic_load(&st->size_bytes) >= max;
}

void pg_submit(struct store *b, struct store_item *items, size_t n, const struct store_limits *lim)
{
	struct pgs *st = pg_of(b);
	int64_t dedupe_ms = lim ? lim->dedupe_ms : 0, max_queued = lim ? lim->max_queued : 0;
	int64_t now = now_ms(), added = 0;
	enum store_result failure = STORE_OK;
	struct pgc *c = pg_get(st);
	int64_t *keys = calloc(n * 2 + 1, sizeof(*keys));
	size_t nk = 0;

	if (!c || !keys)
		failure = STORE_ERROR;
	if (failure == STORE_OK && over_size(st, c))
		failure = STORE_NOSPACE;
	if (failure == STORE_OK)
		failure = pg_begin(st, c, true);
	if (failure == STORE_OK && max_queued > 0)
		pg_count_unfinished(st, c, false);
	for (size_t i = 0; failure == STORE_OK && i < n; i++) {
		if (items[i].obj)
			pg_object_keys(&items[i], keys, &nk);
		else if (items[i].ev)
			keys[nk++] = event_lock_key(items[i].ev);
	}
	if (failure == STORE_OK)
		failure = pg_xact_locks(st, c, keys, nk);
	for (size_t i = 0; i < n; i++) {
		if (failure != STORE_OK) {
			items[i].result = failure;
			continue;
		}
		if (items[i].obj)
			items[i].result = pg_object_put(st, c, &items[i], now, &added);
		else
			items[i].result = items[i].body && items[i].ev
						  ? enqueue_one(st, c, &items[i], now, dedupe_ms, max_queued, &added)
						  : STORE_ERROR;
		if (items[i].result == STORE_NOSPACE || items[i].result == STORE_ERROR)
			failure = items[i].result;
	}
	if (failure == STORE_OK)
		failure = pg_commit(st, c);
	if (failure != STORE_OK) {
		/* all or nothing: no 202 for an event that is not committed */
		if (c)
			pg_rollback(st, c);
		for (size_t i = 0; i < n; i++)
			if (store_result_stored(items[i].result) || items[i].result == STORE_OK)
				items[i].result = failure;
		added = 0;
	}
	atomic_fetch_add(&st->unfinished, added);
	pg_put(st, c);
	free(keys);
}
