/* Batches of objects, for operators: GET /batches?state=open|closed and
 * GET /batches/{id} (its objects, times, close reason, trigger event). */
#include "../http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/jsonx.h"
#include "lqs-hookd/util.h"

#define BATCHES_PAGE_DEFAULT 100
#define BATCHES_PAGE_MAX 1000

static json_t *batch_json(const struct store_batch *b)
{
	char path[1200];

	snprintf(path, sizeof(path), "s3://%s/%s", b->bucket, b->prefix ? b->prefix : "");
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "batch_id", b->id, "watch", b->watch, "bucket",
			      b->bucket, "prefix", b->prefix ? b->prefix : "", "path", path, "state", b->state, "objects",
			      (json_int_t)b->objects);

	json_object_set_new(o, "opened_at", json_time_or_null(b->opened_ms));
	json_object_set_new(o, "last_object_at", json_time_or_null(b->last_object_ms));
	json_object_set_new(o, "closes_at", json_time_or_null(b->due_ms));
	json_object_set_new(o, "closed_at", json_time_or_null(b->closed_ms));
	json_object_set_new(o, "close_reason", json_str_or_null(b->reason));
	json_object_set_new(o, "trigger_event_id", json_str_or_null(b->trigger_event_id));
	return o;
}

enum MHD_Result api_batches_list(struct http *h, struct MHD_Connection *c, struct req *r)
{
	const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	const char *v;
	struct store_batch *rows;
	int64_t n, after = 0, next;
	int limit = BATCHES_PAGE_DEFAULT;
	size_t k;
	json_t *data;

	(void)r;
	if (state && strcmp(state, "open") != 0 && strcmp(state, "closed") != 0)
		return reply_detail(c, 400, "state must be open or closed", NULL, NULL);
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
		if (parse_i64(v, &n) || n < 1 || n > BATCHES_PAGE_MAX)
			return reply_detail(c, 400, "limit must be an integer from 1 to 1000", NULL, NULL);
		limit = (int)n;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor")) && (parse_i64(v, &after) || after < 0))
		return reply_detail(c, 400, "cursor must be a next_cursor value from an earlier page", NULL, NULL);
	if (store_batches_list(h->st, state, after, limit, &rows, &k, &next) != STORE_OK)
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	data = json_array();
	for (size_t i = 0; i < k; i++) {
		json_array_append_new(data, batch_json(&rows[i]));
		store_batch_clear(&rows[i]);
	}
	free(rows);
	return reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_cursor", json_cursor_or_null(next)), NULL,
			  NULL);
}

enum MHD_Result api_batch_get(struct http *h, struct MHD_Connection *c, struct req *r)
{
	struct store_batch b;
	char id[37];
	json_t *o;

	if (!uuid_canonical(r->id, id))
		return reply_detail(c, 400, "batch id must be a UUID", NULL, NULL);
	switch (store_batch_get(h->st, id, &b)) {
	case STORE_OK:
		break;
	case STORE_NOTFOUND:
		return reply_detail(c, 404, "no such batch", NULL, NULL);
	default:
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
	o = batch_json(&b);
	json_object_set_new(o, "keys", b.keys ? json_incref(b.keys) : json_array());
	store_batch_clear(&b);
	return reply_json(c, 200, o, NULL, NULL);
}
