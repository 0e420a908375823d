/* What the API shows: one event, its history a page at a time, lists, and
 * the change feed. Rows become structs here; JSON is the API's to render. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* A text column holding JSON (NULL when NULL; text that is not JSON is
 * kept as a string). */
static json_t *col_json(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	json_error_t jerr;
	json_t *v;

	if (!t)
		return NULL;
	v = json_loads(t, JSON_DECODE_ANY, &jerr);
	return v ? v : json_string(t);
}

static char *col_strdup(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);

	return t ? strdup(t) : NULL;
}

static void col_copy(sqlite3_stmt *s, int i, char *out, size_t n)
{
	const char *t = (const char *)sqlite3_column_text(s, i);

	str_copy(out, t ? t : "", n);
}

#define EVENT_COLS "seq, id, received_at, updated_at, body, handler, state, attempts, next_run_at, " \
		   "result, error, finished_at, progress, flags, source"

static void event_row(sqlite3_stmt *s, struct store_event *e)
{
	e->seq = sqlite3_column_int64(s, 0);
	col_copy(s, 1, e->id, sizeof(e->id));
	e->received_ms = sqlite3_column_int64(s, 2);
	e->updated_ms = sqlite3_column_int64(s, 3);
	e->event = col_json(s, 4);
	col_copy(s, 5, e->handler, sizeof(e->handler));
	col_copy(s, 6, e->state, sizeof(e->state));
	e->attempts = sqlite3_column_int(s, 7);
	e->next_run_ms = sqlite3_column_int64(s, 8);
	e->result = col_json(s, 9);
	e->error = col_strdup(s, 10);
	e->finished_ms = sqlite3_column_type(s, 11) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 11);
	e->progress = col_json(s, 12);
	e->flags = (unsigned)sqlite3_column_int(s, 13);
	col_copy(s, 14, e->source, sizeof(e->source));
}

enum store_result sq_get(struct store *b, const char *id, struct store_event *out)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	enum store_result r = STORE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT " EVENT_COLS " FROM events WHERE id=?");
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			event_row(s, out);
			r = STORE_OK;
		} else if (rc == SQLITE_DONE) {
			r = STORE_NOTFOUND;
		} else {
			sq_log_db_error(st, "get");
		}
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* Room for one more row in a growing array; false when out of memory. */
static bool grow(void **rows, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *nr = realloc(*rows, ncap * size);
	if (!nr)
		return false;
	*rows = nr;
	*cap = ncap;
	return true;
}

enum store_result sq_history_page(struct store *b, const char *id, int64_t after_seq, int limit,
				  struct store_step **steps, size_t *n, int64_t *next_cursor)
{
	struct sq *st = sq_of(b);
	struct store_step *rows = NULL;
	size_t cap = 0, k = 0;
	sqlite3_stmt *s;
	enum store_result out = STORE_ERROR;
	int64_t last = 0;
	int rc;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT received_at FROM events WHERE id=?");
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			out = STORE_OK;
			/* "received" is the row itself; no history row is written for
			 * it, which keeps the acknowledging commit small */
			if (after_seq == 0 && grow((void **)&rows, &cap, k, sizeof(*rows))) {
				memset(&rows[k], 0, sizeof(rows[k]));
				str_copy(rows[k].step, "received", sizeof(rows[k].step));
				rows[k].started_ms = rows[k].ended_ms = sqlite3_column_int64(s, 0);
				k++;
			}
		} else if (rc == SQLITE_DONE) {
			out = STORE_NOTFOUND;
		} else {
			sq_log_db_error(st, "history");
		}
		sq_release(st, s);
	}
	s = out == STORE_OK ? sq_prep(st, "SELECT step, started_at, ended_at, detail, error, seq FROM history "
					  "WHERE event_id=? AND seq > ? ORDER BY seq LIMIT ?") : NULL;
	if (out == STORE_OK && !s)
		out = STORE_ERROR;
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, after_seq);
		/* one more than fits, to know whether a next page exists */
		sqlite3_bind_int(s, 3, limit > 0 ? limit + 1 - (int)k : -1);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (limit > 0 && k == (size_t)limit) {
				*next_cursor = last;
				break;
			}
			if (!grow((void **)&rows, &cap, k, sizeof(*rows))) {
				rc = SQLITE_NOMEM;
				break;
			}
			memset(&rows[k], 0, sizeof(rows[k]));
			col_copy(s, 0, rows[k].step, sizeof(rows[k].step));
			rows[k].started_ms = sqlite3_column_int64(s, 1);
			rows[k].ended_ms = sqlite3_column_type(s, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 2);
			rows[k].detail = col_json(s, 3);
			rows[k].error = col_strdup(s, 4);
			last = sqlite3_column_int64(s, 5);
			k++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			sq_log_db_error(st, "history");
			out = STORE_ERROR;
		}
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	if (out != STORE_OK) {
		store_steps_free(rows, k);
		*next_cursor = 0;
		return out;
	}
	*steps = rows;
	*n = k;
	return STORE_OK;
}

/* Step s, one event per row, into a growing array: at most max of them
 * (*more: another row followed). Returns the last step's code, SQLITE_DONE
 * when all went well. */
static int collect_events(sqlite3_stmt *s, size_t max, struct store_event **rows, size_t *k, bool *more)
{
	size_t cap = 0;
	int rc;

	*more = false;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*k == max) {
			*more = true;
			return SQLITE_DONE;
		}
		if (!grow((void **)rows, &cap, *k, sizeof(**rows)))
			return SQLITE_NOMEM;
		memset(&(*rows)[*k], 0, sizeof(**rows));
		event_row(s, &(*rows)[(*k)++]);
	}
	return rc;
}

enum store_result sq_list(struct store *b, const struct store_query *q, struct store_event **out, size_t *n,
			  int64_t *next_cursor)
{
	struct sq *st = sq_of(b);
	struct store_event *rows = NULL;
	size_t k = 0;
	int limit = q->limit > 0 ? q->limit : 100, rc = SQLITE_ERROR;
	bool more = false;
	sqlite3_stmt *s;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT " EVENT_COLS " FROM events WHERE seq > ? "
		     "AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR process_type = ?3) "
		     "AND (?4 IS NULL OR resource_id = ?4) AND received_at >= ?5 "
		     "AND (?7 IS NULL OR handler = ?7) ORDER BY seq LIMIT ?6");
	if (s) {
		sqlite3_bind_int64(s, 1, q->after_seq);
		sq_bind_text(s, 2, q->state);
		sq_bind_text(s, 3, q->process_type);
		sq_bind_text(s, 4, q->resource_id);
		sqlite3_bind_int64(s, 5, q->since_ms);
		sqlite3_bind_int(s, 6, limit + 1);
		sq_bind_text(s, 7, q->handler);
		rc = collect_events(s, (size_t)limit, &rows, &k, &more);
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	if (rc != SQLITE_DONE) {
		sq_log_db_error(st, "list");
		store_events_free(rows, k);
		*next_cursor = 0;
		return STORE_ERROR;
	}
	*next_cursor = more ? rows[k - 1].seq : 0;
	*out = rows;
	*n = k;
	return STORE_OK;
}

/* Three sources, merged by time: events as they were received
 * (events.seq), every history step (history.seq) and batches as they were
 * opened (batches.seq); each with what a reader filters on. */
enum store_result sq_changes(struct store *b, const struct store_cursor *after, struct store_change *out, size_t max,
			     size_t *n)
{
	struct sq *st = sq_of(b);
	struct store_cursor at = *after;
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;
	size_t k = 0;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT 0, seq, id, 'received', received_at, handler, resource_id, process_type, state, NULL, "
		     "0, NULL FROM (SELECT * FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?4) "
		     "UNION ALL SELECT 1, h.seq, h.event_id, h.step, h.started_at, e.handler, e.resource_id, "
		     "e.process_type, e.state, json_extract(h.detail, '$.state'), "
		     "coalesce(json_extract(h.detail, '$.attempt'), 0), h.error "
		     "FROM (SELECT * FROM history WHERE seq > ?2 ORDER BY seq LIMIT ?4) h "
		     "LEFT JOIN events e ON e.id = h.event_id "
		     "UNION ALL SELECT 2, seq, id, 'batch_opened', opened_at, watch, prefix, 'batch', state, bucket, 0, "
		     "NULL FROM (SELECT * FROM batches WHERE seq > ?3 ORDER BY seq LIMIT ?4) "
		     "ORDER BY 5, 1, 2 LIMIT ?4");
	if (s) {
		sqlite3_bind_int64(s, 1, after->received);
		sqlite3_bind_int64(s, 2, after->steps);
		sqlite3_bind_int64(s, 3, after->batches);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
		while (k < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct store_change *c = &out[k++];
			int src = sqlite3_column_int(s, 0);
			int64_t seq = sqlite3_column_int64(s, 1);
			if (src == 0)
				at.received = seq;
			else if (src == 1)
				at.steps = seq;
			else
				at.batches = seq;
			c->cursor = at;
			col_copy(s, 2, c->event_id, sizeof(c->event_id));
			col_copy(s, 3, c->what, sizeof(c->what));
			c->at_ms = sqlite3_column_int64(s, 4);
			col_copy(s, 5, c->handler, sizeof(c->handler));
			col_copy(s, 6, c->resource_id, sizeof(c->resource_id));
			col_copy(s, 7, c->process_type, sizeof(c->process_type));
			col_copy(s, 8, c->event_state, sizeof(c->event_state));
			col_copy(s, 9, c->step_state, sizeof(c->step_state));
			c->attempt = sqlite3_column_int(s, 10);
			col_copy(s, 11, c->error, sizeof(c->error));
		}
		if (rc == SQLITE_ROW)
			rc = SQLITE_DONE;
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	if (rc != SQLITE_DONE) {
		sq_log_db_error(st, "changes");
		return STORE_ERROR;
	}
	*n = k;
	return STORE_OK;
}

enum store_result sq_changes_head(struct store *b, struct store_cursor *head)
{
	struct sq *st = sq_of(b);

	pthread_mutex_lock(&st->lock);
	head->received = sq_scalar(st, "SELECT coalesce(max(seq), 0) FROM events");
	head->steps = sq_scalar(st, "SELECT coalesce(max(seq), 0) FROM history");
	head->batches = sq_scalar(st, "SELECT coalesce(max(seq), 0) FROM batches");
	pthread_mutex_unlock(&st->lock);
	return head->received < 0 || head->steps < 0 || head->batches < 0 ? STORE_ERROR : STORE_OK;
}

enum store_result sq_archive_pending(struct store *b, int limit, struct store_event **rows, size_t *n)
{
	struct sq *st = sq_of(b);
	struct store_event *out = NULL;
	size_t k = 0;
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;
	bool more;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT " EVENT_COLS " FROM events WHERE finished_at IS NOT NULL AND archived_at IS NULL "
		     "ORDER BY finished_at LIMIT ?");
	if (s) {
		sqlite3_bind_int(s, 1, limit);
		rc = collect_events(s, (size_t)limit, &out, &k, &more);
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	if (rc != SQLITE_DONE) {
		store_events_free(out, k);
		sq_log_db_error(st, "archive_pending");
		return STORE_ERROR;
	}
	*rows = out;
	*n = k;
	return STORE_OK;
}

enum store_result sq_archive_mark(struct store *b, char (*ids)[37], const int64_t *finished_ms, size_t n,
				  int64_t now_ms)
{
	struct sq *st = sq_of(b);
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	pthread_mutex_lock(&st->lock);
	if (sq_exec(st, SQL_BEGIN) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return STORE_ERROR;
	}
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		s = sq_prep(st, "UPDATE events SET archived_at = ? WHERE id = ? AND finished_at = ?");
		if (!s) {
			rc = SQLITE_ERROR;
			break;
		}
		sqlite3_bind_int64(s, 1, now_ms);
		sqlite3_bind_text(s, 2, ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, finished_ms[i]);
		rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sq_release(st, s);
	}
	if (rc == SQLITE_OK)
		rc = sq_exec(st, SQL_COMMIT);
	if (rc != SQLITE_OK)
		sq_exec(st, SQL_ROLLBACK);
	pthread_mutex_unlock(&st->lock);
	if (rc != SQLITE_OK) {
		sq_log_db_error(st, "archive_mark");
		return STORE_ERROR;
	}
	return STORE_OK;
}
