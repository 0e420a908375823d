/* Every compiled-in handler; one file each under src/handlers/. */
#ifndef LQS_HANDLERS_H
#define LQS_HANDLERS_H
#include "lqs-hookd/router.h"

struct lqs_error;
/* A failed LogQS call as the handler's outcome: retried when it may be. */
enum handler_status handler_from_lqs(const struct lqs_error *e, struct handler_out *out);

extern const struct handler_def handler_digestion_stats;
extern const struct handler_def handler_http_trigger;
extern const struct handler_def handler_lqs_ingest;

#endif
