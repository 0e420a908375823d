/* `lqs-hookd batches [--state open|closed]` and `lqs-hookd batch ID`:
 * batches of objects, from the running daemon. */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/util.h"

static void print_batches(json_t *doc)
{
	size_t i;
	json_t *b;

	printf("%-36s  %-6s  %-16s  %7s  %-8s  %-24s  %-24s  %s\n", "BATCH_ID", "STATE", "WATCH", "OBJECTS", "REASON",
	       "OPENED_AT", "CLOSES/CLOSED_AT", "PATH");
	json_array_foreach(json_object_get(doc, "data"), i, b) {
		const char *when = s_or(json_object_get(b, "closed_at"), s_or(json_object_get(b, "closes_at"), "-"));
		printf("%-36s  %-6s  %-16s  %7lld  %-8s  %-24s  %-24s  %s\n", s_or(json_object_get(b, "batch_id"), "-"),
		       s_or(json_object_get(b, "state"), "-"), s_or(json_object_get(b, "watch"), "-"),
		       (long long)json_integer_value(json_object_get(b, "objects")),
		       s_or(json_object_get(b, "close_reason"), "-"), s_or(json_object_get(b, "opened_at"), "-"), when,
		       s_or(json_object_get(b, "path"), "-"));
	}
	if (json_is_string(json_object_get(doc, "next_cursor")))
		printf("(more: the daemon's GET /batches?cursor=%s has the next page)\n",
		       json_string_value(json_object_get(doc, "next_cursor")));
}

int cmd_batches(const struct config *cfg, const struct cli_opts *o)
{
	char err[4096], id[37];
	struct buf q;
	json_t *doc = NULL;
	long status;
	int rc = 0;

	buf_init(&q, 4096);
	if (o->id_arg) {
		if (!uuid_canonical(o->id_arg, id)) {
			fprintf(stderr, "lqs-hookd: '%s' is not a batch id (a UUID)\n", o->id_arg);
			buf_free(&q);
			return 2;
		}
		buf_printf(&q, "/batches/%s", id);
	} else {
		buf_printf(&q, "/batches?limit=%lld%s%s", (long long)o->limit, o->state ? "&state=" : "",
			   o->state ? o->state : "");
	}
	status = q.data ? cli_call(cfg, o->listen, "GET", q.data, CLI_TIMEOUT_MS, &doc, err, sizeof(err)) : 0;
	if (status != 200)
		rc = daemon_error(status, doc, err);
	else if (o->json_out || o->id_arg)
		print_json(doc);
	else
		print_batches(doc);
	buf_free(&q);
	json_decref(doc);
	return rc;
}
