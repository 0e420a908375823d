/* The body of a REST trigger: a template with placeholders filled from a
 * closed batch (its trigger event's body). {bucket}, {prefix}, {path}
 * (s3://bucket/prefix), {batch_id}, {time} (when it closed), {reason} and
 * {watch} are JSON-escaped text, to sit inside quotes; {count} is a number
 * and {keys} a JSON array of the keys. For a hook event (on a [route]):
 * {event}, the event as JSON, and its fields by name ({resource_id},
 * {current_state}, ...) as text. */
#ifndef LQS_TRIGGER_H
#define LQS_TRIGGER_H
#include <stddef.h>

#include <jansson.h>

/* The defaults: for a batch, an EventBridge-shaped "package-objects-ready"
 * event; for a hook event, the event itself. */
extern const char trigger_default_body[];
extern const char trigger_default_event_body[];

/* Render tpl for batch; NULL with why (an unknown {name}) on error. */
char *trigger_render(const char *tpl, json_t *batch, char *why, size_t whylen);

#endif
