#include "http_int.h"

#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/util.h"

/* The status of the answer queued by the current callback, for metrics
 * (every answer goes through reply_text, on the callback's own thread),
 * and why, for the log of rejected requests (never the body or a secret). */
static _Thread_local unsigned tl_status;
static _Thread_local char tl_reason[200];

void reply_reset(void)
{
	tl_status = 0;
	tl_reason[0] = '\0';
}

unsigned reply_status(void)
{
	return tl_status;
}

const char *reply_reason(void)
{
	return tl_reason;
}

void reply_set_status(unsigned status)
{
	tl_status = status;
}

void reply_set_reason(const char *reason)
{
	str_copy(tl_reason, reason, sizeof(tl_reason));
}

enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text,
				  const char *h1, const char *v1)
{
	/* MUST_COPY: libmicrohttpd copies and never writes through the pointer;
	 * its prototype is just not const-correct. */
	union { const char *c; void *v; } cast = { .c = text };
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), cast.v, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				h1 && strcmp(h1, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 ? v1 : "application/json");
	if (h1 && strcmp(h1, MHD_HTTP_HEADER_CONTENT_TYPE) != 0)
		MHD_add_response_header(r, h1, v1);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	tl_status = status;
	return ret;
}

/* Takes ownership of body. */
enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body,
				  const char *h1, const char *v1)
{
	/* ?pretty indents the answer for people reading it with curl; the
	 * integers stay exact (unlike piping through a double-based tool). */
	size_t fmt = MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "pretty", 6, NULL, NULL) == MHD_YES
			     ? JSON_INDENT(2) : JSON_COMPACT;
	char *text = body ? json_dumps(body, fmt | JSON_PRESERVE_ORDER) : NULL;
	enum MHD_Result ret;

	json_decref(body);
	if (!text)
		return reply_text(c, 500, "{\"detail\":\"Internal Server Error\"}", NULL, NULL);
	ret = reply_text(c, status, text, h1, v1);
	free(text);
	return ret;
}

enum MHD_Result reply_detail(struct MHD_Connection *c, unsigned status, const char *detail,
				    const char *h1, const char *v1)
{
	reply_set_reason(detail);
	return reply_json(c, status, json_pack("{s:s}", "detail", detail), h1, v1);
}
