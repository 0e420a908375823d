/* What the mock LogQS's files share. */
#ifndef LQS_MOCK_H
#define LQS_MOCK_H
#include <stdbool.h>

#include <jansson.h>
#include <microhttpd.h>

#include "lqs-hookd/buf.h"

enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *doc);
enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *kind, const char *msg,
			   int retry_after);
int qint(struct MHD_Connection *c, const char *name, int def);
json_t *list_envelope(json_t *items, int offset, int limit, int count);
/* qsort order of resources: created_at, then id. */
int mock_cmp_created(const void *a, const void *b);

/* mock_collections.c: objectStores, groups, logs (lists and creation) and
 * ingestions, held in ds under those names. Answers and returns true when
 * res is one of them. */
bool mock_collection(struct MHD_Connection *c, const char *method, const char *res, const struct buf *body,
		     json_t *ds, enum MHD_Result *ret);

#endif
