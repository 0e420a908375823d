#include "lqs-hookd/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/sqs.h"
#include "lqs-hookd/tls.h"
#include "lqs-hookd/util.h"
#include "cli_int.h"

/* Answers from the daemon are small; anything larger is not ours. */
#define CLI_MAX_RESPONSE (16 * 1024 * 1024)

static const char *const commands[] = { "status", "list", "replay", "check-lqs", "check-sqs", "sweeps", "sweep", "batches", "batch",
					"watch", NULL };

bool cli_is_command(const char *arg)
{
	for (int i = 0; commands[i]; i++)
		if (strcmp(arg, commands[i]) == 0)
			return true;
	return false;
}

static void cli_usage(FILE *out)
{
	fprintf(out,
		"usage: lqs-hookd status <event_id> [--history] [--format table|json]\n"
		"       lqs-hookd status <event_id> --watch [--timeout DURATION] [--format table|json]\n"
		"       lqs-hookd watch [--state S[,S...]] [--handler NAME] [--resource-id ID] [--process-type T]\n"
		"                       [--format table|json]\n"
		"       lqs-hookd list [--state STATE] [--handler NAME] [--since T] [--limit N] [--format table|json]\n"
		"       lqs-hookd replay <event_id> [--format table|json]\n"
		"       lqs-hookd replay --state failed|completed [--since T] [--handler NAME] [--dry-run]\n"
		"                        [--format table|json]\n"
		"       lqs-hookd check-lqs\n"
		"       lqs-hookd check-sqs\n"
		"       lqs-hookd sweeps [--format table|json]\n"
		"       lqs-hookd sweep NAME [--now] [--format table|json]\n"
		"       lqs-hookd batches [--state open|closed] [--limit N] [--format table|json]\n"
		"       lqs-hookd batch <batch_id>\n"
		"common options (before or after the command): --config FILE, --listen HOST:PORT\n"
		"T: epoch seconds or YYYY-MM-DDTHH:MM:SS (UTC)\n");
}

/* Append "&name=value" to a query, value percent-encoded. */
void query_add(struct buf *q, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!value)
		return;
	buf_printf(q, "%c%s=", strchr(q->data ? q->data : "", '?') ? '&' : '?', name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~:", *p))
			buf_append(q, p, 1);
		else
			buf_printf(q, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	return buf_append(ud, p, size * n) ? 0 : size * n;
}

static long call(const struct config *cfg, const char *listen, const char *method, const char *path,
		 json_t **doc, char *err, size_t errlen)
{
	return cli_call(cfg, listen, method, path, CLI_TIMEOUT_MS, doc, err, errlen);
}

CURL *cli_easy(const struct config *cfg, const char *listen, const char *path, struct curl_slist **h, char *url,
	       size_t urllen, char *err, size_t errlen)
{
	char host[256], auth[4200];
	unsigned port;
	CURL *e = curl_easy_init();

	*h = NULL;
	if (!e || config_split_listen(listen, host, sizeof(host), &port)) {
		snprintf(err, errlen, "listen: '%s' is not HOST:PORT", listen);
		curl_easy_cleanup(e);
		return NULL;
	}
	/* A wildcard listen address is reached over loopback. */
	if (!host[0] || strcmp(host, "0.0.0.0") == 0)
		str_copy(host, "127.0.0.1", sizeof(host));
	else if (strcmp(host, "::") == 0)
		str_copy(host, "::1", sizeof(host));
	{
		/* a daemon serving TLS is asked over TLS: its own certificate's key
		 * is pinned (the name in it is not this loopback address) */
		char cb[4096], pin[128];
		const char *cert = tls_file(cfg->tls_cert, "tls_cert", cb, sizeof(cb));
		bool tls = tls_configured(cfg);
		snprintf(url, urllen, strchr(host, ':') ? "%s://[%s]:%u%s" : "%s://%s:%u%s", tls ? "https" : "http", host,
			 port, path);
		if (tls && cert && tls_pin(cert, pin, sizeof(pin)) == 0) {
			curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, pin);
			curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		}
		if (tls)
			curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->admin_token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->admin_token);
		*h = curl_slist_append(*h, auth);
		secure_zero(auth, sizeof(auth));
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *h);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	return e;
}

void cli_easy_done(CURL *e, struct curl_slist *h)
{
	if (h) {
		secure_zero(h->data, strlen(h->data));
		curl_slist_free_all(h);
	}
	curl_easy_cleanup(e);
}

long cli_call(const struct config *cfg, const char *listen, const char *method, const char *path, long timeout_ms,
	      json_t **doc, char *err, size_t errlen)
{
	char url[1024];
	struct curl_slist *h;
	CURL *e = cli_easy(cfg, listen, path, &h, url, sizeof(url), err, errlen);
	struct buf body;
	long status = 0;
	CURLcode cc;
	json_error_t jerr;

	*doc = NULL;
	if (!e)
		return 0;
	buf_init(&body, CLI_MAX_RESPONSE);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "cannot reach lqs-hookd at %s: %s", url, curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		*doc = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
		if (!*doc)
			snprintf(err, errlen, "lqs-hookd answered HTTP %ld with a body that is not JSON", status);
	}
	buf_free(&body);
	cli_easy_done(e, h);
	return status;
}

const char *s_or(json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_string_value(v) : dflt;
}

void print_json(json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text)
		puts(text);
	free(text);
}

static void print_status(json_t *d)
{
	json_t *ev = json_object_get(d, "event");
	char *result = json_dumps(json_object_get(d, "result"), JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);

	printf("%-20s %s\n", "event_id", s_or(json_object_get(d, "event_id"), "-"));
	printf("%-20s %s/%s -> %s\n", "event", s_or(json_object_get(ev, "process_type"), "?"),
	       s_or(json_object_get(ev, "current_state"), "?"), s_or(json_object_get(d, "handler"), "(unrouted)"));
	printf("%-20s %s\n", "resource_id", s_or(json_object_get(ev, "resource_id"), "-"));
	printf("%-20s %s\n", "source", s_or(json_object_get(d, "source"), "hook"));
	printf("%-20s %s\n", "state", s_or(json_object_get(d, "state"), "-"));
	printf("%-20s %s\n", "trace_status", s_or(json_object_get(d, "trace_status"), "-"));
	printf("%-20s %s\n", "trace_event_status", s_or(json_object_get(d, "trace_event_status"), "-"));
	printf("%-20s %s\n", "done", json_is_true(json_object_get(d, "done")) ? "true" : "false");
	printf("%-20s %lld\n", "attempts", (long long)json_integer_value(json_object_get(d, "attempts")));
	printf("%-20s %s\n", "received_at", s_or(json_object_get(d, "received_at"), "-"));
	printf("%-20s %s\n", "finished_at", s_or(json_object_get(d, "finished_at"), "-"));
	if (json_is_string(json_object_get(d, "next_attempt_at")))
		printf("%-20s %s\n", "next_attempt_at", json_string_value(json_object_get(d, "next_attempt_at")));
	printf("%-20s %s\n", "error", s_or(json_object_get(d, "error"), "-"));
	printf("%-20s %s\n", "result", result ? result : "null");
	free(result);
	if (json_is_true(json_object_get(d, "replayed")))
		printf("%-20s %s\n", "replayed", "yes (by an operator)");
	if (json_is_object(json_object_get(d, "progress"))) {
		char *p = json_dumps(json_object_get(d, "progress"), JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%-20s %s\n", "progress", p ? p : "-");
		free(p);
	}
}

static void print_history(json_t *d)
{
	size_t i;
	json_t *h;

	printf("\n%-24s  %-9s  %8s  %s\n", "STARTED_AT", "STEP", "MS", "DETAIL");
	json_array_foreach(json_object_get(d, "history"), i, h) {
		json_t *det = json_object_get(h, "detail");
		char detail[512] = "";
		if (json_is_string(json_object_get(det, "method")))
			snprintf(detail, sizeof(detail), "%s %s -> %lld (try %lld)",
				 json_string_value(json_object_get(det, "method")),
				 s_or(json_object_get(det, "path"), "?"),
				 (long long)json_integer_value(json_object_get(det, "status")),
				 (long long)json_integer_value(json_object_get(det, "try")));
		else if (det && !json_is_null(det)) {
			char *t = json_dumps(det, JSON_COMPACT | JSON_PRESERVE_ORDER);
			str_copy(detail, t ? t : "", sizeof(detail));
			free(t);
		}
		json_t *ms = json_object_get(h, "duration_ms");
		char msbuf[24] = "-";
		if (json_is_integer(ms))
			snprintf(msbuf, sizeof(msbuf), "%lld", (long long)json_integer_value(ms));
		printf("%-24s  %-9s  %8s  %s%s%s\n", s_or(json_object_get(h, "started_at"), "-"),
		       s_or(json_object_get(h, "step"), "?"), msbuf, detail,
		       json_is_string(json_object_get(h, "error")) ? "  ! " : "",
		       s_or(json_object_get(h, "error"), ""));
	}
}

static void print_list(json_t *d)
{
	size_t i;
	json_t *e;

	printf("%-36s  %-9s  %-8s  %-6s  %3s  %-25s  %-36s  %s\n", "EVENT_ID", "STATE", "TRACE", "RESULT",
	       "TRY", "EVENT", "RESOURCE_ID", "RECEIVED_AT");
	json_array_foreach(json_object_get(d, "data"), i, e) {
		json_t *ev = json_object_get(e, "event");
		char what[64];
		snprintf(what, sizeof(what), "%s/%s", s_or(json_object_get(ev, "process_type"), "?"),
			 s_or(json_object_get(ev, "current_state"), "?"));
		printf("%-36s  %-9s  %-8s  %-6s  %3lld  %-25s  %-36s  %s\n", s_or(json_object_get(e, "event_id"), "-"),
		       s_or(json_object_get(e, "state"), "-"), s_or(json_object_get(e, "trace_status"), "-"),
		       s_or(json_object_get(e, "trace_event_status"), "-"),
		       (long long)json_integer_value(json_object_get(e, "attempts")), what,
		       s_or(json_object_get(ev, "resource_id"), "-"), s_or(json_object_get(e, "received_at"), "-"));
	}
	if (json_is_string(json_object_get(d, "next_cursor")))
		printf("(more: the daemon's GET /events?cursor=%s has the next page)\n",
		       json_string_value(json_object_get(d, "next_cursor")));
}

int daemon_error(long status, json_t *doc, const char *err)
{
	if (!status) {
		fprintf(stderr, "lqs-hookd: %s\n", err);
		return 1;
	}
	json_t *detail = json_object_get(doc, "detail");
	fprintf(stderr, "lqs-hookd: HTTP %ld: %s\n", status, json_is_string(detail) ? json_string_value(detail) : err);
	return 1;
}

/* A page's next_cursor into cursor (digits only: it goes into a URL);
 * false on the last page. */
static bool next_cursor(json_t *page, char cursor[32])
{
	const char *next = json_string_value(json_object_get(page, "next_cursor"));

	if (!next || !*next || strlen(next) >= 32 || strspn(next, "0123456789") != strlen(next))
		return false;
	str_copy(cursor, next, 32);
	return true;
}

/* The whole history, page after page (the daemon pages it). */
static long fetch_history(const struct config *cfg, const char *listen, const char *id, json_t **out, char *err,
			  size_t errlen)
{
	json_t *all = json_array();
	char cursor[32] = "";
	long status = 200;

	*out = NULL;
	for (int pages = 0; pages < 100000; pages++) {
		char path[512];
		json_t *doc = NULL;
		snprintf(path, sizeof(path), "%s/%s/history?limit=5000%s%s", cfg->events_path, id,
			 cursor[0] ? "&cursor=" : "", cursor);
		status = call(cfg, listen, "GET", path, &doc, err, errlen);
		if (status != 200) {
			json_decref(all);
			*out = doc;
			return status;
		}
		json_array_extend(all, json_object_get(doc, "history"));
		bool more = next_cursor(doc, cursor);
		json_decref(doc);
		if (!more)
			break;
	}
	*out = json_pack("{s:s, s:o}", "event_id", id, "history", all);
	return status;
}

/* replay --state ...: every matching event, a page per call. */
static int replay_many(const struct config *cfg, const char *listen, const char *state, const char *since,
		       const char *handler, bool dry_run, bool json_out)
{
	json_t *ids = json_array();
	char cursor[32] = "", err[4096];
	long status;
	int rc = 0;

	for (int pages = 0; pages < 100000; pages++) {
		struct buf q;
		json_t *doc = NULL;
		buf_init(&q, 4096);
		buf_printf(&q, "%s/replay", cfg->events_path);
		query_add(&q, "state", state);
		query_add(&q, "since", since);
		query_add(&q, "handler", handler);
		query_add(&q, "dry_run", dry_run ? "true" : NULL);
		query_add(&q, "cursor", cursor[0] ? cursor : NULL);
		status = q.data ? call(cfg, listen, "POST", q.data, &doc, err, sizeof(err)) : 0;
		buf_free(&q);
		if (status != (dry_run ? 200 : 202)) {
			rc = daemon_error(status, doc, err);
			json_decref(doc);
			break;
		}
		json_array_extend(ids, json_object_get(doc, "event_ids"));
		bool more = next_cursor(doc, cursor);
		json_decref(doc);
		if (!more)
			break;
	}
	if (rc == 0 && json_out) {
		json_t *o = json_pack("{s:s, s:I, s:O}", "status", dry_run ? "dry_run" : "replayed", "count",
				      (json_int_t)json_array_size(ids), "event_ids", ids);
		print_json(o);
		json_decref(o);
	} else if (rc == 0) {
		size_t i;
		json_t *v;
		json_array_foreach(ids, i, v)
			printf("%s\n", json_string_value(v));
		printf("%s %zu %s event(s)%s\n", dry_run ? "would replay" : "replayed", json_array_size(ids), state,
		       dry_run ? " (dry run: nothing changed)" : ": they run again from scratch");
	}
	json_decref(ids);
	return rc;
}

static int check_lqs(const struct config *cfg)
{
	struct lqs_check_result res;

	lqs_check_once(cfg, &res);
	printf("%s: %s\n", res.ok ? "OK" : "FAILED", res.message);
	return res.ok ? 0 : 1;
}

/* Parse and check the options; -1: go on, else the exit status. */
static int cli_parse(int argc, char **argv, struct cli_opts *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "format", required_argument, NULL, 'f' },
		{ "history", no_argument, NULL, 'H' },
		{ "state", required_argument, NULL, 's' },
		{ "handler", required_argument, NULL, 'r' },
		{ "since", required_argument, NULL, 'S' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "limit", required_argument, NULL, 'n' },
		{ "now", no_argument, NULL, 'N' },
		{ "watch", no_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "resource-id", required_argument, NULL, 'R' },
		{ "process-type", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "table";
	bool takes_id;
	int opt;

	optind = 0;   /* glibc: a fresh scan (main already ran getopt on other arguments) */
	while ((opt = getopt_long(argc, argv, "c:l:f:Hs:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': o->config_path = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'f': format = optarg; break;
		case 'H': o->history = true; break;
		case 's': o->state = optarg; break;
		case 'r': o->handler = optarg; break;
		case 'S': o->since = optarg; break;
		case 'D': o->dry_run = true; break;
		case 'N': o->now = true; break;
		case 'W': o->watch = true; break;
		case 'R': o->resource_id = optarg; break;
		case 'P': o->process_type = optarg; break;
		case 'T':
			if (config_parse_duration(optarg, &o->timeout_s) || o->timeout_s <= 0) {
				fprintf(stderr, "lqs-hookd: --timeout takes a duration (30s, 10m, 1h)\n");
				return 2;
			}
			break;
		case 'n':
			if (parse_i64(optarg, &o->limit) || o->limit < 1 || o->limit > 1000) {
				fprintf(stderr, "lqs-hookd: --limit takes 1 to 1000\n");
				return 2;
			}
			break;
		case 'h': cli_usage(stdout); return 0;
		default: cli_usage(stderr); return 2;
		}
	}
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
		fprintf(stderr, "lqs-hookd: --format takes table or json\n");
		return 2;
	}
	o->json_out = strcmp(format, "json") == 0;
	o->bulk = strcmp(o->cmd, "replay") == 0 && o->state;
	takes_id = strcmp(o->cmd, "status") == 0 || (strcmp(o->cmd, "replay") == 0 && !o->bulk) ||
		   strcmp(o->cmd, "sweep") == 0 || strcmp(o->cmd, "batch") == 0;
	if (takes_id != (optind + 1 == argc) || (!takes_id && optind != argc)) {
		if (o->bulk && optind != argc)
			fprintf(stderr, "lqs-hookd: replay takes an event id or --state, not both\n");
		cli_usage(stderr);
		return 2;
	}
	if ((o->watch || o->timeout_s > 0) && (strcmp(o->cmd, "status") != 0 || o->history)) {
		fprintf(stderr, "lqs-hookd: --watch and --timeout go with status ID (without --history)\n");
		return 2;
	}
	if (o->timeout_s > 0 && !o->watch) {
		fprintf(stderr, "lqs-hookd: --timeout goes with --watch\n");
		return 2;
	}
	if ((o->resource_id || o->process_type) && strcmp(o->cmd, "watch") != 0) {
		fprintf(stderr, "lqs-hookd: --resource-id and --process-type go with watch\n");
		return 2;
	}
	if (o->now && strcmp(o->cmd, "sweep") != 0) {
		fprintf(stderr, "lqs-hookd: --now goes with sweep NAME\n");
		return 2;
	}
	if (o->dry_run && !o->bulk) {
		fprintf(stderr, "lqs-hookd: --dry-run goes with replay --state\n");
		return 2;
	}
	if (strcmp(o->cmd, "batches") == 0 && o->state && strcmp(o->state, "open") != 0 &&
	    strcmp(o->state, "closed") != 0) {
		fprintf(stderr, "lqs-hookd: batches --state takes open or closed\n");
		return 2;
	}
	if (o->bulk && strcmp(o->state, "failed") != 0 && strcmp(o->state, "completed") != 0) {
		fprintf(stderr, "lqs-hookd: replay --state takes failed or completed\n");
		return 2;
	}
	o->id_arg = takes_id ? argv[optind] : NULL;
	return -1;
}

static int cmd_list(const struct config *cfg, const struct cli_opts *o)
{
	struct buf q;
	char lim[24], err[4096];
	json_t *doc = NULL;
	long status;
	int rc = 0;

	snprintf(lim, sizeof(lim), "%lld", (long long)o->limit);
	buf_init(&q, 4096);
	buf_printf(&q, "%s", cfg->events_path);
	query_add(&q, "limit", lim);
	query_add(&q, "state", o->state);
	query_add(&q, "handler", o->handler);
	query_add(&q, "since", o->since);
	if (!q.data)
		rc = 1;
	else if ((status = call(cfg, o->listen, "GET", q.data, &doc, err, sizeof(err))) != 200)
		rc = daemon_error(status, doc, err);
	else if (o->json_out)
		print_json(doc);
	else
		print_list(doc);
	buf_free(&q);
	json_decref(doc);
	return rc;
}

static int cmd_replay_one(const struct config *cfg, const struct cli_opts *o, const char *id)
{
	char path[512], err[4096];
	json_t *doc = NULL;
	long status;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s/replay", cfg->events_path, id);
	status = call(cfg, o->listen, "POST", path, &doc, err, sizeof(err));
	if (status != 202)
		rc = daemon_error(status, doc, err);
	else if (o->json_out)
		print_json(doc);
	else
		printf("replayed %s: it runs again from scratch\n", id);
	json_decref(doc);
	return rc;
}

static int cmd_status(const struct config *cfg, const struct cli_opts *o, const char *id)
{
	char path[512], err[4096];
	json_t *doc = NULL, *hist = NULL;
	long status;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", cfg->events_path, id);
	status = call(cfg, o->listen, "GET", path, &doc, err, sizeof(err));
	if (status != 200) {
		rc = daemon_error(status, doc, err);
		json_decref(doc);
		return rc;
	}
	if (o->history) {
		status = fetch_history(cfg, o->listen, id, &hist, err, sizeof(err));
		if (status != 200)
			rc = daemon_error(status, hist, err);
	}
	if (rc == 0 && o->json_out) {
		if (hist)
			json_object_set(doc, "history", json_object_get(hist, "history"));
		print_json(doc);
	} else if (rc == 0) {
		print_status(doc);
		if (hist)
			print_history(hist);
	}
	json_decref(hist);
	json_decref(doc);
	return rc;
}

int cli_main(int argc, char **argv, const char *config_path, const char *listen)
{
	struct cli_opts o = { .cmd = argv[0], .config_path = config_path, .listen = listen, .limit = 50 };
	struct config_overrides ov = { .client = true };
	struct config cfg;
	char err[4096], id[37];
	int rc = cli_parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.id_arg && strcmp(o.cmd, "sweep") != 0 && strcmp(o.cmd, "batch") != 0 && !uuid_canonical(o.id_arg, id)) {
		fprintf(stderr, "lqs-hookd: '%s' is not an event id (a UUID)\n", o.id_arg);
		return 2;
	}
	/* a command reads only the secret it uses: an unreadable hook secret
	 * file (root's, for the service) does not stop it */
	ov.needs = strcmp(o.cmd, "check-lqs") == 0   ? CONFIG_NEEDS_LQS_KEY
		   : strcmp(o.cmd, "check-sqs") == 0 ? CONFIG_NEEDS_AWS
						     : CONFIG_NEEDS_ADMIN_TOKEN;
	if (config_load(&cfg, o.config_path, &ov, err, sizeof(err))) {
		fputs(err, stderr);
		config_free(&cfg);
		return 1;
	}
	if (!o.listen)
		o.listen = cfg.listen;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(o.cmd, "check-lqs") == 0)
		rc = check_lqs(&cfg);
	else if (strcmp(o.cmd, "check-sqs") == 0)
		rc = sqs_check(&cfg);
	else if (o.bulk)
		rc = replay_many(&cfg, o.listen, o.state, o.since, o.handler, o.dry_run, o.json_out);
	else if (strcmp(o.cmd, "list") == 0)
		rc = cmd_list(&cfg, &o);
	else if (strcmp(o.cmd, "sweeps") == 0 || strcmp(o.cmd, "sweep") == 0)
		rc = cmd_sweeps(&cfg, &o);
	else if (strcmp(o.cmd, "batches") == 0 || strcmp(o.cmd, "batch") == 0)
		rc = cmd_batches(&cfg, &o);
	else if (strcmp(o.cmd, "replay") == 0)
		rc = cmd_replay_one(&cfg, &o, id);
	else if (strcmp(o.cmd, "watch") == 0)
		rc = cmd_watch(&cfg, &o);
	else if (o.watch)
		rc = cmd_status_watch(&cfg, &o, id);
	else
		rc = cmd_status(&cfg, &o, id);
	config_free(&cfg);
	curl_global_cleanup();
	return rc;
}
