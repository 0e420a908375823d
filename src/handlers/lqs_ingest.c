/* lqs_ingest: when a batch closes, make its objects LogQS ingestions: find
 * the object store of the bucket, find or create the group and the log
 * (named from the batch's folder), and create one ingestion per object that
 * has none in that log yet. Every step looks before it creates, so a rerun
 * (after a crash, a retry, a replay) creates no second log and no second
 * ingestion for a key. Creations of one log are serialised by the store's
 * advisory lock, among every daemon on the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/handlers.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/util.h"

static const char *const ingest_settings[] = { "group", "log_name", "ingestion_state", "workflow_id",
						"workflow_context", NULL };

static const char *setting(const json_t *s, const char *key)
{
	return json_string_value(json_object_get(s, key));
}

/* The log's name from its template: {bucket}, {prefix}, {folder} (the
 * prefix without its last '/', or the bucket for the root), {batch_id},
 * {watch}. NULL with why on an unknown placeholder. */
static char *log_name(const char *tpl, json_t *batch, char *why, size_t whylen)
{
	const char *prefix = json_string_value(json_object_get(batch, "prefix"));
	const char *bucket = json_string_value(json_object_get(batch, "bucket"));
	struct buf b;

	buf_init(&b, 4096);
	for (const char *p = tpl; *p;) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		size_t n = close ? (size_t)(close - p - 1) : 0;
		if (!close) {
			buf_append(&b, p++, 1);
			continue;
		}
		if (n == 6 && strncmp(p + 1, "folder", 6) == 0) {
			size_t len = prefix ? strlen(prefix) : 0;
			if (len)
				buf_append(&b, prefix, prefix[len - 1] == '/' ? len - 1 : len);
			else
				buf_append_str(&b, bucket ? bucket : "");
		} else if ((n == 6 && strncmp(p + 1, "bucket", 6) == 0) || (n == 6 && strncmp(p + 1, "prefix", 6) == 0) ||
			   (n == 8 && strncmp(p + 1, "batch_id", 8) == 0) || (n == 5 && strncmp(p + 1, "watch", 5) == 0)) {
			char key[16];
			snprintf(key, sizeof(key), "%.*s", (int)n, p + 1);
			buf_append_str(&b, json_string_value(json_object_get(batch, key)) ?: "");
		} else {
			snprintf(why, whylen, "log_name: unknown placeholder {%.*s} (known: {folder}, {bucket}, {prefix}, "
				 "{batch_id}, {watch})", (int)(n < 40 ? n : 40), p + 1);
			buf_free(&b);
			return NULL;
		}
		p = close + 1;
	}
	if (!b.data || !b.len) {
		snprintf(why, whylen, "log_name: renders to an empty name");
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static int ingest_check(const json_t *s, char *why, size_t whylen)
{
	const char *state = setting(s, "ingestion_state"), *wf = setting(s, "workflow_id");
	const char *ctxs = setting(s, "workflow_context");
	json_t *batch = json_pack("{s:s, s:s, s:s, s:s}", "bucket", "b", "prefix", "p/", "batch_id", "x", "watch", "w");
	char canon[37], *name;
	json_t *wc = NULL;
	int rc = -1;

	if (!setting(s, "group") || !*setting(s, "group"))
		snprintf(why, whylen, "group: the LogQS group the logs go in is required");
	else if (state && strcmp(state, "queued") != 0 && strcmp(state, "ready") != 0)
		snprintf(why, whylen, "ingestion_state: queued or ready, not '%s'", state);
	else if (wf && !uuid_canonical(wf, canon))
		snprintf(why, whylen, "workflow_id: '%s' is not a UUID", wf);
	else if (ctxs && (!(wc = json_loads(ctxs, 0, NULL)) || !json_is_object(wc)))
		snprintf(why, whylen, "workflow_context: a JSON object");
	else if ((name = log_name(setting(s, "log_name") ? setting(s, "log_name") : "{folder}", batch, why, whylen))) {
		free(name);
		rc = 0;
	}
	json_decref(wc);
	json_decref(batch);
	return rc;
}

/* The first item of a list, kept (lqs_list's callback). */
static int keep_first(void *ctx, json_t *item)
{
	json_t **out = ctx;

	if (!*out)
		*out = json_incref(item);
	return 0;
}

/* The object store of the bucket: not disabled, its key_prefix (if any) a
 * prefix of the batch's path, the longest such prefix. */
struct store_pick {
	const char *prefix;
	json_t *best;
	size_t best_len;
};

static int pick_store(void *ctx, json_t *item)
{
	struct store_pick *p = ctx;
	const char *kp = json_string_value(json_object_get(item, "key_prefix"));
	size_t n = kp ? strlen(kp) : 0;

	if (json_is_true(json_object_get(item, "disabled")))
		return 0;
	if (kp && strncmp(p->prefix, kp, n) != 0)
		return 0;
	if (!p->best || n > p->best_len) {
		json_decref(p->best);
		p->best = json_incref(item);
		p->best_len = n;
	}
	return 0;
}

/* Find by filter, else create from body (taken); a 409 (someone created
 * it meanwhile) finds it again. Returns the resource's id, or NULL with err. */
static char *find_or_create(struct lqs_client *c, const char *collection, const char *filter, json_t *body,
			    struct lqs_error *err)
{
	json_t *found = NULL, *made = NULL;
	char *id = NULL;

	for (int round = 0; round < 2 && !found; round++) {
		if (lqs_list(c, collection, filter, keep_first, &found, err) != 0)
			break;
		if (found || round == 1)
			break;
		if (lqs_post(c, collection, body, &made, err) == 0) {
			found = made;
			break;
		}
		if (err->status != 409)
			break;
	}
	if (found && json_is_string(json_object_get(found, "id")))
		id = strdup(json_string_value(json_object_get(found, "id")));
	json_decref(found);
	json_decref(body);
	return id;
}

static enum handler_status fail(struct handler_out *out, const char *name, const char *msg)
{
	str_copy(out->error_name, name, sizeof(out->error_name));
	str_copy(out->error, msg, sizeof(out->error));
	return HANDLER_FAIL;
}

/* One ingestion per created object that has none in the log. */
static enum handler_status ingest_objects(struct handler_ctx *ctx, const json_t *s, const char *log_id,
					  const char *store_id, json_t *result, struct handler_out *out)
{
	json_t *objects = json_object_get(ctx->event, "objects"), *o, *ids = json_object_get(result, "ingestions");
	const char *state = setting(s, "ingestion_state") ? setting(s, "ingestion_state") : "queued";
	int64_t created = 0, existing = 0;
	struct lqs_error err;
	size_t i;

	json_array_foreach(objects, i, o) {
		const char *key = json_string_value(json_object_get(o, "key"));
		json_t *found = NULL, *made = NULL, *body;
		char *ek, filter[2400];
		if (!key || strcmp(json_string_value(json_object_get(o, "kind")) ?: "created", "created") != 0)
			continue;
		ek = lqs_query_escape(key);
		snprintf(filter, sizeof(filter), "log_id=%s&object_store_id=%s&object_key=%s", log_id, store_id, ek);
		free(ek);
		if (lqs_list(ctx->lqs, "ingestions", filter, keep_first, &found, &err) != 0)
			return handler_from_lqs(&err, out);
		if (found) {
			existing++;
			json_array_append(ids, json_object_get(found, "id"));
			json_decref(found);
			continue;
		}
		body = json_pack("{s:s, s:s, s:n, s:n, s:s, s:s, s:b, s:s}", "log_id", log_id, "name", key, "note", "context",
				 "object_store_id", store_id, "object_key", key, "locked", 0, "state", state);
		if (setting(s, "workflow_id"))
			json_object_set_new(body, "workflow_id", json_string(setting(s, "workflow_id")));
		if (setting(s, "workflow_context"))
			json_object_set_new(body, "workflow_context", json_loads(setting(s, "workflow_context"), 0, NULL));
		if (lqs_post(ctx->lqs, "ingestions", body, &made, &err) != 0) {
			json_decref(body);
			return handler_from_lqs(&err, out);
		}
		json_decref(body);
		json_array_append(ids, json_object_get(made, "id"));
		json_decref(made);
		created++;
	}
	json_object_set_new(result, "created", json_integer(created));
	json_object_set_new(result, "existing", json_integer(existing));
	return HANDLER_OK;
}

static enum handler_status ingest_run(struct handler_ctx *ctx, struct handler_out *out)
{
	const char *watch = json_string_value(json_object_get(ctx->event, "watch"));
	const char *bucket = json_string_value(json_object_get(ctx->event, "bucket"));
	const char *prefix = json_string_value(json_object_get(ctx->event, "prefix"));
	const struct watch_cfg *w = watch ? config_watch(ctx->cfg, watch) : NULL;
	const json_t *s = w ? w->settings : NULL;
	struct store_pick pick = { .prefix = prefix ? prefix : "" };
	char filter[1400], lock[400], *name, *group_id = NULL, *log_id = NULL, *esc, *eb;
	enum handler_status st = HANDLER_OK;
	struct lqs_error err;
	json_t *result;

	if (!setting(s, "group"))
		return fail(out, "NotConfigured", "the batch's watch is no longer configured with a group");
	name = log_name(setting(s, "log_name") ? setting(s, "log_name") : "{folder}", ctx->event, out->error,
			sizeof(out->error));
	if (!name || !bucket)
		return fail(out, "BadTemplate", name ? "the batch has no bucket" : out->error);
	eb = lqs_query_escape(bucket);
	snprintf(filter, sizeof(filter), "bucket_name=%s", eb);
	free(eb);
	memset(&err, 0, sizeof(err));
	if (lqs_list(ctx->lqs, "objectStores", filter, pick_store, &pick, &err) != 0) {
		free(name);
		return handler_from_lqs(&err, out);
	}
	if (!pick.best) {
		snprintf(out->error, sizeof(out->error), "no enabled LogQS object store holds s3://%s/%s", bucket,
			 pick.prefix);
		free(name);
		return fail(out, "NoObjectStore", out->error);
	}
	result = json_pack("{s:O, s:s, s:s, s:[]}", "object_store_id", json_object_get(pick.best, "id"), "group",
			   setting(s, "group"), "log_name", name, "ingestions");
	/* one creator of a log at a time, whichever daemon runs which batch */
	snprintf(lock, sizeof(lock), "log:%s/%s", setting(s, "group"), name);
	if (ctx->lock)
		ctx->lock(ctx, lock);
	esc = lqs_query_escape(setting(s, "group"));
	snprintf(filter, sizeof(filter), "name=%s", esc);
	free(esc);
	group_id = find_or_create(ctx->lqs, "groups", filter,
				  json_pack("{s:s, s:n, s:n, s:b, s:n}", "name", setting(s, "group"), "note", "context",
					    "locked", 0, "default_workflow_id"), &err);
	if (group_id) {
		esc = lqs_query_escape(name);
		snprintf(filter, sizeof(filter), "group_id=%s&name=%s", group_id, esc);
		free(esc);
		log_id = find_or_create(ctx->lqs, "logs", filter,
					json_pack("{s:s, s:s, s:n, s:n, s:b}", "group_id", group_id, "name", name, "note",
						  "context", "locked", 0), &err);
	}
	if (ctx->unlock)
		ctx->unlock(ctx, lock);
	if (!group_id || !log_id) {
		if (!err.message[0])
			snprintf(err.message, sizeof(err.message), "LogQS created the %s, then did not list it",
				 group_id ? "log" : "group");
		st = handler_from_lqs(&err, out);
	} else {
		json_object_set_new(result, "group_id", json_string(group_id));
		json_object_set_new(result, "log_id", json_string(log_id));
		st = ingest_objects(ctx, s, log_id, json_string_value(json_object_get(pick.best, "id")), result, out);
	}
	if (st == HANDLER_OK)
		out->result = json_incref(result);
	json_decref(result);
	json_decref(pick.best);
	free(group_id);
	free(log_id);
	free(name);
	return st;
}

const struct handler_def handler_lqs_ingest = {
	.name = "lqs_ingest",
	.description = "make a closed batch's objects LogQS ingestions, in one log of a group",
	.run = ingest_run,
	.batches = true,
	.settings = ingest_settings,
	.check = ingest_check,
};
