/* The operator's view of events: one event, its history, lists, replay
 * (one or many). JSON is rendered here, from what the store returns. */
#include "../http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/jsonx.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

/* History steps in one page: the default, and the most a client may ask. */
#define HISTORY_PAGE_DEFAULT 500
#define HISTORY_PAGE_MAX 5000
/* Events one bulk replay call takes at most (a client pages on). */
#define REPLAY_PAGE_DEFAULT 500
#define REPLAY_PAGE_MAX 5000

static enum MHD_Result store_unavailable(struct MHD_Connection *c)
{
	return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
			    HTTP_RETRY_AFTER_S);
}

static int64_t parse_since(const char *s)
{
	int64_t v;

	if (parse_i64(s, &v) == 0)
		return v * 1000;   /* seconds since the epoch */
	return iso8601_parse(s, &v) == 0 ? v : -1;
}

/* The filters GET /events and POST /events/replay share. Returns NULL, or
 * the 400 message. rid holds the canonical resource id. */
static const char *query_filters(struct MHD_Connection *c, struct store_query *q, char rid[37], int def_limit,
				 int max_limit)
{
	static _Thread_local char msg[160];
	const char *v;
	int64_t n;

	q->state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	if (q->state && !name_in(event_states, q->state)) {
		char all[96];
		names_join(event_states, ", ", all, sizeof(all));
		snprintf(msg, sizeof(msg), "state must be one of %s", all);
		return msg;
	}
	q->process_type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "process_type");
	/* "batch": the trigger events of closed batches */
	if (q->process_type && !event_type_valid(q->process_type) && strcmp(q->process_type, "batch") != 0)
		return "process_type must be a LogQS ProcessType, or batch";
	q->handler = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "handler");
	if (q->handler && !router_handler_find(q->handler))
		return "handler must be the name of a compiled-in handler";
	q->resource_id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resource_id");
	if (q->resource_id) {
		if (!uuid_canonical(q->resource_id, rid))
			return "resource_id must be a UUID";
		q->resource_id = rid;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"))) {
		q->since_ms = parse_since(v);
		if (q->since_ms < 0)
			return "since must be epoch seconds or YYYY-MM-DDTHH:MM:SS (UTC)";
	}
	q->limit = def_limit;
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
		if (parse_i64(v, &n) || n < 1 || n > max_limit) {
			snprintf(msg, sizeof(msg), "limit must be an integer from 1 to %d", max_limit);
			return msg;
		}
		q->limit = (int)n;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor"))) {
		if (parse_i64(v, &n) || n < 0)
			return "cursor must be a next_cursor value from an earlier page";
		q->after_seq = n;
	}
	return NULL;
}

enum MHD_Result api_events_list(struct http *h, struct MHD_Connection *c, struct req *r)
{
	(void)r;
	struct store_query q = { 0 };
	char rid[37];
	const char *bad = query_filters(c, &q, rid, 100, 1000);

	struct store_event *rows;
	size_t n;
	int64_t next;
	json_t *data;

	if (bad)
		return reply_detail(c, 400, bad, NULL, NULL);
	if (store_list(h->st, &q, &rows, &n, &next) != STORE_OK)
		return store_unavailable(c);
	data = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(data, store_event_json(&rows[i]));
	store_events_free(rows, n);
	return reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_cursor", json_cursor_or_null(next)), NULL, NULL);
}

/* POST /events/replay?state=failed[&since=…][&handler=…][&dry_run=true]:
 * one bad API key turns every event into a dead letter, and this brings
 * them back at once, a page at a time (next_cursor). */
enum MHD_Result api_events_replay_many(struct http *h, struct MHD_Connection *c, struct req *r)
{
	(void)r;
	struct store_query q = { 0 };
	char rid[37];
	const char *bad = query_filters(c, &q, rid, REPLAY_PAGE_DEFAULT, REPLAY_PAGE_MAX);
	const char *dry = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dry_run");
	bool dry_run = false;
	int64_t next = 0;
	json_t *ids;

	if (bad)
		return reply_detail(c, 400, bad, NULL, NULL);
	if (!q.state || (strcmp(q.state, ST_FAILED) != 0 && strcmp(q.state, ST_COMPLETED) != 0))
		return reply_detail(c, 400, "state must be failed or completed (only finished events can be replayed)",
				    NULL, NULL);
	if (dry && parse_bool(dry, &dry_run))
		return reply_detail(c, 400, "dry_run must be true or false", NULL, NULL);
	ids = json_array();
	if (!ids || store_replay_matching(h->st, &q, dry_run, ids, &next) != STORE_OK) {
		json_decref(ids);
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
	if (!dry_run && json_array_size(ids)) {
		log_info("%zu %s event(s) replayed by an operator", json_array_size(ids), q.state);
		workers_kick_n(h->w, (int)json_array_size(ids));
	}
	return reply_json(c, dry_run ? 200 : 202,
			  json_pack("{s:s, s:I, s:o, s:o}", "status", dry_run ? "dry_run" : "replayed", "count",
				    (json_int_t)json_array_size(ids), "event_ids", ids, "next_cursor", json_cursor_or_null(next)),
			  NULL, NULL);
}

/* The {id} of the path as a canonical UUID; false after answering 400. */
static bool event_id(struct MHD_Connection *c, const struct req *r, char id[37], enum MHD_Result *ret)
{
	if (uuid_canonical(r->id, id))
		return true;
	*ret = reply_detail(c, 400, "event id must be a UUID", NULL, NULL);
	return false;
}

enum MHD_Result api_event_get(struct http *h, struct MHD_Connection *c, struct req *r)
{
	enum MHD_Result ret;
	char id[37];
	struct store_event e;

	if (!event_id(c, r, id, &ret))
		return ret;
	switch (store_get(h->st, id, &e)) {
	case STORE_OK:
		ret = reply_json(c, 200, store_event_json(&e), NULL, NULL);
		store_event_clear(&e);
		return ret;
	case STORE_NOTFOUND:
		return reply_detail(c, 404, "event not found", NULL, NULL);
	default:
		/* the disk failed, not the id: never a 404 */
		return store_unavailable(c);
	}
}

enum MHD_Result api_event_history(struct http *h, struct MHD_Connection *c, struct req *r)
{
	enum MHD_Result ret;
	char id[37];
	struct store_step *steps;
	size_t k;
	json_t *doc;
	const char *v;
	int64_t n, cursor = 0, next = 0;
	int limit = HISTORY_PAGE_DEFAULT;

	if (!event_id(c, r, id, &ret))
		return ret;
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
		if (parse_i64(v, &n) || n < 1 || n > HISTORY_PAGE_MAX)
			return reply_detail(c, 400, "limit must be an integer from 1 to 5000", NULL, NULL);
		limit = (int)n;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor"))) {
		if (parse_i64(v, &n) || n < 0)
			return reply_detail(c, 400, "cursor must be a next_cursor value from an earlier page", NULL,
					    NULL);
		cursor = n;
	}
	switch (store_history_page(h->st, id, cursor, limit, &steps, &k, &next)) {
	case STORE_OK:
		doc = json_array();
		for (size_t i = 0; i < k; i++)
			json_array_append_new(doc, store_step_json(&steps[i]));
		store_steps_free(steps, k);
		return reply_json(c, 200, json_pack("{s:s, s:o, s:o}", "event_id", id, "history", doc,
						     "next_cursor", json_cursor_or_null(next)), NULL, NULL);
	case STORE_NOTFOUND:
		return reply_detail(c, 404, "event not found", NULL, NULL);
	default:
		return store_unavailable(c);
	}
}

enum MHD_Result api_event_replay(struct http *h, struct MHD_Connection *c, struct req *r)
{
	enum MHD_Result ret;
	char id[37];

	if (!event_id(c, r, id, &ret))
		return ret;
	switch (store_replay(h->st, id)) {
	case STORE_OK:
		log_event(LOG_LVL_INFO, id, NULL, "event replayed by an operator");
		workers_kick(h->w);
		return reply_json(c, 202, json_pack("{s:s, s:s}", "status", "replayed", "event_id", id), NULL, NULL);
	case STORE_NOTFOUND:
		return reply_detail(c, 404, "event not found", NULL, NULL);
	case STORE_CONFLICT:
		return reply_detail(c, 409, "event is not finished; only completed or failed events can be replayed",
				    NULL, NULL);
	default:
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
}
