/* Work's side of the store: claims with an owner and a lease, outcomes
 * (several workers' outcomes share one commit), requeues, recovery of
 * events whose lease expired, progress, and the advisory locks. */
#include "sqlite_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

int sq_recover(struct store *b)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	int n = 0;
	int64_t now = now_ms();

	pthread_mutex_lock(&st->lock);
	sq_exec(st, SQL_BEGIN);
	/* running, but its owner stopped renewing: crashed, or cut off */
	s = sq_prep(st, "SELECT id, updated_at, attempts FROM events WHERE state = 'running' "
		     "AND coalesce(lease_until, 0) < ?");
	if (s)
		sqlite3_bind_int64(s, 1, now);
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		json_t *d = json_pack("{s:i}", "attempt", sqlite3_column_int(s, 2));
		struct store_hist a = { .step = "attempt", .started_ms = sqlite3_column_int64(s, 1), .ended_ms = now,
					.detail = d, .error = "interrupted: the daemon stopped while the attempt ran" };
		struct store_hist h = { .step = "recovered", .started_ms = now, .ended_ms = now,
					.error = "attempt interrupted (its daemon stopped, or stopped renewing its lease)" };
		sq_hist_insert(st, id, &a);
		sq_hist_insert(st, id, &h);
		json_decref(d);
		n++;
	}
	sq_release(st, s);
	s = sq_prep(st, "UPDATE events SET state='queued', next_run_at=0, updated_at=?, owner=NULL, lease_until=NULL "
		     "WHERE state='running' AND coalesce(lease_until, 0) < ?");
	if (s) {
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_int64(s, 2, now);
		sqlite3_step(s);
		sq_release(st, s);
	}
	if (sq_exec(st, SQL_COMMIT) != SQLITE_OK) {
		sq_exec(st, SQL_ROLLBACK);
		n = -1;
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

/* Claim under st->lock (the caller holds it). */
int sq_claim_locked(struct sq *st, int64_t now, struct store_claim *c, int64_t *next_due_ms)
{
	sqlite3_stmt *s;
	int found = 0;

	memset(c, 0, sizeof(*c));
	*next_due_ms = 0;
	/* Oldest first; never two running events for one resource. Each query
	 * walks an index in the order wanted, so a claim stays cheap however
	 * long the backlog: new events by arrival, due retries by due time. */
	static const char *const queries[2] = {
		"SELECT id, resource_id, handler, attempts, body, seq, flags FROM events e "
		"WHERE state = 'queued' AND NOT EXISTS (SELECT 1 FROM events r "
		"WHERE r.resource_id = e.resource_id AND r.state = 'running') ORDER BY seq LIMIT 1",
		"SELECT id, resource_id, handler, attempts, body, seq, flags FROM events e "
		"WHERE state = 'retrying' AND next_run_at <= ? AND NOT EXISTS (SELECT 1 FROM events r "
		"WHERE r.resource_id = e.resource_id AND r.state = 'running') ORDER BY next_run_at LIMIT 1",
	};
	int64_t best_seq = -1;
	for (int q = 0; q < 2; q++) {
		s = sq_prep(st, queries[q]);
		if (!s)
			return -1;
		if (q == 1)
			sqlite3_bind_int64(s, 1, now);
		if (sqlite3_step(s) == SQLITE_ROW && (best_seq < 0 || sqlite3_column_int64(s, 5) < best_seq)) {
			const char *h = (const char *)sqlite3_column_text(s, 2);
			json_error_t jerr;
			if (found)
				json_decref(c->event);
			best_seq = sqlite3_column_int64(s, 5);
			str_copy(c->id, (const char *)sqlite3_column_text(s, 0), sizeof(c->id));
			str_copy(c->resource_id, (const char *)sqlite3_column_text(s, 1), sizeof(c->resource_id));
			str_copy(c->handler, h ? h : "", sizeof(c->handler));
			c->attempt = sqlite3_column_int(s, 3) + 1;
			c->flags = (unsigned)sqlite3_column_int(s, 6);
			c->event = json_loads((const char *)sqlite3_column_text(s, 4), 0, &jerr);
			found = 1;
		}
		sq_release(st, s);
	}
	if (found) {
		/* One statement, no fsync: the attempt's history row is written
		 * with its outcome. A claim lost to a crash only means the event
		 * runs again; a "running" row left by one is found by recovery. */
		int rc = SQLITE_ERROR;
		c->claimed_ms = now_ms();
		s = sq_prep(st, "UPDATE events SET state='running', attempts=attempts+1, updated_at=?, progress=NULL, "
			     "owner=?, lease_until=? WHERE id=?");
		if (s) {
			sqlite3_bind_int64(s, 1, c->claimed_ms);
			sqlite3_bind_text(s, 2, st->base.owner, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, c->claimed_ms + st->base.lease_ms);
			sqlite3_bind_text(s, 4, c->id, -1, SQLITE_STATIC);
			rc = sqlite3_step(s);
			sq_release(st, s);
		}
		if (rc == SQLITE_DONE) {
			/* the attempt's start, for the change feed (a stream shows it
			 * at once; the "attempt" row comes with the outcome) */
			json_t *d = json_pack("{s:i, s:s}", "attempt", c->attempt, "owner", st->base.owner);
			struct store_hist h = { .step = "started", .started_ms = c->claimed_ms,
						.ended_ms = c->claimed_ms, .detail = d };
			/* informative: a claim made stands without it */
			sq_hist_insert(st, c->id, &h);
			json_decref(d);
		}
		if (rc != SQLITE_DONE) {
			json_decref(c->event);
			c->event = NULL;
			found = -1;
		}
	} else {
		s = sq_prep(st, "SELECT min(next_run_at) FROM events WHERE state = 'retrying' AND next_run_at > ?");
		if (s) {
			sqlite3_bind_int64(s, 1, now);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
				*next_due_ms = sqlite3_column_int64(s, 0);
			sq_release(st, s);
		}
	}
	return found;
}

int sq_claim(struct store *b, int64_t now, struct store_claim *c, int64_t *next_due_ms)
{
	struct sq *st = sq_of(b);
	int found;

	/* no transaction: a claim that finds nothing writes nothing, and a
	 * "started" row lost to a crash only leaves recovery's row to say it */
	pthread_mutex_lock(&st->lock);
	found = sq_claim_locked(st, now, c, next_due_ms);
	pthread_mutex_unlock(&st->lock);
	return found;
}

int sq_renew(struct store *b)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	int n = -1;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "UPDATE events SET lease_until = ? WHERE state = 'running' AND owner = ?");
	if (s) {
		sqlite3_bind_int64(s, 1, now_ms() + st->base.lease_ms);
		sqlite3_bind_text(s, 2, st->base.owner, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			n = sqlite3_changes(st->db);
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

/* Write one outcome inside the leader's transaction. Returns the SQLite
 * code and adds to *finished the events it took out of the queue. */
static int finish_one(struct sq *st, struct finish_req *r, int64_t now, int64_t *finished)
{
	const struct store_outcome *o = r->o;
	bool final = strcmp(o->state, ST_COMPLETED) == 0 || strcmp(o->state, ST_FAILED) == 0;
	sqlite3_stmt *s;
	int rc;

	for (size_t i = 0; i < o->n_hist; i++)
		if ((rc = sq_hist_insert(st, o->id, &o->hist[i])) != SQLITE_OK)
			return rc;
	/* only while this owner holds it: after a lost lease the event is
	 * someone else's, and this outcome is not written */
	s = sq_prep(st, "UPDATE events SET state=?, result=?, error=?, next_run_at=?, updated_at=?, "
		     "finished_at=?, lease_until=NULL WHERE id=? AND state='running' AND owner IS ?");
	if (!s)
		return SQLITE_ERROR;
	sqlite3_bind_text(s, 1, o->state, -1, SQLITE_STATIC);
	sq_bind_text(s, 2, r->result);
	sq_bind_text(s, 3, o->error);
	sqlite3_bind_int64(s, 4, final ? 0 : o->next_run_ms);
	sqlite3_bind_int64(s, 5, now);
	if (final)
		sqlite3_bind_int64(s, 6, now);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_text(s, 7, o->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, st->base.owner, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sq_release(st, s);
	if (rc != SQLITE_DONE)
		return rc;
	if (sqlite3_changes(st->db) == 0)
		r->lost = true;
	else if (final)
		(*finished)++;
	return SQLITE_OK;
}

/* Outcomes share commits: the first worker to arrive becomes the leader and
 * writes every outcome queued by then in one transaction, while the others
 * wait for theirs. A commit costs the same pages and locks for one outcome
 * or twenty, so a busy pool pays for far fewer of them. Losing the last of
 * these commits to a power cut only makes those events run again. */
enum store_result sq_finish(struct store *b, const struct store_outcome *o, struct store_claim *next,
			    int *claimed, int64_t *next_due_ms)
{
	struct sq *st = sq_of(b);
	char *res = o->result ? json_dumps(o->result, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	struct finish_req me = { .o = o, .result = res, .claim = next };

	pthread_mutex_lock(&st->fq_mu);
	me.next = st->fq_head;
	st->fq_head = &me;
	while (!me.done) {
		if (st->fq_leader) {
			pthread_cond_wait(&st->fq_cv, &st->fq_mu);
			continue;
		}
		struct finish_req *batch = st->fq_head, *r;
		int64_t now = now_ms(), finished = 0;
		int rc;

		st->fq_head = NULL;
		st->fq_leader = true;
		pthread_mutex_unlock(&st->fq_mu);

		pthread_mutex_lock(&st->lock);
		rc = sq_exec(st, SQL_BEGIN);
		for (r = batch; r && rc == SQLITE_OK; r = r->next)
			rc = finish_one(st, r, now, &finished);
		/* each worker's next event, claimed in the same commit */
		for (r = batch; r && rc == SQLITE_OK; r = r->next)
			if (r->claim)
				r->claimed = sq_claim_locked(st, now, r->claim, &r->next_due_ms);
		if (rc == SQLITE_OK)
			rc = sq_exec(st, SQL_COMMIT);
		if (rc != SQLITE_OK) {
			sq_exec(st, SQL_ROLLBACK);
			finished = 0;
			for (r = batch; r; r = r->next)
				if (r->claim && r->claimed == 1) {
					store_claim_release(r->claim);
					r->claimed = 0;
				}
		}
		atomic_fetch_sub(&st->unfinished, finished);
		pthread_mutex_unlock(&st->lock);

		pthread_mutex_lock(&st->fq_mu);
		for (r = batch; r; r = r->next) {
			r->out = rc != SQLITE_OK ? sq_map_rc(rc) : r->lost ? STORE_CONFLICT : STORE_OK;
			r->done = true;
		}
		st->fq_leader = false;
		pthread_cond_broadcast(&st->fq_cv);
	}
	pthread_mutex_unlock(&st->fq_mu);
	free(res);
	if (claimed)
		*claimed = me.claimed;
	if (next_due_ms)
		*next_due_ms = me.next_due_ms;
	return me.out;
}

enum store_result sq_requeue(struct store *b, const char *id, int64_t claimed_ms, const char *why)
{
	struct sq *st = sq_of(b);
	int64_t now = now_ms();
	struct store_hist a = { .step = "attempt", .started_ms = claimed_ms, .ended_ms = now, .error = why };
	struct store_hist h = { .step = "requeued", .started_ms = now, .ended_ms = now, .error = why };
	sqlite3_stmt *s;
	enum store_result out = STORE_ERROR;

	pthread_mutex_lock(&st->lock);
	sq_exec(st, SQL_BEGIN);
	sq_hist_insert(st, id, &a);
	/* An interrupted attempt does not count against max_attempts. */
	s = sq_prep(st, "UPDATE events SET state='queued', next_run_at=0, updated_at=?, owner=NULL, lease_until=NULL, "
		     "attempts=max(attempts-1,0) WHERE id=? AND state='running' AND owner IS ?");
	if (s) {
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, st->base.owner, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			out = STORE_OK;
		sq_release(st, s);
	}
	sq_hist_insert(st, id, &h);
	if (sq_exec(st, SQL_COMMIT) != SQLITE_OK) {
		sq_exec(st, SQL_ROLLBACK);
		out = STORE_ERROR;
	}
	pthread_mutex_unlock(&st->lock);
	return out;
}

enum store_result sq_history_add(struct store *b, const char *id, const struct store_hist *h)
{
	struct sq *st = sq_of(b);
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = sq_hist_insert(st, id, h);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_OK ? STORE_OK : sq_map_rc(rc);
}

enum store_result sq_mark(struct store *b, const char *id, unsigned flag)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "UPDATE events SET flags = flags | ? WHERE id = ?");
	if (s) {
		sqlite3_bind_int(s, 1, (int)flag);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

enum store_result sq_progress(struct store *b, const char *id, json_t *progress)
{
	struct sq *st = sq_of(b);
	char *text = progress ? json_dumps(progress, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "UPDATE events SET progress = ? WHERE id = ? AND state = 'running'");
	if (s) {
		sq_bind_text(s, 1, text);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	free(text);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

/* The store is this daemon's alone (its file lock), so its advisory locks
 * are keys held in this process. */
void sq_lock(struct store *b, const char *key)
{
	keylocks_take(&sq_of(b)->keys, key, true);
}

bool sq_trylock(struct store *b, const char *key)
{
	return keylocks_take(&sq_of(b)->keys, key, false);
}

void sq_unlock(struct store *b, const char *key)
{
	keylocks_release(&sq_of(b)->keys, key);
}
