/* Every compiled-in handler; one file each under src/handlers/. */
#ifndef LQS_HANDLERS_H
#define LQS_HANDLERS_H
#include "lqs-hookd/router.h"

extern const struct handler_def handler_digestion_stats;
extern const struct handler_def handler_http_trigger;

#endif
