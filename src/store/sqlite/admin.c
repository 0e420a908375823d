/* Administration: replays (one, or every match), pruning, the figures for
 * metrics and readiness. */
#include "sqlite_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* A replay starts the event from scratch and says so to its handler. */
static const char SQL_REPLAY_ONE[] =
	"UPDATE events SET state='queued', attempts=0, next_run_at=0, result=NULL, error=NULL, "
	"finished_at=NULL, progress=NULL, flags=flags|1, owner=NULL, lease_until=NULL, archived_at=NULL, updated_at=? "
	"WHERE id=?";

enum store_result sq_replay(struct store *b, const char *id)
{
	struct sq *st = sq_of(b);
	int64_t now = now_ms();
	struct store_hist h = { .step = "replay", .started_ms = now, .ended_ms = now };
	sqlite3_stmt *s;
	/* a database error is an error, never "not found" */
	enum store_result out = STORE_ERROR;
	const char *state = NULL;

	pthread_mutex_lock(&st->lock);
	if (sq_exec(st, SQL_BEGIN) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return STORE_ERROR;
	}
	s = sq_prep(st, "SELECT state FROM events WHERE id=?");
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			state = (const char *)sqlite3_column_text(s, 0);
			out = (strcmp(state, ST_FAILED) == 0 || strcmp(state, ST_COMPLETED) == 0)
				      ? STORE_OK : STORE_CONFLICT;
		} else if (rc == SQLITE_DONE) {
			out = STORE_NOTFOUND;
		}
		sq_release(st, s);
	}
	if (out == STORE_OK) {
		s = sq_prep(st, SQL_REPLAY_ONE);
		if (!s)
			out = STORE_ERROR;
		if (s) {
			sqlite3_bind_int64(s, 1, now);
			sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE)
				out = STORE_ERROR;
			sq_release(st, s);
		}
		if (out == STORE_OK && sq_hist_insert(st, id, &h) != SQLITE_OK)
			out = STORE_ERROR;
	}
	if (out == STORE_OK && sq_exec(st, SQL_COMMIT) == SQLITE_OK) {
		atomic_fetch_add(&st->unfinished, 1);
	} else {
		sq_exec(st, SQL_ROLLBACK);
		if (out == STORE_OK)
			out = STORE_ERROR;
	}
	pthread_mutex_unlock(&st->lock);
	return out;
}

enum store_result sq_replay_matching(struct store *b, const struct store_query *q, bool dry_run, json_t *ids,
				     int64_t *next_cursor)
{
	struct sq *st = sq_of(b);
	int64_t now = now_ms(), last = 0;
	struct store_hist h = { .step = "replay", .started_ms = now, .ended_ms = now };
	sqlite3_stmt *s;
	enum store_result out = STORE_OK;
	int n = 0, limit = q->limit > 0 ? q->limit : 100, rc;
	char (*found)[37] = calloc((size_t)limit, sizeof(*found));

	*next_cursor = 0;
	if (!found)
		return STORE_ERROR;
	pthread_mutex_lock(&st->lock);
	if (!dry_run && sq_exec(st, SQL_BEGIN) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		free(found);
		return STORE_ERROR;
	}
	s = sq_prep(st, "SELECT id, seq FROM events WHERE seq > ?1 AND state = ?2 "
		     "AND (?3 IS NULL OR handler = ?3) AND (?4 IS NULL OR process_type = ?4) "
		     "AND (?5 IS NULL OR resource_id = ?5) AND received_at >= ?6 ORDER BY seq LIMIT ?7");
	if (!s) {
		out = STORE_ERROR;
	} else {
		sqlite3_bind_int64(s, 1, q->after_seq);
		sq_bind_text(s, 2, q->state);
		sq_bind_text(s, 3, q->handler);
		sq_bind_text(s, 4, q->process_type);
		sq_bind_text(s, 5, q->resource_id);
		sqlite3_bind_int64(s, 6, q->since_ms);
		sqlite3_bind_int(s, 7, limit + 1);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (n == limit) {
				*next_cursor = last;
				break;
			}
			str_copy(found[n], (const char *)sqlite3_column_text(s, 0), sizeof(found[n]));
			last = sqlite3_column_int64(s, 1);
			n++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			out = STORE_ERROR;
		sq_release(st, s);
	}
	for (int i = 0; i < n && out == STORE_OK && !dry_run; i++) {
		s = sq_prep(st, SQL_REPLAY_ONE);
		if (!s) {
			out = STORE_ERROR;
			break;
		}
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_text(s, 2, found[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sq_release(st, s);
		if (rc != SQLITE_DONE || sq_hist_insert(st, found[i], &h) != SQLITE_OK)
			out = sq_map_rc(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
	}
	if (!dry_run) {
		if (out == STORE_OK && sq_exec(st, SQL_COMMIT) == SQLITE_OK) {
			atomic_fetch_add(&st->unfinished, n);
		} else {
			sq_exec(st, SQL_ROLLBACK);
			out = out == STORE_OK ? STORE_ERROR : out;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (out != STORE_OK) {
		sq_log_db_error(st, "replay");
		*next_cursor = 0;
	}
	for (int i = 0; i < n && out == STORE_OK; i++)
		json_array_append_new(ids, json_string(found[i]));
	free(found);
	return out;
}

int sq_prune(struct store *b, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	int n = -1;

	pthread_mutex_lock(&st->lock);
	sq_exec(st, SQL_BEGIN);
	sq_exec(st, "CREATE TEMP TABLE IF NOT EXISTS prune_ids(id TEXT PRIMARY KEY)");
	sq_exec(st, "DELETE FROM prune_ids");
	s = sq_prep(st, "INSERT INTO prune_ids SELECT id FROM events WHERE "
		     "((state='completed' AND finished_at < ?1) OR (state='failed' AND finished_at < ?2)) "
		     "AND (?3 = 0 OR archived_at IS NOT NULL)");
	if (s) {
		sqlite3_bind_int64(s, 1, completed_before_ms);
		sqlite3_bind_int64(s, 2, failed_before_ms);
		sqlite3_bind_int(s, 3, archived_only);
		if (sqlite3_step(s) == SQLITE_DONE)
			n = sqlite3_changes(st->db);
		sq_release(st, s);
	}
	if (n > 0) {
		sq_exec(st, "DELETE FROM history WHERE event_id IN (SELECT id FROM prune_ids)");
		sq_exec(st, "DELETE FROM events WHERE id IN (SELECT id FROM prune_ids)");
	}
	if (sq_exec(st, SQL_COMMIT) != SQLITE_OK) {
		sq_exec(st, SQL_ROLLBACK);
		n = -1;
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

int sq_stats(struct store *b, struct store_stats *out)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	struct stat sb;
	char wal[4096];

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT state, count(*) FROM events GROUP BY state");
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		store_stats_add(out, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1));
	}
	sq_release(st, s);
	s = sq_prep(st, "SELECT min(received_at) FROM (SELECT received_at FROM events WHERE state = 'queued' "
		     "UNION ALL SELECT received_at FROM events WHERE state = 'retrying')");
	if (s && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		out->oldest_runnable_ms = sqlite3_column_int64(s, 0);
	sq_release(st, s);
	pthread_mutex_unlock(&st->lock);
	if (stat(st->path, &sb) == 0)
		out->size_bytes = sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", st->path);
	if (stat(wal, &sb) == 0)
		out->size_bytes += sb.st_size;
	return 0;
}

int64_t sq_unfinished(struct store *b)
{
	struct sq *st = sq_of(b);

	return atomic_load(&st->unfinished);
}

bool sq_writable(struct store *b)
{
	struct sq *st = sq_of(b);
	int rc;

	/* A probe answers quickly: a short busy wait, not the writers' 5 s. */
	pthread_mutex_lock(&st->lock);
	sqlite3_busy_timeout(st->db, 200);
	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		sq_exec(st, SQL_ROLLBACK);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_OK;
}
