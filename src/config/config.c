#include "lqs-hookd/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <pthread.h>
#include <ini.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

enum setting_type {
	T_STRING,   /* char * */
	T_SECRET,   /* char *, never printed; NAME_file reads it from a file */
	T_SECRETS,  /* repeatable secret list; NAME_file holds one per line */
	T_INT,      /* int64_t */
	T_SIZE,     /* int64_t bytes, accepts K/M/G suffixes */
	T_DURATION, /* double seconds, accepts ms/s/m/h/d suffixes */
	T_DOUBLE,
	T_BOOL,
	T_ENUM,     /* char *, one of choices */
};

struct setting {
	const char *section;
	const char *name;
	enum setting_type type;
	size_t offset;
	const char *def;
	double min, max;         /* bounds for numbers; ignored when min > max */
	const char *env_alias;   /* the LogQS client's own variable, if any */
	const char *choices;     /* '|'-separated, for T_ENUM */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define NOBOUND 1, 0

/* The one table. Environment: LQS_HOOKD_<NAME> for every setting, and the
 * LogQS client's own variable where it has one (the alias wins when both are
 * set, so a tutorial user's environment means what it meant there). */
static const struct setting settings[] = {
	{ "http", "listen", T_STRING, OFF(listen), "127.0.0.1:8080", NOBOUND, NULL, NULL,
	  "Address and port to listen on (HOST:PORT; port 0 picks a free port). Ignored under socket activation." },
	{ "http", "events_path", T_STRING, OFF(events_path), "/events", NOBOUND, NULL, NULL,
	  "Path LogQS posts events to (the hook URI plus this path)." },
	{ "http", "max_body", T_SIZE, OFF(max_body), "64K", 64, 16777216, NULL, NULL,
	  "Largest accepted request body; larger declared or actual bodies get 413." },
	{ "http", "max_discard", T_SIZE, OFF(max_discard), "1M", 0, 1073741824, NULL, NULL,
	  "How much of an over-long chunked body is read and discarded to send a 413; beyond it the connection is closed." },
	{ "http", "connection_timeout", T_DURATION, OFF(connection_timeout), "30s", 1, 3600, NULL, NULL,
	  "Idle time after which a client connection is closed (slow clients included)." },
	{ "http", "header_timeout", T_DURATION, OFF(header_timeout), "10s", 1, 3600, NULL, NULL,
	  "Time a client has to send a request's headers (from connecting, or from the previous answer); then the connection is cut." },
	{ "http", "read_timeout", T_DURATION, OFF(read_timeout), "60s", 1, 3600, NULL, NULL,
	  "Time a client has to send a whole request, body included; then the connection is cut." },
	{ "http", "max_connections", T_INT, OFF(max_connections), "1024", 1, 65536, NULL, NULL,
	  "Total concurrent client connections; further connections are refused." },
	{ "http", "max_connections_per_ip", T_INT, OFF(max_connections_per_ip), "64", 0, 65536, NULL, NULL,
	  "Concurrent connections from one IP address (0: no per-IP limit)." },
	{ "http", "connection_memory_limit", T_SIZE, OFF(connection_memory_limit), "32K", 4096, 1048576, NULL, NULL,
	  "Per-connection memory for request line and headers; larger headers get 431." },
	{ "http", "http_threads", T_INT, OFF(http_threads), "2", 1, 64, NULL, NULL,
	  "Threads serving HTTP (they validate and store, never call LogQS)." },

	{ "auth", "auth", T_ENUM, OFF(auth), "secret", NOBOUND, NULL, "secret|none",
	  "'secret' requires a hook secret; 'none' accepts unauthenticated events (logged as a warning)." },
	{ "auth", "secret", T_SECRETS, OFF(secrets), NULL, NOBOUND, "LQS_EXPECTED_SECRET", NULL,
	  "Hook secret; repeat the key (or use secret_file, one per line) to accept several during rotation." },
	{ "auth", "admin_token", T_SECRET, OFF(admin_token), NULL, NOBOUND, NULL, NULL,
	  "Bearer token for the administration endpoints; unset: they answer loopback clients only." },

	{ "store", "store", T_STRING, OFF(store), NULL, NOBOUND, NULL, NULL,
	  "SQLite event store (default: $STATE_DIRECTORY/lqs-hookd.db, else ./lqs-hookd.db)." },
	{ "store", "max_queued", T_INT, OFF(max_queued), "100000", 1, 100000000, NULL, NULL,
	  "Unfinished events the store may hold; beyond it POST /events answers 503 with Retry-After." },
	{ "store", "dedupe_window", T_DURATION, OFF(dedupe_window), "10m", 0, 604800, NULL, NULL,
	  "A repeat of the same delivery within this window is answered as a duplicate (0: off)." },
	{ "store", "max_store_size", T_SIZE, OFF(max_store_size), "0", 0, 1099511627776.0, NULL, NULL,
	  "Largest size of the store file (0: no limit but the disk); when full, POST /events answers 503." },
	{ "store", "retention", T_DURATION, OFF(retention), "14d", 1, 315360000, NULL, NULL,
	  "Completed events older than this are pruned (checked every retention/4, at most hourly)." },
	{ "store", "failed_retention", T_DURATION, OFF(failed_retention), "90d", 1, 315360000, NULL, NULL,
	  "Failed events (dead letters) older than this are pruned, unless replayed before." },

	{ "worker", "workers", T_INT, OFF(workers), "4", 1, 256, NULL, NULL,
	  "Worker threads running handlers." },
	{ "worker", "worker_nice", T_INT, OFF(worker_nice), "10", 0, 19, NULL, NULL,
	  "Nice value of the worker threads: under CPU pressure, receiving and acknowledging events comes first." },
	{ "worker", "max_attempts", T_INT, OFF(max_attempts), "8", 1, 1000, NULL, NULL,
	  "Attempts per event before it is FAILED (a dead letter that can be replayed)." },
	{ "worker", "retry_base", T_DURATION, OFF(retry_base), "10s", 0.001, 86400, NULL, NULL,
	  "Delay before the second attempt; doubles each attempt, with jitter." },
	{ "worker", "retry_max_delay", T_DURATION, OFF(retry_max_delay), "10m", 0.001, 86400, NULL, NULL,
	  "Upper bound of the delay between attempts." },
	{ "worker", "drain_timeout", T_DURATION, OFF(drain_timeout), "20s", 0, 3600, NULL, NULL,
	  "On shutdown, how long running attempts may take to finish before they are left for the next start." },
	{ "worker", "lease", T_DURATION, OFF(lease), "30s", 1, 3600, NULL, NULL,
	  "How long a claimed event stays this daemon's without a renewal (renewed every third of it); an event whose lease runs out, its daemon gone, runs again." },
	{ "worker", "on_failure", T_ENUM, OFF(on_failure), "patch", NOBOUND, NULL, "patch|leave",
	  "On permanent failure, 'patch' sets the digestion to failed with the error; 'leave' does not touch it." },

	{ "lqs", "api_url", T_STRING, OFF(api_url), "https://api.logqs.com", NOBOUND, "LQS_API_URL", NULL,
	  "LogQS base URL." },
	{ "lqs", "api_endpoint_prefix", T_STRING, OFF(api_endpoint_prefix), "/apps", NOBOUND, "LQS_API_ENDPOINT_PREFIX", NULL,
	  "Path prefix before /lqs." },
	{ "lqs", "datastore_id", T_STRING, OFF(datastore_id), NULL, NOBOUND, "LQS_DATASTORE_ID", NULL,
	  "Datastore UUID (an event's own datastore_id wins)." },
	{ "lqs", "api_key_id", T_STRING, OFF(api_key_id), NULL, NOBOUND, "LQS_API_KEY_ID", NULL,
	  "API key id (UUID)." },
	{ "lqs", "api_key_secret", T_SECRET, OFF(api_key_secret), NULL, NOBOUND, "LQS_API_KEY_SECRET", NULL,
	  "API key secret (or api_key_secret_file)." },
	{ "lqs", "retry_count", T_INT, OFF(retry_count), "2", 0, 100, "LQS_RETRY_COUNT", NULL,
	  "Retries of one LogQS call after the first try." },
	{ "lqs", "retry_delay", T_DURATION, OFF(retry_delay), "5", 0, 3600, "LQS_RETRY_DELAY", NULL,
	  "First backoff between call retries (doubles each retry, jittered)." },
	{ "lqs", "retry_aggressive", T_BOOL, OFF(retry_aggressive), "false", NOBOUND, "LQS_RETRY_AGGRESSIVE", NULL,
	  "Retry 4xx answers too (as the LogQS client does with this set)." },
	{ "lqs", "request_timeout", T_DURATION, OFF(request_timeout), "60", 0.1, 3600, "LQS_API_REQUEST_TIMEOUT", NULL,
	  "Timeout of one LogQS request." },
	{ "lqs", "additional_headers", T_STRING, OFF(additional_headers), "{}", NOBOUND, "LQS_ADDITIONAL_HEADERS", NULL,
	  "JSON object of extra headers sent to LogQS (merged last)." },
	{ "lqs", "max_parallel_requests", T_INT, OFF(max_parallel_requests), "8", 1, 256, NULL, NULL,
	  "Concurrent requests one handler may make (digestion part fetches)." },
	{ "lqs", "page_limit", T_INT, OFF(page_limit), "1000", 1, 100000, NULL, NULL,
	  "Page size asked for when listing; the server may return fewer." },

	{ "lqs", "max_response", T_SIZE, OFF(max_response), "64M", 1024, 4294967296.0, NULL, NULL,
	  "Largest LogQS response body read; a larger one fails the call (not retried)." },

	{ "lqs", "readyz_requires_lqs", T_BOOL, OFF(readyz_requires_lqs), "false", NOBOUND, NULL, NULL,
	  "When true, /readyz answers 503 while the LogQS check (users/me with the API key) fails; when false it only reports it." },
	{ "lqs", "lqs_check_interval", T_DURATION, OFF(lqs_check_interval), "1m", 1, 86400, NULL, NULL,
	  "The LogQS check runs at start and on reload; while it fails, it runs again this often." },

	{ "log", "log_level", T_ENUM, OFF(log_level), "info", NOBOUND, NULL, "error|warn|info|debug",
	  "Least severe level logged." },
	{ "log", "log_format", T_ENUM, OFF(log_format), "auto", NOBOUND, NULL, "auto|json|journal",
	  "json: one JSON object per line on stderr; journal: journald fields (EVENT_ID, RESOURCE_ID, ATTEMPT, DURATION_MS), stderr when journald is not there; auto: journal when stderr is the journal." },
	{ "log", "max_rejection_logs", T_INT, OFF(max_rejection_logs), "10", 0, 100000, NULL, NULL,
	  "Rejected requests (400/401/403/413/415/422) logged per rejection_log_interval, with reason, client and path; the rest are counted in one summary line." },
	{ "log", "rejection_log_interval", T_DURATION, OFF(rejection_log_interval), "1m", 1, 86400, NULL, NULL,
	  "The window max_rejection_logs counts in." },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Where each setting got its value, for messages: "file:line", an
 * environment variable, an option, or "" for the default. */
typedef char origin_t[160];

struct load_ctx {
	struct config *cfg;
	const struct config_overrides *ov;
	const char *path;
	int lineno;
	struct buf *err;
	struct buf *warn;
	int errors;
	origin_t *origin;         /* N_SETTINGS of them */
	int route_line[CONFIG_MAX_ROUTES];
};

static size_t setting_index(const struct setting *s);

static void add_error(struct buf *err, const char *where, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_error(struct buf *err, const char *where, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		buf_printf(err, "%s:%d: %s\n", where, line, msg);
	else
		buf_printf(err, "%s: %s\n", where, msg);
}

static void *field(struct config *cfg, const struct setting *s)
{
	return (char *)cfg + s->offset;
}

static size_t setting_index(const struct setting *s)
{
	return (size_t)(s - settings);
}

/* Whether an operator command skips reading this secret's file: it never
 * needs the hook secret, and the others only when it says so. */
static bool client_skips(const struct config_overrides *ov, const struct setting *s)
{
	if (!ov || !ov->client)
		return false;
	if (strcmp(s->name, "admin_token") == 0)
		return !(ov->needs & CONFIG_NEEDS_ADMIN_TOKEN);
	if (strcmp(s->name, "api_key_secret") == 0)
		return !(ov->needs & CONFIG_NEEDS_LQS_KEY);
	return s->type == T_SECRET || s->type == T_SECRETS;
}

static const struct setting *setting_find(const char *section, const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0 &&
		    (!section || strcmp(settings[i].section, section) == 0))
			return &settings[i];
	return NULL;
}

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	double v;
	double mul = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mul = 1024.0; break;
		case 'M': mul = 1024.0 * 1024; break;
		case 'G': mul = 1024.0 * 1024 * 1024; break;
		default: return -1;
		}
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
		if (toupper((unsigned char)*end) == 'B')
			end++;
		if (*end)
			return -1;
	}
	v *= mul;
	if (v > 9.0e18)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int parse_duration(const char *s, double *out)
{
	char *end;
	double v, mul = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || !isfinite(v))
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mul = 1;
	else if (strcmp(end, "ms") == 0)
		mul = 0.001;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mul = 60;
	else if (strcmp(end, "h") == 0)
		mul = 3600;
	else if (strcmp(end, "d") == 0)
		mul = 86400;
	else
		return -1;
	*out = v * mul;
	return 0;
}

static bool enum_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

static void secrets_clear(struct config *cfg)
{
	for (int i = 0; i < cfg->n_secrets; i++) {
		secure_zero(cfg->secrets[i], strlen(cfg->secrets[i]));
		free(cfg->secrets[i]);
		cfg->secrets[i] = NULL;
	}
	cfg->n_secrets = 0;
}

static int secrets_add(struct config *cfg, const char *v, char *why, size_t whylen)
{
	if (!*v) {
		str_copy(why, "an empty secret is not allowed", whylen);
		return -1;
	}
	if (cfg->n_secrets >= CONFIG_MAX_SECRETS) {
		snprintf(why, whylen, "at most %d secrets may be accepted at once", CONFIG_MAX_SECRETS);
		return -1;
	}
	cfg->secrets[cfg->n_secrets] = strdup(v);
	if (!cfg->secrets[cfg->n_secrets]) {
		str_copy(why, "out of memory", whylen);
		return -1;
	}
	cfg->n_secrets++;
	return 0;
}

static void strip_eol(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Secret files: the whole file (minus one trailing newline) for a single
 * secret; one secret per non-empty line for a secret list. */
static int secret_file_load(struct config *cfg, const struct setting *s, const char *path,
			    char *why, size_t whylen)
{
	size_t len;
	char *text = file_read_all(path, 65536, &len);
	int rc = 0;

	if (!text) {
		snprintf(why, whylen, "cannot read secret file '%s': %s", path, strerror(errno));
		return -1;
	}
	if (memchr(text, '\0', len)) {
		snprintf(why, whylen, "secret file '%s' contains a NUL byte", path);
		rc = -1;
	} else if (s->type == T_SECRETS) {
		char *save = NULL;
		for (char *line = strtok_r(text, "\n", &save); line && !rc;
		     line = strtok_r(NULL, "\n", &save)) {
			strip_eol(line);
			if (*line)
				rc = secrets_add(cfg, line, why, whylen);
		}
		if (!rc && cfg->n_secrets == 0) {
			snprintf(why, whylen, "secret file '%s' holds no secret", path);
			rc = -1;
		}
	} else {
		char **dst = field(cfg, s);
		strip_eol(text);
		if (!*text) {
			snprintf(why, whylen, "secret file '%s' is empty", path);
			rc = -1;
		} else {
			if (*dst) {
				secure_zero(*dst, strlen(*dst));
				free(*dst);
			}
			*dst = strdup(text);
			if (!*dst)
				rc = -1;
		}
	}
	secure_zero(text, len);
	free(text);
	return rc;
}

/* Set one value. replace_list: a secret list source that replaces rather than
 * appends (environment, credentials). Returns 0 or -1 with why filled in. */
static int setting_apply_value(struct config *cfg, const struct setting *s, const char *v,
			       bool is_file_variant, bool replace_list, char *why, size_t whylen);

static int setting_apply(struct config *cfg, const struct setting *s, const char *v,
			 bool is_file_variant, bool replace_list, char *why, size_t whylen)
{
	int rc = setting_apply_value(cfg, s, v, is_file_variant, replace_list, why, whylen);

	/* the text as written, for --print-config (never a secret's) */
	if (rc == 0 && cfg->text && s->type != T_SECRET && s->type != T_SECRETS) {
		size_t i = setting_index(s);
		char *t = strdup(v);
		if (t) {
			free(cfg->text[i]);
			cfg->text[i] = t;
		}
	}
	return rc;
}

static int setting_apply_value(struct config *cfg, const struct setting *s, const char *v,
			       bool is_file_variant, bool replace_list, char *why, size_t whylen)
{
	void *f = field(cfg, s);

	if (is_file_variant) {
		if (s->type == T_SECRETS && replace_list)
			secrets_clear(cfg);
		return secret_file_load(cfg, s, v, why, whylen);
	}
	switch (s->type) {
	case T_STRING:
	case T_SECRET:
	case T_ENUM: {
		char **dst = f;
		if (s->type == T_ENUM && !enum_ok(s->choices, v)) {
			snprintf(why, whylen, "%s: '%s' is not one of %s", s->name, v, s->choices);
			return -1;
		}
		if (*dst) {
			if (s->type == T_SECRET)
				secure_zero(*dst, strlen(*dst));
			free(*dst);
		}
		*dst = strdup(v);
		return *dst ? 0 : -1;
	}
	case T_SECRETS:
		if (replace_list)
			secrets_clear(cfg);
		return secrets_add(cfg, v, why, whylen);
	case T_INT:
	case T_SIZE: {
		int64_t x;
		int rc = s->type == T_INT ? parse_i64(v, &x) : parse_size(v, &x);
		if (rc) {
			snprintf(why, whylen, "%s: '%s' is not a valid %s", s->name, v,
				 s->type == T_INT ? "integer" : "size (e.g. 65536, 64K, 1M)");
			return -1;
		}
		if (s->min <= s->max && ((double)x < s->min || (double)x > s->max)) {
			snprintf(why, whylen, "%s: %s is out of bounds [%.0f, %.0f]", s->name, v,
				 s->min, s->max);
			return -1;
		}
		*(int64_t *)f = x;
		return 0;
	}
	case T_DURATION:
	case T_DOUBLE: {
		double x;
		int rc = s->type == T_DOUBLE ? parse_double(v, &x) : parse_duration(v, &x);
		if (rc) {
			snprintf(why, whylen, "%s: '%s' is not a valid %s", s->name, v,
				 s->type == T_DOUBLE ? "number" : "duration (e.g. 30, 30s, 500ms, 10m, 14d)");
			return -1;
		}
		if (s->min <= s->max && (x < s->min || x > s->max)) {
			snprintf(why, whylen, "%s: %s is out of bounds [%g, %g] seconds", s->name, v,
				 s->min, s->max);
			return -1;
		}
		*(double *)f = x;
		return 0;
	}
	case T_BOOL:
		if (parse_bool(v, (bool *)f)) {
			snprintf(why, whylen, "%s: '%s' is not a boolean (true/false)", s->name, v);
			return -1;
		}
		return 0;
	}
	return -1;
}

static int route_set(struct route *r, const char *name, const char *value, char *why, size_t whylen)
{
	char types[160], states[160];

	names_join(lqs_process_types, "|", types, sizeof(types));
	names_join(lqs_process_states, "|", states, sizeof(states));
	if (strcmp(name, "process_type") == 0) {
		if (!name_in(lqs_process_types, value)) {
			snprintf(why, whylen, "process_type: '%s' is not one of %s", value, types);
			return -1;
		}
		str_copy(r->process_type, value, sizeof(r->process_type));
	} else if (strcmp(name, "state") == 0) {
		if (!name_in(lqs_process_states, value)) {
			snprintf(why, whylen, "state: '%s' is not one of %s", value, states);
			return -1;
		}
		str_copy(r->state, value, sizeof(r->state));
	} else if (strcmp(name, "handler") == 0) {
		/* whether a handler of that name is compiled in is for the caller
		 * to say (router_check): the settings know no handlers */
		if (!*value || strlen(value) >= sizeof(r->handler) ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(value)) {
			snprintf(why, whylen, "handler: '%s' is not a handler name", value);
			return -1;
		}
		str_copy(r->handler, value, sizeof(r->handler));
	} else {
		snprintf(why, whylen, "unknown key '%s' in a route section (process_type, state, handler)", name);
		return -1;
	}
	return 0;
}

static struct route *route_get(struct config *cfg, const char *name, char *why, size_t whylen)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].name, name) == 0)
			return &cfg->routes[i];
	if (cfg->n_routes >= CONFIG_MAX_ROUTES) {
		snprintf(why, whylen, "at most %d routes", CONFIG_MAX_ROUTES);
		return NULL;
	}
	struct route *r = &cfg->routes[cfg->n_routes++];
	memset(r, 0, sizeof(*r));
	str_copy(r->name, name, sizeof(r->name));
	return r;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	char why[512] = "";
	const struct setting *s;
	bool file_variant = false;
	char base[64];

	if (strncmp(section, "route ", 6) == 0 || strncmp(section, "route\t", 6) == 0) {
		const char *rname = section + 6;
		while (*rname == ' ' || *rname == '\t')
			rname++;
		struct route *r = *rname ? route_get(ctx->cfg, rname, why, sizeof(why)) : NULL;
		if (!*rname)
			str_copy(why, "a route section needs a name: [route NAME]", sizeof(why));
		if (!r || route_set(r, name, value, why, sizeof(why))) {
			add_error(ctx->err, ctx->path, ctx->lineno, "%s", why);
			ctx->errors++;
		} else {
			if (!ctx->route_line[r - ctx->cfg->routes])
				ctx->route_line[r - ctx->cfg->routes] = ctx->lineno;
			if (strcmp(name, "handler") == 0)
				r->handler_line = ctx->lineno;
		}
		return 1;
	}
	s = setting_find(section, name);
	if (!s) {
		size_t n = strlen(name);
		if (n > 5 && strcmp(name + n - 5, "_file") == 0 && n - 5 < sizeof(base)) {
			memcpy(base, name, n - 5);
			base[n - 5] = '\0';
			s = setting_find(section, base);
			if (s && (s->type == T_SECRET || s->type == T_SECRETS))
				file_variant = true;
			else
				s = NULL;
		}
	}
	if (!s) {
		if (setting_find(NULL, name))
			add_error(ctx->err, ctx->path, ctx->lineno, "key '%s' belongs in section [%s], not [%s]",
				  name, setting_find(NULL, name)->section, section);
		else
			add_error(ctx->err, ctx->path, ctx->lineno, "unknown key '%s' in section [%s]", name,
				  section);
		ctx->errors++;
		return 1;
	}
	if (file_variant && client_skips(ctx->ov, s))
		return 1;   /* an operator command that does not need it */
	/* Inline comments were cut by the reader (whitespace, then # or ;); a
	 * # or ; left in a value was probably meant as one too. */
	if (strpbrk(value, "#;"))
		add_error(ctx->warn, ctx->path, ctx->lineno,
			  "the value of '%s' contains '%c'; it is kept as part of the value (a comment starts "
			  "with a space or tab before the # or ;)", name, *strpbrk(value, "#;"));
	/* The first secret in the file replaces nothing (defaults have none),
	 * later ones add to the list: several secrets accepted for rotation. */
	if (setting_apply(ctx->cfg, s, value, file_variant, false, why, sizeof(why))) {
		add_error(ctx->err, ctx->path, ctx->lineno, "%s", why[0] ? why : "invalid value");
		ctx->errors++;
	} else {
		snprintf(ctx->origin[setting_index(s)], sizeof(origin_t), "%s:%d", ctx->path, ctx->lineno);
	}
	return 1;
}

/* The one comment rule: a line whose first non-blank character is # or ;
 * is a comment, and so is the rest of a "key = value" line from a # or ;
 * that follows a space or tab. A value that must hold " #" or " ;" goes
 * in a file (NAME_file) or the environment. */
static void strip_inline_comment(char *line)
{
	char *p = line, *eq;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '#' || *p == ';' || *p == '[' || !(eq = strchr(p, '=')))
		return;
	for (p = eq + 1; *p; p++) {
		if ((*p == '#' || *p == ';') && (p[-1] == ' ' || p[-1] == '\t')) {
			p[0] = '\n';
			p[1] = '\0';
			return;
		}
	}
}

static char *counting_reader(char *str, int num, void *stream)
{
	struct { FILE *f; struct load_ctx *ctx; } *rd = stream;
	char *r = fgets(str, num, rd->f);

	if (r) {
		rd->ctx->lineno++;
		strip_inline_comment(str);
	}
	return r;
}

static void env_name(const struct setting *s, char *out, size_t n, bool file_variant)
{
	size_t i = 0;
	const char *p = s->name;

	i = str_copy(out, "LQS_HOOKD_", n);
	for (; *p && i + 1 < n; p++)
		out[i++] = (char)toupper((unsigned char)*p);
	out[i] = '\0';
	if (file_variant && i + 6 < n)
		memcpy(out + i, "_FILE", 6);
}

static void load_env(struct load_ctx *ctx)
{
	char name[96], why[512];
	const char *v;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		bool secretish = s->type == T_SECRET || s->type == T_SECRETS;

		for (int fv = 0; fv <= (secretish ? 1 : 0); fv++) {
			env_name(s, name, sizeof(name), fv);
			v = getenv(name);
			if (!v || (fv && client_skips(ctx->ov, s)))
				continue;
			if (setting_apply(ctx->cfg, s, v, fv, true, why, sizeof(why))) {
				add_error(ctx->err, name, 0, "%s", why);
				ctx->errors++;
			} else {
				str_copy(ctx->origin[i], name, sizeof(origin_t));
			}
		}
		if (s->env_alias && (v = getenv(s->env_alias)) != NULL) {
			if (setting_apply(ctx->cfg, s, v, false, true, why, sizeof(why))) {
				add_error(ctx->err, s->env_alias, 0, "%s", why);
				ctx->errors++;
			} else {
				str_copy(ctx->origin[i], s->env_alias, sizeof(origin_t));
			}
		}
	}
}

/* systemd credentials (LoadCredential=): files named after the setting,
 * bare ("secret") or with the daemon's prefix ("lqs-hookd.secret", the
 * name under /etc/credstore/ that the shipped unit loads). */
static void load_credentials(struct load_ctx *ctx)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX], why[512];

	if (!dir || !*dir)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if ((s->type != T_SECRET && s->type != T_SECRETS) || client_skips(ctx->ov, s))
			continue;
		for (int prefixed = 0; prefixed < 2; prefixed++) {
			if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir, prefixed ? "lqs-hookd." : "",
					     s->name) >= sizeof(path))
				continue;
			if (access(path, R_OK) != 0)
				continue;
			if (setting_apply(ctx->cfg, s, path, true, true, why, sizeof(why))) {
				add_error(ctx->err, path, 0, "%s", why);
				ctx->errors++;
			}
			break;
		}
	}
}

static void set_defaults(struct config *cfg)
{
	char why[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->text = calloc(N_SETTINGS, sizeof(*cfg->text));
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].def)
			setting_apply(cfg, &settings[i], settings[i].def, false, false, why, sizeof(why));
}

int config_split_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
	const char *colon;
	int64_t p;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return -1;
		if ((size_t)(close - listen - 1) >= hostlen)
			return -1;
		memcpy(host, listen + 1, (size_t)(close - listen - 1));
		host[close - listen - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= hostlen)
			return -1;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
	}
	if (parse_i64(colon + 1, &p) || p < 0 || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

/* "file:line" (or the variable or option) a setting came from; the file
 * itself for a default. */
static const char *where_of(const struct load_ctx *ctx, const char *name)
{
	const struct setting *st = setting_find(NULL, name);
	const char *o = st ? ctx->origin[setting_index(st)] : "";

	return o[0] ? o : ctx->cfg->path ? ctx->cfg->path : "config";
}

static bool http_url_ok(const char *u)
{
	size_t n = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;

	/* a host, then nothing that would end it early */
	return n && u[n] && u[n] != '/' && u[n] != ':' && !strpbrk(u, " \t\r\n?#");
}

static void validate(struct load_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct buf *err = ctx->err;
	char host[256], canon[37];
	unsigned port;
	const char *where = cfg->path ? cfg->path : "config";

#define BAD(name, ...) do { add_error(err, where_of(ctx, name), 0, __VA_ARGS__); ctx->errors++; } while (0)
	if (config_split_listen(cfg->listen, host, sizeof(host), &port))
		BAD("listen", "listen: '%s' is not HOST:PORT", cfg->listen);
	if (cfg->events_path[0] != '/' || strlen(cfg->events_path) > 128 ||
	    strchr(cfg->events_path, '?') || strcmp(cfg->events_path, "/") == 0)
		BAD("events_path", "events_path: '%s' must be an absolute path such as /events", cfg->events_path);
	if (!(ctx->ov && ctx->ov->client) && strcmp(cfg->auth, "secret") == 0 && cfg->n_secrets == 0) {
		add_error(err, where, 0,
			  "no hook secret configured: set LQS_EXPECTED_SECRET, secret or secret_file "
			  "(or auth = none to accept unauthenticated events)");
		ctx->errors++;
	}
	if (cfg->retry_max_delay < cfg->retry_base)
		BAD("retry_max_delay", "retry_max_delay (%g s) is smaller than retry_base (%g s)",
		    cfg->retry_max_delay, cfg->retry_base);
	if (cfg->datastore_id && *cfg->datastore_id && !uuid_canonical(cfg->datastore_id, canon))
		BAD("datastore_id", "datastore_id: '%s' is not a UUID", cfg->datastore_id);
	if (cfg->api_key_id && *cfg->api_key_id && !uuid_canonical(cfg->api_key_id, canon))
		BAD("api_key_id", "api_key_id: '%s' is not a UUID (LogQS API key ids are UUIDs)", cfg->api_key_id);
	if (!http_url_ok(cfg->api_url))
		BAD("api_url", "api_url: '%s' is not an http:// or https:// URL with a host", cfg->api_url);
	if (cfg->additional_headers) {
		json_error_t jerr;
		json_t *h = json_loads(cfg->additional_headers, 0, &jerr);
		const char *k;
		json_t *v;
		if (!h)
			BAD("additional_headers", "additional_headers: not valid JSON (%s, column %d)", jerr.text,
			    jerr.column);
		else if (!json_is_object(h))
			BAD("additional_headers", "additional_headers: must be a JSON object of header names to strings");
		else
			json_object_foreach(h, k, v) {
				if (!json_is_string(v) || !*k || strpbrk(k, ": \t\r\n") ||
				    strpbrk(json_string_value(v), "\r\n")) {
					BAD("additional_headers",
					    "additional_headers: '%s' must be a header name with a one-line string value", k);
					break;
				}
			}
		json_decref(h);
	}
#undef BAD
	if (!cfg->store) {
		const char *sd = getenv("STATE_DIRECTORY");
		char path[PATH_MAX];
		/* systemd may pass several directories separated by ':'; use the first. */
		if (sd && *sd) {
			size_t n = strcspn(sd, ":");
			snprintf(path, sizeof(path), "%.*s/lqs-hookd.db", (int)n, sd);
		} else {
			str_copy(path, "lqs-hookd.db", sizeof(path));
		}
		cfg->store = strdup(path);
	}
	if (cfg->n_routes == 0) {
		struct route *r = &cfg->routes[cfg->n_routes++];
		str_copy(r->name, "digestion-finalizing", sizeof(r->name));
		str_copy(r->process_type, "digestion", sizeof(r->process_type));
		str_copy(r->state, "finalizing", sizeof(r->state));
		str_copy(r->handler, "digestion_stats", sizeof(r->handler));
	}
	for (int i = 0; i < cfg->n_routes; i++) {
		struct route *r = &cfg->routes[i];
		if (!r->process_type[0] || !r->state[0] || !r->handler[0]) {
			add_error(err, where, ctx->route_line[i], "route '%s' needs process_type, state and handler",
				  r->name);
			ctx->errors++;
		}
	}
}

/* Parse an already opened file (or memory stream) named `path`. */
static void load_stream(struct load_ctx *ctx, FILE *f)
{
	struct { FILE *f; struct load_ctx *ctx; } rd = { f, ctx };
	int before = ctx->errors;
	int rc = ini_parse_stream(counting_reader, &rd, ini_cb, ctx);

	/* inih reports a syntax error by its line; our own errors were already
	 * recorded with theirs. */
	if (rc > 0 && ctx->errors == before) {
		add_error(ctx->err, ctx->path, rc, "syntax error (expected [section] or key = value)");
		ctx->errors++;
	} else if (rc < 0) {
		add_error(ctx->err, ctx->path, 0, "cannot read: %s", strerror(errno));
		ctx->errors++;
	}
}

/* f: the opened file, or NULL with open_errno saying why it is not. */
static int load_common(struct config *cfg, const char *path, FILE *f, int open_errno,
		       const struct config_overrides *ov, char *errout, size_t errlen)
{
	struct buf err, warn;
	char why[512];
	origin_t *origin = calloc(N_SETTINGS, sizeof(*origin));
	struct load_ctx ctx = { .cfg = cfg, .ov = ov, .path = path, .err = &err, .warn = &warn,
				.origin = origin };
	struct stat sb;

	buf_init(&err, 16384);
	buf_init(&warn, 16384);
	set_defaults(cfg);
	if (!origin || !cfg->text) {
		add_error(&err, path ? path : "config", 0, "out of memory");
		ctx.errors++;
	} else if (path) {
		cfg->path = strdup(path);
		if (!f) {
			add_error(&err, path, 0, "cannot open: %s", strerror(open_errno));
			ctx.errors++;
		} else if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
			add_error(&err, path, 0, "is a directory, not a configuration file");
			ctx.errors++;
		} else {
			load_stream(&ctx, f);
		}
	}
	if (!ctx.errors) {
		load_credentials(&ctx);
		load_env(&ctx);
	}
	if (!ctx.errors && ov && ov->listen) {
		if (setting_apply(cfg, setting_find("http", "listen"), ov->listen, false, false, why, sizeof(why))) {
			add_error(&err, "--listen", 0, "%s", why);
			ctx.errors++;
		} else {
			str_copy(origin[setting_index(setting_find("http", "listen"))], "--listen", sizeof(origin_t));
		}
	}
	if (!ctx.errors && ov && ov->store)
		setting_apply(cfg, setting_find("store", "store"), ov->store, false, false, why, sizeof(why));
	if (!ctx.errors)
		validate(&ctx);
	free(origin);
	cfg->warnings = warn.data ? buf_steal(&warn) : NULL;
	buf_free(&warn);
	if (ctx.errors) {
		if (errout && errlen)
			str_copy(errout, err.data ? err.data : "invalid configuration\n", errlen);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	return 0;
}

int config_load(struct config *cfg, const char *path, const struct config_overrides *ov,
		char *errout, size_t errlen)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	int rc = load_common(cfg, path, f, errno, ov, errout, errlen);

	if (f)
		fclose(f);
	return rc;
}

int config_load_buffer(struct config *cfg, const char *name, const char *text, size_t len,
		       const struct config_overrides *ov, char *errout, size_t errlen)
{
	/* fmemopen cannot open an empty buffer on every libc: parse "\n" then */
	FILE *f = len ? fmemopen((void *)(uintptr_t)text, len, "r") : fmemopen((char[]){ "\n" }, 1, "r");
	int rc = load_common(cfg, name, f, errno, ov, errout, errlen);

	if (f)
		fclose(f);
	return rc;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (s->type == T_STRING || s->type == T_SECRET || s->type == T_ENUM) {
			char **p = field(cfg, s);
			if (*p && s->type == T_SECRET)
				secure_zero(*p, strlen(*p));
			free(*p);
			*p = NULL;
		}
	}
	secrets_clear(cfg);
	free(cfg->path);
	cfg->path = NULL;
	for (size_t i = 0; cfg->text && i < N_SETTINGS; i++)
		free(cfg->text[i]);
	free(cfg->text);
	cfg->text = NULL;
	free(cfg->warnings);
	cfg->warnings = NULL;
}

const char *config_default_path(void)
{
	return access(LQS_DEFAULT_CONFIG, F_OK) == 0 ? LQS_DEFAULT_CONFIG : NULL;
}

static void value_text(const struct config *cfg, const struct setting *s, char *out, size_t n)
{
	const void *f = (const char *)cfg + s->offset;

	/* durations and sizes as they were written (14d, 64K), not as numbers */
	if ((s->type == T_DURATION || s->type == T_SIZE) && cfg->text && cfg->text[setting_index(s)]) {
		str_copy(out, cfg->text[setting_index(s)], n);
		return;
	}

	switch (s->type) {
	case T_STRING:
	case T_ENUM: {
		const char *v = *(char *const *)f;
		str_copy(out, v ? v : "", n);
		break;
	}
	case T_SECRET:
		str_copy(out, *(char *const *)f ? "(set, hidden)" : "(unset)", n);
		break;
	case T_SECRETS:
		if (cfg->n_secrets)
			snprintf(out, n, "(%d set, hidden)", cfg->n_secrets);
		else
			str_copy(out, "(unset)", n);
		break;
	case T_INT:
	case T_SIZE:
		snprintf(out, n, "%lld", (long long)*(const int64_t *)f);
		break;
	case T_DURATION:
	case T_DOUBLE:
		snprintf(out, n, "%g", *(const double *)f);
		break;
	case T_BOOL:
		str_copy(out, *(const bool *)f ? "true" : "false", n);
		break;
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	const char *section = "";
	char v[1024];

	fprintf(out, "# effective configuration (secrets are never shown)\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (strcmp(section, s->section) != 0) {
			section = s->section;
			fprintf(out, "\n[%s]\n", section);
		}
		value_text(cfg, s, v, sizeof(v));
		if (s->type == T_SECRET || s->type == T_SECRETS)
			fprintf(out, "# %s = %s\n", s->name, v);
		else
			fprintf(out, "%s = %s\n", s->name, v);
	}
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		fprintf(out, "\n[route %s]\nprocess_type = %s\nstate = %s\nhandler = %s\n", r->name,
			r->process_type, r->state, r->handler);
	}
}

void config_print_reference(FILE *out)
{
	char env[96], envf[96], key[160], envs[320], def[96], bounds[96];

	fprintf(out, "| section | key | default | bounds | environment | meaning |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		bool secretish = s->type == T_SECRET || s->type == T_SECRETS;

		env_name(s, env, sizeof(env), false);
		env_name(s, envf, sizeof(envf), true);
		if (secretish) {
			snprintf(key, sizeof(key), "`%s`, `%s_file`", s->name, s->name);
			snprintf(envs, sizeof(envs), "`%s`, `%s`", env, envf);
		} else {
			snprintf(key, sizeof(key), "`%s`", s->name);
			snprintf(envs, sizeof(envs), "`%s`", env);
		}
		if (s->env_alias) {
			size_t n = strlen(envs);
			snprintf(envs + n, sizeof(envs) - n, ", `%s`", s->env_alias);
		}
		if (s->def)
			snprintf(def, sizeof(def), "`%s`", s->def);
		else
			str_copy(def, "—", sizeof(def));
		bounds[0] = '\0';
		if (s->type == T_ENUM) {
			/* '|' would split a Markdown cell */
			size_t o = 0;
			for (const char *p = s->choices; *p && o + 3 < sizeof(bounds); p++) {
				if (*p == '|') {
					bounds[o++] = ',';
					bounds[o++] = ' ';
				} else {
					bounds[o++] = *p;
				}
			}
			bounds[o] = '\0';
		} else if (s->min <= s->max && s->type == T_DURATION) {
			snprintf(bounds, sizeof(bounds), "%.10g–%.10g s", s->min, s->max);
		} else if (s->min <= s->max) {
			snprintf(bounds, sizeof(bounds), "%.0f–%.0f", s->min, s->max);
		}
		fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", s->section, key, def, bounds, envs,
			s->help);
	}
}

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_ref *current;
static unsigned current_generation;

static void ref_drop_locked(struct config_ref *r)
{
	if (r && --r->refs == 0) {
		config_free(&r->cfg);
		free(r);
	}
}

void config_install(struct config *cfg)
{
	struct config_ref *r = calloc(1, sizeof(*r));

	if (!r)
		return;
	r->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	r->refs = 1;
	pthread_mutex_lock(&current_lock);
	r->generation = ++current_generation;
	ref_drop_locked(current);
	current = r;
	pthread_mutex_unlock(&current_lock);
}

struct config_ref *config_current(void)
{
	struct config_ref *r;

	pthread_mutex_lock(&current_lock);
	r = current;
	if (r)
		r->refs++;
	pthread_mutex_unlock(&current_lock);
	return r;
}

void config_put(struct config_ref *r)
{
	pthread_mutex_lock(&current_lock);
	ref_drop_locked(r);
	pthread_mutex_unlock(&current_lock);
}

void config_uninstall(void)
{
	pthread_mutex_lock(&current_lock);
	ref_drop_locked(current);
	current = NULL;
	pthread_mutex_unlock(&current_lock);
}
