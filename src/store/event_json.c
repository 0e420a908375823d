/* The JSON views of what the store returns: an event's status document
 * and a history step, as the API serves them and the archive keeps them. */
#include <string.h>

#include <jansson.h>

#include "lqs-hookd/jsonx.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/store.h"

static json_t *or_null(json_t *v)
{
	return v ? json_incref(v) : json_null();
}

/* The status document: the okdata-style trace view of one event. */
json_t *store_event_json(const struct store_event *e)
{
	bool done = strcmp(e->state, ST_COMPLETED) == 0 || strcmp(e->state, ST_FAILED) == 0;
	const char *trace = done ? "FINISHED"
			       : e->attempts == 0 && strcmp(e->state, ST_QUEUED) == 0 ? "STARTED" : "CONTINUE";
	json_t *o = json_object();

	json_object_set_new(o, "event_id", json_string(e->id));
	json_object_set_new(o, "received_at", json_time_or_null(e->received_ms));
	json_object_set_new(o, "updated_at", json_time_or_null(e->updated_ms));
	json_object_set_new(o, "event", or_null(e->event));
	/* a hook delivery, or "sweep:NAME" (found by a sweep) */
	json_object_set_new(o, "source", json_string(e->source[0] ? e->source : "hook"));
	json_object_set_new(o, "handler", e->handler[0] ? json_string(e->handler) : json_null());
	json_object_set_new(o, "state", json_string(e->state));
	json_object_set_new(o, "trace_status", json_string(trace));
	json_object_set_new(o, "trace_event_status", json_string(strcmp(e->state, ST_FAILED) == 0 ? "FAILED" : "OK"));
	json_object_set_new(o, "done", json_boolean(done));
	json_object_set_new(o, "attempts", json_integer(e->attempts));
	json_object_set_new(o, "next_attempt_at",
			    strcmp(e->state, ST_RETRYING) == 0 ? json_time_or_null(e->next_run_ms) : json_null());
	json_object_set_new(o, "result", or_null(e->result));
	json_object_set_new(o, "error", e->error ? json_string(e->error) : json_null());
	json_object_set_new(o, "finished_at", json_time_or_null(e->finished_ms));
	/* what the running (or last) attempt reported while it ran */
	json_object_set_new(o, "progress", or_null(e->progress));
	json_object_set_new(o, "replayed", json_boolean(e->flags & EVENT_FLAG_REPLAYED));
	return o;
}

json_t *store_step_json(const struct store_step *h)
{
	json_t *o = json_object();

	json_object_set_new(o, "step", json_string(h->step));
	json_object_set_new(o, "started_at", json_time_or_null(h->started_ms));
	json_object_set_new(o, "ended_at", json_time_or_null(h->ended_ms));
	json_object_set_new(o, "duration_ms", h->ended_ms ? json_integer(h->ended_ms - h->started_ms) : json_null());
	json_object_set_new(o, "detail", or_null(h->detail));
	json_object_set_new(o, "error", h->error ? json_string(h->error) : json_null());
	return o;
}
