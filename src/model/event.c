#include "lqs-hookd/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

static const char *const *const states = lqs_process_states;
static const char *const *const types = lqs_process_types;

bool event_state_valid(const char *s)
{
	return name_in(states, s);
}

bool event_type_valid(const char *s)
{
	return name_in(types, s);
}

/* "'a', 'b' or 'c'", as pydantic words the expected values. */
static void expected_text(const char *const *list, char *out, size_t n)
{
	size_t len = 0, count = 0;

	while (list[count])
		count++;
	out[0] = '\0';
	for (size_t i = 0; i < count && len < n; i++) {
		const char *sep = i == 0 ? "" : (i + 1 == count ? " or " : ", ");
		len += (size_t)snprintf(out + len, n - len, "%s'%s'", sep, list[i]);
	}
}

static void add_err(json_t *errs, const char *field, const char *type, const char *msg,
		    json_t *ctx)
{
	json_t *e = json_pack("{s:[s,s], s:s, s:s}", "loc", "body", field, "msg", msg, "type", type);

	if (e && ctx)
		json_object_set_new(e, "ctx", ctx);
	else if (ctx)
		json_decref(ctx);
	if (e)
		json_array_append_new(errs, e);
}

enum kind { K_STATE, K_TYPE, K_UUID, K_STRING };

struct field_spec {
	const char *name;
	enum kind kind;
	bool required;
	size_t offset;   /* char[] in struct event, or the char* for K_STRING */
	size_t size;
};

#define EF(f) offsetof(struct event, f), sizeof(((struct event *)0)->f)

static const struct field_spec fields[] = {
	{ "previous_state", K_STATE, false, EF(previous_state) },
	{ "current_state", K_STATE, true, EF(current_state) },
	{ "process_type", K_TYPE, true, EF(process_type) },
	{ "resource_id", K_UUID, true, EF(resource_id) },
	{ "workflow_id", K_UUID, false, EF(workflow_id) },
	{ "hook_id", K_UUID, false, EF(hook_id) },
	{ "datastore_id", K_UUID, false, EF(datastore_id) },
	{ "datastore_endpoint", K_STRING, false, EF(datastore_endpoint) },
};

static void check_field(json_t *doc, const struct field_spec *f, struct event *ev, json_t *errs)
{
	json_t *v = json_object_get(doc, f->name);
	char *dst = (char *)ev + f->offset;
	char expected[256], msg[320], canon[37];
	const char *s;

	if (!v || json_is_null(v)) {
		if (f->required)
			add_err(errs, f->name, "missing", "Field required", NULL);
		return;
	}
	switch (f->kind) {
	case K_STATE:
	case K_TYPE: {
		const char *const *list = f->kind == K_STATE ? states : types;
		expected_text(list, expected, sizeof(expected));
		if (!json_is_string(v) || !name_in(list, json_string_value(v))) {
			snprintf(msg, sizeof(msg), "Input should be %s", expected);
			add_err(errs, f->name, "enum", msg, json_pack("{s:s}", "expected", expected));
			return;
		}
		str_copy(dst, json_string_value(v), f->size);
		return;
	}
	case K_UUID:
		if (!json_is_string(v)) {
			add_err(errs, f->name, "uuid_type", "UUID input should be a string", NULL);
			return;
		}
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v) || !uuid_canonical(s, canon)) {
			add_err(errs, f->name, "uuid_parsing",
				"Input should be a valid UUID in the hyphenated 8-4-4-4-12 form", NULL);
			return;
		}
		memcpy(dst, canon, 37);
		return;
	case K_STRING:
		if (!json_is_string(v)) {
			add_err(errs, f->name, "string_type", "Input should be a valid string", NULL);
			return;
		}
		if (json_string_length(v) > EVENT_MAX_ENDPOINT) {
			snprintf(msg, sizeof(msg), "String should have at most %d characters", EVENT_MAX_ENDPOINT);
			add_err(errs, f->name, "string_too_long", msg, NULL);
			return;
		}
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			add_err(errs, f->name, "string_type", "Input should not contain NUL characters", NULL);
			return;
		}
		free(ev->datastore_endpoint);
		ev->datastore_endpoint = strdup(json_string_value(v));
		return;
	}
}

enum event_parse_result event_from_json(json_t *doc, struct event *ev, json_t **detail)
{
	json_t *errs;

	memset(ev, 0, sizeof(*ev));
	*detail = NULL;
	errs = json_array();
	if (!errs)
		return EVENT_NOMEM;
	if (!json_is_object(doc)) {
		json_t *e = json_pack("{s:[s], s:s, s:s}", "loc", "body", "msg",
				      "Input should be a valid dictionary or object to extract fields from",
				      "type", "model_attributes_type");
		if (e)
			json_array_append_new(errs, e);
	} else {
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			check_field(doc, &fields[i], ev, errs);
	}
	if (json_array_size(errs)) {
		event_free(ev);
		*detail = errs;
		return EVENT_INVALID;
	}
	json_decref(errs);
	return EVENT_OK;
}

enum event_parse_result event_parse(const char *body, size_t len, struct event *ev, json_t **detail)
{
	json_error_t jerr;
	json_t *doc;
	enum event_parse_result r;
	char msg[320];

	memset(ev, 0, sizeof(*ev));
	*detail = NULL;
	/* Duplicate keys are ambiguous (which one did LogQS mean?), so reject
	 * them; a NUL inside a string is refused by jansson by default. Any
	 * top-level value parses, so a string or number gets FastAPI's 422. */
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!doc) {
		snprintf(msg, sizeof(msg), "JSON decode error: %s (line %d, column %d, position %d)",
			 jerr.text, jerr.line, jerr.column, jerr.position);
		*detail = json_string(msg);
		return *detail ? EVENT_SYNTAX : EVENT_NOMEM;
	}
	r = event_from_json(doc, ev, detail);
	json_decref(doc);
	return r;
}

void event_free(struct event *ev)
{
	free(ev->datastore_endpoint);
	ev->datastore_endpoint = NULL;
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *event_to_json(const struct event *ev)
{
	return json_pack("{s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o}",
			 "previous_state", str_or_null(ev->previous_state),
			 "current_state", ev->current_state,
			 "process_type", ev->process_type,
			 "resource_id", ev->resource_id,
			 "workflow_id", str_or_null(ev->workflow_id),
			 "hook_id", str_or_null(ev->hook_id),
			 "datastore_id", str_or_null(ev->datastore_id),
			 "datastore_endpoint", str_or_null(ev->datastore_endpoint));
}

json_t *event_not_routed(const char *process_type, const char *current_state)
{
	char why[160];

	snprintf(why, sizeof(why), "no route for process_type=%s, current_state=%s",
		 process_type ? process_type : "?", current_state ? current_state : "?");
	return json_pack("{s:s, s:s}", "status", "not_routed", "reason", why);
}
