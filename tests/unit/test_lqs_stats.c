#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/backoff.h"
#include "lqs-hookd/dstats.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/worker.h"
#include "suites.h"

static struct lqs_client *client_with(const char *url, const char *prefix, const char *ds)
{
	struct config c;
	char err[512];
	struct lqs_client *cl;

	setenv("LQS_HOOKD_AUTH", "none", 1);
	setenv("LQS_API_URL", url, 1);
	setenv("LQS_API_ENDPOINT_PREFIX", prefix, 1);
	if (ds)
		setenv("LQS_DATASTORE_ID", ds, 1);
	else
		unsetenv("LQS_DATASTORE_ID");
	ck_assert_int_eq(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
	cl = lqs_client_new(&c);
	config_free(&c);
	unsetenv("LQS_HOOKD_AUTH");
	unsetenv("LQS_API_URL");
	unsetenv("LQS_API_ENDPOINT_PREFIX");
	unsetenv("LQS_DATASTORE_ID");
	ck_assert_ptr_nonnull(cl);
	return cl;
}

START_TEST(url_layout)
{
	struct lqs_client *c = client_with("https://api.logqs.com/", "/apps", "6F0C1C4E-8F5A-4D8E-9B3A-2F1D5C7E9A01");
	char *u;

	u = lqs_url(c, "digestions/abc", NULL);
	ck_assert_str_eq(u, "https://api.logqs.com/apps/lqs/6f0c1c4e-8f5a-4d8e-9b3a-2f1d5c7e9a01/api/digestions/abc");
	free(u);
	u = lqs_url(c, "digestions/abc/parts", "offset=0&limit=100");
	ck_assert_str_eq(u, "https://api.logqs.com/apps/lqs/6f0c1c4e-8f5a-4d8e-9b3a-2f1d5c7e9a01/api/digestions/abc/parts?offset=0&limit=100");
	free(u);
	/* an event's own datastore wins */
	lqs_client_begin(c, "11111111-1111-1111-1111-111111111111", NULL, NULL);
	u = lqs_url(c, "logs/x", NULL);
	ck_assert_str_eq(u, "https://api.logqs.com/apps/lqs/11111111-1111-1111-1111-111111111111/api/logs/x");
	free(u);
	lqs_client_free(c);

	c = client_with("http://127.0.0.1:9", "apps/", NULL);
	u = lqs_url(c, "users/me", NULL);
	ck_assert_str_eq(u, "http://127.0.0.1:9/apps/lqs/api/users/me");
	free(u);
	lqs_client_free(c);

	c = client_with("http://127.0.0.1:9", "", NULL);
	u = lqs_url(c, "users/me", NULL);
	ck_assert_str_eq(u, "http://127.0.0.1:9/lqs/api/users/me");
	free(u);
	lqs_client_free(c);
}
END_TEST

START_TEST(retry_decisions)
{
	static const int never[] = { 400, 401, 403, 404, 409, 413, 423 };
	static const int always[] = { 408, 429, 500, 502, 503, 504, 418, 302 };

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		ck_assert(!lqs_status_retryable(never[i], false));
		ck_assert(lqs_status_retryable(never[i], true));   /* aggressive */
	}
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		ck_assert(lqs_status_retryable(always[i], false));
	ck_assert(!lqs_status_retryable(200, true));
}
END_TEST

START_TEST(backoff_schedule)
{
	/* the client's schedule is the floor; jitter adds at most 25% */
	ck_assert(backoff_delay(5, 0, 0) == 5.0);
	ck_assert(backoff_delay(5, 1, 0) == 10.0);
	ck_assert(backoff_delay(5, 2, 0) == 20.0);
	ck_assert(backoff_delay(5, 1, 1) == 12.5);
	ck_assert(backoff_delay(0.1, 3, 0.5) > 0.8 && backoff_delay(0.1, 3, 0.5) < 1.01);
	/* event-level: capped, Retry-After honoured */
	ck_assert(worker_retry_delay(10, 600, 1, 0, 0) == 10.0);
	ck_assert(worker_retry_delay(10, 600, 4, 0, 0) == 80.0);
	ck_assert(worker_retry_delay(10, 600, 20, 0, 1) == 600.0);
	ck_assert(worker_retry_delay(10, 600, 1, 120, 0) == 120.0);
	ck_assert(worker_retry_delay(10, 600, 1, 99999, 0) == 3600.0);
}
END_TEST

/* Hand-computed: three entries in one part, two in another.
 *   topic A: data 100 (chunk null) + chunk 40        -> count 2, size 140
 *   topic B: chunk 7, data 30 (chunk null), chunk 0   -> count 3, size 37
 *   timestamps 5 ("3" as string) 9 1 8 -> min 1, max 9 */
#define TA "aaaaaaaa-0000-0000-0000-000000000001"
#define TB "BBBBBBBB-0000-0000-0000-000000000002"

START_TEST(stats_arithmetic)
{
	struct digestion_stats s;
	char err[256];
	json_t *p1 = json_loads("[[\"" TA "\",null,null,0,100,null,null,null,5],"
				" [\"" TA "\",null,\"s\",0,999,\"lz4\",0,40,\"3\"],"
				" [\"" TB "\",null,null,0,999,\"lz4\",0,7,9]]", 0, NULL);
	json_t *p2 = json_loads("[[\"" TB "\",null,null,0,30,null,null,null,1],"
				" [\"" TB "\",null,null,0,5,\"zstd\",0,0,\"8\"]]", 0, NULL);
	json_t *j, *topics;

	dstats_init(&s);
	ck_assert_int_eq(dstats_add_index(&s, p1, "p1", err, sizeof(err)), 0);
	ck_assert_int_eq(dstats_add_index(&s, p2, "p2", err, sizeof(err)), 0);
	ck_assert_int_eq(s.record_count, 5);
	ck_assert_int_eq(s.record_size, 100 + 40 + 7 + 30 + 0);
	ck_assert_int_eq(s.part_count, 2);
	ck_assert_int_eq(s.start_time, 1);
	ck_assert_int_eq(s.end_time, 9);
	j = dstats_to_json(&s, "d1");
	topics = json_object_get(j, "topics");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(topics, TA), "record_count")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(topics, TA), "record_size")), 140);
	/* topic ids are normalised to lowercase */
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(topics,
		"bbbbbbbb-0000-0000-0000-000000000002"), "record_size")), 37);
	ck_assert_str_eq(json_string_value(json_object_get(j, "digestion_id")), "d1");
	json_decref(j);
	json_decref(p1);
	json_decref(p2);
	dstats_free(&s);
}
END_TEST

START_TEST(stats_empty_digestion)
{
	struct digestion_stats s;
	json_t *j;

	dstats_init(&s);
	j = dstats_to_json(&s, "d");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "record_count")), 0);
	ck_assert(json_is_null(json_object_get(j, "start_time")));
	json_decref(j);
	dstats_free(&s);
}
END_TEST

START_TEST(stats_many_topics)
{
	struct digestion_stats s;
	char err[256], entry[128];
	json_t *idx = json_array();

	for (int i = 0; i < 500; i++) {
		snprintf(entry, sizeof(entry), "[\"%08x-0000-0000-0000-000000000000\",null,null,0,1,null,null,null,%d]", i, i);
		json_array_append_new(idx, json_loads(entry, 0, NULL));
	}
	dstats_init(&s);
	ck_assert_int_eq(dstats_add_index(&s, idx, "p", err, sizeof(err)), 0);
	ck_assert_uint_eq(s.topics_len, 500);
	ck_assert_int_eq(s.record_size, 500);
	json_decref(idx);
	dstats_free(&s);
}
END_TEST

START_TEST(stats_malformed_named)
{
	static const struct { const char *idx; const char *want; } cases[] = {
		{ "{}", "part P: index is not an array" },
		{ "[[1,2,3]]", "part P: index entry 0 is not an array of 9 fields" },
		{ "[[\"" TA "\",null,null,0,1,null,null,null,1], 5]", "part P: index entry 1 is not an array" },
		{ "[[\"nope\",null,null,0,1,null,null,null,1]]", "index entry 0: topic_id is not a UUID" },
		{ "[[\"" TA "\",null,null,0,\"x\",null,null,null,1]]", "index entry 0: data_length" },
		{ "[[\"" TA "\",null,null,0,-1,null,null,null,1]]", "index entry 0: data_length" },
		{ "[[\"" TA "\",null,null,0,1,null,null,1.5,1]]", "index entry 0: chunk_length" },
		{ "[[\"" TA "\",null,null,0,1,null,null,null,\"12a\"]]", "index entry 0: timestamp" },
		{ "[[\"" TA "\",null,null,0,1,null,null,null,null]]", "index entry 0: timestamp" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct digestion_stats s;
		char err[256] = "";
		json_t *idx = json_loads(cases[i].idx, 0, NULL);
		ck_assert_ptr_nonnull(idx);
		dstats_init(&s);
		ck_assert_int_eq(dstats_add_index(&s, idx, "P", err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, cases[i].want), "case %zu: got '%s'", i, err);
		dstats_free(&s);
		json_decref(idx);
	}
}
END_TEST

/* The streaming reader agrees with the tree reader, figure for figure. */
START_TEST(scan_matches_tree)
{
	struct digestion_stats a, b;
	char err[256];
	const char *p1 = "[[\"" TA "\",null,null,0,100,null,null,null,5],"
			 " [\"" TA "\",null,\"s\",0,999,\"lz4\",0,40,\"3\"],"
			 " [\"" TB "\",null,null,0,999,\"lz4\",0,7,9]]";
	char body[2048];
	json_t *idx = json_loads(p1, 0, NULL), *ja, *jb;

	snprintf(body, sizeof(body), " {\"data\": {\"id\": \"p\", \"context\": {\"deep\": [1, {\"x\": \"]\\\"\"}]},"
		 " \"index\": %s, \"sequence\": 1e3}, \"extra\": null} ", p1);
	dstats_init(&a);
	dstats_init(&b);
	ck_assert_int_eq(dstats_add_index(&a, idx, "p", err, sizeof(err)), 0);
	ck_assert_msg(dstats_scan_part(&b, body, strlen(body), "p", err, sizeof(err)) == 0, "%s", err);
	ja = dstats_to_json(&a, "d");
	jb = dstats_to_json(&b, "d");
	ck_assert(json_equal(ja, jb));
	ck_assert_int_eq(b.record_size, 147);
	json_decref(ja);
	json_decref(jb);
	json_decref(idx);
	dstats_free(&a);
	dstats_free(&b);
}
END_TEST

/* Parts scanned into two sets of figures (two threads) and merged equal the
 * same parts scanned into one; a topic sent in capitals is the same topic. */
START_TEST(scan_merge_and_topic_case)
{
	struct digestion_stats one, a, b, empty;
	char err[256];
	const char *p1 = "{\"data\":{\"index\":[[\"" TA "\",null,null,0,100,null,null,null,50],"
			 "[\"" TB "\",null,null,0,10,\"lz4\",0,4,\"70\"]]}}";
	const char *p2 = "{\"data\":{\"index\":[[\"" TB "\",null,null,0,7,null,null,null,\"+20\"],"
			 "[\"AAAAAAAA-0000-0000-0000-000000000001\",null,null,0,1,null,null,null,90]]}}";
	json_t *j1, *j2;

	dstats_init(&one);
	dstats_init(&a);
	dstats_init(&b);
	dstats_init(&empty);
	ck_assert_msg(dstats_scan_part(&one, p1, strlen(p1), "1", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(dstats_scan_part(&one, p2, strlen(p2), "2", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(dstats_scan_part(&a, p1, strlen(p1), "1", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(dstats_scan_part(&b, p2, strlen(p2), "2", err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(dstats_merge(&a, &empty), 0);
	ck_assert_int_eq(dstats_merge(&a, &b), 0);
	j1 = dstats_to_json(&one, "d");
	j2 = dstats_to_json(&a, "d");
	ck_assert(json_equal(j1, j2));
	ck_assert_int_eq(a.record_count, 4);
	ck_assert_int_eq(a.record_size, 100 + 4 + 7 + 1);
	ck_assert_int_eq(a.part_count, 2);
	ck_assert_int_eq(a.start_time, 20);
	ck_assert_int_eq(a.end_time, 90);
	/* TA is this UUID in lower case: one topic, two records */
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(json_object_get(j2, "topics"), TA), "record_count")), 2);
	/* merging into empty figures copies them */
	ck_assert_int_eq(dstats_merge(&empty, &a), 0);
	json_decref(j1);
	j1 = dstats_to_json(&empty, "d");
	ck_assert(json_equal(j1, j2));
	json_decref(j1);
	json_decref(j2);
	dstats_free(&one);
	dstats_free(&a);
	dstats_free(&b);
	dstats_free(&empty);
}
END_TEST

START_TEST(scan_errors_named)
{
	static const struct { const char *body; const char *want; } cases[] = {
		{ "{\"data\":{\"index\":[[1,2,3]]}}", "part P: index entry 0 is not an array of 9 fields" },
		{ "{\"data\":{\"index\":[[\"nope\",null,null,0,1,null,null,null,1]]}}", "index entry 0: topic_id is not a UUID" },
		{ "{\"data\":{\"index\":[[\"" TA "\",null,null,0,-1,null,null,null,1]]}}", "index entry 0: data_length" },
		{ "{\"data\":{\"index\":[[\"" TA "\",null,null,0,1,null,null,1.5,1]]}}", "index entry 0: chunk_length" },
		{ "{\"data\":{\"index\":[[\"" TA "\",null,null,0,1,null,null,null,\"12a\"]]}}", "index entry 0: timestamp" },
		{ "{\"data\":{\"index\":[[\"" TA "\",null,null,0,1,null,null,null,1,9]]}}", "index entry 0 is not an array of 9 fields" },
		{ "{\"data\":{\"index\":null}}", "index is missing (null) even when fetched" },
		{ "{\"data\":{\"index\":{}}}", "index is not an array" },
		{ "{\"data\":{\"index\":[],\"index\":[]}}", "two \"index\" members" },
		{ "{\"nodata\":1}", "no \"data\" member" },
		{ "{\"data\":{\"index\":[]}} x", "text after the document" },
		{ "{\"data\":{\"index\":[[", "malformed JSON" },
		{ "{\"data\":{\"index\":[[\"" TA "\",null", "malformed JSON" },
		{ "{\"data\":{\"a\":\"\\q\"}}", "bad escape" },
		{ "[]", "object expected" },
		{ "", "object expected" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct digestion_stats s;
		char err[256] = "";
		dstats_init(&s);
		ck_assert_int_eq(dstats_scan_part(&s, cases[i].body, strlen(cases[i].body), "P", err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, cases[i].want), "case %zu: got '%s'", i, err);
		dstats_free(&s);
	}
}
END_TEST

Suite *suite_lqs(void)
{
	Suite *s = suite_create("lqs");
	TCase *t = tcase_create("core");

	tcase_add_test(t, url_layout);
	tcase_add_test(t, retry_decisions);
	tcase_add_test(t, backoff_schedule);
	suite_add_tcase(s, t);
	return s;
}

Suite *suite_stats(void)
{
	Suite *s = suite_create("digestion_stats");
	TCase *t = tcase_create("core");

	tcase_add_test(t, stats_arithmetic);
	tcase_add_test(t, stats_empty_digestion);
	tcase_add_test(t, stats_many_topics);
	tcase_add_test(t, stats_malformed_named);
	tcase_add_test(t, scan_matches_tree);
	tcase_add_test(t, scan_errors_named);
	tcase_add_test(t, scan_merge_and_topic_case);
	suite_add_tcase(s, t);
	return s;
}
