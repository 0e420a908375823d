/* Rendering a REST trigger's body from its template (trigger.h). */
#include "lqs-hookd/trigger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"

const char trigger_default_body[] =
	"{\"version\":\"0\",\"id\":\"{batch_id}\",\"detail-type\":\"package-objects-ready\",\"source\":\"lqs-hookd\","
	"\"time\":\"{time}\",\"resources\":[\"arn:aws:s3:::{bucket}\"],\"detail\":{\"version\":\"0.1\","
	"\"bucket\":\"{bucket}\",\"prefix\":\"{prefix}\",\"count\":{count},\"reason\":\"{reason}\"}}";

const char trigger_default_event_body[] = "{event}";

/* Text as the inside of a JSON string. */
static void append_escaped(struct buf *b, const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *enc = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	if (enc && strlen(enc) >= 2)
		buf_append(b, enc + 1, strlen(enc) - 2);
	free(enc);
	json_decref(j);
}

static int placeholder(struct buf *b, const char *name, size_t n, json_t *batch)
{
	char key[64];
	json_t *v;

	if (n == 5 && strncmp(name, "event", 5) == 0) {
		/* the whole document: a hook event forwarded as LogQS sent it */
		char *enc = json_dumps(batch, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (enc)
			buf_append(b, enc, strlen(enc));
		free(enc);
		return 0;
	}
	if (n == 4 && strncmp(name, "time", 4) == 0) {
		append_escaped(b, json_string_value(json_object_get(batch, "closed_at")));
		return 0;
	}
	if (n == 5 && strncmp(name, "count", 5) == 0) {
		buf_printf(b, "%lld", (long long)json_integer_value(json_object_get(batch, "count")));
		return 0;
	}
	if (n == 4 && strncmp(name, "keys", 4) == 0) {
		json_t *keys = json_array(), *o;
		size_t i;
		char *enc;
		json_array_foreach(json_object_get(batch, "objects"), i, o)
			json_array_append(keys, json_object_get(o, "key"));
		enc = json_dumps(keys, JSON_COMPACT);
		json_decref(keys);
		if (enc)
			buf_append(b, enc, strlen(enc));
		free(enc);
		return 0;
	}
	/* any other field of the batch or the event, by name */
	if (n >= sizeof(key))
		return -1;
	memcpy(key, name, n);
	key[n] = '\0';
	v = json_object_get(batch, key);
	if (json_is_string(v) || json_is_null(v))
		append_escaped(b, json_string_value(v));
	else if (json_is_integer(v))
		buf_printf(b, "%lld", (long long)json_integer_value(v));
	else
		return -1;
	return 0;
}

char *trigger_render(const char *tpl, json_t *batch, char *why, size_t whylen)
{
	struct buf b;
	const char *p = tpl;

	buf_init(&b, 0);
	while (*p) {
		const char *open = strchr(p, '{'), *close;
		size_t n;
		if (!open) {
			buf_append(&b, p, strlen(p));
			break;
		}
		buf_append(&b, p, (size_t)(open - p));
		close = open + 1;
		n = strspn(close, "abcdefghijklmnopqrstuvwxyz_");
		/* a brace that opens no {name} is the template's own JSON */
		if (n == 0 || close[n] != '}') {
			buf_append(&b, "{", 1);
			p = open + 1;
			continue;
		}
		if (placeholder(&b, close, n, batch) != 0) {
			snprintf(why, whylen, "unknown placeholder {%.*s} (known: {bucket}, {prefix}, {path}, {count}, "
				 "{keys}, {batch_id}, {time}, {reason}, {watch}; for hook events {event}, {resource_id}, "
				 "{process_type}, {current_state}, {previous_state}, {workflow_id}, {datastore_id}, "
				 "{hook_id})", (int)(n < 40 ? n : 40), close);
			buf_free(&b);
			return NULL;
		}
		p = close + n + 1;
	}
	if (!b.data)
		return strdup("");
	return buf_steal(&b);
}
