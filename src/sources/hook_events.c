/* The LogQS hook source: POST /events. The headers decide what they can
 * (secret, media type, declared size, a full queue) before the body is
 * read; a valid event goes to intake, and the answer waits for its
 * durability ticket: 202 only once the event is on disk. */
#include "../http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/util.h"

/* First callback of POST /events: everything the headers can decide. */
enum MHD_Result hook_events_headers(struct http *h, struct MHD_Connection *c, struct req *r,
				      bool *answered)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *auth, *ct;

	*answered = true;
	if (strcmp(cfg->auth, "none") != 0) {
		auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		switch (auth_check_bearer(auth, cfg->secrets.v, cfg->secrets.n)) {
		case AUTH_MISSING:
			return reply_detail(c, 401, "Authorization header is missing", "WWW-Authenticate", "Bearer");
		case AUTH_INVALID:
			return reply_detail(c, 401, "Invalid authorization token", "WWW-Authenticate", "Bearer");
		case AUTH_OK:
			break;
		}
	}
	ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!content_type_ok(ct))
		return reply_detail(c, 415, "Content-Type must be application/json", NULL, NULL);
	return source_admission(h, c, cfg, answered);
}

/* The answer once the committer has stored (or refused) the event. */
static enum MHD_Result events_answer(struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *id = r->item.id, *rid = r->ev.resource_id;
	char loc[200];

	switch (r->item.result) {
	case STORE_OK:
		log_event(LOG_LVL_INFO, id, rid, "event accepted (%s/%s -> %s)", r->ev.process_type,
			  r->ev.current_state, r->item.handler ? r->item.handler : "unrouted: finished at once");
		if (!r->item.handler)
			metrics_unrouted_finished();
		snprintf(loc, sizeof(loc), "%s/%s", cfg->events_path, id);
		return reply_json(c, 202, json_pack("{s:s, s:s}", "status", "accepted", "event_id", id),
				  MHD_HTTP_HEADER_LOCATION, loc);
	case STORE_DUPLICATE:
		log_event(LOG_LVL_INFO, id, rid, "duplicate delivery answered with the first event");
		snprintf(loc, sizeof(loc), "%s/%s", cfg->events_path, id);
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "duplicate", "event_id", id),
				  MHD_HTTP_HEADER_LOCATION, loc);
	case STORE_FULL:
		return reply_detail(c, 503, "queue full (max_queued unfinished events); retry later",
				    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	case STORE_NOSPACE:
		log_event(LOG_LVL_ERROR, NULL, rid, "event refused: the store is full (disk space or max_store_size)");
		return reply_detail(c, 503, "event store is full (disk space or max_store_size); retry later",
				    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	default:
		log_event(LOG_LVL_ERROR, NULL, rid, "event refused: the store failed");
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
}

/* "invalid event: process_type: Input should be ... (and 2 more)" from
 * FastAPI-style errors: field names and messages, never the values sent. */
static void invalid_reason(json_t *errs)
{
	json_t *first = json_array_get(errs, 0), *loc = json_object_get(first, "loc");
	const char *field = json_string_value(json_array_get(loc, json_array_size(loc) - 1));
	const char *msg = json_string_value(json_object_get(first, "msg"));
	size_t more = json_array_size(errs) > 0 ? json_array_size(errs) - 1 : 0;
	char reason[200];

	snprintf(reason, sizeof(reason), "invalid event: %s: %s%s", field ? field : "body",
		 msg ? msg : "invalid", more ? " (and more)" : "");
	reply_set_reason(reason);
}

enum MHD_Result hook_events_receive(struct http *h, struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	json_t *detail = NULL;
	char msg[128];

	if (r->committed)
		return events_answer(c, r);
	if (r->submitted)
		return MHD_YES;   /* resumed early: wait for the commit */
	if (r->overflow) {
		snprintf(msg, sizeof(msg), "Request body larger than max_body (%lld bytes)", (long long)cfg->max_body);
		return reply_detail(c, 413, msg, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	switch (event_parse(r->body.data ? r->body.data : "", r->body.len, &r->ev, &detail)) {
	case EVENT_SYNTAX:
		/* the parser's text quotes the body: not for the log */
		reply_set_reason("the body is not valid JSON");
		return reply_json(c, 400, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case EVENT_INVALID:
		invalid_reason(detail);
		return reply_json(c, 422, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case EVENT_NOMEM:
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	case EVENT_OK:
		break;
	}
	r->item.ev = &r->ev;
	r->item.handler = router_route(cfg, r->ev.process_type, r->ev.current_state);
	r->item.body = store_event_body(&r->ev);
	if (!r->item.body)
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	return source_submit(h, c, r, &r->item, 1);
}

/* What became of a POST /events, by the status it got. */
static void received_metric(unsigned status)
{
	switch (status) {
	case 202: metrics_event_received("accepted", NULL); break;
	case 200: metrics_event_received("duplicate", NULL); break;
	case 400: metrics_event_received("rejected", "bad_json"); break;
	case 401: metrics_event_received("rejected", "unauthorized"); break;
	case 413: metrics_event_received("rejected", "too_large"); break;
	case 415: metrics_event_received("rejected", "unsupported_media_type"); break;
	case 422: metrics_event_received("rejected", "invalid_event"); break;
	case 503: metrics_event_received("rejected", "unavailable"); break;
	default: metrics_event_received("rejected", "other"); break;
	}
}

void hook_events_answered(struct req *r, unsigned status)
{
	received_metric(status);
	metrics_receive_duration(mono_s() - r->started);
}
