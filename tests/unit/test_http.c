/* The HTTP front's pure checks: the endpoint table and its path matching,
 * the media type, the framing. */
#include <string.h>

#include "../../src/http/http_int.h"
#include "suites.h"

static const struct http_paths paths = { "/events", "/objects" };

START_TEST(paths_and_methods)
{
	static const struct { const char *url, *method, *metric; unsigned status; const char *allow, *id; } cases[] = {
		{ "/events", "POST", "events", 0, NULL, "" },
		{ "/events", "GET", "events", 0, NULL, "" },
		{ "/events", "PUT", NULL, 405, "GET, POST", "" },
		{ "/events/replay", "POST", "replay_many", 0, NULL, "" },
		{ "/events/replay", "GET", NULL, 405, "POST", "" },
		{ "/events/abc", "GET", "event", 0, NULL, "abc" },
		{ "/events/abc", "HEAD", "event", 0, NULL, "abc" },
		{ "/events/abc", "POST", NULL, 405, "GET", "abc" },
		{ "/events/abc/history", "GET", "history", 0, NULL, "abc" },
		{ "/events/abc/replay", "POST", "replay", 0, NULL, "abc" },
		{ "/events/abc/nope", "GET", NULL, 404, NULL, NULL },
		{ "/events/", "GET", NULL, 404, NULL, NULL },
		{ "/eventsx", "GET", NULL, 404, NULL, NULL },
		{ "/healthz", "GET", "healthz", 0, NULL, "" },
		{ "/healthz", "POST", NULL, 405, "GET", "" },
		{ "/readyz", "GET", "readyz", 0, NULL, "" },
		{ "/metrics", "GET", "metrics", 0, NULL, "" },
		{ "/", "GET", NULL, 404, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[64] = "";
		unsigned status = 0;
		const char *allow = NULL;
		const struct endpoint *e = endpoint_find(cases[i].url, cases[i].method, &paths, id, sizeof(id),
							 &status, &allow);
		if (cases[i].metric) {
			ck_assert_msg(e != NULL, "case %zu: %s %s", i, cases[i].method, cases[i].url);
			ck_assert_str_eq(e->metric, cases[i].metric);
			ck_assert_str_eq(id, cases[i].id);
		} else {
			ck_assert_msg(e == NULL, "case %zu", i);
			ck_assert_uint_eq(status, cases[i].status);
			if (cases[i].allow)
				ck_assert_str_eq(allow, cases[i].allow);
		}
	}
	/* a configured events_path, and an id too long for its buffer */
	{
		char id[8];
		unsigned status;
		const char *allow;
		const struct endpoint *e = endpoint_find("/hooks/lqs/0123456789abcdef/history", "GET", &(struct http_paths){ "/hooks/lqs", "/objects" }, id,
							 sizeof(id), &status, &allow);
		ck_assert_ptr_nonnull(e);
		ck_assert_str_eq(e->metric, "history");
		ck_assert_str_eq(id, "0123456");
	}
	/* who may call what */
	{
		char id[64];
		unsigned status;
		const char *allow;
		ck_assert_int_eq(endpoint_find("/events", "POST", &paths, id, sizeof(id), &status, &allow)->access,
				 ACCESS_HOOK);
		ck_assert_int_eq(endpoint_find("/metrics", "GET", &paths, id, sizeof(id), &status, &allow)->access,
				 ACCESS_ADMIN);
		ck_assert_int_eq(endpoint_find("/readyz", "GET", &paths, id, sizeof(id), &status, &allow)->access,
				 ACCESS_OPEN);
		ck_assert(endpoint_find("/events", "POST", &paths, id, sizeof(id), &status, &allow)->body);
		ck_assert(!endpoint_find("/events", "GET", &paths, id, sizeof(id), &status, &allow)->body);
	}
}
END_TEST

START_TEST(media_type_and_framing)
{
	ck_assert(content_type_ok("application/json"));
	ck_assert(content_type_ok("Application/JSON; charset=utf-8"));
	ck_assert(content_type_ok(" application/json "));
	ck_assert(!content_type_ok("application/jsonx"));
	ck_assert(!content_type_ok("text/plain"));
	ck_assert(!content_type_ok(NULL));
	ck_assert_ptr_null(framing_check(1, 0, false));
	ck_assert_ptr_null(framing_check(0, 1, true));
	ck_assert_ptr_null(framing_check(0, 0, false));
	ck_assert_str_eq(framing_check(2, 0, false), "Bad Request: more than one Content-Length header");
	ck_assert_str_eq(framing_check(1, 1, true), "Bad Request: both Content-Length and Transfer-Encoding");
	ck_assert_str_eq(framing_check(0, 1, false), "Bad Request: only Transfer-Encoding: chunked is supported");
	ck_assert_str_eq(framing_check(0, 2, true), "Bad Request: only Transfer-Encoding: chunked is supported");
}
END_TEST

Suite *suite_http(void)
{
	Suite *s = suite_create("http");
	TCase *t = tcase_create("core");

	tcase_add_test(t, paths_and_methods);
	tcase_add_test(t, media_type_and_framing);
	suite_add_tcase(s, t);
	return s;
}
