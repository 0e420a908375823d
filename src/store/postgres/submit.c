/* Intake's side of the PostgreSQL store: jobs written in one synchronous
 * transaction, so a COMMIT that has returned is on the server's disk and
 * store_durable() has nothing left to do. Before it looks for an earlier
 * delivery, the transaction locks what makes one a duplicate: the same
 * delivery received by two daemons at once is stored once. The events of
 * a batch cost a fixed number of statements, whatever their number: one
 * lookup of earlier copies per kind and one INSERT (copies within the
 * batch are found here); objects still take a few statements each. */
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

/* Earlier copies, for every event of a batch in one statement each: a
 * hook delivery's first copy within the dedupe window; a sweep's latest
 * event of the same resource and state that is unfinished, failed or
 * recent. Each row: the item's index, the id found (or NULL). */
static const char SQL_HOOK_COPIES[] =
	"SELECT x.i, (SELECT e.id FROM events e WHERE e.resource_id = x.r AND e.received_at >= $1 AND "
	"e.dedupe_key = x.k ORDER BY e.seq LIMIT 1) FROM unnest($2::int[], $3::text[], $4::text[]) AS x(i, r, k)";
static const char SQL_SWEEP_COPIES[] =
	"SELECT x.i, (SELECT e.id FROM events e WHERE e.resource_id = x.r AND e.process_type = x.p AND "
	"e.current_state = x.s AND (e.state IN ('queued','running','retrying','failed') OR e.received_at >= x.c) "
	"ORDER BY e.seq DESC LIMIT 1) FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::bigint[]) "
	"AS x(i, r, p, s, c)";
/* Every new event of a batch, in the batch's order. */
static const char SQL_INSERT[] =
	"INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id, dedupe_key, body, "
	"handler, state, result, finished_at, source) "
	"SELECT x.id, $1, $1, x.p, x.s, x.r, x.k, x.b, x.h, x.st, x.res, x.fin, x.src FROM unnest($2::text[], "
	"$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
	"$11::bigint[], $12::text[]) WITH ORDINALITY AS x(id, p, s, r, k, b, h, st, res, fin, src, o) ORDER BY x.o";

/* One event of the batch, as it is decided. */
struct pending {
	char key[200];   /* its dedupe key */
	char copy[37];   /* the earlier copy in the database ("" : none) */
	bool insert;
};

enum { A_ID, A_TYPE, A_STATE, A_RES, A_KEY, A_BODY, A_HANDLER, A_ST, A_RESULT, A_FIN, A_SRC, A_N };

/* Run a lookup whose rows are (index, id): each id lands in its pending. */
static enum store_result find_copies(struct pgs *st, struct pgc *c, const char *sql, struct pga *cols, int ncols,
				     const char *first, struct pending *pend, size_t n)
{
	struct pgp p = { .n = 0 };
	PGresult *r;

	if (first)
		pgp_text(&p, first);
	for (int k = 0; k < ncols; k++) {
		const char *lit = pga_end(&cols[k]);
		if (!lit)
			return STORE_ERROR;
		pgp_text(&p, lit);
	}
	r = pg_q(st, c, sql, &p);
	if (!r)
		return pg_fail(c);
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t i = pg_int(r, row, 0);
		if (i >= 0 && (size_t)i < n)
			str_copy(pend[i].copy, pg_str(r, row, 1), sizeof(pend[i].copy));
	}
	PQclear(r);
	return STORE_OK;
}

/* An earlier event of this batch the item repeats (NULL: none). A sweep
 * takes the latest, a hook delivery the first, as the lookups do. */
static const char *copy_in_batch(const struct store_item *items, const struct pending *pend, size_t i)
{
	const struct event *ev = items[i].ev;
	const char *found = NULL;

	for (size_t j = 0; j < i; j++) {
		const struct event *e = items[j].ev;
		if (!pend[j].insert || strcmp(e->resource_id, ev->resource_id) != 0)
			continue;
		if (items[i].source && strcmp(e->process_type, ev->process_type) == 0 &&
		    strcmp(e->current_state, ev->current_state) == 0)
			found = items[j].id;   /* the latest */
		else if (!items[i].source && strcmp(pend[j].key, pend[i].key) == 0)
			return items[j].id;    /* the first */
	}
	return found;
}

/* The events of a batch (objects go their own way): two lookups, one
 * INSERT, whatever the batch's size. */
static enum store_result enqueue_events(struct pgs *st, struct pgc *c, struct store_item *items, size_t n,
					int64_t now, int64_t dedupe_ms, int64_t max_queued, int64_t *added)
{
	struct pending *pend = calloc(n ? n : 1, sizeof(*pend));
	/* the columns: the hooks' lookup (3), the sweeps' (5), the INSERT's */
	struct pga cols[3 + 5 + A_N], *hook = cols, *sweep = cols + 3, *ins = cols + 8;
	size_t n_hook = 0, n_sweep = 0, n_ins = 0;
	enum store_result out = pend ? STORE_OK : STORE_ERROR;

	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
		pga_init(&cols[k]);
	for (size_t i = 0; out == STORE_OK && i < n; i++) {
		const struct store_item *it = &items[i];
		if (it->obj)
			continue;
		if (!it->body || !it->ev) {
			out = STORE_ERROR;
			break;
		}
		store_dedupe_key(it->ev, pend[i].key, sizeof(pend[i].key));
		if (it->source) {
			pga_int(&sweep[0], (int64_t)i);
			pga_text(&sweep[1], it->ev->resource_id);
			pga_text(&sweep[2], it->ev->process_type);
			pga_text(&sweep[3], it->ev->current_state);
			pga_int(&sweep[4], now - it->recent_ms);
			n_sweep++;
		} else if (dedupe_ms > 0) {
			pga_int(&hook[0], (int64_t)i);
			pga_text(&hook[1], it->ev->resource_id);
			pga_text(&hook[2], pend[i].key);
			n_hook++;
		}
	}
	if (out == STORE_OK && n_hook) {
		char cut[24];
		snprintf(cut, sizeof(cut), "%lld", (long long)(now - dedupe_ms));
		out = find_copies(st, c, SQL_HOOK_COPIES, hook, 3, cut, pend, n);
	}
	if (out == STORE_OK && n_sweep)
		out = find_copies(st, c, SQL_SWEEP_COPIES, sweep, 5, NULL, pend, n);
	for (size_t i = 0; out == STORE_OK && i < n; i++) {
		struct store_item *it = &items[i];
		const char *copy = NULL;
		char *result = NULL;
		if (it->obj)
			continue;
		if (it->source || dedupe_ms > 0) {
			copy = copy_in_batch(items, pend, i);
			/* the database's copies are older: the first wins there */
			if (pend[i].copy[0] && (!copy || !it->source))
				copy = pend[i].copy;
		}
		if (copy) {
			str_copy(it->id, copy, sizeof(it->id));
			it->result = STORE_DUPLICATE;
			continue;
		}
		if (max_queued > 0 && atomic_load(&st->unfinished) + *added >= max_queued) {
			it->result = STORE_FULL;
			continue;
		}
		uuid_new(it->id);
		if (!it->handler && !(result = store_not_routed_text(it->ev->process_type, it->ev->current_state))) {
			out = STORE_ERROR;
			break;
		}
		pga_text(&ins[A_ID], it->id);
		pga_text(&ins[A_TYPE], it->ev->process_type);
		pga_text(&ins[A_STATE], it->ev->current_state);
		pga_text(&ins[A_RES], it->ev->resource_id);
		pga_text(&ins[A_KEY], pend[i].key);
		pga_text(&ins[A_BODY], it->body);
		pga_text(&ins[A_HANDLER], it->handler);
		pga_text(&ins[A_ST], it->handler ? ST_QUEUED : ST_COMPLETED);
		pga_text(&ins[A_RESULT], result);
		if (it->handler)
			pga_text(&ins[A_FIN], NULL);
		else
			pga_int(&ins[A_FIN], now);
		pga_text(&ins[A_SRC], it->source);
		free(result);
		pend[i].insert = true;
		it->result = STORE_OK;
		n_ins++;
		if (it->handler)
			(*added)++;
	}
	if (out == STORE_OK && n_ins) {
		struct pgp p = { .n = 0 };
		pgp_int(&p, now);
		for (int k = 0; k < A_N && out == STORE_OK; k++) {
			const char *lit = pga_end(&ins[k]);
			if (!lit)
				out = STORE_ERROR;
			pgp_text(&p, lit);
		}
		if (out == STORE_OK)
			out = pg_do(st, c, SQL_INSERT, &p);
		c->wrote |= out == STORE_OK;
	}
	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
		pga_free(&cols[k]);
	free(pend);
	return out;
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

	for (size_t i = 0; i < n; i++)
		items[i].result = STORE_OK;   /* decided below */
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
	if (failure == STORE_OK)
		failure = enqueue_events(st, c, items, n, now, dedupe_ms, max_queued, &added);
	for (size_t i = 0; failure == STORE_OK && i < n; i++) {
		if (!items[i].obj)
			continue;
		items[i].result = pg_object_put(st, c, &items[i], now, &added);
		if (items[i].result == STORE_NOSPACE || items[i].result == STORE_ERROR)
			failure = items[i].result;
	}
	if (failure == STORE_OK)
		failure = pg_commit(st, c);
	if (failure != STORE_OK) {
		/* all or nothing: no 202 for an event that is not committed
		 * (pg_put rolls the transaction back) */
		for (size_t i = 0; i < n; i++)
			if (items[i].result != STORE_FULL)
				items[i].result = failure;
		added = 0;
	}
	atomic_fetch_add(&st->unfinished, added);
	pg_put(st, c);
	free(keys);
}
