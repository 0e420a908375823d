/* The EventCreateRequest model LogQS posts to a hook. */
#ifndef LQS_EVENT_H
#define LQS_EVENT_H
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define EVENT_MAX_ENDPOINT 2048

struct event {
	char previous_state[16];   /* "" when null/absent */
	char current_state[16];
	char process_type[16];
	char resource_id[37];
	char workflow_id[37];      /* "" when null/absent */
	char hook_id[37];
	char datastore_id[37];
	char *datastore_endpoint;  /* NULL when null/absent */
};

enum event_parse_result { EVENT_OK = 0, EVENT_SYNTAX, EVENT_INVALID, EVENT_NOMEM };

/* Parse and validate a request body. On EVENT_SYNTAX, *detail is a string
 * describing the JSON error with its position; on EVENT_INVALID, *detail is
 * FastAPI's list of {loc, msg, type} errors, one per bad field. The caller
 * owns *detail. */
enum event_parse_result event_parse(const char *body, size_t len, struct event *ev, json_t **detail);
/* Same validation for an already parsed document. */
enum event_parse_result event_from_json(json_t *doc, struct event *ev, json_t **detail);
void event_free(struct event *ev);
/* The canonical JSON form (every field present, null where absent). */
json_t *event_to_json(const struct event *ev);

/* The result of an event no route sends to a handler. */
json_t *event_not_routed(const char *process_type, const char *current_state);

bool event_state_valid(const char *s);
bool event_type_valid(const char *s);

#endif
