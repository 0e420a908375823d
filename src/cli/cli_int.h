/* Inside the operator commands: what their files share. */
#ifndef LQS_CLI_INT_H
#define LQS_CLI_INT_H
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

struct config;
struct buf;

/* Most calls are answered at once; a sweep run asked for now takes as
 * long as its LogQS listing. */
#define CLI_TIMEOUT_MS 10000L
#define CLI_SWEEP_TIMEOUT_MS (15L * 60 * 1000)

/* A command's options, after parsing. */
struct cli_opts {
	const char *cmd, *config_path, *listen, *state, *handler, *since, *id_arg;
	const char *resource_id, *process_type;
	bool history, dry_run, json_out, bulk, now, watch;
	int64_t limit;
	double timeout_s;   /* status --watch: 0 waits for ever */
};

/* Call the daemon. Returns the HTTP status (0: unreachable) and *doc. */
long cli_call(const struct config *cfg, const char *listen, const char *method, const char *path, long timeout_ms,
	      json_t **doc, char *err, size_t errlen);
/* A handle for path on the daemon (its URL in url, the admin token in *h);
 * NULL with err. cli_easy_done frees both. */
CURL *cli_easy(const struct config *cfg, const char *listen, const char *path, struct curl_slist **h, char *url,
	       size_t urllen, char *err, size_t errlen);
void cli_easy_done(CURL *e, struct curl_slist *h);
/* Append "?name=value" or "&name=value", value percent-encoded (NULL: nothing). */
void query_add(struct buf *q, const char *name, const char *value);
const char *s_or(json_t *v, const char *dflt);
void print_json(json_t *doc);
/* Report a non-2xx answer from the daemon; returns 1. */
int daemon_error(long status, json_t *doc, const char *err);

/* cli_sweeps.c: `sweeps`, `sweep NAME [--now]`. */
int cmd_sweeps(const struct config *cfg, const struct cli_opts *o);
/* cli_batches.c: `batches [--state open|closed]`, `batch ID`. */
int cmd_batches(const struct config *cfg, const struct cli_opts *o);

/* cli_watch.c: `watch [filters]` follows the status stream; `status ID
 * --watch` waits for the event to finish (0 completed, 1 failed, 3 not
 * finished within --timeout, 4 the daemon could not be asked). */
int cmd_watch(const struct config *cfg, const struct cli_opts *o);
int cmd_status_watch(const struct config *cfg, const struct cli_opts *o, const char *id);

#endif
