/* When each sweep last ran: one row a sweep, written durably at the start
 * and the end of a run, so that a restart neither runs a sweep twice in a
 * row nor forgets a run that was cut short. */
#include "sqlite_int.h"

#include <string.h>

#include "lqs-hookd/util.h"

enum store_result sq_sweep_get(struct store *b, const char *name, struct store_sweep *out)
{
	struct sq *st = sq_of(b);
	enum store_result r = STORE_ERROR;
	sqlite3_stmt *s;

	memset(out, 0, sizeof(*out));
	str_copy(out->name, name, sizeof(out->name));
	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT started_at, finished_at, found, enqueued, duplicates, runs, errors, error, owner "
		     "FROM sweeps WHERE name=?");
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const char *e = (const char *)sqlite3_column_text(s, 7);
			const char *o = (const char *)sqlite3_column_text(s, 8);
			out->started_ms = sqlite3_column_int64(s, 0);
			out->finished_ms = sqlite3_column_int64(s, 1);
			out->found = sqlite3_column_int64(s, 2);
			out->enqueued = sqlite3_column_int64(s, 3);
			out->duplicates = sqlite3_column_int64(s, 4);
			out->runs = sqlite3_column_int64(s, 5);
			out->errors = sqlite3_column_int64(s, 6);
			str_copy(out->error, e ? e : "", sizeof(out->error));
			str_copy(out->owner, o ? o : "", sizeof(out->owner));
			r = STORE_OK;
		} else if (rc == SQLITE_DONE) {
			r = STORE_NOTFOUND;
		} else {
			sq_log_db_error(st, "sweep record");
		}
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

enum store_result sq_sweep_put(struct store *b, const struct store_sweep *w)
{
	struct sq *st = sq_of(b);
	enum store_result r = STORE_ERROR;
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "INSERT OR REPLACE INTO sweeps(name, started_at, finished_at, found, enqueued, duplicates, "
		     "runs, errors, error, owner) VALUES (?,?,?,?,?,?,?,?,?,?)");
	if (s) {
		sqlite3_bind_text(s, 1, w->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, w->started_ms);
		sqlite3_bind_int64(s, 3, w->finished_ms);
		sqlite3_bind_int64(s, 4, w->found);
		sqlite3_bind_int64(s, 5, w->enqueued);
		sqlite3_bind_int64(s, 6, w->duplicates);
		sqlite3_bind_int64(s, 7, w->runs);
		sqlite3_bind_int64(s, 8, w->errors);
		sq_bind_text(s, 9, w->error);
		sq_bind_text(s, 10, w->owner);
		rc = sqlite3_step(s);
		sq_release(st, s);
		if (rc != SQLITE_DONE)
			sq_log_db_error(st, "sweep record");
	}
	pthread_mutex_unlock(&st->lock);
	if (rc == SQLITE_DONE)
		r = sq_durable(b) == 0 ? STORE_OK : STORE_ERROR;
	else
		r = sq_map_rc(rc);
	return r;
}
