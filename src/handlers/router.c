#include "lqs-hookd/router.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/handlers.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/util.h"

static const struct handler_def *const handlers[] = {
	&handler_digestion_stats,
	&handler_http_trigger,
	&handler_lqs_ingest,
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
	static char names[256];
	size_t at = 0;

	if (!names[0])
		for (size_t i = 0; i < N_HANDLERS && at < sizeof(names); i++)
			at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
					       handlers[i]->name);
	return names;
}

static int watch_check(const struct config *cfg, const struct watch_cfg *w, char *err, size_t errlen);
static int settings_check(const struct config *cfg, const struct handler_def *h, json_t *settings,
			  const char *kind, const char *name, char *err, size_t errlen);

int router_check(const struct config *cfg, char *err, size_t errlen)
{
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		const struct handler_def *h = router_handler_find(r->handler);
		if (h && !h->events) {
			snprintf(err, errlen, "%s:%d: handler: '%s' runs closed batches (a [watch] trigger), not hook "
				 "events\n", cfg->path ? cfg->path : "config", r->handler_line, r->handler);
			return -1;
		}
		if (h) {
			if (settings_check(cfg, h, r->settings, "route", r->name, err, errlen))
				return -1;
			continue;
		}
		if (r->handler_line)
			snprintf(err, errlen, "%s:%d: handler: unknown handler '%s' (known: %s)\n",
				 cfg->path ? cfg->path : "config", r->handler_line, r->handler, router_handler_names());
		else
			snprintf(err, errlen, "route '%s': unknown handler '%s' (known: %s)\n", r->name, r->handler,
				 router_handler_names());
		return -1;
	}
	for (int i = 0; i < cfg->n_watches; i++)
		if (watch_check(cfg, &cfg->watches[i], err, errlen))
			return -1;
	for (int i = 0; i < cfg->n_sweeps; i++) {
		const struct sweep_cfg *s = &cfg->sweeps[i];
		const char *where = cfg->path ? cfg->path : "config";
		if (s->handler[0] && router_handler_find(s->handler) && !router_handler_find(s->handler)->events) {
			snprintf(err, errlen, "%s:%d: handler: '%s' runs closed batches, not the events a sweep finds\n",
				 where, s->handler_line, s->handler);
			return -1;
		}
		if (s->handler[0] && !router_handler_find(s->handler)) {
			snprintf(err, errlen, "%s:%d: handler: unknown handler '%s' (known: %s)\n", where,
				 s->handler_line, s->handler, router_handler_names());
			return -1;
		}
		if (s->enabled && !s->handler[0] && !router_route(cfg, s->process_type, s->state)) {
			snprintf(err, errlen, "%s:%d: sweep '%s': no route for %s/%s and no handler set: the events it "
				 "finds would run nothing\n", where, s->line, s->name, s->process_type, s->state);
			return -1;
		}
	}
	return 0;
}

/* A handler's own keys in a section: each one it takes, and together
 * what its check accepts (a handler with settings is always checked). */
static int settings_check(const struct config *cfg, const struct handler_def *h, json_t *settings,
			  const char *kind, const char *name, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "config", *k;
	char why[512];
	json_t *v;

	json_object_foreach(settings, k, v) {
		bool known = false;
		for (const char *const *s = h->settings; s && *s && !known; s++)
			known = strcmp(*s, k) == 0;
		if (!known) {
			snprintf(err, errlen, "%s: %s '%s': unknown key '%s' (not a setting of %s)\n", where, kind, name, k,
				 h->name);
			return -1;
		}
	}
	if (h->check && h->check(settings, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s '%s': %s %s: %s\n", where, kind, name,
			 strcmp(kind, "watch") == 0 ? "trigger" : "handler", h->name, why);
		return -1;
	}
	return 0;
}

/* A watch's trigger exists and takes the watch's other keys. */
static int watch_check(const struct config *cfg, const struct watch_cfg *w, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "config", *k;
	const struct handler_def *h = w->trigger[0] ? router_handler_find(w->trigger) : NULL;
	json_t *v;

	if (w->trigger[0] && !h) {
		snprintf(err, errlen, "%s:%d: trigger: unknown handler '%s' (known: %s)\n", where, w->trigger_line,
			 w->trigger, router_handler_names());
		return -1;
	}
	if (h && !h->batches) {
		snprintf(err, errlen, "%s:%d: trigger: handler '%s' does not run batches\n", where, w->trigger_line,
			 w->trigger);
		return -1;
	}
	if (!h) {
		json_object_foreach(w->settings, k, v) {
			snprintf(err, errlen, "%s: watch '%s': unknown key '%s' (no trigger takes it: bucket, prefix, "
				 "suffix, ignore, events, prefix_depth, count, quiet, max_age, marker, trigger)\n", where,
				 w->name, k);
			return -1;
		}
		return 0;
	}
	return settings_check(cfg, h, w->settings, "watch", w->name, err, errlen);
}

const char *router_sweep_handler(const struct config *cfg, const struct sweep_cfg *s)
{
	return s->handler[0] ? s->handler : router_route(cfg, s->process_type, s->state);
}

const struct route *router_route_of(const struct config *cfg, const char *process_type, const char *state)
{
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		if (strcmp(r->process_type, process_type) == 0 && strcmp(r->state, state) == 0)
			return r;
	}
	return NULL;
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

enum handler_status handler_from_lqs(const struct lqs_error *e, struct handler_out *out)
{
	str_copy(out->error_name, e->name[0] ? e->name : "LogQSError", sizeof(out->error_name));
	str_copy(out->error, e->message, sizeof(out->error));
	out->retry_after = e->retry_after;
	return e->retryable ? HANDLER_RETRY : HANDLER_FAIL;
}
