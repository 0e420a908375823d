#include "lqs-hookd/router.h"

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

int router_check(const struct config *cfg, char *err, size_t errlen)
{
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		const struct handler_def *h = router_handler_find(r->handler);
		if (h && h->batches) {
			snprintf(err, errlen, "%s:%d: handler: '%s' runs closed batches (a [watch] trigger), not hook "
				 "events\n", cfg->path ? cfg->path : "config", r->handler_line, r->handler);
			return -1;
		}
		if (h)
			continue;
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
		if (s->handler[0] && router_handler_find(s->handler) && router_handler_find(s->handler)->batches) {
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

/* A watch's trigger exists and takes the watch's other keys. */
static int watch_check(const struct config *cfg, const struct watch_cfg *w, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "config", *k;
	const struct handler_def *h = w->trigger[0] ? router_handler_find(w->trigger) : NULL;
	char why[512];
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
	if (h && h->check && h->check(w->settings, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: watch '%s': trigger %s: %s\n", where, w->name, w->trigger, why);
		return -1;
	}
	json_object_foreach(w->settings, k, v) {
		bool known = false;
		for (const char *const *s = h ? h->settings : NULL; s && *s && !known; s++)
			known = strcmp(*s, k) == 0;
		if (!known) {
			snprintf(err, errlen, "%s: watch '%s': unknown key '%s'%s%s%s\n", where, w->name, k,
				 h ? " (not a setting of trigger " : " (no trigger takes it: bucket, prefix, suffix, "
				 "ignore, events, prefix_depth, count, quiet, max_age, marker, trigger",
				 h ? w->trigger : "", h ? ")" : ")");
			return -1;
		}
	}
	return 0;
}

const char *router_sweep_handler(const struct config *cfg, const struct sweep_cfg *s)
{
	return s->handler[0] ? s->handler : router_route(cfg, s->process_type, s->state);
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
