/* The named sections: [route NAME] (which handler an event goes to) and
 * [sweep NAME] (a scheduled look at LogQS for resources a hook never
 * reported). Their keys, defaults and checks; the settings table holds the
 * rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

/* Defaults of a sweep (the built-in one has them all). */
#define SWEEP_EVERY_S 300.0
#define SWEEP_MIN_AGE_S 600.0
#define SWEEP_MAX_PER_RUN 1000
#define SWEEP_MAX_PER_RUN_LIMIT 100000
/* A sweep runs at most this often: each run lists resources in LogQS. */
#define SWEEP_EVERY_MIN_S 1.0

static int type_or_state(const char *name, const char *value, char *out, size_t n, char *why, size_t whylen)
{
	char list[160];
	bool type = strcmp(name, "process_type") == 0;
	const char *const *names = type ? lqs_process_types : lqs_process_states;

	if (!name_in(names, value)) {
		names_join(names, "|", list, sizeof(list));
		snprintf(why, whylen, "%s: '%s' is not one of %s", name, value, list);
		return -1;
	}
	str_copy(out, value, n);
	return 0;
}

static int handler_name(const char *value, char *out, size_t n, char *why, size_t whylen)
{
	/* whether a handler of that name is compiled in is for the caller to
	 * say (router_check): the settings know no handlers */
	if (!*value || strlen(value) >= n || strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(value)) {
		snprintf(why, whylen, "handler: '%s' is not a handler name", value);
		return -1;
	}
	str_copy(out, value, n);
	return 0;
}

static int route_set(struct route *r, const char *name, const char *value, int lineno, char *why, size_t whylen)
{
	if (strcmp(name, "process_type") == 0)
		return type_or_state(name, value, r->process_type, sizeof(r->process_type), why, whylen);
	if (strcmp(name, "state") == 0)
		return type_or_state(name, value, r->state, sizeof(r->state), why, whylen);
	if (strcmp(name, "handler") == 0) {
		r->handler_line = lineno;
		return handler_name(value, r->handler, sizeof(r->handler), why, whylen);
	}
	/* the handler's own settings: its definition says which it takes */
	if (!r->settings)
		r->settings = json_object();
	json_object_set_new(r->settings, name, json_string(value));
	return 0;
}

static int duration_in(const char *name, const char *value, double min, double *out, char *why, size_t whylen)
{
	double v;

	if (parse_duration(value, &v) || v < min || v > 365.0 * 86400) {
		snprintf(why, whylen, "%s: '%s' is not a duration of %g s to 365d (such as 90s, 5m, 1h)", name, value,
			 min);
		return -1;
	}
	*out = v;
	return 0;
}

static int sweep_set(struct sweep_cfg *s, const char *name, const char *value, int lineno, char *why,
		     size_t whylen)
{
	char canon[37];
	int64_t n;

	if (strcmp(name, "enabled") == 0) {
		if (parse_bool(value, &s->enabled) == 0)
			return 0;
		snprintf(why, whylen, "enabled: '%s' is not true or false", value);
		return -1;
	}
	if (strcmp(name, "every") == 0)
		return duration_in(name, value, SWEEP_EVERY_MIN_S, &s->every, why, whylen);
	if (strcmp(name, "min_age") == 0)
		return duration_in(name, value, 0, &s->min_age, why, whylen);
	if (strcmp(name, "process_type") == 0) {
		/* LogQS lists parts only under their digestion or ingestion */
		if (strcmp(value, "digestion") != 0 && strcmp(value, "ingestion") != 0) {
			snprintf(why, whylen, "process_type: a sweep lists digestions or ingestions, not '%s'", value);
			return -1;
		}
		return type_or_state(name, value, s->process_type, sizeof(s->process_type), why, whylen);
	}
	if (strcmp(name, "state") == 0)
		return type_or_state(name, value, s->state, sizeof(s->state), why, whylen);
	if (strcmp(name, "handler") == 0) {
		s->handler_line = lineno;
		return handler_name(value, s->handler, sizeof(s->handler), why, whylen);
	}
	if (strcmp(name, "max_per_run") == 0) {
		if (parse_i64(value, &n) == 0 && n >= 1 && n <= SWEEP_MAX_PER_RUN_LIMIT) {
			s->max_per_run = n;
			return 0;
		}
		snprintf(why, whylen, "max_per_run: '%s' is not a number from 1 to %d", value, SWEEP_MAX_PER_RUN_LIMIT);
		return -1;
	}
	if (strcmp(name, "datastore") == 0) {
		if (!*value) {
			s->datastore[0] = '\0';
			return 0;
		}
		if (uuid_canonical(value, canon)) {
			str_copy(s->datastore, canon, sizeof(s->datastore));
			return 0;
		}
		snprintf(why, whylen, "datastore: '%s' is not a UUID", value);
		return -1;
	}
	snprintf(why, whylen, "unknown key '%s' in a sweep section (enabled, every, process_type, state, min_age, "
		 "handler, max_per_run, datastore)", name);
	return -1;
}

static void sweep_defaults(struct sweep_cfg *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	str_copy(s->name, name, sizeof(s->name));
	s->every = SWEEP_EVERY_S;
	s->min_age = SWEEP_MIN_AGE_S;
	s->max_per_run = SWEEP_MAX_PER_RUN;
	str_copy(s->process_type, "digestion", sizeof(s->process_type));
	str_copy(s->state, "finalizing", sizeof(s->state));
}

const struct sweep_cfg *config_sweep(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_sweeps; i++)
		if (strcmp(cfg->sweeps[i].name, name) == 0)
			return &cfg->sweeps[i];
	return NULL;
}

/* "route NAME" or "sweep NAME": the kind (or NULL) and the name. */
static const char *section_kind(const char *section, const char **name)
{
	static const char *const kinds[] = { "route", "sweep", "watch", "sqs" };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);
		if (strncmp(section, kinds[i], n) == 0 && (section[n] == ' ' || section[n] == '\t')) {
			const char *p = section + n;
			while (*p == ' ' || *p == '\t')
				p++;
			*name = p;
			return kinds[i];
		}
	}
	return NULL;
}

bool section_is_named(const char *section)
{
	const char *name;

	return section_kind(section, &name) != NULL;
}

static bool sweep_name_ok(const char *name)
{
	return *name && strlen(name) < sizeof(((struct sweep_cfg *)0)->name) &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == strlen(name);
}

static int sweep_section(struct config *cfg, const char *sname, const char *name, const char *value, int lineno,
			 char *why, size_t whylen)
{
	struct sweep_cfg *s = NULL;

	if (!sweep_name_ok(sname)) {
		snprintf(why, whylen, "a sweep section needs a name of letters, digits, '-', '_' and '.' (at most "
			 "63): [sweep NAME]");
		return -1;
	}
	for (int i = 0; i < cfg->n_sweeps && !s; i++)
		if (strcmp(cfg->sweeps[i].name, sname) == 0)
			s = &cfg->sweeps[i];
	if (!s) {
		if (cfg->n_sweeps >= CONFIG_MAX_SWEEPS) {
			snprintf(why, whylen, "at most %d sweeps", CONFIG_MAX_SWEEPS);
			return -1;
		}
		s = &cfg->sweeps[cfg->n_sweeps++];
		sweep_defaults(s, sname);
		s->line = lineno;
	}
	return sweep_set(s, name, value, lineno, why, whylen);
}

static int watch_section(struct config *cfg, const char *wname, const char *name, const char *value, int lineno,
			 char *why, size_t whylen);

int section_apply(struct config *cfg, const char *section, const char *name, const char *value, int lineno,
		  char *why, size_t whylen)
{
	const char *sname = "", *kind = section_kind(section, &sname);
	struct route *r = NULL;

	if (kind && strcmp(kind, "sweep") == 0)
		return sweep_section(cfg, sname, name, value, lineno, why, whylen);
	if (kind && strcmp(kind, "watch") == 0)
		return watch_section(cfg, sname, name, value, lineno, why, whylen);
	if (kind && strcmp(kind, "sqs") == 0)
		return sqs_section(cfg, sname, name, value, lineno, why, whylen);
	if (!*sname) {
		snprintf(why, whylen, "a route section needs a name: [route NAME]");
		return -1;
	}
	for (int i = 0; i < cfg->n_routes && !r; i++)
		if (strcmp(cfg->routes[i].name, sname) == 0)
			r = &cfg->routes[i];
	if (!r) {
		if (cfg->n_routes >= CONFIG_MAX_ROUTES) {
			snprintf(why, whylen, "at most %d routes", CONFIG_MAX_ROUTES);
			return -1;
		}
		r = &cfg->routes[cfg->n_routes++];
		memset(r, 0, sizeof(*r));
		str_copy(r->name, sname, sizeof(r->name));
		r->line = lineno;
	}
	return route_set(r, name, value, lineno, why, whylen);
}

int sections_finish(struct config *cfg, struct buf *err, struct buf *warn, const char *where)
{
	int errors = 0;

	if (cfg->n_routes == 0) {
		struct route *r = &cfg->routes[cfg->n_routes++];
		memset(r, 0, sizeof(*r));
		str_copy(r->name, "digestion-finalizing", sizeof(r->name));
		str_copy(r->process_type, "digestion", sizeof(r->process_type));
		str_copy(r->state, "finalizing", sizeof(r->state));
		str_copy(r->handler, "digestion_stats", sizeof(r->handler));
	}
	for (int i = 0; i < cfg->n_routes; i++) {
		struct route *r = &cfg->routes[i];
		if (!r->process_type[0] || !r->state[0] || !r->handler[0]) {
			add_error(err, where, r->line, "route '%s' needs process_type, state and handler", r->name);
			errors++;
		}
	}
	errors += sqs_finish(cfg, err, where);
	/* the built-in sweep is always listed, off until enabled */
	if (!config_sweep(cfg, SWEEP_BUILTIN) && cfg->n_sweeps < CONFIG_MAX_SWEEPS)
		sweep_defaults(&cfg->sweeps[cfg->n_sweeps++], SWEEP_BUILTIN);
	for (int i = 0; i < cfg->n_watches; i++) {
		const struct watch_cfg *w = &cfg->watches[i];
		if (!w->bucket[0]) {
			add_error(err, where, w->line, "watch '%s' needs a bucket", w->name);
			errors++;
		}
		if (!w->count && !w->quiet && !w->max_age && !w->marker[0]) {
			add_error(err, where, w->line, "watch '%s' never closes a batch: set count, quiet, max_age or "
				  "marker", w->name);
			errors++;
		}
	}
	for (int i = 0; i < cfg->n_sweeps; i++) {
		const struct sweep_cfg *s = &cfg->sweeps[i];
		if (s->line && !s->enabled)
			add_error(warn, where, s->line, "sweep '%s' is configured but not enabled: it never runs until "
				  "'enabled = true'", s->name);
	}
	return errors;
}

/* ---- [watch NAME] ---- */

#define WATCH_PREFIX_DEPTH 2
#define WATCH_COUNT 20
#define WATCH_QUIET_S 300.0
#define WATCH_MARKER "_SUCCESS"

const struct watch_cfg *config_watch(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_watches; i++)
		if (strcmp(cfg->watches[i].name, name) == 0)
			return &cfg->watches[i];
	return NULL;
}

/* "a, b ,c" appended to a list. */
static int list_add(char **list, int *n, const char *value, size_t maxlen, const char *name, char *why,
		    size_t whylen)
{
	const char *p = value;

	while (*p) {
		size_t len = strcspn(p, ",");
		const char *a = p, *e = p + len;
		while (a < e && (*a == ' ' || *a == '\t'))
			a++;
		while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > a) {
			if (*n >= WATCH_MAX_PATTERNS || (size_t)(e - a) > maxlen) {
				snprintf(why, whylen, "%s: at most %d values of %zu characters", name, WATCH_MAX_PATTERNS,
					 maxlen);
				return -1;
			}
			list[*n] = strndup(a, (size_t)(e - a));
			if (!list[*n])
				return -1;
			(*n)++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int watch_events(struct watch_cfg *w, const char *value, char *why, size_t whylen)
{
	char *list[WATCH_MAX_PATTERNS];
	int n = 0, rc = list_add(list, &n, value, 16, "events", why, whylen);

	w->on_created = w->on_removed = false;
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i], "created") == 0)
			w->on_created = true;
		else if (strcmp(list[i], "removed") == 0)
			w->on_removed = true;
		else if (!rc) {
			snprintf(why, whylen, "events: '%s' is not created or removed", list[i]);
			rc = -1;
		}
		free(list[i]);
	}
	if (!rc && !w->on_created && !w->on_removed) {
		snprintf(why, whylen, "events: created, removed or both");
		rc = -1;
	}
	return rc;
}

static int watch_set(struct watch_cfg *w, const char *name, const char *value, int lineno, char *why, size_t whylen)
{
	int64_t n;

	if (strcmp(name, "bucket") == 0) {
		size_t len = strlen(value);
		if (len < 3 || len > 63 || strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != len) {
			snprintf(why, whylen, "bucket: '%s' is not an S3 bucket name", value);
			return -1;
		}
		str_copy(w->bucket, value, sizeof(w->bucket));
		return 0;
	}
	if (strcmp(name, "prefix") == 0)
		return list_add(w->prefixes, &w->n_prefixes, value, 1024, name, why, whylen);
	if (strcmp(name, "suffix") == 0)
		return list_add(w->suffixes, &w->n_suffixes, value, 1024, name, why, whylen);
	if (strcmp(name, "ignore") == 0)
		return list_add(w->ignore, &w->n_ignore, value, 1024, name, why, whylen);
	if (strcmp(name, "events") == 0)
		return watch_events(w, value, why, whylen);
	if (strcmp(name, "prefix_depth") == 0 || strcmp(name, "count") == 0) {
		bool depth = name[0] == 'p';
		if (parse_i64(value, &n) || n < 0 || n > (depth ? 64 : 1000000)) {
			snprintf(why, whylen, "%s: '%s' is not a number from 0 to %d", name, value, depth ? 64 : 1000000);
			return -1;
		}
		*(depth ? &w->prefix_depth : &w->count) = n;
		return 0;
	}
	if (strcmp(name, "quiet") == 0)
		return duration_in(name, value, 0, &w->quiet, why, whylen);
	if (strcmp(name, "max_age") == 0)
		return duration_in(name, value, 0, &w->max_age, why, whylen);
	if (strcmp(name, "marker") == 0) {
		if (strlen(value) >= sizeof(w->marker) || strchr(value, '/')) {
			snprintf(why, whylen, "marker: '%s' is not a file name", value);
			return -1;
		}
		str_copy(w->marker, value, sizeof(w->marker));
		return 0;
	}
	if (strcmp(name, "trigger") == 0) {
		w->trigger_line = lineno;
		return handler_name(value, w->trigger, sizeof(w->trigger), why, whylen);
	}
	/* the trigger's own settings: its handler says which it takes */
	if (!w->settings)
		w->settings = json_object();
	json_object_set_new(w->settings, name, json_string(value));
	return 0;
}

static int watch_section(struct config *cfg, const char *wname, const char *name, const char *value, int lineno,
			 char *why, size_t whylen)
{
	struct watch_cfg *w = NULL;

	for (int i = 0; i < cfg->n_watches && !w; i++)
		if (strcmp(cfg->watches[i].name, wname) == 0)
			w = &cfg->watches[i];

	if (!sweep_name_ok(wname)) {
		snprintf(why, whylen, "a watch section needs a name of letters, digits, '-', '_' and '.' (at most "
			 "63): [watch NAME]");
		return -1;
	}
	if (!w) {
		struct watch_cfg *nw;
		if (cfg->n_watches >= CONFIG_MAX_WATCHES) {
			snprintf(why, whylen, "at most %d watches", CONFIG_MAX_WATCHES);
			return -1;
		}
		nw = realloc(cfg->watches, (size_t)(cfg->n_watches + 1) * sizeof(*nw));
		if (!nw)
			return -1;
		cfg->watches = nw;
		w = &cfg->watches[cfg->n_watches++];
		memset(w, 0, sizeof(*w));
		str_copy(w->name, wname, sizeof(w->name));
		w->on_created = true;
		w->prefix_depth = WATCH_PREFIX_DEPTH;
		w->count = WATCH_COUNT;
		w->quiet = WATCH_QUIET_S;
		str_copy(w->marker, WATCH_MARKER, sizeof(w->marker));
		w->line = lineno;
	}
	return watch_set(w, name, value, lineno, why, whylen);
}

void watches_free(struct config *cfg)
{
	for (int i = 0; i < cfg->n_watches; i++) {
		struct watch_cfg *w = &cfg->watches[i];
		for (int k = 0; k < w->n_prefixes; k++)
			free(w->prefixes[k]);
		for (int k = 0; k < w->n_suffixes; k++)
			free(w->suffixes[k]);
		for (int k = 0; k < w->n_ignore; k++)
			free(w->ignore[k]);
		json_decref(w->settings);
	}
	free(cfg->watches);
	cfg->watches = NULL;
	cfg->n_watches = 0;
	for (int i = 0; i < cfg->n_routes; i++) {
		json_decref(cfg->routes[i].settings);
		cfg->routes[i].settings = NULL;
	}
}

/* ---- [sqs NAME] ---- */

#define SQS_WAIT_S 20
#define SQS_MAX_MESSAGES 10

static int sqs_int(const char *name, const char *value, int64_t lo, int64_t hi, int64_t *out, char *why, size_t whylen)
{
	int64_t n;

	if (parse_i64(value, &n) || n < lo || n > hi) {
		snprintf(why, whylen, "%s: '%s' is not a number from %lld to %lld", name, value, (long long)lo,
			 (long long)hi);
		return -1;
	}
	*out = n;
	return 0;
}

static int url_field(const char *name, const char *value, char *out, size_t n, char *why, size_t whylen)
{
	if ((strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) || strlen(value) >= n) {
		snprintf(why, whylen, "%s: '%s' is not an http(s) URL", name, value);
		return -1;
	}
	str_copy(out, value, n);
	return 0;
}

static int sqs_set(struct sqs_cfg *q, const char *name, const char *value, char *why, size_t whylen)
{
	if (strcmp(name, "queue_url") == 0)
		return url_field(name, value, q->queue_url, sizeof(q->queue_url), why, whylen);
	if (strcmp(name, "endpoint") == 0)
		return url_field(name, value, q->endpoint, sizeof(q->endpoint), why, whylen);
	if (strcmp(name, "region") == 0) {
		if (!*value || strlen(value) >= sizeof(q->region) ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(value)) {
			snprintf(why, whylen, "region: '%s' is not an AWS region", value);
			return -1;
		}
		str_copy(q->region, value, sizeof(q->region));
		return 0;
	}
	if (strcmp(name, "watch") == 0) {
		if (!sweep_name_ok(value)) {
			snprintf(why, whylen, "watch: '%s' is not a watch name", value);
			return -1;
		}
		str_copy(q->watch, value, sizeof(q->watch));
		return 0;
	}
	if (strcmp(name, "pollers") == 0)
		return sqs_int(name, value, 1, 16, &q->pollers, why, whylen);
	if (strcmp(name, "wait") == 0)
		return sqs_int(name, value, 0, 20, &q->wait, why, whylen);
	if (strcmp(name, "max_messages") == 0)
		return sqs_int(name, value, 1, 10, &q->max_messages, why, whylen);
	if (strcmp(name, "visibility_timeout") == 0)
		return sqs_int(name, value, 0, 43200, &q->visibility_timeout, why, whylen);
	snprintf(why, whylen, "unknown key '%s' in an sqs section (queue_url, region, watch, pollers, wait, "
		 "max_messages, visibility_timeout, endpoint)", name);
	return -1;
}

int sqs_section(struct config *cfg, const char *qname, const char *name, const char *value, int lineno, char *why,
		size_t whylen)
{
	struct sqs_cfg *q = NULL;

	if (!sweep_name_ok(qname)) {
		snprintf(why, whylen, "an sqs section needs a name of letters, digits, '-', '_' and '.': [sqs NAME]");
		return -1;
	}
	for (int i = 0; i < cfg->n_sqs && !q; i++)
		if (strcmp(cfg->sqs[i].name, qname) == 0)
			q = &cfg->sqs[i];
	if (!q) {
		if (cfg->n_sqs >= CONFIG_MAX_SQS) {
			snprintf(why, whylen, "at most %d sqs sections", CONFIG_MAX_SQS);
			return -1;
		}
		q = &cfg->sqs[cfg->n_sqs++];
		memset(q, 0, sizeof(*q));
		str_copy(q->name, qname, sizeof(q->name));
		q->pollers = 1;
		q->wait = SQS_WAIT_S;
		q->max_messages = SQS_MAX_MESSAGES;
		q->line = lineno;
	}
	return sqs_set(q, name, value, why, whylen);
}

int sqs_finish(struct config *cfg, struct buf *err, const char *where)
{
	int errors = 0;

	for (int i = 0; i < cfg->n_sqs; i++) {
		struct sqs_cfg *q = &cfg->sqs[i];
		if (!q->queue_url[0]) {
			add_error(err, where, q->line, "sqs '%s' needs a queue_url", q->name);
			errors++;
		}
		if (!q->region[0]) {
			/* https://sqs.<region>.amazonaws.com/<account>/<queue> */
			const char *h = strstr(q->queue_url, "://sqs.");
			size_t n = h ? strcspn(h + 7, ".") : 0;
			if (n && n < sizeof(q->region) && strncmp(h + 7 + n, ".amazonaws.com", 14) == 0) {
				memcpy(q->region, h + 7, n);
				q->region[n] = '\0';
			} else {
				add_error(err, where, q->line, "sqs '%s' needs a region (the queue URL does not name one)",
					  q->name);
				errors++;
			}
		}
		if (q->watch[0] && !config_watch(cfg, q->watch)) {
			add_error(err, where, q->line, "sqs '%s': no watch named '%s'", q->name, q->watch);
			errors++;
		}
	}
	return errors;
}
