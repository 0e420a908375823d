/* Compiled-in handlers and the configured routes to them. */
#ifndef LQS_ROUTER_H
#define LQS_ROUTER_H
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct config;
struct lqs_client;

enum handler_status {
	HANDLER_OK = 0,
	HANDLER_RETRY,   /* transient: try the event again later */
	HANDLER_FAIL,    /* permanent: the event is FAILED */
};

struct handler_out {
	json_t *result;          /* set on HANDLER_OK (owned) */
	char error_name[64];     /* set otherwise */
	char error[1024];
	double retry_after;      /* seconds the server asked for, 0 if none */
};

struct handler_ctx {
	const char *event_id;
	json_t *event;           /* canonical EventCreateRequest (borrowed) */
	const struct config *cfg;
	struct lqs_client *lqs;
	/* An operator replayed the event, or an earlier attempt of it may have
	 * put the resource in a failed state: a failed resource is then work
	 * to redo, not a reason to skip. */
	bool redo_failed;
	/* Report progress while running (shown by GET /events/{id}): the
	 * callee decides whether it is due (a new step, or time enough since
	 * the last), and only then calls build(arg) for the document (a new
	 * reference, with "step"). May be NULL. */
	void (*progress)(struct handler_ctx *ctx, const char *step, json_t *(*build)(void *arg), void *arg);
	void *progress_ctx;
	/* Advisory lock by key (a log id), among every daemon on the store:
	 * one writer of a log's context at a time. */
	void (*lock)(struct handler_ctx *ctx, const char *key);
	void (*unlock)(struct handler_ctx *ctx, const char *key);
	void *lock_ctx;
};

struct handler_def {
	const char *name;
	const char *description;
	enum handler_status (*run)(struct handler_ctx *ctx, struct handler_out *out);
	/* It runs LogQS hook events (a [route], a sweep's events). */
	bool events;
	/* It runs the trigger events of closed batches (a [watch] trigger). */
	bool batches;
	/* The keys it takes in a [watch] (or [route]) section, NULL-terminated
	 * (NULL: none). */
	const char *const *settings;
	/* Whether those settings hold together; -1 with why when not. NULL: no
	 * check. */
	int (*check)(const json_t *settings, char *why, size_t whylen);
	/* Called once when the event is FAILED for good (may be NULL). */
	void (*on_failure)(struct handler_ctx *ctx, const struct handler_out *failure);
};

const struct handler_def *router_handler_find(const char *name);
/* Whether every route names a compiled-in handler; -1 with a
 * "file:line: ..." line in err when not. Called after loading a
 * configuration (the settings themselves know no handlers). */
int router_check(const struct config *cfg, char *err, size_t errlen);
/* Comma-separated names of the compiled-in handlers. */
const char *router_handler_names(void);
/* The route of (process_type, state), or NULL. */
struct route;
const struct route *router_route_of(const struct config *cfg, const char *process_type, const char *state);
/* The handler configured for (process_type, state), or NULL. */
const char *router_route(const struct config *cfg, const char *process_type, const char *state);
/* The handler a sweep's events go to: its own, or the route's (NULL: none). */
struct sweep_cfg;
const char *router_sweep_handler(const struct config *cfg, const struct sweep_cfg *s);

#endif
