/* The settings table: every setting's name, type, default, bounds,
 * environment alias and help, and how a value is parsed into place. One
 * table serves the file, the environment, --print-config and the docs. */
#include "lqs-hookd/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config_int.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

#define OFF(f) offsetof(struct config, f)
#define NOBOUND 1, 0

/* The one table. Environment: LQS_HOOKD_<NAME> for every setting, and the
 * LogQS client's own variable where it has one (the alias wins when both are
 * set, so a tutorial user's environment means what it meant there). */
const struct setting settings[] = {
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
	{ "http", "tls_cert", T_STRING, OFF(tls_cert), NULL, NOBOUND, NULL, NULL,
	  "PEM certificate (with its chain) to serve HTTPS on listen; with tls_key. Unset: plain HTTP (or the systemd credential lqs-hookd.tls_cert). Reloaded on SIGHUP." },
	{ "http", "tls_key", T_STRING, OFF(tls_key), NULL, NOBOUND, NULL, NULL,
	  "PEM private key of tls_cert (not encrypted; or the systemd credential lqs-hookd.tls_key). Reloaded on SIGHUP." },
	{ "http", "tls_priorities", T_STRING, OFF(tls_priorities), "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NOBOUND, NULL, NULL,
	  "GnuTLS priority string: protocol versions and ciphers (default: GnuTLS's NORMAL set, TLS 1.2 and 1.3 only). Read at start." },
	{ "http", "stream_max_subscribers", T_INT, OFF(stream_max_subscribers), "64", 0, 4096, NULL, NULL,
	  "Clients following GET /events/stream at once; one more gets 503 (0: the stream is off)." },
	{ "http", "stream_buffer", T_SIZE, OFF(stream_buffer), "1M", 4096, 268435456, NULL, NULL,
	  "Bytes a stream subscriber may fall behind; a slower one is cut (it reconnects with Last-Event-ID)." },
	{ "http", "stream_heartbeat", T_DURATION, OFF(stream_heartbeat), "15s", 1, 3600, NULL, NULL,
	  "A comment line is sent to a quiet stream subscriber this often (keep it below connection_timeout)." },
	{ "http", "http_threads", T_INT, OFF(http_threads), "2", 1, 64, NULL, NULL,
	  "Threads serving HTTP (they validate and store, never call LogQS)." },

	{ "auth", "auth", T_ENUM, OFF(auth), "secret", NOBOUND, NULL, "secret|none",
	  "'secret' requires a hook secret; 'none' accepts unauthenticated events (logged as a warning)." },
	{ "auth", "secret", T_SECRETS, OFF(secrets), NULL, NOBOUND, "LQS_EXPECTED_SECRET", NULL,
	  "Hook secret; repeat the key (or use secret_file, one per line) to accept several during rotation." },
	{ "auth", "admin_token", T_SECRET, OFF(admin_token), NULL, NOBOUND, NULL, NULL,
	  "Bearer token for the administration endpoints; unset: they answer loopback clients only." },

	{ "store", "store", T_STRING, OFF(store), NULL, NOBOUND, NULL, NULL,
	  "Event store: a SQLite file (default: $STATE_DIRECTORY/lqs-hookd.db, else ./lqs-hookd.db), or a PostgreSQL database shared by several daemons (a postgresql:// URI or a libpq key=value string). Read at start." },
	{ "store", "store_password", T_SECRET, OFF(store_password), NULL, NOBOUND, NULL, NULL,
	  "Password of the PostgreSQL store (or store_password_file, or the systemd credential lqs-hookd.store_password); never logged. Unset: libpq's own ways (~/.pgpass, PGPASSWORD)." },
	{ "store", "store_connections", T_INT, OFF(store_connections), "8", 1, 256, NULL, NULL,
	  "Connections this daemon opens to a PostgreSQL store at most, besides one for its advisory locks and one for change notifications. Read at start." },
	{ "store", "max_queued", T_INT, OFF(max_queued), "100000", 1, 100000000, NULL, NULL,
	  "Unfinished events the store may hold; beyond it POST /events answers 503 with Retry-After." },
	{ "store", "dedupe_window", T_DURATION, OFF(dedupe_window), "10m", 0, 604800, NULL, NULL,
	  "A repeat of the same delivery within this window is answered as a duplicate (0: off)." },
	{ "store", "archive_dir", T_STRING, OFF(archive_dir), NULL, NOBOUND, NULL, NULL,
	  "Directory of the partitioned archive: every finished event, with its history, as a JSON line under year=/month=/day=/hour= (UTC); unset: no archive. With it, retention prunes only archived events. Read at start." },
	{ "store", "archive_interval", T_DURATION, OFF(archive_interval), "10s", 0.1, 3600, NULL, NULL,
	  "How often finished events are appended to the archive (a pass also runs at shutdown)." },
	{ "store", "archive_gzip", T_BOOL, OFF(archive_gzip), "false", NOBOUND, NULL, NULL,
	  "Compress each archive file with gzip(1) once its hour is over by an hour and the file is closed (FILE.ndjson.gz). Read at start." },
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

	{ "objects", "objects_path", T_STRING, OFF(objects_path), "/objects", NOBOUND, NULL, NULL,
	  "Path S3 object events are posted to (S3 notifications, EventBridge API destinations, SNS subscriptions)." },
	{ "objects", "objects_secret", T_SECRETS, OFF(objects_secrets), NULL, NOBOUND, NULL, NULL,
	  "Bearer secret for POST objects_path (sent as is, or base64-encoded as for events); repeat the key (or objects_secret_file, one per line) to accept several." },
	{ "objects", "objects_basic_user", T_STRING, OFF(objects_basic_user), NULL, NOBOUND, NULL, NULL,
	  "User name of HTTP Basic authentication for POST objects_path (an EventBridge API destination's Basic option); needs objects_basic_password." },
	{ "objects", "objects_basic_password", T_SECRET, OFF(objects_basic_password), NULL, NOBOUND, NULL, NULL,
	  "Password of HTTP Basic authentication for POST objects_path." },
	{ "objects", "sns_topics", T_STRING, OFF(sns_topics), NULL, NOBOUND, NULL, NULL,
	  "SNS topics (TopicArn, comma-separated) whose messages POST objects_path takes; SNS messages of others get 403." },
	{ "objects", "sns_cert_host", T_STRING, OFF(sns_cert_host), "sns.*.amazonaws.com", NOBOUND, NULL, NULL,
	  "Host (a glob) an SNS message's SigningCertURL and SubscribeURL must name; the certificate is fetched over HTTPS only." },
	{ "objects", "sns_ca_file", T_STRING, OFF(sns_ca_file), NULL, NOBOUND, NULL, NULL,
	  "CA bundle for fetching SNS signing certificates and confirming subscriptions (unset: the system's)." },
	{ "objects", "max_records", T_INT, OFF(max_records), "1000", 1, 10000, NULL, NULL,
	  "Object records one POST objects_path may carry; more gets 422." },

	{ "aws", "access_key_id", T_STRING, OFF(aws_access_key_id), NULL, NOBOUND, NULL, NULL,
	  "AWS access key id for SQS; unset: AWS_ACCESS_KEY_ID, then the instance's role (IMDSv2)." },
	{ "aws", "secret_access_key", T_SECRET, OFF(aws_secret_access_key), NULL, NOBOUND, NULL, NULL,
	  "AWS secret access key (or secret_access_key_file); unset: AWS_SECRET_ACCESS_KEY, then the instance's role." },
	{ "aws", "session_token", T_SECRET, OFF(aws_session_token), NULL, NOBOUND, NULL, NULL,
	  "AWS session token of temporary credentials (or session_token_file); unset: AWS_SESSION_TOKEN." },
	{ "aws", "imds", T_BOOL, OFF(aws_imds), "true", NOBOUND, NULL, NULL,
	  "With no key configured or in the environment, take the EC2 instance role's credentials from IMDSv2." },
	{ "aws", "imds_endpoint", T_STRING, OFF(aws_imds_endpoint), "http://169.254.169.254", NOBOUND, NULL, NULL,
	  "Where the instance metadata service answers." },

	{ "log", "log_level", T_ENUM, OFF(log_level), "info", NOBOUND, NULL, "error|warn|info|debug",
	  "Least severe level logged." },
	{ "log", "log_format", T_ENUM, OFF(log_format), "auto", NOBOUND, NULL, "auto|json|journal",
	  "json: one JSON object per line on stderr; journal: journald fields (EVENT_ID, RESOURCE_ID, ATTEMPT, DURATION_MS), stderr when journald is not there; auto: journal when stderr is the journal." },
	{ "log", "max_rejection_logs", T_INT, OFF(max_rejection_logs), "10", 0, 100000, NULL, NULL,
	  "Rejected requests (400/401/403/413/415/422) logged per rejection_log_interval, with reason, client and path; the rest are counted in one summary line." },
	{ "log", "rejection_log_interval", T_DURATION, OFF(rejection_log_interval), "1m", 1, 86400, NULL, NULL,
	  "The window max_rejection_logs counts in." },
};

const size_t n_settings = sizeof(settings) / sizeof(settings[0]);


void *field(struct config *cfg, const struct setting *s)
{
	return (char *)cfg + s->offset;
}

size_t setting_index(const struct setting *s)
{
	return (size_t)(s - settings);
}

const struct setting *setting_find(const char *section, const char *name)
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

int parse_duration(const char *s, double *out)
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

int config_parse_duration(const char *s, double *out)
{
	return parse_duration(s, out);
}

bool enum_ok(const char *choices, const char *v)
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

void secrets_clear(struct secret_list *l)
{
	for (int i = 0; i < l->n; i++) {
		secure_zero(l->v[i], strlen(l->v[i]));
		free(l->v[i]);
		l->v[i] = NULL;
	}
	l->n = 0;
}

static int secrets_add(struct secret_list *l, const char *v, char *why, size_t whylen)
{
	if (!*v) {
		str_copy(why, "an empty secret is not allowed", whylen);
		return -1;
	}
	if (l->n >= CONFIG_MAX_SECRETS) {
		snprintf(why, whylen, "at most %d secrets may be accepted at once", CONFIG_MAX_SECRETS);
		return -1;
	}
	l->v[l->n] = strdup(v);
	if (!l->v[l->n]) {
		str_copy(why, "out of memory", whylen);
		return -1;
	}
	l->n++;
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
				rc = secrets_add(field(cfg, s), line, why, whylen);
		}
		if (!rc && ((struct secret_list *)field(cfg, s))->n == 0) {
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

int setting_apply(struct config *cfg, const struct setting *s, const char *v,
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
			secrets_clear(f);
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
			secrets_clear(f);
		return secrets_add(f, v, why, whylen);
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

void env_name(const struct setting *s, char *out, size_t n, bool file_variant)
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

void set_defaults(struct config *cfg)
{
	char why[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->text = calloc(N_SETTINGS, sizeof(*cfg->text));
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].def)
			setting_apply(cfg, &settings[i], settings[i].def, false, false, why, sizeof(why));
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
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].type == T_SECRETS)
			secrets_clear(field(cfg, &settings[i]));
	watches_free(cfg);
	free(cfg->path);
	cfg->path = NULL;
	for (size_t i = 0; cfg->text && i < N_SETTINGS; i++)
		free(cfg->text[i]);
	free(cfg->text);
	cfg->text = NULL;
	free(cfg->warnings);
	cfg->warnings = NULL;
}
