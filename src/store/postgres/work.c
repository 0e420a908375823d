/* Work's side of the PostgreSQL store: claims (FOR UPDATE SKIP LOCKED, one
 * running event per resource in the whole cluster), leases on the server's
 * clock, outcomes, requeues and recovery of events whose daemon died.
 *
 * The workers' bookkeeping commits without waiting for the disk, as the
 * SQLite store's does: a crash of the server may lose the last of them,
 * which only makes those events run again. */
#include "pg_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* Candidates looked at per claim: more than one, so that a resource
 * another daemon is about to claim does not stall this one. */
#define PG_CLAIM_CANDIDATES "8"

struct cand {
	char id[37];
	char resource_id[1024];
	int64_t seq;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Take the event if its resource is free in the whole cluster: a
 * transaction lock on the resource first, then a fresh look (a statement
 * of its own, so it sees whatever the lock's last holder committed). */
static int take(struct pgs *st, struct pgc *c, const struct cand *k, struct store_claim *cl)
{
	struct pgp p = { .n = 0 };
	PGresult *r;
	bool free_now;

	pgp_int(&p, pg_key('r', k->resource_id, NULL));
	r = pg_q(st, c, "SELECT pg_try_advisory_xact_lock($1)", &p);
	if (!r)
		return -1;
	free_now = strcmp(pg_str(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!free_now)
		return 0;
	p.n = 0;
	pgp_text(&p, k->resource_id);
	r = pg_q(st, c, "SELECT 1 FROM events WHERE resource_id=$1 AND state='running' LIMIT 1", &p);
	if (!r)
		return -1;
	free_now = PQntuples(r) == 0;
	PQclear(r);
	if (!free_now)
		return 0;
	cl->claimed_ms = now_ms();
	p.n = 0;
	pgp_int(&p, cl->claimed_ms);
	pgp_text(&p, st->base.owner);
	pgp_int(&p, st->base.lease_ms);
	pgp_text(&p, k->id);
	r = pg_q(st, c, "UPDATE events SET state='running', attempts=attempts+1, updated_at=$1, progress=NULL, "
			"owner=$2, lease_until=" PG_NOW_MS " + $3 WHERE id=$4 AND state IN ('queued','retrying') "
			"RETURNING resource_id, handler, attempts, body, flags", &p);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	{
		json_error_t jerr;
		str_copy(cl->id, k->id, sizeof(cl->id));
		str_copy(cl->resource_id, pg_str(r, 0, 0), sizeof(cl->resource_id));
		str_copy(cl->handler, pg_str(r, 0, 1), sizeof(cl->handler));
		cl->attempt = (int)pg_int(r, 0, 2);
		cl->event = json_loads(pg_str(r, 0, 3), 0, &jerr);
		cl->flags = (unsigned)pg_int(r, 0, 4);
	}
	PQclear(r);
	{
		json_t *d = json_pack("{s:i, s:s}", "attempt", cl->attempt, "owner", st->base.owner);
		struct store_hist h = { .step = "started", .started_ms = cl->claimed_ms, .ended_ms = cl->claimed_ms,
					.detail = d };
		int rc = pg_hist_insert(st, c, cl->id, &h);
		json_decref(d);
		if (rc != 0) {
			json_decref(cl->event);
			cl->event = NULL;
			return -1;
		}
	}
	return 1;
}

int pg_claim_in(struct pgs *st, struct pgc *c, int64_t now, struct store_claim *cl, int64_t *next_due_ms)
{
	static const char *const queries[2] = {
		"SELECT id, resource_id, seq FROM events e WHERE state = 'queued' AND NOT EXISTS (SELECT 1 FROM "
		"events r WHERE r.resource_id = e.resource_id AND r.state = 'running') ORDER BY seq "
		"LIMIT " PG_CLAIM_CANDIDATES " FOR UPDATE SKIP LOCKED",
		"SELECT id, resource_id, seq FROM events e WHERE state = 'retrying' AND next_run_at <= $1 AND NOT EXISTS "
		"(SELECT 1 FROM events r WHERE r.resource_id = e.resource_id AND r.state = 'running') "
		"ORDER BY next_run_at LIMIT " PG_CLAIM_CANDIDATES " FOR UPDATE SKIP LOCKED",
	};
	struct cand cands[16];
	int nc = 0, found = 0;
	struct pgp p = { .n = 0 };

	memset(cl, 0, sizeof(*cl));
	*next_due_ms = 0;
	pgp_int(&p, now);
	for (int q = 0; q < 2; q++) {
		PGresult *r = pg_q(st, c, queries[q], q ? &p : NULL);
		if (!r)
			return -1;
		for (int i = 0; i < PQntuples(r) && nc < 16; i++, nc++) {
			str_copy(cands[nc].id, pg_str(r, i, 0), sizeof(cands[nc].id));
			str_copy(cands[nc].resource_id, pg_str(r, i, 1), sizeof(cands[nc].resource_id));
			cands[nc].seq = pg_int(r, i, 2);
		}
		PQclear(r);
	}
	/* oldest first, as the SQLite store takes them */
	qsort(cands, (size_t)nc, sizeof(cands[0]), cmp_cand);
	for (int i = 0; i < nc && found == 0; i++)
		found = take(st, c, &cands[i], cl);
	if (found == 0) {
		PGresult *r = pg_q(st, c, "SELECT min(next_run_at) FROM events WHERE state = 'retrying' AND next_run_at > $1",
				   &p);
		if (!r)
			return -1;
		*next_due_ms = pg_int(r, 0, 0);
		PQclear(r);
	}
	return found;
}

int pg_claim(struct store *b, int64_t now, struct store_claim *cl, int64_t *next_due_ms)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	int found = -1;

	memset(cl, 0, sizeof(*cl));
	*next_due_ms = 0;
	if (!c)
		return -1;
	if (pg_begin(st, c, false) == STORE_OK) {
		found = pg_claim_in(st, c, now, cl, next_due_ms);
		if (found >= 0 && pg_commit(st, c) != STORE_OK) {
			store_claim_release(cl);
			found = -1;
		}
	}
	pg_put(st, c);   /* rolls back what was not committed */
	return found;
}

int pg_renew(struct store *b)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	PGresult *r;
	int n = -1;

	if (!c)
		return -1;
	pgp_int(&p, st->base.lease_ms);
	pgp_text(&p, st->base.owner);
	r = pg_q(st, c, "UPDATE events SET lease_until = " PG_NOW_MS " + $1 WHERE state = 'running' AND owner = $2", &p);
	if (r)
		n = (int)pg_changed(r);
	PQclear(r);
	pg_put(st, c);
	return n;
}

/* Events this host's earlier runs held (a restart): their leases are void
 * at once when that process is gone, instead of after the lease. */
static void void_own_host(struct pgs *st, struct pgc *c)
{
	char host[64] = "", like[80];
	struct pgp p = { .n = 0 };
	PGresult *r;

	str_copy(host, st->base.owner, sizeof(host));
	host[strcspn(host, ":")] = '\0';
	snprintf(like, sizeof(like), "%s:%%", host);
	pgp_text(&p, like);
	r = pg_q(st, c, "SELECT DISTINCT owner FROM events WHERE state = 'running' AND owner LIKE $1", &p);
	for (int i = 0; r && i < PQntuples(r); i++) {
		const char *owner = pg_str(r, i, 0), *pid_at = strchr(owner, ':');
		int64_t pid = 0;
		char pid_text[24] = "";
		if (!pid_at || strcmp(owner, st->base.owner) == 0)
			continue;
		str_copy(pid_text, pid_at + 1, sizeof(pid_text));
		pid_text[strcspn(pid_text, ":")] = '\0';
		if (parse_i64(pid_text, &pid) != 0 || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
			struct pgp q = { .n = 0 };
			pgp_text(&q, owner);
			pg_do(st, c, "UPDATE events SET lease_until = 0 WHERE state = 'running' AND owner = $1", &q);
		}
	}
	PQclear(r);
}

int pg_recover(struct store *b)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	int64_t now = now_ms();
	PGresult *r = NULL;
	int n = -1;

	if (!c)
		return -1;
	if (!atomic_exchange(&st->recovered_once, true))
		void_own_host(st, c);
	if (pg_begin(st, c, false) != STORE_OK)
		goto out;
	/* running, but its owner stopped renewing: crashed, or cut off; one
	 * daemon takes each (the others skip the rows it holds) */
	{
		struct pgp p = { .n = 0 };
		pgp_int(&p, now);
		r = pg_q(st, c, "WITH gone AS (SELECT id, updated_at, attempts FROM events WHERE state = 'running' AND "
				"coalesce(lease_until, 0) < " PG_NOW_MS " FOR UPDATE SKIP LOCKED) "
				"UPDATE events e SET state='queued', next_run_at=0, updated_at=$1, owner=NULL, lease_until=NULL "
				"FROM gone WHERE e.id = gone.id RETURNING e.id, gone.updated_at, gone.attempts", &p);
	}
	if (!r)
		goto out;
	n = 0;
	for (int i = 0; i < PQntuples(r); i++, n++) {
		json_t *d = json_pack("{s:i}", "attempt", (int)pg_int(r, i, 2));
		struct store_hist a = { .step = "attempt", .started_ms = pg_int(r, i, 1), .ended_ms = now, .detail = d,
					.error = "interrupted: the daemon stopped while the attempt ran" };
		struct store_hist h = { .step = "recovered", .started_ms = now, .ended_ms = now,
					.error = "attempt interrupted (its daemon stopped, or stopped renewing its lease)" };
		int rc = pg_hist_insert(st, c, pg_str(r, i, 0), &a) | pg_hist_insert(st, c, pg_str(r, i, 0), &h);
		json_decref(d);
		if (rc) {
			n = -1;
			break;
		}
	}
	if (n >= 0 && pg_commit(st, c) != STORE_OK)
		n = -1;
out:
	PQclear(r);
	pg_put(st, c);   /* rolls back what was not committed */
	return n;
}

enum store_result pg_finish(struct store *b, const struct store_outcome *o, struct store_claim *next, int *claimed,
			    int64_t *next_due_ms)
{
	struct pgs *st = pg_of(b);
	bool final = strcmp(o->state, ST_COMPLETED) == 0 || strcmp(o->state, ST_FAILED) == 0;
	char *res = o->result ? json_dumps(o->result, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	struct pgc *c = pg_get(st);
	enum store_result out = STORE_ERROR;
	int64_t now = now_ms(), due = 0;
	int got = 0;
	bool lost = false;
	PGresult *r = NULL;

	if (claimed)
		*claimed = 0;
	if (next_due_ms)
		*next_due_ms = 0;
	if (!c || (out = pg_begin(st, c, false)) != STORE_OK)
		goto out;
	for (size_t i = 0; i < o->n_hist; i++)
		if (pg_hist_insert(st, c, o->id, &o->hist[i]) != 0) {
			out = pg_fail(c);
			goto out;
		}
	{
		struct pgp p = { .n = 0 };
		pgp_text(&p, o->state);
		pgp_text(&p, res);
		pgp_text(&p, o->error);
		pgp_int(&p, final ? 0 : o->next_run_ms);
		pgp_int(&p, now);
		if (final)
			pgp_int(&p, now);
		else
			pgp_null(&p);
		pgp_text(&p, o->id);
		pgp_text(&p, st->base.owner);
		/* only while this owner holds it: after a lost lease the event is
		 * someone else's, and this outcome is not written */
		r = pg_q(st, c, "UPDATE events SET state=$1, result=$2, error=$3, next_run_at=$4, updated_at=$5, "
				"finished_at=$6, lease_until=NULL WHERE id=$7 AND state='running' AND owner=$8", &p);
	}
	if (!r) {
		out = pg_fail(c);
		goto out;
	}
	lost = pg_changed(r) == 0;
	PQclear(r);
	if (next) {
		got = pg_claim_in(st, c, now, next, &due);
		if (got < 0) {
			out = pg_fail(c);
			goto out;
		}
	}
	out = pg_commit(st, c);
out:
	if (out != STORE_OK) {   /* pg_put rolls the transaction back */
		if (got == 1)
			store_claim_release(next);
		got = 0;
	} else {
		if (final && !lost)
			atomic_fetch_sub(&st->unfinished, 1);
		if (lost)
			out = STORE_CONFLICT;
	}
	pg_put(st, c);
	free(res);
	if (claimed)
		*claimed = got;
	if (next_due_ms)
		*next_due_ms = due;
	return out;
}

enum store_result pg_requeue(struct store *b, const char *id, int64_t claimed_ms, const char *why)
{
	struct pgs *st = pg_of(b);
	int64_t now = now_ms();
	struct store_hist a = { .step = "attempt", .started_ms = claimed_ms, .ended_ms = now, .error = why };
	struct store_hist h = { .step = "requeued", .started_ms = now, .ended_ms = now, .error = why };
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	enum store_result out = STORE_ERROR;

	if (!c)
		return STORE_ERROR;
	pgp_int(&p, now);
	pgp_text(&p, id);
	pgp_text(&p, st->base.owner);
	if (pg_begin(st, c, false) == STORE_OK && pg_hist_insert(st, c, id, &a) == 0 &&
	    pg_do(st, c, "UPDATE events SET state='queued', next_run_at=0, updated_at=$1, owner=NULL, lease_until=NULL, "
			 "attempts=greatest(attempts-1,0) WHERE id=$2 AND state='running' AND owner=$3", &p) == STORE_OK &&
	    pg_hist_insert(st, c, id, &h) == 0)
		out = pg_commit(st, c);
	pg_put(st, c);   /* rolls back what was not committed */
	return out;
}

enum store_result pg_history_add(struct store *b, const char *id, const struct store_hist *h)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	int rc;

	if (!c)
		return STORE_ERROR;
	rc = pg_hist_insert(st, c, id, h);
	pg_put(st, c);
	return rc == 0 ? STORE_OK : STORE_ERROR;
}

enum store_result pg_mark(struct store *b, const char *id, unsigned flag)
{
	struct pgp p = { .n = 0 };

	pgp_int(&p, (int64_t)flag);
	pgp_text(&p, id);
	return pg_run(pg_of(b), "UPDATE events SET flags = flags | $1::integer WHERE id = $2", &p);
}

enum store_result pg_progress(struct store *b, const char *id, json_t *progress)
{
	char *text = progress ? json_dumps(progress, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	struct pgp p = { .n = 0 };
	enum store_result r;

	pgp_text(&p, text);
	pgp_text(&p, id);
	r = pg_run(pg_of(b), "UPDATE events SET progress = $1 WHERE id = $2 AND state = 'running'", &p);
	free(text);
	return r;
}
