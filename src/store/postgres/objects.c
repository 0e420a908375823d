/* Object events and their batches, on PostgreSQL. The rules are the SQLite
 * store's (objects.c there); what differs is that several daemons may add
 * to one batch at once. Intake locks each object's notification and its
 * batch (pg_object_keys) before it looks; a timer closing a batch takes the
 * batch's lock and looks again. So a batch closes, and triggers, once. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/event.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/util.h"

static int64_t min_due(int64_t a, int64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static int64_t batch_key(const char *watch, const char *bucket, const char *prefix)
{
	char wb[200];

	snprintf(wb, sizeof(wb), "%s|%s", watch, bucket);
	return pg_key('b', wb, prefix);
}

void pg_object_keys(struct store_item *it, int64_t *keys, size_t *n)
{
	const struct store_object *o = it->obj;
	char *dkey = objects_dedupe_key(o->rec);

	if (dkey)
		keys[(*n)++] = pg_key('o', dkey, NULL);
	free(dkey);
	if (o->watch)
		keys[(*n)++] = batch_key(o->watch, o->rec->bucket, o->prefix);
}

/* The trigger event's body: the batch as it closed, its objects included. */
static char *batch_body(struct pgs *st, struct pgc *c, const char *id, const char *reason, int64_t now)
{
	struct pgp p = { .n = 0 };
	PGresult *r = NULL, *o = NULL;
	json_t *doc = NULL, *keys = json_array();
	char t[32], path[1200];
	char *text = NULL;

	pgp_text(&p, id);
	r = pg_q(st, c, "SELECT watch, bucket, prefix, opened_at FROM batches WHERE id=$1", &p);
	if (!r || PQntuples(r) != 1)
		goto out;
	snprintf(path, sizeof(path), "s3://%s/%s", pg_str(r, 0, 1), pg_str(r, 0, 2));
	iso8601_ms(pg_int(r, 0, 3), t);
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "batch_id", id, "watch", pg_str(r, 0, 0), "bucket",
			pg_str(r, 0, 1), "prefix", pg_str(r, 0, 2), "path", path, "reason", reason, "opened_at", t);
	o = pg_q(st, c, "SELECT key, size, etag, version_id, kind FROM objects WHERE batch_id=$1 AND role='member' "
			"ORDER BY seq", &p);
	if (!doc || !o)
		goto out;
	for (int i = 0; i < PQntuples(o); i++) {
		json_t *obj = json_pack("{s:s}", "key", pg_str(o, i, 0));
		if (!pg_null_at(o, i, 1))
			json_object_set_new(obj, "size", json_integer(pg_int(o, i, 1)));
		if (!pg_null_at(o, i, 2))
			json_object_set_new(obj, "etag", json_string(pg_str(o, i, 2)));
		if (!pg_null_at(o, i, 3))
			json_object_set_new(obj, "version_id", json_string(pg_str(o, i, 3)));
		json_object_set_new(obj, "kind", json_string(pg_str(o, i, 4)));
		json_array_append_new(keys, obj);
	}
	iso8601_ms(now, t);
	json_object_set_new(doc, "count", json_integer((json_int_t)json_array_size(keys)));
	json_object_set_new(doc, "closed_at", json_string(t));
	json_object_set(doc, "objects", keys);
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	PQclear(r);
	PQclear(o);
	json_decref(keys);
	json_decref(doc);
	return text;
}

/* Close a batch: its trigger event, then the batch. In the transaction. */
static enum store_result close_batch(struct pgs *st, struct pgc *c, const char *id, const char *reason, int64_t now,
				     const char *trigger, char trigger_id[37], int64_t *added)
{
	char dkey[64], *result = NULL;
	char *body = batch_body(st, c, id, reason, now);
	struct pgp p = { .n = 0 };
	enum store_result r;

	if (!body)
		return pg_fail(c);
	if (!trigger || !*trigger)
		result = store_not_routed_text("batch", "closed");
	uuid_new(trigger_id);
	snprintf(dkey, sizeof(dkey), "batch|%s", id);
	pgp_text(&p, trigger_id);
	pgp_int(&p, now);
	pgp_text(&p, id);
	pgp_text(&p, dkey);
	pgp_text(&p, body);
	pgp_text(&p, result ? NULL : trigger);
	pgp_text(&p, result ? ST_COMPLETED : ST_QUEUED);
	pgp_text(&p, result);
	if (result)
		pgp_int(&p, now);
	else
		pgp_null(&p);
	r = pg_do(st, c, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id, "
			 "dedupe_key, body, handler, state, result, finished_at, source) "
			 "VALUES ($1,$2,$2,'batch','closed',$3,$4,$5,$6,$7,$8,$9,'batch')", &p);
	free(body);
	c->wrote |= r == STORE_OK;
	if (r == STORE_OK && !result)
		(*added)++;
	free(result);
	if (r != STORE_OK)
		return r;
	p.n = 0;
	pgp_int(&p, now);
	pgp_text(&p, reason);
	pgp_text(&p, trigger_id);
	pgp_text(&p, id);
	return pg_do(st, c, "UPDATE batches SET state='closed', closed_at=$1, due_at=NULL, reason=$2, "
			    "trigger_event_id=$3 WHERE id=$4", &p);
}

/* The open batch of (watch, bucket, prefix), opened when there is none. */
static enum store_result open_batch(struct pgs *st, struct pgc *c, const struct store_object *o, int64_t now,
				    char id[37], int64_t *objects, int64_t *opened)
{
	struct pgp p = { .n = 0 };
	PGresult *r;

	pgp_text(&p, o->watch);
	pgp_text(&p, o->rec->bucket);
	pgp_text(&p, o->prefix);
	/* "" is NULL to pgp_text: the root prefix is the empty string */
	if (!o->prefix[0])
		p.v[2] = "";
	r = pg_q(st, c, "SELECT id, objects, opened_at FROM batches WHERE watch=$1 AND bucket=$2 AND prefix=$3 "
			"AND state='open'", &p);
	if (!r)
		return pg_fail(c);
	if (PQntuples(r) == 1) {
		str_copy(id, pg_str(r, 0, 0), 37);
		*objects = pg_int(r, 0, 1);
		*opened = pg_int(r, 0, 2);
		PQclear(r);
		return STORE_OK;
	}
	PQclear(r);
	uuid_new(id);
	*objects = 0;
	*opened = now;
	pgp_text(&p, id);
	pgp_int(&p, now);
	c->wrote = true;   /* "batch_opened" (a failure rolls back, and clears it) */
	return pg_do(st, c, "INSERT INTO batches(watch, bucket, prefix, id, state, opened_at, last_object_at) "
			    "VALUES ($1,$2,$3,$4,'open',$5,$5)", &p);
}

static enum store_result batch_add(struct pgs *st, struct pgc *c, const struct store_object *o, const char *id,
				   int64_t now, int64_t opened)
{
	int64_t due = min_due(o->quiet_ms ? now + o->quiet_ms : 0, o->max_age_ms ? opened + o->max_age_ms : 0);
	struct pgp p = { .n = 0 };

	pgp_int(&p, now);
	pgp_text(&p, o->trigger);
	pgp_int(&p, o->count);
	pgp_int(&p, o->quiet_ms);
	pgp_int(&p, o->max_age_ms);
	if (due)
		pgp_int(&p, due);
	else
		pgp_null(&p);
	pgp_text(&p, id);
	return pg_do(st, c, "UPDATE batches SET objects=objects+1, last_object_at=$1, trigger=$2, count_limit=$3, "
			    "quiet_ms=$4, max_age_ms=$5, due_at=$6 WHERE id=$7", &p);
}

static enum store_result insert_object(struct pgs *st, struct pgc *c, struct store_item *it, const char *dkey,
				       const char *role, int64_t now)
{
	const struct store_object *o = it->obj;
	const struct object_rec *r = o->rec;
	char *key = strndup(r->key, r->key_len);
	struct pgp p = { .n = 0 };
	enum store_result res;

	if (!key)
		return STORE_ERROR;
	uuid_new(it->id);
	pgp_text(&p, it->id);
	pgp_int(&p, now);
	pgp_text(&p, dkey);
	pgp_text(&p, r->bucket);
	pgp_text(&p, key);
	p.v[4] = key;   /* an empty key is a key */
	pgp_text(&p, r->kind);
	if (r->size >= 0)
		pgp_int(&p, r->size);
	else
		pgp_null(&p);
	pgp_text(&p, r->etag);
	pgp_text(&p, r->version_id);
	pgp_text(&p, r->sequencer);
	pgp_text(&p, r->event_name);
	if (r->event_ms)
		pgp_int(&p, r->event_ms);
	else
		pgp_null(&p);
	pgp_text(&p, o->format);
	pgp_text(&p, o->watch);
	pgp_text(&p, role);
	pgp_text(&p, o->batch_id);
	res = pg_do(st, c, "INSERT INTO objects(id, received_at, dedupe_key, bucket, key, kind, size, etag, version_id, "
			   "sequencer, event_name, event_at, format, watch, role, batch_id) "
			   "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)", &p);
	free(key);
	return res;
}

enum store_result pg_object_put(struct pgs *st, struct pgc *c, struct store_item *it, int64_t now, int64_t *added)
{
	struct store_object *o = it->obj;
	char *dkey = objects_dedupe_key(o->rec);
	enum store_result r = STORE_OK;
	int64_t objects = 0, opened = now;
	struct pgp p = { .n = 0 };
	PGresult *q;

	o->batch_id[0] = o->trigger_id[0] = '\0';
	if (!dkey)
		return STORE_ERROR;
	/* the same notification again (AWS delivers at least once) */
	pgp_text(&p, dkey);
	q = pg_q(st, c, "SELECT id FROM objects WHERE dedupe_key=$1", &p);
	if (!q) {
		free(dkey);
		return pg_fail(c);
	}
	if (PQntuples(q) == 1) {
		str_copy(it->id, pg_str(q, 0, 0), sizeof(it->id));
		r = STORE_DUPLICATE;
	}
	PQclear(q);
	if (r == STORE_OK && o->watch)
		r = open_batch(st, c, o, now, o->batch_id, &objects, &opened);
	if (r == STORE_OK)
		r = insert_object(st, c, it, dkey, !o->watch ? "not_routed" : o->marker ? "marker" : "member", now);
	free(dkey);
	if (r != STORE_OK || !o->watch)
		return r;
	if (o->marker)
		return close_batch(st, c, o->batch_id, "marker", now, o->trigger, o->trigger_id, added);
	r = batch_add(st, c, o, o->batch_id, now, opened);
	if (r == STORE_OK && o->count > 0 && objects + 1 >= o->count)
		r = close_batch(st, c, o->batch_id, "count", now, o->trigger, o->trigger_id, added);
	return r;
}

static const char SQL_NEXT_DUE[] = "SELECT coalesce(min(due_at), 0) FROM batches WHERE state='open' AND due_at IS NOT NULL";

/* Close one due batch in a transaction of its own: its lock, then a fresh
 * look (another daemon, or an object, may have closed it meanwhile).
 * 1: closed; 0: it was not due any more; -1: failure. */
static int close_one_due(struct pgs *st, struct pgc *c, const char *id, const char *watch, const char *bucket,
			 const char *prefix, int64_t now, struct store_closed *out, int64_t *added)
{
	struct pgp p = { .n = 0 };
	int64_t key = batch_key(watch, bucket, prefix);
	char trigger[64];
	PGresult *r;
	int done = -1;

	if (pg_begin(st, c, true) != STORE_OK)
		return -1;
	if (pg_xact_locks(st, c, &key, 1) != STORE_OK)
		goto out;
	pgp_text(&p, id);
	pgp_int(&p, now);
	r = pg_q(st, c, "SELECT trigger, opened_at, max_age_ms FROM batches WHERE id=$1 AND state='open' "
			"AND due_at IS NOT NULL AND due_at<=$2", &p);
	if (!r)
		goto out;
	if (PQntuples(r) == 0) {
		PQclear(r);
		done = 0;
		goto out;
	}
	str_copy(out->batch_id, id, sizeof(out->batch_id));
	str_copy(trigger, pg_str(r, 0, 0), sizeof(trigger));
	str_copy(out->reason, pg_int(r, 0, 2) && pg_int(r, 0, 1) + pg_int(r, 0, 2) <= now ? "max_age" : "quiet",
		 sizeof(out->reason));
	PQclear(r);
	if (close_batch(st, c, id, out->reason, now, trigger, out->trigger_id, added) == STORE_OK &&
	    pg_commit(st, c) == STORE_OK)
		return 1;
out:
	pg_rollback(st, c);
	return done;
}

int pg_batches_close_due(struct store *b, int64_t now, struct store_closed *closed, int max, int64_t *next_due_ms)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	int64_t added = 0;
	PGresult *r;
	int n = 0;

	if (!c)
		return -1;
	r = pg_q(st, c, SQL_NEXT_DUE, NULL);
	*next_due_ms = r ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	if (*next_due_ms <= 0 || *next_due_ms > now) {
		pg_put(st, c);
		return r ? 0 : -1;
	}
	pgp_int(&p, now);
	pgp_int(&p, max);
	r = pg_q(st, c, "SELECT id, watch, bucket, prefix FROM batches WHERE state='open' AND due_at IS NOT NULL "
			"AND due_at<=$1 ORDER BY due_at LIMIT $2", &p);
	for (int i = 0; r && i < PQntuples(r) && n < max; i++) {
		int got = close_one_due(st, c, pg_str(r, i, 0), pg_str(r, i, 1), pg_str(r, i, 2), pg_str(r, i, 3), now,
					&closed[n], &added);
		if (got < 0) {
			n = n ? n : -1;
			break;
		}
		n += got;
	}
	if (!r)
		n = -1;
	PQclear(r);
	atomic_fetch_add(&st->unfinished, added);
	r = pg_q(st, c, SQL_NEXT_DUE, NULL);
	*next_due_ms = r ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	pg_put(st, c);
	return n;
}

#define BATCH_COLS "seq, id, watch, bucket, prefix, state, opened_at, last_object_at, closed_at, due_at, objects, " \
		   "reason, trigger_event_id"

static void batch_row(PGresult *r, int i, struct store_batch *b)
{
	memset(b, 0, sizeof(*b));
	str_copy(b->id, pg_str(r, i, 1), sizeof(b->id));
	str_copy(b->watch, pg_str(r, i, 2), sizeof(b->watch));
	str_copy(b->bucket, pg_str(r, i, 3), sizeof(b->bucket));
	b->prefix = strdup(pg_str(r, i, 4));
	str_copy(b->state, pg_str(r, i, 5), sizeof(b->state));
	b->opened_ms = pg_int(r, i, 6);
	b->last_object_ms = pg_int(r, i, 7);
	b->closed_ms = pg_int(r, i, 8);
	b->due_ms = pg_int(r, i, 9);
	b->objects = pg_int(r, i, 10);
	str_copy(b->reason, pg_str(r, i, 11), sizeof(b->reason));
	str_copy(b->trigger_event_id, pg_str(r, i, 12), sizeof(b->trigger_event_id));
}

enum store_result pg_batch_get(struct store *b, const char *id, struct store_batch *out)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	enum store_result res = STORE_ERROR;
	PGresult *r, *o = NULL;
	char t[32];

	if (!c)
		return STORE_ERROR;
	pgp_text(&p, id);
	r = pg_q(st, c, "SELECT " BATCH_COLS " FROM batches WHERE id=$1", &p);
	if (r && PQntuples(r) == 0)
		res = STORE_NOTFOUND;
	if (r && PQntuples(r) == 1)
		o = pg_q(st, c, "SELECT key, size, etag, version_id, kind, role, received_at FROM objects "
				"WHERE batch_id=$1 ORDER BY seq", &p);
	pg_put(st, c);
	if (o) {
		batch_row(r, 0, out);
		out->keys = json_array();
		for (int i = 0; i < PQntuples(o); i++) {
			iso8601_ms(pg_int(o, i, 6), t);
			json_array_append_new(
				out->keys,
				json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:s}", "key", pg_str(o, i, 0), "size",
					  pg_null_at(o, i, 1) ? json_null() : json_integer(pg_int(o, i, 1)), "etag",
					  pg_null_at(o, i, 2) ? json_null() : json_string(pg_str(o, i, 2)), "version_id",
					  pg_null_at(o, i, 3) ? json_null() : json_string(pg_str(o, i, 3)), "kind",
					  pg_str(o, i, 4), "role", pg_str(o, i, 5), "received_at", t));
		}
		res = STORE_OK;
	}
	PQclear(r);
	PQclear(o);
	return res;
}

enum store_result pg_batches_list(struct store *b, const char *state, int64_t after_seq, int limit,
				  struct store_batch **rows, size_t *n, int64_t *next_cursor)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	PGresult *r;
	int64_t last = 0;

	if (!c)
		return STORE_ERROR;
	pgp_int(&p, after_seq);
	pgp_text(&p, state);
	pgp_int(&p, limit + 1);
	r = pg_q(st, c, "SELECT " BATCH_COLS " FROM batches WHERE seq>$1 AND ($2::text IS NULL OR state=$2) "
			"ORDER BY seq LIMIT $3", &p);
	pg_put(st, c);
	if (!r)
		return STORE_ERROR;
	*rows = calloc((size_t)limit + 1, sizeof(**rows));
	if (!*rows) {
		PQclear(r);
		return STORE_ERROR;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		if ((size_t)i == (size_t)limit) {
			*next_cursor = last;
			break;
		}
		batch_row(r, i, &(*rows)[(*n)++]);
		last = pg_int(r, i, 0);
	}
	PQclear(r);
	return STORE_OK;
}

int64_t pg_batches_open(struct store *b)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	PGresult *r;
	int64_t n = -1;

	if (!c)
		return -1;
	r = pg_q(st, c, "SELECT count(*) FROM batches WHERE state='open'", NULL);
	if (r)
		n = pg_int(r, 0, 0);
	PQclear(r);
	pg_put(st, c);
	return n;
}
