/* The change feed from PostgreSQL. Its seqs are taken when a row is
 * written, not when its transaction commits, so seq order is not the order
 * in which rows become visible: a reader that went by seq alone would step
 * over a row whose transaction committed late. Each source is read instead
 * in (writing transaction, seq) order, and only as far as the oldest
 * transaction still running: everything before that is settled, and
 * nothing can appear behind a cursor any more. A transaction held open on
 * the server delays the feed by as long. */
#include "pg_int.h"

#include <stdio.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

#define SETTLED "tx < pg_snapshot_xmin(pg_current_snapshot())"
#define AFTER "(tx, seq) > ($1::text::xid8, $2)"

static const char *const heads[3] = {
	"SELECT tx::text::bigint, seq FROM events WHERE " SETTLED " ORDER BY tx DESC, seq DESC LIMIT 1",
	"SELECT tx::text::bigint, seq FROM history WHERE " SETTLED " ORDER BY tx DESC, seq DESC LIMIT 1",
	"SELECT tx::text::bigint, seq FROM batches WHERE " SETTLED " ORDER BY tx DESC, seq DESC LIMIT 1",
};

/* Each: tx, seq, id, what, at, handler, resource, process type, event
 * state, step state, attempt, error. */
static const char *const reads[3] = {
	"SELECT tx::text::bigint, seq, id, 'received', received_at, handler, resource_id, process_type, state, NULL, "
	"0, NULL FROM events WHERE " AFTER " AND " SETTLED " ORDER BY tx, seq LIMIT $3",
	"SELECT h.tx::text::bigint, h.seq, h.event_id, h.step, h.started_at, e.handler, e.resource_id, e.process_type, "
	"e.state, h.detail::json->>'state', coalesce((h.detail::json->>'attempt')::integer, 0), h.error "
	"FROM (SELECT * FROM history WHERE " AFTER " AND " SETTLED " ORDER BY tx, seq LIMIT $3) h "
	"LEFT JOIN events e ON e.id = h.event_id ORDER BY h.tx, h.seq",
	"SELECT tx::text::bigint, seq, id, 'batch_opened', opened_at, watch, prefix, 'batch', state, bucket, 0, NULL "
	"FROM batches WHERE " AFTER " AND " SETTLED " ORDER BY tx, seq LIMIT $3",
};

static int64_t *pos_seq(struct store_cursor *c, int src)
{
	return src == 0 ? &c->received : src == 1 ? &c->steps : &c->batches;
}

static int64_t *pos_tx(struct store_cursor *c, int src)
{
	return src == 0 ? &c->received_tx : src == 1 ? &c->steps_tx : &c->batches_tx;
}

enum store_result pg_changes_head(struct store *b, struct store_cursor *head)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	enum store_result out = STORE_OK;

	if (!c)
		return STORE_ERROR;
	for (int src = 0; src < 3 && out == STORE_OK; src++) {
		PGresult *r = pg_q(st, c, heads[src], NULL);
		if (!r) {
			out = STORE_ERROR;
			break;
		}
		if (PQntuples(r) == 1) {
			*pos_tx(head, src) = pg_int(r, 0, 0);
			*pos_seq(head, src) = pg_int(r, 0, 1);
		}
		PQclear(r);
	}
	pg_put(st, c);
	return out;
}

static void fill(PGresult *r, int i, struct store_change *c)
{
	memset(c, 0, sizeof(*c));
	str_copy(c->event_id, pg_str(r, i, 2), sizeof(c->event_id));
	str_copy(c->what, pg_str(r, i, 3), sizeof(c->what));
	c->at_ms = pg_int(r, i, 4);
	str_copy(c->handler, pg_str(r, i, 5), sizeof(c->handler));
	str_copy(c->resource_id, pg_str(r, i, 6), sizeof(c->resource_id));
	str_copy(c->process_type, pg_str(r, i, 7), sizeof(c->process_type));
	str_copy(c->event_state, pg_str(r, i, 8), sizeof(c->event_state));
	str_copy(c->step_state, pg_str(r, i, 9), sizeof(c->step_state));
	c->attempt = (int)pg_int(r, i, 10);
	str_copy(c->error, pg_str(r, i, 11), sizeof(c->error));
}

/* Three sources, each in its own order, merged by time. */
enum store_result pg_changes(struct store *b, const struct store_cursor *after, struct store_change *out, size_t max,
			     size_t *n)
{
	struct pgs *st = pg_of(b);
	struct pgc *c = pg_get(st);
	struct store_cursor at = *after;
	PGresult *r[3] = { NULL, NULL, NULL };
	int next[3] = { 0, 0, 0 };
	enum store_result res = STORE_OK;
	size_t k = 0;

	if (!c)
		return STORE_ERROR;
	for (int src = 0; src < 3; src++) {
		struct pgp p = { .n = 0 };
		pgp_int(&p, *pos_tx(&at, src));
		pgp_int(&p, *pos_seq(&at, src));
		pgp_int(&p, (int64_t)max);
		r[src] = pg_q(st, c, reads[src], &p);
		if (!r[src])
			res = STORE_ERROR;
	}
	pg_put(st, c);
	while (res == STORE_OK && k < max) {
		int best = -1;
		for (int src = 0; src < 3; src++)
			if (next[src] < PQntuples(r[src]) &&
			    (best < 0 || pg_int(r[src], next[src], 4) < pg_int(r[best], next[best], 4)))
				best = src;
		if (best < 0)
			break;
		fill(r[best], next[best], &out[k]);
		*pos_tx(&at, best) = pg_int(r[best], next[best], 0);
		*pos_seq(&at, best) = pg_int(r[best], next[best], 1);
		out[k++].cursor = at;
		next[best]++;
	}
	for (int src = 0; src < 3; src++)
		PQclear(r[src]);
	*n = res == STORE_OK ? k : 0;
	return res;
}
