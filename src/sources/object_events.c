/* The object source: POST /objects (objects_path). S3 object events, in
 * any of the shapes AWS posts them, checked like hook events (credentials,
 * media type, size, a full queue) before the body is read; each record goes
 * to the first watch that takes it, and the request's records are stored in
 * one commit with their batches: 2xx only once every one is on disk. */
#include "../http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/sns.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/watch.h"

static bool creds_configured(const struct config *cfg)
{
	return cfg->objects_secrets.n > 0 || (cfg->objects_basic_user && cfg->objects_basic_password);
}

enum MHD_Result object_events_headers(struct http *h, struct MHD_Connection *c, struct req *r, bool *answered)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *ct;

	*answered = true;
	if (strcmp(cfg->auth, "none") != 0 || creds_configured(cfg)) {
		const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		if (!creds_configured(cfg))
			return reply_detail(c, 401, "no credentials are configured for this path (objects_secret, or "
					    "objects_basic_user and objects_basic_password)", "WWW-Authenticate", "Bearer");
		switch (auth_check_objects(auth, cfg->objects_secrets.v, cfg->objects_secrets.n, cfg->objects_basic_user,
					   cfg->objects_basic_password)) {
		case AUTH_MISSING:
			return reply_detail(c, 401, "Authorization header is missing", "WWW-Authenticate", "Bearer");
		case AUTH_INVALID:
			return reply_detail(c, 401, "Invalid authorization token", "WWW-Authenticate", "Bearer");
		case AUTH_OK:
			break;
		}
	}
	/* SNS posts text/plain unless its delivery policy says otherwise */
	ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!media_type_is(ct, "application/json") && !media_type_is(ct, "text/plain"))
		return reply_detail(c, 415, "Content-Type must be application/json (or text/plain, as SNS sends)", NULL,
				    NULL);
	return source_admission(h, c, cfg, answered);
}

void object_events_free(struct req *r)
{
	for (size_t i = 0; r->opaths && i < r->objs.n; i++)
		free(r->opaths[i]);
	free(r->opaths);
	free(r->ojobs);
	free(r->oobjs);
	objects_msg_free(&r->objs);
	r->opaths = NULL;
	r->ojobs = NULL;
	r->oobjs = NULL;
}

/* One line per record, and the answer's list. */
static json_t *record_outcome(const struct req *r, size_t i)
{
	const struct store_item *it = &r->ojobs[i];
	const struct store_object *o = &r->oobjs[i];
	const char *outcome = it->result == STORE_DUPLICATE ? "duplicate" : !o->watch ? "not_routed"
				 : o->marker ? "marker" : "stored";
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "bucket", o->rec->bucket, "key", o->rec->key, "object_id", it->id,
			      "outcome", outcome);

	if (o->watch && it->result == STORE_OK) {
		json_object_set_new(j, "watch", json_string(o->watch));
		json_object_set_new(j, "batch_id", json_string(o->batch_id));
		if (o->trigger_id[0])
			json_object_set_new(j, "closed_batch_trigger", json_string(o->trigger_id));
	}
	return j;
}

static enum MHD_Result objects_answer(struct MHD_Connection *c, struct req *r)
{
	size_t stored = 0, dup = 0;
	json_t *list = json_array();

	for (size_t i = 0; i < r->objs.n; i++) {
		enum store_result res = r->ojobs[i].result;
		if (!store_result_stored(res)) {
			json_decref(list);
			if (res == STORE_NOSPACE)
				return reply_detail(c, 503, "event store is full (disk space or max_store_size); retry later",
						    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
			return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
					    HTTP_RETRY_AFTER_S);
		}
		stored += res == STORE_OK;
		dup += res == STORE_DUPLICATE;
		json_array_append_new(list, record_outcome(r, i));
		if (res == STORE_OK && r->oobjs[i].trigger_id[0])
			log_info("batch %s closed (%s: s3://%s/%s); trigger event %s", r->oobjs[i].batch_id,
				 r->oobjs[i].marker ? "marker" : "count", r->oobjs[i].rec->bucket, r->oobjs[i].prefix,
				 r->oobjs[i].trigger_id);
		metrics_object_received(res == STORE_DUPLICATE ? "duplicate" : !r->oobjs[i].watch ? "not_routed"
				       : r->oobjs[i].marker ? "marker" : "stored");
		if (res == STORE_OK && r->oobjs[i].trigger_id[0])
			metrics_batch_closed(r->oobjs[i].marker ? "marker" : "count");
	}
	return reply_json(c, stored ? 202 : 200,
			  json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}", "status", stored ? "accepted" : "duplicate", "format",
				    r->objs.format, "stored", (json_int_t)stored, "duplicates", (json_int_t)dup, "ignored",
				    (json_int_t)r->objs.ignored, "objects", list),
			  NULL, NULL);
}

/* Each record to the first watch that takes it, as one job. */
static bool route_records(struct req *r, const struct config *cfg)
{
	size_t n = r->objs.n;

	r->ojobs = calloc(n, sizeof(*r->ojobs));
	r->oobjs = calloc(n, sizeof(*r->oobjs));
	r->opaths = calloc(n, sizeof(*r->opaths));
	if (!r->ojobs || !r->oobjs || !r->opaths)
		return false;
	return objects_route(cfg, &r->objs, NULL, r->ojobs, r->oobjs, r->opaths);
}

/* Messages with nothing to store: answered 200 at once. */
static enum MHD_Result nothing_to_store(struct MHD_Connection *c, struct req *r)
{
	const char *url = json_string_value(json_object_get(r->objs.sns, "SubscribeURL"));

	const char *topic = json_string_value(json_object_get(r->objs.sns, "TopicArn"));
	char why[600];

	switch (r->objs.kind) {
	case OBJECTS_TEST_EVENT:
		metrics_object_received("ignored");
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ignored", "reason", "s3:TestEvent"), NULL, NULL);
	case OBJECTS_SNS_CONFIRM:
		/* signed by SNS and from an allowed topic (checked before): confirm */
		if (sns_confirm(&r->cfg->cfg, r->objs.sns, why, sizeof(why)) != 0) {
			log_warn("SNS subscription to %s NOT confirmed: %s", topic, why);
			reply_set_reason("SNS subscription not confirmed");
			return reply_detail(c, 502, why, NULL, NULL);
		}
		log_info("SNS subscription to %s confirmed", topic);
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "confirmed", "topic", topic), NULL, NULL);
	case OBJECTS_SNS_UNSUBSCRIBE:
		log_warn("SNS UnsubscribeConfirmation for %s: this endpoint no longer receives that topic%s%s", topic,
			 url ? "; to subscribe again, visit " : "", url ? url : "");
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ignored", "reason", "unsubscribed"), NULL,
				  NULL);
	default:
		metrics_object_received("ignored");
		return reply_json(c, 200, json_pack("{s:s, s:s, s:I}", "status", "ignored", "reason",
						    "no object created or removed event", "ignored",
						    (json_int_t)r->objs.ignored), NULL, NULL);
	}
}

enum MHD_Result object_events_receive(struct http *h, struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	json_t *detail = NULL;
	char msg[160];

	if (r->committed)
		return objects_answer(c, r);
	if (r->submitted)
		return MHD_YES;   /* resumed early: wait for the commit */
	if (r->overflow) {
		snprintf(msg, sizeof(msg), "Request body larger than max_body (%lld bytes)", (long long)cfg->max_body);
		return reply_detail(c, 413, msg, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	switch (objects_parse(r->body.data ? r->body.data : "", r->body.len, (size_t)cfg->max_records, &r->objs,
			      &detail)) {
	case OBJECTS_SYNTAX:
		reply_set_reason("the body is not valid JSON");
		return reply_json(c, 400, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case OBJECTS_INVALID:
		reply_set_reason("invalid object event");
		return reply_json(c, 422, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case OBJECTS_NOMEM:
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	case OBJECTS_OK:
		break;
	}
	/* an SNS envelope is signed: checked before anything it says is used */
	if (r->objs.sns) {
		char why[600];
		if (sns_verify(cfg, r->objs.sns, why, sizeof(why)) != 0) {
			reply_set_reason(why);
			return reply_detail(c, 403, why, NULL, NULL);
		}
	}
	if (r->objs.kind != OBJECTS_RECORDS || r->objs.n == 0)
		return nothing_to_store(c, r);
	if (!route_records(r, cfg))
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	return source_submit(h, c, r, r->ojobs, r->objs.n);
}

void object_events_answered(struct req *r, unsigned status)
{
	(void)r;
	if (status >= 400)
		metrics_object_received(status == 503 ? "unavailable" : "rejected");
}
