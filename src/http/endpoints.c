/* The endpoint table: every path the daemon serves, its method, who may
 * call it, whether it reads a body, its metric label and its handlers. One
 * table instead of parallel switches on a route. */
#include "http_int.h"

#include <string.h>

static const struct endpoint endpoints[] = {
	{ "{events}", "POST", ACCESS_HOOK, true, "events", hook_events_headers, hook_events_receive,
	  hook_events_answered },
	{ "{events}", "GET", ACCESS_ADMIN, false, "events", NULL, api_events_list, NULL },
	/* before {events}/{id}: ids are UUIDs, no event is called "replay" or "stream" */
	{ "{events}/replay", "POST", ACCESS_ADMIN, false, "replay_many", NULL, api_events_replay_many, NULL },
	{ "{events}/stream", "GET", ACCESS_ADMIN, false, "stream", NULL, api_events_stream, NULL },
	{ "{events}/{id}", "GET", ACCESS_ADMIN, false, "event", NULL, api_event_get, NULL },
	{ "{events}/{id}/history", "GET", ACCESS_ADMIN, false, "history", NULL, api_event_history, NULL },
	{ "{events}/{id}/replay", "POST", ACCESS_ADMIN, false, "replay", NULL, api_event_replay, NULL },
	{ "{objects}", "POST", ACCESS_HOOK, true, "objects", object_events_headers, object_events_receive,
	  object_events_answered },
	{ "/batches", "GET", ACCESS_ADMIN, false, "batches", NULL, api_batches_list, NULL },
	{ "/batches/{id}", "GET", ACCESS_ADMIN, false, "batch", NULL, api_batch_get, NULL },
	{ "/healthz", "GET", ACCESS_OPEN, false, "healthz", NULL, api_healthz, NULL },
	{ "/readyz", "GET", ACCESS_OPEN, false, "readyz", NULL, api_readyz, NULL },
	{ "/metrics", "GET", ACCESS_ADMIN, false, "metrics", NULL, api_metrics, NULL },
	{ "/sweeps", "GET", ACCESS_ADMIN, false, "sweeps", NULL, api_sweeps_list, NULL },
	{ "/sweeps/{id}/run", "POST", ACCESS_ADMIN, false, "sweep_run", NULL, api_sweep_run, NULL },
};

#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

bool http_path_match(const char *pattern, const char *url, const struct http_paths *paths, char *id, size_t idlen)
{
	while (*pattern) {
		bool ev = strncmp(pattern, "{events}", 8) == 0;
		if (ev || strncmp(pattern, "{objects}", 9) == 0) {
			const char *path = ev ? paths->events : paths->objects;
			size_t n = path ? strlen(path) : 0;
			if (!n || strncmp(url, path, n) != 0)
				return false;
			url += n;
			pattern += ev ? 8 : 9;
		} else if (strncmp(pattern, "{id}", 4) == 0) {
			size_t n = strcspn(url, "/");
			if (n == 0)
				return false;
			/* a segment too long for an id is kept cut: it is answered
			 * as a malformed id, not as an unknown path */
			size_t keep = n < idlen ? n : idlen - 1;
			memcpy(id, url, keep);
			id[keep] = '\0';
			url += n;
			pattern += 4;
		} else if (*pattern++ != *url++) {
			return false;
		}
	}
	return *url == '\0';
}

static bool method_matches(const struct endpoint *e, const char *method)
{
	return strcmp(e->method, method) == 0 || (strcmp(e->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

const struct endpoint *endpoint_find(const char *url, const char *method, const struct http_paths *paths, char *id,
				     size_t idlen, unsigned *status, const char **allow)
{
	bool has_get = false, has_post = false;
	const char *path = NULL;   /* the first pattern that matches decides */

	for (size_t i = 0; i < N_ENDPOINTS; i++) {
		const struct endpoint *e = &endpoints[i];
		if (path ? strcmp(e->pattern, path) != 0 : !http_path_match(e->pattern, url, paths, id, idlen))
			continue;
		path = e->pattern;
		if (method_matches(e, method))
			return e;
		has_get |= strcmp(e->method, "GET") == 0;
		has_post |= strcmp(e->method, "POST") == 0;
	}
	*status = path ? 405 : 404;
	*allow = has_get && has_post ? "GET, POST" : has_post ? "POST" : "GET";
	return NULL;
}
