#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/router.h"
#include "suites.h"

static char tmpdir[64];

static void clear_env(void)
{
	static const char *const vars[] = {
		"LQS_EXPECTED_SECRET", "LQS_API_URL", "LQS_API_ENDPOINT_PREFIX", "LQS_DATASTORE_ID",
		"LQS_API_KEY_ID", "LQS_API_KEY_SECRET", "LQS_RETRY_COUNT", "LQS_RETRY_DELAY",
		"LQS_RETRY_AGGRESSIVE", "LQS_API_REQUEST_TIMEOUT", "LQS_ADDITIONAL_HEADERS",
		"LQS_HOOKD_AUTH", "LQS_HOOKD_LISTEN", "LQS_HOOKD_SECRET", "LQS_HOOKD_SECRET_FILE",
		"LQS_HOOKD_MAX_BODY", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "LQS_HOOKD_STORE", NULL,
	};
	for (int i = 0; vars[i]; i++)
		unsetenv(vars[i]);
}

static void setup(void)
{
	clear_env();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lqs-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	clear_env();
}

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(defaults_need_a_secret)
{
	struct config c;
	char err[1024] = "";

	ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no hook secret configured"));
	config_free(&c);

	setenv("LQS_HOOKD_AUTH", "none", 1);
	ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:8080");
	ck_assert_str_eq(c.events_path, "/events");
	ck_assert_int_eq(c.max_body, 65536);
	ck_assert_int_eq(c.workers, 4);
	ck_assert_str_eq(c.store, "lqs-hookd.db");
	ck_assert_str_eq(c.api_url, "https://api.logqs.com");
	ck_assert_str_eq(c.api_endpoint_prefix, "/apps");
	ck_assert_int_eq(c.retry_count, 2);
	ck_assert(c.retry_delay == 5.0);
	ck_assert(c.dedupe_window == 600.0);
	/* the built-in route */
	ck_assert_int_eq(c.n_routes, 1);
	ck_assert_str_eq(c.routes[0].handler, "digestion_stats");
	config_free(&c);
}
END_TEST

START_TEST(client_env_names)
{
	struct config c;
	char err[1024] = "";

	setenv("LQS_EXPECTED_SECRET", "s3", 1);
	setenv("LQS_API_URL", "http://127.0.0.1:9", 1);
	setenv("LQS_RETRY_DELAY", "0.25", 1);
	setenv("LQS_RETRY_COUNT", "5", 1);
	setenv("LQS_API_REQUEST_TIMEOUT", "7", 1);
	setenv("LQS_DATASTORE_ID", "6F0C1C4E-8F5A-4D8E-9B3A-2F1D5C7E9A01", 1);
	setenv("STATE_DIRECTORY", "/var/lib/lqs-hookd:/other", 1);
	ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.secrets.n, 1);
	ck_assert_str_eq(c.secrets.v[0], "s3");
	ck_assert_str_eq(c.api_url, "http://127.0.0.1:9");
	ck_assert(c.retry_delay == 0.25);
	ck_assert_int_eq(c.retry_count, 5);
	ck_assert(c.request_timeout == 7.0);
	ck_assert_str_eq(c.store, "/var/lib/lqs-hookd/lqs-hookd.db");
	config_free(&c);
}
END_TEST

START_TEST(precedence)
{
	struct config c;
	char err[1024] = "";
	const char *path = write_file("p.conf", "[http]\nlisten = 127.0.0.1:1111\nmax_body = 1K\n"
						"[auth]\nsecret = from-file\n");
	struct config_overrides ov = { .listen = "127.0.0.1:3333" };

	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:1111");
	ck_assert_int_eq(c.max_body, 1024);
	ck_assert_str_eq(c.secrets.v[0], "from-file");
	config_free(&c);

	setenv("LQS_HOOKD_LISTEN", "127.0.0.1:2222", 1);
	setenv("LQS_EXPECTED_SECRET", "from-env", 1);
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:2222");
	ck_assert_int_eq(c.secrets.n, 1);
	ck_assert_str_eq(c.secrets.v[0], "from-env");
	config_free(&c);

	ck_assert_int_eq(config_load(&c, path, &ov, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:3333");
	config_free(&c);
}
END_TEST

START_TEST(errors_have_file_and_line)
{
	struct config c;
	char err[2048] = "";
	const char *path;

	path = write_file("a.conf", "[http]\nlisten = 127.0.0.1:1\nbogus = 1\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "a.conf:3: unknown key 'bogus' in section [http]"), "got: %s", err);
	config_free(&c);

	path = write_file("b.conf", "[auth]\nsecret = x\n[http]\n\nmax_body = 99G\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "b.conf:5: max_body: 99G is out of bounds"), "got: %s", err);
	config_free(&c);

	path = write_file("c.conf", "[worker]\nworkers = many\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "c.conf:2: workers: 'many' is not a valid integer"), "got: %s", err);
	config_free(&c);

	path = write_file("d.conf", "[http]\nworkers = 2\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "d.conf:2: key 'workers' belongs in section [worker]"), "got: %s", err);
	config_free(&c);

	path = write_file("e.conf", "[http]\nthis line has no equals sign\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "e.conf:2: syntax error"), "got: %s", err);
	config_free(&c);

	path = write_file("f.conf", "[auth]\nauth = maybe\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "f.conf:2: auth: 'maybe' is not one of secret|none"), "got: %s", err);
	config_free(&c);

	/* the settings know no handlers; the router checks the names */
	setenv("LQS_EXPECTED_SECRET", "s", 1);
	path = write_file("g.conf", "[route x]\nprocess_type = digestion\nstate = finalizing\nhandler = nope\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "g.conf:4: handler: unknown handler 'nope' (known: digestion_stats, http_trigger, lqs_ingest)"), "got: %s", err);
	config_free(&c);
	path = write_file("h.conf", "[route x]\nhandler = No-Such\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "h.conf:2: handler: 'No-Such' is not a handler name"), "got: %s", err);
	config_free(&c);

	ck_assert_int_eq(config_load(&c, "/nonexistent/x.conf", NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "/nonexistent/x.conf: cannot open"), "got: %s", err);
	config_free(&c);
}
END_TEST

/* [sweep NAME]: the built-in one is there and off; a section's keys, its
 * defaults, what is refused (with file:line), and the route check. */
START_TEST(sweep_sections)
{
	struct config c;
	char err[2048] = "";
	const struct sweep_cfg *w;
	const char *path;

	ck_assert_int_eq(config_load_buffer(&c, "n.conf", "[auth]\nauth = none\n", 20, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.n_sweeps, 1);
	w = config_sweep(&c, SWEEP_BUILTIN);
	ck_assert_ptr_nonnull(w);
	ck_assert(!w->enabled && w->every == 300 && w->min_age == 600 && w->max_per_run == 1000);
	ck_assert_str_eq(w->process_type, "digestion");
	ck_assert_str_eq(w->state, "finalizing");
	ck_assert_str_eq(router_sweep_handler(&c, w), "digestion_stats");
	ck_assert_ptr_null(c.warnings);
	config_free(&c);

	path = write_file("s.conf", "[auth]\nauth = none\n"
				    "[sweep ingest.stuck]\nenabled = yes\nevery = 2m\nprocess_type = ingestion\n"
				    "state = processing\nmin_age = 1h\nhandler = digestion_stats\nmax_per_run = 50\n"
				    "datastore = 6F0C1C4E-8F5A-4D8E-9B3A-2F1D5C7E9A01\n"
				    "[sweep quiet]\nevery = 10m\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.n_sweeps, 3);   /* the two, and the built-in one */
	w = config_sweep(&c, "ingest.stuck");
	ck_assert(w->enabled && w->every == 120 && w->min_age == 3600 && w->max_per_run == 50);
	ck_assert_str_eq(w->process_type, "ingestion");
	ck_assert_str_eq(w->datastore, "6f0c1c4e-8f5a-4d8e-9b3a-2f1d5c7e9a01");
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), 0);
	/* written but never enabled: probably not meant */
	ck_assert_ptr_nonnull(c.warnings);
	ck_assert_ptr_nonnull(strstr(c.warnings, ":13: sweep 'quiet' is configured but not enabled"));
	config_free(&c);

	static const char *const bad[][2] = {
		{ "[sweep a]\nevery = 0\n", ":4: every: '0' is not a duration of 1 s" },
		{ "[sweep a]\nprocess_type = digestion_part\n", ":4: process_type: a sweep lists digestions or ingestions" },
		{ "[sweep a]\nstate = stuck\n", ":4: state: 'stuck' is not one of" },
		{ "[sweep a]\nmax_per_run = 0\n", ":4: max_per_run: '0' is not a number from 1 to 100000" },
		{ "[sweep a]\ndatastore = x\n", ":4: datastore: 'x' is not a UUID" },
		{ "[sweep a]\nwhen = now\n", ":4: unknown key 'when' in a sweep section" },
		{ "[sweep a b]\nenabled = true\n", ":4: a sweep section needs a name" },
		{ "[sweep a]\nenabled = maybe\n", ":4: enabled: 'maybe' is not true or false" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		int n = snprintf(text, sizeof(text), "[auth]\nauth = none\n%s", bad[i][0]);
		/* the key is on line 4 */
		ck_assert_int_eq(config_load_buffer(&c, "b.conf", text, (size_t)n, NULL, err, sizeof(err)), -1);
		char want[160];
		snprintf(want, sizeof(want), "b.conf%s", bad[i][1]);
		ck_assert_msg(strstr(err, want) != NULL, "case %zu: %s", i, err);
		config_free(&c);
	}
	/* enabled, with no handler of its own and no route for its pair */
	path = write_file("r.conf", "[auth]\nauth = none\n[sweep odd]\nenabled = true\nstate = failed\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ":4: sweep 'odd': no route for digestion/failed and no handler set"));
	config_free(&c);
}
END_TEST

/* [watch NAME]: its keys and defaults, lists, what is refused, and the
 * trigger's own keys checked against its handler. */
START_TEST(watch_sections)
{
	struct config c;
	char err[2048] = "";
	const struct watch_cfg *w;
	const char *path = write_file("w.conf", "[auth]\nauth = none\n"
					       "[watch inst]\nbucket = my-bucket\nprefix = inst/, lab/\nprefix = more/\n"
					       "suffix = .csv\nignore = raw/*, scratch/*\nevents = created, removed\n"
					       "quiet = 2m\nmax_age = 1h\n"
					       "[watch plain]\nbucket = b-2\n");

	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.n_watches, 2);
	w = config_watch(&c, "inst");
	ck_assert_int_eq(w->n_prefixes, 3);
	ck_assert_str_eq(w->prefixes[2], "more/");
	ck_assert_str_eq(w->ignore[1], "scratch/*");
	ck_assert(w->on_created && w->on_removed && w->quiet == 120 && w->max_age == 3600);
	w = config_watch(&c, "plain");
	/* the defaults */
	ck_assert(w->on_created && !w->on_removed && w->prefix_depth == 2 && w->count == 20 && w->quiet == 300 &&
		  w->max_age == 0);
	ck_assert_str_eq(w->marker, "_SUCCESS");
	config_free(&c);

	static const char *const bad[][2] = {
		{ "[watch a]\nbucket = Not_A_Bucket!\n", ":4: bucket: 'Not_A_Bucket!' is not an S3 bucket name" },
		{ "[watch a]\nbucket = bbb\nevents = moved\n", ":5: events: 'moved' is not created or removed" },
		{ "[watch a]\nbucket = bbb\ncount = -1\n", ":5: count: '-1' is not a number from 0 to 1000000" },
		{ "[watch a]\nbucket = bbb\nmarker = a/b\n", ":5: marker: 'a/b' is not a file name" },
		{ "[watch a]\ncount = 2\n", ":4: watch 'a' needs a bucket" },
		{ "[watch a]\nbucket = bbb\ncount = 0\nquiet = 0\nmarker =\n", ":4: watch 'a' never closes a batch" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256], want[160];
		int n = snprintf(text, sizeof(text), "[auth]\nauth = none\n%s", bad[i][0]);
		ck_assert_int_eq(config_load_buffer(&c, "b.conf", text, (size_t)n, NULL, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "b.conf%s", bad[i][1]);
		ck_assert_msg(strstr(err, want) != NULL, "case %zu: %s", i, err);
		config_free(&c);
	}
	/* a key no trigger takes, and an unknown trigger */
	path = write_file("t.conf", "[auth]\nauth = none\n[watch a]\nbucket = bbb\nurl = http://x\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "watch 'a': unknown key 'url'"));
	config_free(&c);
	path = write_file("t.conf", "[auth]\nauth = none\n[watch a]\nbucket = bbb\ntrigger = nope\n");
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(router_check(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ":5: trigger: unknown handler 'nope'"));
	config_free(&c);
}
END_TEST

/* [sqs NAME]: its keys, the region from the queue URL, what is refused. */
START_TEST(sqs_sections)
{
	struct config c;
	char err[2048] = "";
	static const char ok[] = "[auth]\nauth = none\n[watch w]\nbucket = bbb\n"
				 "[sqs up]\nqueue_url = https://sqs.eu-west-1.amazonaws.com/123456789012/up\nwatch = w\n"
				 "pollers = 2\nwait = 5\n";

	ck_assert_int_eq(config_load_buffer(&c, "q.conf", ok, sizeof(ok) - 1, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.n_sqs, 1);
	ck_assert_str_eq(c.sqs[0].region, "eu-west-1");
	ck_assert(c.sqs[0].pollers == 2 && c.sqs[0].wait == 5 && c.sqs[0].max_messages == 10);
	ck_assert(c.aws_imds);
	config_free(&c);
	static const char *const bad[][2] = {
		{ "[sqs a]\nqueue_url = ftp://x\n", "b.conf:4: queue_url: 'ftp://x' is not an http(s) URL" },
		{ "[sqs a]\nqueue_url = http://127.0.0.1:1/1/q\n", "sqs 'a' needs a region" },
		{ "[sqs a]\nqueue_url = http://x/1/q\nregion = r\nmax_messages = 11\n", ":6: max_messages: '11' is not a number from 1 to 10" },
		{ "[sqs a]\nqueue_url = http://x/1/q\nregion = r\nwatch = nope\n", "sqs 'a': no watch named 'nope'" },
		{ "[sqs a]\nregion = r\n", "sqs 'a' needs a queue_url" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		int n = snprintf(text, sizeof(text), "[auth]\nauth = none\n%s", bad[i][0]);
		ck_assert_int_eq(config_load_buffer(&c, "b.conf", text, (size_t)n, NULL, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, bad[i][1]) != NULL, "case %zu: %s", i, err);
		config_free(&c);
	}
}
END_TEST

START_TEST(durations_and_routes)
{
	struct config c;
	char err[1024] = "";
	const char *path = write_file("r.conf",
				      "[auth]\nauth = none\n[worker]\nretry_base = 500ms\nretry_max_delay = 2m\n"
				      "[store]\nretention = 1d\n"
				      "[route ingest]\nprocess_type = ingestion\nstate = completed\nhandler = digestion_stats\n");

	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert(c.retry_base == 0.5);
	ck_assert(c.retry_max_delay == 120.0);
	ck_assert(c.retention == 86400.0);
	ck_assert_int_eq(c.n_routes, 1);   /* a configured route replaces the built-in one */
	ck_assert_str_eq(c.routes[0].process_type, "ingestion");
	config_free(&c);
}
END_TEST

START_TEST(secret_sources_and_hiding)
{
	struct config c;
	char err[1024] = "", out[8192];
	const char *sf = write_file("secrets", "first-secret\n\nsecond-secret\n");
	char conf[256];
	FILE *f;
	size_t n;

	snprintf(conf, sizeof(conf), "[auth]\nsecret_file = %s\nadmin_token = tok-123\n"
				     "[lqs]\napi_key_secret = key-456\n", sf);
	const char *path = write_file("s.conf", conf);
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.secrets.n, 2);
	ck_assert_str_eq(c.secrets.v[0], "first-secret");
	ck_assert_str_eq(c.secrets.v[1], "second-secret");
	f = tmpfile();
	config_print(&c, f);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	ck_assert_ptr_null(strstr(out, "first-secret"));
	ck_assert_ptr_null(strstr(out, "second-secret"));
	ck_assert_ptr_null(strstr(out, "tok-123"));
	ck_assert_ptr_null(strstr(out, "key-456"));
	ck_assert_ptr_nonnull(strstr(out, "(2 set, hidden)"));
	config_free(&c);

	/* systemd credentials: a file named after the setting */
	write_file("secret", "cred-secret\n");
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.secrets.n, 1);
	ck_assert_str_eq(c.secrets.v[0], "cred-secret");
	config_free(&c);
}
END_TEST

/* What --check-config must not let through, each with its file:line. */
START_TEST(check_config_catches_traps)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "[lqs]\nadditional_headers = {\"X-A\": \"1\",}\n", "t.conf:2: additional_headers: not valid JSON" },
		{ "[lqs]\nadditional_headers = [\"X-A\"]\n", "t.conf:2: additional_headers: must be a JSON object" },
		{ "[lqs]\nadditional_headers = {\"X-A\": 1}\n", "t.conf:2: additional_headers: 'X-A' must be a header name" },
		{ "\n[lqs]\napi_url = api.logqs.com\n", "t.conf:3: api_url: 'api.logqs.com' is not an http:// or https:// URL" },
		{ "[lqs]\napi_url = ftp://x\n", "t.conf:2: api_url: 'ftp://x' is not an http" },
		{ "[lqs]\napi_key_id = my-key\n", "t.conf:2: api_key_id: 'my-key' is not a UUID" },
		{ "[worker]\nretry_base = 1m\n\nretry_max_delay = 10s\n", "t.conf:4: retry_max_delay (10 s) is smaller" },
		{ "[route a]\nprocess_type = digestion\n", "t.conf:2: route 'a' needs process_type, state and handler" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char err[2048] = "";
		setenv("LQS_EXPECTED_SECRET", "s", 1);
		ck_assert_int_eq(config_load_buffer(&c, "t.conf", cases[i].text, strlen(cases[i].text), NULL, err,
						    sizeof(err)), -1);
		ck_assert_msg(strstr(err, cases[i].want), "case %zu: [%s] not in [%s]", i, cases[i].want, err);
		config_free(&c);
	}
	/* the same from the environment names the variable */
	{
		struct config c;
		char err[2048] = "";
		setenv("LQS_API_URL", "localhost:8000", 1);
		ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "LQS_API_URL: api_url: 'localhost:8000' is not an http"));
		config_free(&c);
		unsetenv("LQS_API_URL");
	}
}
END_TEST

/* A missing file says why; a directory is not a configuration file. */
START_TEST(config_file_errors)
{
	struct config c;
	char err[1024] = "", path[160];

	setenv("LQS_EXPECTED_SECRET", "s", 1);
	snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	ck_assert_int_eq(config_load(&c, path, NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "none.conf: cannot open: No such file or directory"));
	config_free(&c);
	ck_assert_int_eq(config_load(&c, tmpdir, NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ": is a directory, not a configuration file"));
	config_free(&c);
}
END_TEST

/* One comment rule: whitespace then # or ; starts a comment; a # or ;
 * inside a value stays, with a warning. */
START_TEST(inline_comments)
{
	static const char text[] = "[auth]\nsecret = abc # the hook secret\nsecret = d;e\n"
				   "admin_token = tok ; admin\n[http]\nlisten = 127.0.0.1:9000\t# port\n";
	struct config c;
	char err[1024] = "";

	ck_assert_int_eq(config_load_buffer(&c, "t.conf", text, strlen(text), NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(c.secrets.n, 2);
	ck_assert_str_eq(c.secrets.v[0], "abc");
	ck_assert_str_eq(c.secrets.v[1], "d;e");
	ck_assert_str_eq(c.admin_token, "tok");
	ck_assert_str_eq(c.listen, "127.0.0.1:9000");
	ck_assert_ptr_nonnull(c.warnings);
	ck_assert_ptr_nonnull(strstr(c.warnings, "t.conf:3: the value of 'secret' contains ';'"));
	ck_assert_ptr_null(strstr(c.warnings, "abc"));
	config_free(&c);
}
END_TEST

/* --print-config shows durations and sizes as written. */
START_TEST(print_keeps_units)
{
	static const char text[] = "[store]\nretention = 336h\n[http]\nmax_body = 1M\n";
	struct config c;
	char err[1024] = "", *out = NULL;
	size_t len = 0;
	FILE *f;

	setenv("LQS_EXPECTED_SECRET", "s", 1);
	ck_assert_int_eq(config_load_buffer(&c, "t.conf", text, strlen(text), NULL, err, sizeof(err)), 0);
	f = open_memstream(&out, &len);
	config_print(&c, f);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(out, "\nretention = 336h\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nfailed_retention = 90d\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nmax_body = 1M\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nconnection_timeout = 30s\n"));
	ck_assert(c.retention == 336 * 3600.0);
	free(out);
	config_free(&c);
}
END_TEST

/* An operator command does not read secret files it does not need. */
START_TEST(client_skips_unneeded_secret_files)
{
	static const char text[] = "[auth]\nsecret_file = /nonexistent/hook-secret\n"
				   "admin_token_file = /nonexistent/admin-token\n";
	struct config_overrides ov = { .client = true, .needs = CONFIG_NEEDS_LQS_KEY };
	struct config c;
	char err[1024] = "";

	ck_assert_int_eq(config_load_buffer(&c, "t.conf", text, strlen(text), &ov, err, sizeof(err)), 0);
	config_free(&c);
	ov.needs = CONFIG_NEEDS_ADMIN_TOKEN;
	ck_assert_int_eq(config_load_buffer(&c, "t.conf", text, strlen(text), &ov, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "t.conf:3: cannot read secret file '/nonexistent/admin-token'"));
	ck_assert_ptr_null(strstr(err, "hook-secret"));
	config_free(&c);
	/* the daemon itself needs them all */
	ck_assert_int_eq(config_load_buffer(&c, "t.conf", text, strlen(text), NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "t.conf:2: cannot read secret file '/nonexistent/hook-secret'"));
	config_free(&c);
}
END_TEST

START_TEST(listen_split)
{
	char host[64];
	unsigned port;

	ck_assert_int_eq(config_split_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_uint_eq(port, 8080);
	ck_assert_int_eq(config_split_listen("[::1]:0", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(port, 0);
	ck_assert_int_eq(config_split_listen("localhost", host, sizeof(host), &port), -1);
	ck_assert_int_eq(config_split_listen("h:70000", host, sizeof(host), &port), -1);
}
END_TEST

Suite *suite_config(void)
{
	Suite *s = suite_create("config");
	TCase *t = tcase_create("core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, defaults_need_a_secret);
	tcase_add_test(t, client_env_names);
	tcase_add_test(t, precedence);
	tcase_add_test(t, errors_have_file_and_line);
	tcase_add_test(t, durations_and_routes);
	tcase_add_test(t, sweep_sections);
	tcase_add_test(t, watch_sections);
	tcase_add_test(t, sqs_sections);
	tcase_add_test(t, secret_sources_and_hiding);
	tcase_add_test(t, listen_split);
	tcase_add_test(t, check_config_catches_traps);
	tcase_add_test(t, config_file_errors);
	tcase_add_test(t, inline_comments);
	tcase_add_test(t, print_keeps_units);
	tcase_add_test(t, client_skips_unneeded_secret_files);
	suite_add_tcase(s, t);
	return s;
}
