#include "lqs-hookd/router.h"

#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/handlers.h"

static const struct handler_def *const handlers[] = {
	&handler_digestion_stats,
};

#define N_HANDLERS (sizeof(handlers) / sizeof(handlers[0]))

const struct handler_def *router_handler_find(const char *name)
{
	for (size_t i = 0; i < N_HANDLERS; i++)
		if (strcmp(handlers[i]->name, name) == 0)
			return handlers[i];
	return NULL;
}

const char *router_handler_names(void)
{
	return "digestion_stats";
}

const char *router_route(const struct config *cfg, const char *process_type, const char *state)
{
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		if (strcmp(r->process_type, process_type) == 0 && strcmp(r->state, state) == 0)
			return r->handler;
	}
	return NULL;
}
