/* What the API shows, from PostgreSQL: one event, its history a page at a
 * time, lists, and the archive writer's side. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

#define EVENT_COLS "seq, id, received_at, updated_at, body, handler, state, attempts, next_run_at, " \
		   "result, error, finished_at, progress, flags, source"

static void event_row(PGresult *r, int i, struct store_event *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = pg_int(r, i, 0);
	str_copy(e->id, pg_str(r, i, 1), sizeof(e->id));
	e->received_ms = pg_int(r, i, 2);
	e->updated_ms = pg_int(r, i, 3);
	e->event = pg_json(r, i, 4);
	str_copy(e->handler, pg_str(r, i, 5), sizeof(e->handler));
	str_copy(e->state, pg_str(r, i, 6), sizeof(e->state));
	e->attempts = (int)pg_int(r, i, 7);
	e->next_run_ms = pg_int(r, i, 8);
	e->result = pg_json(r, i, 9);
	e->error = pg_null_at(r, i, 10) ? NULL : strdup(pg_str(r, i, 10));
	e->finished_ms = pg_int(r, i, 11);
	e->progress = pg_json(r, i, 12);
	e->flags = (unsigned)pg_int(r, i, 13);
	str_copy(e->source, pg_str(r, i, 14), sizeof(e->source));
}

/* Run a query of EVENT_COLS rows: at most max into a new array (*more:
 * another row followed). */
static enum store_result query_events(struct pgs *st, const char *sql, const struct pgp *p, size_t max,
				      struct store_event **rows, size_t *n, bool *more)
{
	struct pgc *c = pg_get(st);
	PGresult *r;
	size_t k;

	*rows = NULL;
	*n = 0;
	*more = false;
	if (!c)
		return STORE_ERROR;
	r = pg_q(st, c, sql, p);
	pg_put(st, c);
	if (!r)
		return STORE_ERROR;
	k = (size_t)PQntuples(r);
	if (k > max) {
		k = max;
		*more = true;
	}
	if (!k) {
		/* none: no array, as the SQLite store answers */
		PQclear(r);
		return STORE_OK;
	}
	*rows = calloc(k, sizeof(**rows));
	if (!*rows) {
		PQclear(r);
		return STORE_ERROR;
	}
	for (size_t i = 0; i < k; i++)
		event_row(r, (int)i, &(*rows)[i]);
	*n = k;
	PQclear(r);
	return STORE_OK;
}

enum store_result pg_get_event(struct store *b, const char *id, struct store_event *out)
{
	struct store_event *rows;
	struct pgp p = { .n = 0 };
	size_t n;
	bool more;
	enum store_result r;

	pgp_text(&p, id);
	r = query_events(pg_of(b), "SELECT " EVENT_COLS " FROM events WHERE id=$1", &p, 1, &rows, &n, &more);
	if (r != STORE_OK)
		return r;
	if (n == 0) {
		free(rows);
		return STORE_NOTFOUND;
	}
	*out = rows[0];
	free(rows);
	return STORE_OK;
}

enum store_result pg_history_page(struct store *b, const char *id, int64_t after_seq, int limit,
				  struct store_step **steps, size_t *n, int64_t *next_cursor)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct pgp p = { .n = 0 };
	PGresult *r = NULL, *h = NULL;
	struct store_step *rows = NULL;
	enum store_result out = STORE_ERROR;
	size_t k = 0, total;
	int64_t last = 0;

	if (!c)
		return STORE_ERROR;
	pgp_text(&p, id);
	r = pg_q(st, c, "SELECT received_at FROM events WHERE id=$1", &p);
	if (r && PQntuples(r) == 0)
		out = STORE_NOTFOUND;
	if (r && PQntuples(r) == 1) {
		pgp_int(&p, after_seq);
		/* one more than fits, to know whether a next page exists */
		if (limit > 0)
			pgp_int(&p, limit + 1 - (after_seq == 0));
		else
			pgp_null(&p);
		h = pg_q(st, c, "SELECT step, started_at, ended_at, detail, error, seq FROM history "
				"WHERE event_id=$1 AND seq > $2 ORDER BY seq LIMIT $3", &p);
	}
	pg_put(st, c);
	if (h) {
		total = (size_t)PQntuples(h) + 1;
		rows = calloc(total, sizeof(*rows));
		out = rows ? STORE_OK : STORE_ERROR;
	}
	if (out == STORE_OK && after_seq == 0) {
		/* "received" is the row itself */
		str_copy(rows[k].step, "received", sizeof(rows[k].step));
		rows[k].started_ms = rows[k].ended_ms = pg_int(r, 0, 0);
		k++;
	}
	for (int i = 0; out == STORE_OK && i < PQntuples(h); i++) {
		if (limit > 0 && k == (size_t)limit) {
			*next_cursor = last;
			break;
		}
		str_copy(rows[k].step, pg_str(h, i, 0), sizeof(rows[k].step));
		rows[k].started_ms = pg_int(h, i, 1);
		rows[k].ended_ms = pg_int(h, i, 2);
		rows[k].detail = pg_json(h, i, 3);
		rows[k].error = pg_null_at(h, i, 4) ? NULL : strdup(pg_str(h, i, 4));
		last = pg_int(h, i, 5);
		k++;
	}
	PQclear(r);
	PQclear(h);
	if (out != STORE_OK) {
		store_steps_free(rows, k);
		*next_cursor = 0;
		return out;
	}
	*steps = rows;
	*n = k;
	return STORE_OK;
}

enum store_result pg_list(struct store *b, const struct store_query *q, struct store_event **out, size_t *n,
			  int64_t *next_cursor)
{
	int limit = q->limit > 0 ? q->limit : 100;
	struct pgp p = { .n = 0 };
	bool more;
	enum store_result r;

	pgp_int(&p, q->after_seq);
	pgp_text(&p, q->state);
	pgp_text(&p, q->process_type);
	pgp_text(&p, q->resource_id);
	pgp_int(&p, q->since_ms);
	pgp_int(&p, limit + 1);
	pgp_text(&p, q->handler);
	r = query_events(pg_of(b), "SELECT " EVENT_COLS " FROM events WHERE seq > $1 "
			 "AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR process_type = $3) "
			 "AND ($4::text IS NULL OR resource_id = $4) AND received_at >= $5 "
			 "AND ($7::text IS NULL OR handler = $7) ORDER BY seq LIMIT $6", &p, (size_t)limit, out, n, &more);
	if (r != STORE_OK)
		return r;
	*next_cursor = more && *n ? (*out)[*n - 1].seq : 0;
	return STORE_OK;
}

enum store_result pg_archive_pending(struct store *b, int limit, struct store_event **rows, size_t *n)
{
	struct pgp p = { .n = 0 };
	bool more;

	pgp_int(&p, limit);
	return query_events(pg_of(b), "SELECT " EVENT_COLS " FROM events WHERE finished_at IS NOT NULL AND "
			    "archived_at IS NULL ORDER BY finished_at LIMIT $1", &p, (size_t)limit, rows, n, &more);
}

enum store_result pg_archive_mark(struct store *b, char (*ids)[37], const int64_t *finished_ms, size_t n,
				  int64_t now_ms)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	enum store_result out;

	if (!c)
		return STORE_ERROR;
	out = pg_begin(st, c, true);
	for (size_t i = 0; i < n && out == STORE_OK; i++) {
		struct pgp p = { .n = 0 };
		pgp_int(&p, now_ms);
		pgp_text(&p, ids[i]);
		pgp_int(&p, finished_ms[i]);
		out = pg_do(st, c, "UPDATE events SET archived_at = $1 WHERE id = $2 AND finished_at = $3", &p);
	}
	if (out == STORE_OK)
		out = pg_commit(st, c);
	pg_put(st, c);   /* rolls back what was not committed */
	return out == STORE_OK ? STORE_OK : STORE_ERROR;
}
