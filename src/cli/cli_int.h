/* Inside the operator commands: what their files share. */
#ifndef LQS_CLI_INT_H
#define LQS_CLI_INT_H
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct config;

/* Most calls are answered at once; a sweep run asked for now takes as
 * long as its LogQS listing. */
#define CLI_TIMEOUT_MS 10000L
#define CLI_SWEEP_TIMEOUT_MS (15L * 60 * 1000)

/* A command's options, after parsing. */
struct cli_opts {
	const char *cmd, *config_path, *listen, *state, *handler, *since, *id_arg;
	bool history, dry_run, json_out, bulk, now;
	int64_t limit;
};

/* Call the daemon. Returns the HTTP status (0: unreachable) and *doc. */
long cli_call(const struct config *cfg, const char *listen, const char *method, const char *path, long timeout_ms,
	      json_t **doc, char *err, size_t errlen);
const char *s_or(json_t *v, const char *dflt);
void print_json(json_t *doc);
/* Report a non-2xx answer from the daemon; returns 1. */
int daemon_error(long status, json_t *doc, const char *err);

/* cli_sweeps.c: `sweeps`, `sweep NAME [--now]`. */
int cmd_sweeps(const struct config *cfg, const struct cli_opts *o);
/* cli_batches.c: `batches [--state open|closed]`, `batch ID`. */
int cmd_batches(const struct config *cfg, const struct cli_opts *o);

#endif
