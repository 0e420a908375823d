/* `lqs-hookd sweeps` (every sweep, its last and next run) and
 * `lqs-hookd sweep NAME [--now]` (one of them, or run it now and print
 * what it enqueued). */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/util.h"

static void print_sweep_row(json_t *s)
{
	json_t *last = json_object_get(s, "last_run");
	char found[48] = "-", when[40];

	if (json_is_object(last))
		snprintf(found, sizeof(found), "%lld/%lld", (long long)json_integer_value(json_object_get(last, "found")),
			 (long long)json_integer_value(json_object_get(last, "enqueued")));
	str_copy(when, s_or(json_object_get(last, "started_at"), "never"), sizeof(when));
	printf("%-24s  %-7s  %-22s  %7.0f  %7.0f  %-24s  %-13s  %6lld  %-24s  %s\n", s_or(json_object_get(s, "name"), "?"),
	       json_is_true(json_object_get(s, "enabled")) ? "yes" : "no",
	       s_or(json_object_get(s, "process_type"), "?"), json_number_value(json_object_get(s, "every_s")),
	       json_number_value(json_object_get(s, "min_age_s")), when, found,
	       (long long)json_integer_value(json_object_get(s, "errors")), s_or(json_object_get(s, "next_run_at"), "-"),
	       s_or(json_object_get(s, "waiting"), s_or(json_object_get(last, "error"), "")));
}

static void print_sweeps(json_t *list)
{
	size_t i;
	json_t *s;

	printf("%-24s  %-7s  %-22s  %7s  %7s  %-24s  %-13s  %6s  %-24s  %s\n", "SWEEP", "ENABLED", "PROCESS_TYPE",
	       "EVERY_S", "MIN_AGE", "LAST_RUN", "FOUND/ENQ", "ERRORS", "NEXT_RUN", "NOTE");
	json_array_foreach(list, i, s)
		print_sweep_row(s);
}

static void print_report(json_t *r)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(r, "events"), i, e)
		printf("%s  %s  %s\n", s_or(json_object_get(e, "event_id"), "-"), s_or(json_object_get(e, "resource_id"), "-"),
		       json_is_true(json_object_get(e, "new")) ? "enqueued" : "already held");
	printf("sweep %s: %lld listed, %lld old enough%s: enqueued %lld, %lld already held\n",
	       s_or(json_object_get(r, "sweep"), "?"), (long long)json_integer_value(json_object_get(r, "listed")),
	       (long long)json_integer_value(json_object_get(r, "found")),
	       json_is_true(json_object_get(r, "truncated")) ? " (max_per_run reached)" : "",
	       (long long)json_integer_value(json_object_get(r, "enqueued")),
	       (long long)json_integer_value(json_object_get(r, "duplicates")));
	if (json_is_string(json_object_get(r, "error")))
		printf("error: %s\n", json_string_value(json_object_get(r, "error")));
}

static int run_now(const struct config *cfg, const struct cli_opts *o)
{
	char path[256], err[4096];
	json_t *doc = NULL;
	long status;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "/sweeps/%s/run", o->id_arg) >= sizeof(path) ||
	    strspn(o->id_arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(o->id_arg)) {
		fprintf(stderr, "lqs-hookd: '%s' is not a sweep name\n", o->id_arg);
		return 2;
	}
	status = cli_call(cfg, o->listen, "POST", path, CLI_SWEEP_TIMEOUT_MS, &doc, err, sizeof(err));
	if (status != 200) {
		rc = daemon_error(status, doc, err);
	} else {
		if (o->json_out)
			print_json(doc);
		else
			print_report(doc);
		/* the run itself failed (LogQS down, the key refused) */
		rc = json_is_string(json_object_get(doc, "error")) ? 1 : 0;
	}
	json_decref(doc);
	return rc;
}

int cmd_sweeps(const struct config *cfg, const struct cli_opts *o)
{
	char err[4096];
	json_t *doc = NULL, *list, *one = NULL, *s;
	long status;
	size_t i;
	int rc = 0;

	if (o->now)
		return run_now(cfg, o);
	status = cli_call(cfg, o->listen, "GET", "/sweeps", CLI_TIMEOUT_MS, &doc, err, sizeof(err));
	if (status != 200) {
		rc = daemon_error(status, doc, err);
		json_decref(doc);
		return rc;
	}
	list = json_object_get(doc, "sweeps");
	if (o->id_arg) {
		json_array_foreach(list, i, s)
			if (strcmp(s_or(json_object_get(s, "name"), ""), o->id_arg) == 0)
				one = s;
		if (!one) {
			fprintf(stderr, "lqs-hookd: no sweep named '%s'\n", o->id_arg);
			json_decref(doc);
			return 1;
		}
	}
	if (o->json_out)
		print_json(one ? one : doc);
	else if (one)
		print_json(one);
	else
		print_sweeps(list);
	json_decref(doc);
	return 0;
}
