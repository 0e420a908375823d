/* Administration on PostgreSQL: replays, pruning (one daemon at a time),
 * the figures for metrics and readiness, and the sweeps' records. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

static const char SQL_REPLAY_ONE[] =
	"UPDATE events SET state='queued', attempts=0, next_run_at=0, result=NULL, error=NULL, finished_at=NULL, "
	"progress=NULL, flags=flags|1, owner=NULL, lease_until=NULL, archived_at=NULL, updated_at=$1 "
	"WHERE id=$2 AND state IN ('completed','failed')";

/* Replay one event inside the open transaction: OK, CONFLICT (not
 * finished), NOTFOUND, or the failure. */
static enum store_result replay_in(struct pgs *st, struct pgc *c, const char *id, int64_t now)
{
	struct store_hist h = { .step = "replay", .started_ms = now, .ended_ms = now };
	struct pgp p = { .n = 0 };
	PGresult *r;
	int64_t changed;

	pgp_int(&p, now);
	pgp_text(&p, id);
	r = pg_q(st, c, SQL_REPLAY_ONE, &p);
	if (!r)
		return pg_fail(c);
	changed = pg_changed(r);
	PQclear(r);
	if (changed == 0) {
		p.n = 0;
		pgp_text(&p, id);
		r = pg_q(st, c, "SELECT 1 FROM events WHERE id=$1", &p);
		if (!r)
			return pg_fail(c);
		changed = PQntuples(r);
		PQclear(r);
		return changed ? STORE_CONFLICT : STORE_NOTFOUND;
	}
	return pg_hist_insert(st, c, id, &h) == 0 ? STORE_OK : pg_fail(c);
}

enum store_result pg_replay(struct store *b, const char *id)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	enum store_result out;

	if (!c)
		return STORE_ERROR;
	out = pg_begin(st, c, true);
	if (out == STORE_OK)
		out = replay_in(st, c, id, now_ms());
	if (out == STORE_OK) {
		out = pg_commit(st, c);
		if (out == STORE_OK)
			atomic_fetch_add(&st->unfinished, 1);
	}
	pg_put(st, c);   /* rolls back what was not committed */
	return out;
}

enum store_result pg_replay_matching(struct store *b, const struct store_query *q, bool dry_run, json_t *ids,
				     int64_t *next_cursor)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	int64_t now = now_ms(), last = 0;
	int limit = q->limit > 0 ? q->limit : 100, n = 0;
	struct pgp p = { .n = 0 };
	enum store_result out;
	PGresult *r = NULL;

	*next_cursor = 0;
	if (!c)
		return STORE_ERROR;
	out = pg_begin(st, c, true);
	if (out == STORE_OK) {
		pgp_int(&p, q->after_seq);
		pgp_text(&p, q->state);
		pgp_text(&p, q->handler);
		pgp_text(&p, q->process_type);
		pgp_text(&p, q->resource_id);
		pgp_int(&p, q->since_ms);
		pgp_int(&p, limit + 1);
		r = pg_q(st, c, "SELECT id, seq FROM events WHERE seq > $1 AND state = $2 "
				"AND ($3::text IS NULL OR handler = $3) AND ($4::text IS NULL OR process_type = $4) "
				"AND ($5::text IS NULL OR resource_id = $5) AND received_at >= $6 ORDER BY seq LIMIT $7 "
				"FOR UPDATE", &p);
		if (!r)
			out = pg_fail(c);
	}
	for (int i = 0; r && out == STORE_OK && i < PQntuples(r); i++) {
		if (n == limit) {
			*next_cursor = last;
			break;
		}
		if (!dry_run && (out = replay_in(st, c, pg_str(r, i, 0), now)) != STORE_OK)
			break;
		last = pg_int(r, i, 1);
		n++;
	}
	if (out == STORE_OK && !dry_run)
		out = pg_commit(st, c);
	pg_put(st, c);   /* a dry run, or a failure: rolled back */
	if (out == STORE_OK) {
		for (int i = 0; i < n; i++)
			json_array_append_new(ids, json_string(pg_str(r, i, 0)));
		if (!dry_run)
			atomic_fetch_add(&st->unfinished, n);
	} else {
		*next_cursor = 0;
	}
	PQclear(r);
	return out;
}

int pg_prune(struct store *b, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	PGresult *r = NULL;
	int n = -1;

	if (!c)
		return -1;
	if (pg_begin(st, c, true) != STORE_OK)
		goto out;
	/* one daemon prunes at a time; the others find nothing to do */
	pgp_int(&p, pg_key('j', "prune", NULL));
	r = pg_q(st, c, "SELECT pg_try_advisory_xact_lock($1)", &p);
	if (!r)
		goto out;
	if (strcmp(pg_str(r, 0, 0), "t") != 0) {
		n = 0;
		goto out;
	}
	PQclear(r);
	p.n = 0;
	pgp_int(&p, completed_before_ms);
	pgp_int(&p, failed_before_ms);
	pgp_int(&p, archived_only);
	r = pg_q(st, c, "WITH gone AS (DELETE FROM events WHERE ((state='completed' AND finished_at < $1) OR "
			"(state='failed' AND finished_at < $2)) AND ($3 = 0 OR archived_at IS NOT NULL) RETURNING id), "
			"steps AS (DELETE FROM history WHERE event_id IN (SELECT id FROM gone)) SELECT count(*) FROM gone", &p);
	if (!r)
		goto out;
	n = (int)pg_int(r, 0, 0);
	if (pg_commit(st, c) != STORE_OK)
		n = -1;
out:
	PQclear(r);
	pg_put(st, c);   /* rolls back what was not committed */
	return n;
}

int pg_stats(struct store *b, struct store_stats *out)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	PGresult *r;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -1;
	r = pg_q(st, c, "SELECT state, count(*) FROM events GROUP BY state", NULL);
	for (int i = 0; r && i < PQntuples(r); i++) {
		store_stats_add(out, pg_str(r, i, 0), pg_int(r, i, 1));
	}
	PQclear(r);
	r = pg_q(st, c, "SELECT least((SELECT min(received_at) FROM events WHERE state = 'queued'), "
			"(SELECT min(received_at) FROM events WHERE state = 'retrying'))", NULL);
	if (r)
		out->oldest_runnable_ms = pg_int(r, 0, 0);
	PQclear(r);
	r = pg_q(st, c, "SELECT coalesce(sum(pg_total_relation_size(c)), 0) FROM "
			"unnest(ARRAY['events','history','objects','batches','sweeps']::regclass[]) AS c", NULL);
	if (r)
		out->size_bytes = pg_int(r, 0, 0);
	PQclear(r);
	atomic_store(&st->unfinished, out->queued + out->running + out->retrying);
	pg_put(st, c);
	return 0;
}

int64_t pg_unfinished(struct store *b)
{
	return atomic_load(&pg_of(b)->unfinished);
}

bool pg_writable(struct store *b)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	PGresult *r;
	bool ok;

	if (!c)
		return false;
	/* a server in recovery (a standby) takes no writes */
	r = pg_q(st, c, "SELECT NOT pg_is_in_recovery()", NULL);
	ok = r && strcmp(pg_str(r, 0, 0), "t") == 0;
	PQclear(r);
	pg_put(st, c);
	return ok;
}

enum store_result pg_sweep_get(struct store *b, const char *name, struct store_sweep *out)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	enum store_result res = STORE_ERROR;
	PGresult *r;

	memset(out, 0, sizeof(*out));
	str_copy(out->name, name, sizeof(out->name));
	if (!c)
		return STORE_ERROR;
	pgp_text(&p, name);
	r = pg_q(st, c, "SELECT started_at, finished_at, found, enqueued, duplicates, runs, errors, error, owner "
			"FROM sweeps WHERE name=$1", &p);
	pg_put(st, c);
	if (r && PQntuples(r) == 0)
		res = STORE_NOTFOUND;
	if (r && PQntuples(r) == 1) {
		out->started_ms = pg_int(r, 0, 0);
		out->finished_ms = pg_int(r, 0, 1);
		out->found = pg_int(r, 0, 2);
		out->enqueued = pg_int(r, 0, 3);
		out->duplicates = pg_int(r, 0, 4);
		out->runs = pg_int(r, 0, 5);
		out->errors = pg_int(r, 0, 6);
		str_copy(out->error, pg_str(r, 0, 7), sizeof(out->error));
		str_copy(out->owner, pg_str(r, 0, 8), sizeof(out->owner));
		res = STORE_OK;
	}
	PQclear(r);
	return res;
}

enum store_result pg_sweep_put(struct store *b, const struct store_sweep *w)
{
	struct pgp p = { .n = 0 };

	pgp_text(&p, w->name);
	pgp_int(&p, w->started_ms);
	pgp_int(&p, w->finished_ms);
	pgp_int(&p, w->found);
	pgp_int(&p, w->enqueued);
	pgp_int(&p, w->duplicates);
	pgp_int(&p, w->runs);
	pgp_int(&p, w->errors);
	pgp_text(&p, w->error);
	pgp_text(&p, w->owner);
	return pg_run(pg_of(b), "INSERT INTO sweeps(name, started_at, finished_at, found, enqueued, duplicates, runs, errors, "
			 "error, owner) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (name) DO UPDATE SET "
			 "started_at=EXCLUDED.started_at, finished_at=EXCLUDED.finished_at, found=EXCLUDED.found, "
			 "enqueued=EXCLUDED.enqueued, duplicates=EXCLUDED.duplicates, runs=EXCLUDED.runs, "
			 "errors=EXCLUDED.errors, error=EXCLUDED.error, owner=EXCLUDED.owner", &p);
}
