/* Object events and their batches. An object joins the open batch of its
 * (watch, bucket, prefix), or opens one; the object that makes a batch
 * close (its count, or a marker) closes it in the same transaction, and the
 * timers (quiet, max_age) close due batches in a transaction of their own.
 * Closing writes the trigger event, with the batch's objects in its body:
 * a batch is triggered exactly once, and the trigger runs like any event. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/event.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/util.h"

static int64_t min_due(int64_t a, int64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* The trigger event's body: the batch as it closed, its objects included. */
static char *batch_body(struct sq *st, const char *id, const char *reason, int64_t now, int64_t *count)
{
	sqlite3_stmt *s = sq_prep(st, "SELECT watch, bucket, prefix, opened_at FROM batches WHERE id=?");
	json_t *doc = NULL, *keys = json_array();
	char t[32], path[1200];
	char *text = NULL;

	if (!s)
		goto out;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		const char *bucket = (const char *)sqlite3_column_text(s, 1);
		const char *prefix = (const char *)sqlite3_column_text(s, 2);
		snprintf(path, sizeof(path), "s3://%s/%s", bucket, prefix);
		iso8601_ms(sqlite3_column_int64(s, 3), t);
		doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "batch_id", id, "watch",
				(const char *)sqlite3_column_text(s, 0), "bucket", bucket, "prefix", prefix, "path", path,
				"reason", reason, "opened_at", t);
	}
	sq_release(st, s);
	s = sq_prep(st, "SELECT key, size, etag, version_id, kind FROM objects WHERE batch_id=? AND role='member' "
		     "ORDER BY seq");
	if (!doc || !s)
		goto out;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *o = json_pack("{s:s}", "key", (const char *)sqlite3_column_text(s, 0));
		if (sqlite3_column_type(s, 1) != SQLITE_NULL)
			json_object_set_new(o, "size", json_integer(sqlite3_column_int64(s, 1)));
		if (sqlite3_column_type(s, 2) != SQLITE_NULL)
			json_object_set_new(o, "etag", json_string((const char *)sqlite3_column_text(s, 2)));
		if (sqlite3_column_type(s, 3) != SQLITE_NULL)
			json_object_set_new(o, "version_id", json_string((const char *)sqlite3_column_text(s, 3)));
		json_object_set_new(o, "kind", json_string((const char *)sqlite3_column_text(s, 4)));
		json_array_append_new(keys, o);
	}
	sq_release(st, s);
	*count = (int64_t)json_array_size(keys);
	iso8601_ms(now, t);
	json_object_set_new(doc, "count", json_integer(*count));
	json_object_set_new(doc, "closed_at", json_string(t));
	json_object_set(doc, "objects", keys);
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(keys);
	json_decref(doc);
	return text;
}

/* Close a batch: its trigger event (queued for its handler, or finished as
 * not routed without one), then the batch itself. Inside the transaction. */
static enum store_result close_batch(struct sq *st, const char *id, const char *reason, int64_t now,
				     const char *trigger, char trigger_id[37], int64_t *added)
{
	char dkey[64], *result = NULL;
	int64_t count = 0;
	char *body = batch_body(st, id, reason, now, &count);
	sqlite3_stmt *s;
	int rc;

	if (!body)
		return STORE_ERROR;
	if (!trigger || !*trigger)
		result = store_not_routed_text("batch", "closed");
	uuid_new(trigger_id);
	snprintf(dkey, sizeof(dkey), "batch|%s", id);
	s = sq_prep(st, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id, "
		     "dedupe_key, body, handler, state, result, finished_at, source) "
		     "VALUES (?,?,?,'batch','closed',?,?,?,?,?,?,?,'batch')");
	if (!s) {
		free(body);
		free(result);
		return STORE_ERROR;
	}
	sqlite3_bind_text(s, 1, trigger_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_text(s, 4, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, dkey, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, body, -1, SQLITE_STATIC);
	sq_bind_text(s, 7, result ? NULL : trigger);
	sqlite3_bind_text(s, 8, result ? ST_COMPLETED : ST_QUEUED, -1, SQLITE_STATIC);
	sq_bind_text(s, 9, result);
	if (result)
		sqlite3_bind_int64(s, 10, now);
	else
		sqlite3_bind_null(s, 10);
	rc = sqlite3_step(s);
	sq_release(st, s);
	free(body);
	if (rc != SQLITE_DONE) {
		free(result);
		sq_log_db_error(st, "batch trigger");
		return sq_map_rc(rc);
	}
	if (!result)
		(*added)++;
	free(result);
	s = sq_prep(st, "UPDATE batches SET state='closed', closed_at=?, due_at=NULL, reason=?, trigger_event_id=? "
		     "WHERE id=?");
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, trigger_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sq_release(st, s);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

/* The open batch of (watch, bucket, prefix), opened when there is none:
 * its id and object count. Its closing rules follow the watch as it is now. */
static enum store_result open_batch(struct sq *st, const struct store_object *o, int64_t now, char id[37],
				    int64_t *objects)
{
	sqlite3_stmt *s = sq_prep(st, "SELECT id, objects FROM batches WHERE watch=? AND bucket=? AND prefix=? "
				   "AND state='open'");
	int rc;

	if (!s)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, o->watch, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, o->rec->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, o->prefix, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		str_copy(id, (const char *)sqlite3_column_text(s, 0), 37);
		*objects = sqlite3_column_int64(s, 1);
	}
	sq_release(st, s);
	if (rc == SQLITE_ROW)
		return STORE_OK;
	uuid_new(id);
	*objects = 0;
	s = sq_prep(st, "INSERT INTO batches(id, watch, bucket, prefix, state, opened_at, last_object_at) "
		     "VALUES (?,?,?,?,'open',?,?)");
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, o->watch, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, o->rec->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, o->prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now);
	sqlite3_bind_int64(s, 6, now);
	rc = sqlite3_step(s);
	sq_release(st, s);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

/* A new object (not a marker) in its batch: counted, timers moved on. */
static enum store_result batch_add(struct sq *st, const struct store_object *o, const char *id, int64_t now)
{
	sqlite3_stmt *s = sq_prep(st, "UPDATE batches SET objects=objects+1, last_object_at=?, trigger=?, "
				   "count_limit=?, quiet_ms=?, max_age_ms=?, due_at=? WHERE id=?");
	int64_t opened = now, due;
	sqlite3_stmt *q;
	int rc;

	q = sq_prep(st, "SELECT opened_at FROM batches WHERE id=?");
	if (!s || !q)
		return STORE_ERROR;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		opened = sqlite3_column_int64(q, 0);
	sq_release(st, q);
	due = min_due(o->quiet_ms ? now + o->quiet_ms : 0, o->max_age_ms ? opened + o->max_age_ms : 0);
	sqlite3_bind_int64(s, 1, now);
	sq_bind_text(s, 2, o->trigger);
	sqlite3_bind_int64(s, 3, o->count);
	sqlite3_bind_int64(s, 4, o->quiet_ms);
	sqlite3_bind_int64(s, 5, o->max_age_ms);
	if (due)
		sqlite3_bind_int64(s, 6, due);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_text(s, 7, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sq_release(st, s);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

static enum store_result insert_object(struct sq *st, struct store_item *it, const char *dkey, const char *role,
				       int64_t now)
{
	const struct store_object *o = it->obj;
	const struct object_rec *r = o->rec;
	sqlite3_stmt *s = sq_prep(st, "INSERT INTO objects(id, received_at, dedupe_key, bucket, key, kind, size, etag, "
				   "version_id, sequencer, event_name, event_at, format, watch, role, batch_id) "
				   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
	int rc;

	if (!s)
		return STORE_ERROR;
	uuid_new(it->id);
	sqlite3_bind_text(s, 1, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_text(s, 3, dkey, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, r->key, (int)r->key_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, r->kind, -1, SQLITE_STATIC);
	if (r->size >= 0)
		sqlite3_bind_int64(s, 7, r->size);
	else
		sqlite3_bind_null(s, 7);
	sq_bind_text(s, 8, r->etag);
	sq_bind_text(s, 9, r->version_id);
	sq_bind_text(s, 10, r->sequencer);
	sq_bind_text(s, 11, r->event_name);
	if (r->event_ms)
		sqlite3_bind_int64(s, 12, r->event_ms);
	else
		sqlite3_bind_null(s, 12);
	sq_bind_text(s, 13, o->format);
	sq_bind_text(s, 14, o->watch);
	sqlite3_bind_text(s, 15, role, -1, SQLITE_STATIC);
	sq_bind_text(s, 16, o->batch_id);
	rc = sqlite3_step(s);
	sq_release(st, s);
	return rc == SQLITE_DONE ? STORE_OK : sq_map_rc(rc);
}

enum store_result sq_object_put(struct sq *st, struct store_item *it, int64_t now, int64_t *added)
{
	struct store_object *o = it->obj;
	char *dkey = objects_dedupe_key(o->rec);
	enum store_result r = STORE_OK;
	int64_t objects = 0;
	sqlite3_stmt *s;

	o->batch_id[0] = o->trigger_id[0] = '\0';
	if (!dkey)
		return STORE_ERROR;
	/* the same notification again (AWS delivers at least once) */
	s = sq_prep(st, "SELECT id FROM objects WHERE dedupe_key=?");
	if (!s) {
		free(dkey);
		return STORE_ERROR;
	}
	sqlite3_bind_text(s, 1, dkey, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		str_copy(it->id, (const char *)sqlite3_column_text(s, 0), sizeof(it->id));
		r = STORE_DUPLICATE;
	}
	sq_release(st, s);
	if (r == STORE_OK && o->watch)
		r = open_batch(st, o, now, o->batch_id, &objects);
	if (r == STORE_OK)
		r = insert_object(st, it, dkey, !o->watch ? "not_routed" : o->marker ? "marker" : "member", now);
	free(dkey);
	if (r != STORE_OK || !o->watch)
		return r;
	if (o->marker)
		return close_batch(st, o->batch_id, "marker", now, o->trigger, o->trigger_id, added);
	r = batch_add(st, o, o->batch_id, now);
	if (r == STORE_OK && o->count > 0 && objects + 1 >= o->count)
		r = close_batch(st, o->batch_id, "count", now, o->trigger, o->trigger_id, added);
	return r;
}

int sq_batches_close_due(struct store *b, int64_t now, struct store_closed *closed, int max, int64_t *next_due_ms)
{
	struct sq *st = sq_of(b);
	int64_t added = 0;
	int n = 0;
	enum store_result r = STORE_OK;
	sqlite3_stmt *s;

	pthread_mutex_lock(&st->lock);
	/* a read first: no write transaction (nor its lock on the file) a
	 * second while nothing is due, which is nearly always */
	*next_due_ms = sq_scalar(st, "SELECT coalesce(min(due_at), 0) FROM batches INDEXED BY batches_due "
				 "WHERE state='open' AND due_at IS NOT NULL");
	if (*next_due_ms <= 0 || *next_due_ms > now) {
		if (*next_due_ms < 0)
			*next_due_ms = 0;
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	if (sq_exec(st, SQL_BEGIN) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return -1;
	}
	while (n < max) {
		struct store_closed *c = &closed[n];
		char trigger[64];
		int rc;
		s = sq_prep(st, "SELECT id, trigger, opened_at, max_age_ms FROM batches INDEXED BY batches_due "
			     "WHERE state='open' AND due_at IS NOT NULL AND due_at<=? ORDER BY due_at LIMIT 1");
		if (!s) {
			r = STORE_ERROR;
			break;
		}
		sqlite3_bind_int64(s, 1, now);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(s, 1);
			int64_t max_age = sqlite3_column_int64(s, 3);
			str_copy(c->batch_id, (const char *)sqlite3_column_text(s, 0), sizeof(c->batch_id));
			str_copy(trigger, t ? t : "", sizeof(trigger));
			str_copy(c->reason, max_age && sqlite3_column_int64(s, 2) + max_age <= now ? "max_age" : "quiet",
				 sizeof(c->reason));
		}
		sq_release(st, s);
		if (rc != SQLITE_ROW)
			break;
		r = close_batch(st, c->batch_id, c->reason, now, trigger, c->trigger_id, &added);
		if (r != STORE_OK)
			break;
		n++;
	}
	if (r == STORE_OK && sq_exec(st, SQL_COMMIT) != SQLITE_OK)
		r = STORE_ERROR;
	if (r != STORE_OK) {
		sq_exec(st, SQL_ROLLBACK);
		n = -1;
		added = 0;
	}
	atomic_fetch_add(&st->unfinished, added);
	*next_due_ms = sq_scalar(st, "SELECT coalesce(min(due_at), 0) FROM batches INDEXED BY batches_due "
				 "WHERE state='open' AND due_at IS NOT NULL");
	if (*next_due_ms < 0)
		*next_due_ms = 0;
	pthread_mutex_unlock(&st->lock);
	return n;
}

#define BATCH_COLS "seq, id, watch, bucket, prefix, state, opened_at, last_object_at, closed_at, due_at, objects, " \
		   "reason, trigger_event_id"

static int64_t col_ms(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, i);
}

static void col_str(sqlite3_stmt *s, int i, char *out, size_t n)
{
	const char *t = (const char *)sqlite3_column_text(s, i);

	str_copy(out, t ? t : "", n);
}

static int64_t batch_row(sqlite3_stmt *s, struct store_batch *b)
{
	memset(b, 0, sizeof(*b));
	col_str(s, 1, b->id, sizeof(b->id));
	col_str(s, 2, b->watch, sizeof(b->watch));
	col_str(s, 3, b->bucket, sizeof(b->bucket));
	b->prefix = strdup((const char *)sqlite3_column_text(s, 4) ? (const char *)sqlite3_column_text(s, 4) : "");
	col_str(s, 5, b->state, sizeof(b->state));
	b->opened_ms = col_ms(s, 6);
	b->last_object_ms = col_ms(s, 7);
	b->closed_ms = col_ms(s, 8);
	b->due_ms = col_ms(s, 9);
	b->objects = sqlite3_column_int64(s, 10);
	col_str(s, 11, b->reason, sizeof(b->reason));
	col_str(s, 12, b->trigger_event_id, sizeof(b->trigger_event_id));
	return sqlite3_column_int64(s, 0);
}

/* Every object of a batch, the marker too. */
static json_t *batch_objects(struct sq *st, const char *id)
{
	sqlite3_stmt *s = sq_prep(st, "SELECT key, size, etag, version_id, kind, role, received_at FROM objects "
				   "INDEXED BY objects_batch WHERE batch_id=? ORDER BY seq");
	json_t *arr = json_array();
	char t[32];

	if (!s)
		return arr;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		iso8601_ms(sqlite3_column_int64(s, 6), t);
		json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:s}", "key",
						     (const char *)sqlite3_column_text(s, 0), "size",
						     sqlite3_column_type(s, 1) == SQLITE_NULL ? json_null()
											 : json_integer(sqlite3_column_int64(s, 1)),
						     "etag", sqlite3_column_type(s, 2) == SQLITE_NULL ? json_null()
							     : json_string((const char *)sqlite3_column_text(s, 2)),
						     "version_id", sqlite3_column_type(s, 3) == SQLITE_NULL ? json_null()
							     : json_string((const char *)sqlite3_column_text(s, 3)),
						     "kind", (const char *)sqlite3_column_text(s, 4), "role",
						     (const char *)sqlite3_column_text(s, 5), "received_at", t));
	}
	sq_release(st, s);
	return arr;
}

enum store_result sq_batch_get(struct store *b, const char *id, struct store_batch *out)
{
	struct sq *st = sq_of(b);
	enum store_result r = STORE_ERROR;
	sqlite3_stmt *s;

	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT " BATCH_COLS " FROM batches WHERE id=?");
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			batch_row(s, out);
			r = STORE_OK;
		} else if (rc == SQLITE_DONE) {
			r = STORE_NOTFOUND;
		}
		sq_release(st, s);
	}
	if (r == STORE_OK)
		out->keys = batch_objects(st, id);
	pthread_mutex_unlock(&st->lock);
	return r;
}

enum store_result sq_batches_list(struct store *b, const char *state, int64_t after_seq, int limit,
				  struct store_batch **rows, size_t *n, int64_t *next_cursor)
{
	struct sq *st = sq_of(b);
	enum store_result r = STORE_ERROR;
	sqlite3_stmt *s;
	int64_t last = 0;

	*rows = calloc((size_t)limit + 1, sizeof(**rows));
	if (!*rows)
		return STORE_ERROR;
	pthread_mutex_lock(&st->lock);
	s = sq_prep(st, "SELECT " BATCH_COLS " FROM batches WHERE seq>?1 AND (?2 IS NULL OR state=?2) "
		     "ORDER BY seq LIMIT ?3");
	if (s) {
		int rc;
		sqlite3_bind_int64(s, 1, after_seq);
		sq_bind_text(s, 2, state);
		sqlite3_bind_int(s, 3, limit + 1);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < (size_t)limit)
			last = batch_row(s, &(*rows)[(*n)++]);
		/* a row beyond the page: there is more */
		if (rc == SQLITE_ROW)
			*next_cursor = last;
		r = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
		sq_release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

int64_t sq_batches_open(struct store *b)
{
	struct sq *st = sq_of(b);
	int64_t n;

	pthread_mutex_lock(&st->lock);
	n = sq_scalar(st, "SELECT count(*) FROM batches WHERE state='open'");
	pthread_mutex_unlock(&st->lock);
	return n;
}
