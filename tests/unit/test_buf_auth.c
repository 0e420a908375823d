#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/ratelog.h"
#include "lqs-hookd/util.h"
#include "suites.h"

#include <jansson.h>

START_TEST(buf_caps_and_frees)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_append(&b, "12345", 5), 0);
	ck_assert_str_eq(b.data, "12345");
	ck_assert_int_eq(buf_append(&b, "678", 3), 0);
	ck_assert_uint_eq(b.len, 8);
	/* one byte over: error, and the buffer is empty again */
	ck_assert_int_eq(buf_append(&b, "9", 1), -E2BIG);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(buf_consume_keeps_the_rest)
{
	struct buf b;

	buf_init(&b, 0);
	buf_consume(&b, 3);   /* nothing yet: nothing to do */
	ck_assert_int_eq(buf_append_str(&b, "id: 1\ndata: x\n\n"), 0);
	buf_consume(&b, 6);
	ck_assert_str_eq(b.data, "data: x\n\n");
	ck_assert_uint_eq(b.len, 9);
	buf_consume(&b, 100);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	buf_free(&b);
}
END_TEST

START_TEST(buf_printf_grows)
{
	struct buf b;

	buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(buf_printf(&b, "%04d", i), 0);
	ck_assert_uint_eq(b.len, 4000);
	ck_assert(memcmp(b.data + 3996, "0999", 4) == 0);
	buf_free(&b);
}
END_TEST

START_TEST(base64_vectors)
{
	/* RFC 4648 test vectors */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	char out[32];
	unsigned char dec[32];

	for (int i = 0; i < 7; i++) {
		ck_assert_int_eq(base64_encode(plain[i], strlen(plain[i]), out, sizeof(out)), (long)strlen(enc[i]));
		ck_assert_str_eq(out, enc[i]);
		ck_assert_int_eq(base64_decode(enc[i], strlen(enc[i]), dec, sizeof(dec)), (long)strlen(plain[i]));
		ck_assert(memcmp(dec, plain[i], strlen(plain[i])) == 0);
	}
}
END_TEST

START_TEST(base64_rejects_malformed)
{
	unsigned char dec[32];

	ck_assert_int_lt(base64_decode("Zg=", 3, dec, sizeof(dec)), 0);        /* bad length */
	ck_assert_int_lt(base64_decode("Z===", 4, dec, sizeof(dec)), 0);       /* too much padding */
	ck_assert_int_lt(base64_decode("Zg==Zg==", 8, dec, sizeof(dec)), 0);   /* padding mid-string */
	ck_assert_int_lt(base64_decode("Zm9*", 4, dec, sizeof(dec)), 0);       /* bad character */
	ck_assert_int_lt(base64_decode("Zm 9", 4, dec, sizeof(dec)), 0);       /* whitespace */
	ck_assert_int_lt(base64_decode("Zm9vYmFy", 8, dec, 5), 0);             /* output too small */
}
END_TEST

START_TEST(bearer_check)
{
	char *secrets[] = { "old-secret", "secret" };
	char hdr[256];
	char enc[64];

	base64_encode("secret", 6, enc, sizeof(enc));
	snprintf(hdr, sizeof(hdr), "Bearer %s", enc);
	ck_assert_int_eq(auth_check_bearer(NULL, secrets, 2), AUTH_MISSING);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 2), AUTH_OK);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 1), AUTH_INVALID);      /* only the old one */
	snprintf(hdr, sizeof(hdr), "bearer %s", enc);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 2), AUTH_OK);           /* scheme is case-insensitive */
	snprintf(hdr, sizeof(hdr), "Bearer  %s", enc);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 2), AUTH_INVALID);      /* two spaces */
	ck_assert_int_eq(auth_check_bearer("Bearer ", secrets, 2), AUTH_INVALID);
	ck_assert_int_eq(auth_check_bearer("Basic c2VjcmV0", secrets, 2), AUTH_INVALID);
	ck_assert_int_eq(auth_check_bearer("Bearer secret", secrets, 2), AUTH_INVALID); /* not base64 of it */
	base64_encode("secre", 5, enc, sizeof(enc));                              /* a prefix */
	snprintf(hdr, sizeof(hdr), "Bearer %s", enc);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 2), AUTH_INVALID);
	base64_encode("secretX", 7, enc, sizeof(enc));                            /* an extension */
	snprintf(hdr, sizeof(hdr), "Bearer %s", enc);
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 2), AUTH_INVALID);
}
END_TEST

/* POST /objects: the secret as is or base64-wrapped, or Basic. */
START_TEST(objects_auth_forms)
{
	char *secrets[] = { "tok-1", "tok-2" };

	ck_assert_int_eq(auth_check_objects(NULL, secrets, 2, NULL, NULL), AUTH_MISSING);
	ck_assert_int_eq(auth_check_objects("Bearer tok-2", secrets, 2, NULL, NULL), AUTH_OK);
	ck_assert_int_eq(auth_check_objects("bearer dG9rLTE=", secrets, 2, NULL, NULL), AUTH_OK);   /* base64(tok-1) */
	ck_assert_int_eq(auth_check_objects("Bearer tok-3", secrets, 2, NULL, NULL), AUTH_INVALID);
	ck_assert_int_eq(auth_check_objects("Bearer tok-3", secrets, 0, NULL, NULL), AUTH_INVALID);
	/* base64("eb:pw") */
	ck_assert_int_eq(auth_check_objects("Basic ZWI6cHc=", secrets, 2, "eb", "pw"), AUTH_OK);
	ck_assert_int_eq(auth_check_objects("Basic ZWI6cHc=", secrets, 2, "eb", "px"), AUTH_INVALID);
	ck_assert_int_eq(auth_check_objects("Basic ZWI6cHc=", secrets, 2, NULL, NULL), AUTH_INVALID);
	ck_assert_int_eq(auth_check_objects("Basic !!", secrets, 2, "eb", "pw"), AUTH_INVALID);
	ck_assert_int_eq(auth_check_objects("Digest x", secrets, 2, "eb", "pw"), AUTH_INVALID);
}
END_TEST

START_TEST(bearer_huge_token)
{
	static char hdr[20000];
	char *secrets[] = { "secret" };

	memcpy(hdr, "Bearer ", 7);
	memset(hdr + 7, 'A', sizeof(hdr) - 8);
	hdr[sizeof(hdr) - 1] = '\0';
	ck_assert_int_eq(auth_check_bearer(hdr, secrets, 1), AUTH_INVALID);
}
END_TEST

START_TEST(ct_equal_semantics)
{
	ck_assert(ct_equal("abc", 3, "abc", 3));
	ck_assert(!ct_equal("abc", 3, "abd", 3));
	ck_assert(!ct_equal("abc", 3, "abc\0", 4));
	ck_assert(!ct_equal("", 0, "a", 1));
	ck_assert(ct_equal("", 0, "", 0));
}
END_TEST

START_TEST(api_key_bearer)
{
	char out[256];

	ck_assert_int_eq(auth_basic_bearer("id", "secret", out, sizeof(out)), 0);
	/* base64("id:secret") */
	ck_assert_str_eq(out, "Bearer aWQ6c2VjcmV0");
	ck_assert_int_eq(auth_check_token("Bearer tok", "tok"), AUTH_OK);
	ck_assert_int_eq(auth_check_token("Bearer tok2", "tok"), AUTH_INVALID);
	ck_assert_int_eq(auth_check_token(NULL, "tok"), AUTH_MISSING);
}
END_TEST

/* A log line is one JSON object on one line whatever the message holds, and
 * reads back as the message (invalid UTF-8 as U+FFFD). */
START_TEST(log_line_escapes)
{
	static const struct { const char *msg, *want; } cases[] = {
		{ "plain", "plain" },
		{ "quote \" and \\ backslash", "quote \" and \\ backslash" },
		{ "forged\n{\"level\":\"error\"}\r\t", "forged\n{\"level\":\"error\"}\r\t" },
		{ "ctl \x01\x1f\x7f", "ctl \x01\x1f\x7f" },
		{ "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "bad \xff \xc3 \xe2\x82 end", "bad \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end" },
		{ "overlong \xc0\xaf surrogate \xed\xa0\x80", "overlong \xef\xbf\xbd\xef\xbf\xbd surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};
	char line[LOG_LINE_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = log_format_line(line, sizeof(line), "2026-01-01T00:00:00.000Z", "info", cases[i].msg,
					   "e-\"1", NULL, NULL, 0);
		json_error_t je;
		json_t *o;
		ck_assert_uint_eq(n, strlen(line));
		ck_assert_msg(n > 0 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1), "case %zu: one line", i);
		o = json_loadb(line, n, 0, &je);
		ck_assert_msg(o != NULL, "case %zu: %s in %s", i, je.text, line);
		ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), cases[i].want);
		ck_assert_str_eq(json_string_value(json_object_get(o, "event_id")), "e-\"1");
		ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "info");
		ck_assert_ptr_null(json_object_get(o, "resource_id"));
		json_decref(o);
	}
	/* too long for the buffer: cut, still one valid JSON line */
	{
		char big[3000];
		json_t *o;
		memset(big, '"', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		struct log_field f[] = { { "attempt", 3 }, { "duration_ms", 12.25 } };
		size_t n = log_format_line(line, 200, "t", "warn", big, NULL, "r", f, 2);
		ck_assert_uint_lt(n, 200);
		o = json_loadb(line, n, 0, NULL);
		ck_assert_ptr_nonnull(o);
		ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
		/* the numeric fields survive the cut of the message, as numbers */
		ck_assert_int_eq(json_integer_value(json_object_get(o, "attempt")), 3);
		ck_assert(json_real_value(json_object_get(o, "duration_ms")) == 12.25);
		ck_assert_str_eq(json_string_value(json_object_get(o, "resource_id")), "r");
		json_decref(o);
	}
}
END_TEST

/* Rejection logging: at most max lines per window, the rest counted by
 * status for one summary; a new window starts afresh. */
START_TEST(ratelog_limits_and_summarises)
{
	struct ratelog rl;
	char sum[512];

	ratelog_init(&rl, "rejected requests");
	ck_assert(ratelog_allow(&rl, 1000, 60000, 2, 401));
	ck_assert(ratelog_allow(&rl, 1001, 60000, 2, 401));
	ck_assert(!ratelog_allow(&rl, 1002, 60000, 2, 401));
	ck_assert(!ratelog_allow(&rl, 1003, 60000, 2, 413));
	ck_assert(!ratelog_allow(&rl, 1004, 60000, 2, 401));
	ratelog_summary(&rl, sum, sizeof(sum));
	ck_assert_str_eq(sum, "3 more rejected requests not logged in the last 60 s (by status: 401: 2, 413: 1)");
	/* still inside the window: the tick logs nothing and keeps the counts */
	ratelog_tick(&rl, 30000, 60000);
	ratelog_summary(&rl, sum, sizeof(sum));
	ck_assert_str_ne(sum, "");
	/* the window is over: summed up, and lines are allowed again */
	ratelog_tick(&rl, 61001, 60000);
	ratelog_summary(&rl, sum, sizeof(sum));
	ck_assert_str_eq(sum, "");
	ck_assert(ratelog_allow(&rl, 61002, 60000, 2, 422));
	/* max 0: nothing logged, everything counted */
	ck_assert(!ratelog_allow(&rl, 61003, 60000, 0, 422));
	ratelog_destroy(&rl);
}
END_TEST

/* Event ids: canonical lowercase UUIDv7 (time first, so the id index
 * grows at its end), random in the rest, never repeated. */
START_TEST(uuid_new_is_v7_and_unique)
{
	enum { N = 2000 };
	static char ids[N][37];
	char prev_time[14] = "";

	for (int i = 0; i < N; i++) {
		uuid_new(ids[i]);
		ck_assert_uint_eq(strlen(ids[i]), 36);
		for (int k = 0; k < 36; k++) {
			char c = ids[i][k];
			if (k == 8 || k == 13 || k == 18 || k == 23)
				ck_assert_int_eq(c, '-');
			else
				ck_assert_msg((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "bad digit in %s", ids[i]);
		}
		ck_assert_int_eq(ids[i][14], '7');
		ck_assert_msg(strchr("89ab", ids[i][19]) != NULL, "variant of %s", ids[i]);
		/* the first 48 bits are the time in ms: never going back */
		char t[14];
		memcpy(t, ids[i], 8);
		memcpy(t + 8, ids[i] + 9, 4);
		t[12] = '\0';
		ck_assert_msg(strcmp(t, prev_time) >= 0, "time went back: %s after %s", t, prev_time);
		memcpy(prev_time, t, sizeof(t));
	}
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			ck_assert_msg(strcmp(ids[i], ids[j]) != 0, "repeated id %s", ids[i]);
	/* the random part really varies: not all ids of one ms share it */
	ck_assert_str_ne(ids[0] + 24, ids[1] + 24);
}
END_TEST

/* Date-times as LogQS (Python isoformat) and people write them. */
START_TEST(iso8601_parse_forms)
{
	int64_t ms = 0;
	char back[32];

	ck_assert_int_eq(iso8601_parse("2026-12-02T17:22:03Z", &ms), 0);
	ck_assert_int_eq(ms, 1796232123000LL);
	ck_assert_int_eq(iso8601_parse("2026-12-02T17:22:03.5", &ms), 0);   /* no zone: UTC */
	ck_assert_int_eq(ms, 1796232123500LL);
	ck_assert_int_eq(iso8601_parse("2026-12-02T17:22:03.123456+00:00", &ms), 0);
	ck_assert_int_eq(ms, 1796232123123LL);
	ck_assert_int_eq(iso8601_parse("2026-12-02T19:22:03+02:00", &ms), 0);
	ck_assert_int_eq(ms, 1796232123000LL);
	ck_assert_int_eq(iso8601_parse("2026-12-02 12:22:03-0500", &ms), 0);
	ck_assert_int_eq(ms, 1796232123000LL);
	/* what iso8601_ms writes, it reads */
	iso8601_ms(1796232123042LL, back);
	ck_assert_int_eq(iso8601_parse(back, &ms), 0);
	ck_assert_int_eq(ms, 1796232123042LL);
	const char *bad[] = { "", "2026-12-02", "2026-12-02T17:22", "2026-13-02T17:22:03Z", "2026-12-02T17:22:03.Z",
			      "2026-12-02T17:22:03Zjunk", "2026-12-02T17:22:03+2", "x026-12-02T17:22:03Z",
			      "2026-12-02T24:00:00Z", "2026-12-02T17:22:03+05:0", "2026-12-02T17:22:03-05" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(iso8601_parse(bad[i], &ms) == -1, "accepted '%s'", bad[i]);
}
END_TEST

Suite *suite_buf(void)
{
	Suite *s = suite_create("buf");
	TCase *t = tcase_create("core");

	tcase_add_test(t, buf_caps_and_frees);
	tcase_add_test(t, buf_consume_keeps_the_rest);
	tcase_add_test(t, buf_printf_grows);
	tcase_add_test(t, log_line_escapes);
	tcase_add_test(t, uuid_new_is_v7_and_unique);
	tcase_add_test(t, iso8601_parse_forms);
	tcase_add_test(t, ratelog_limits_and_summarises);
	suite_add_tcase(s, t);
	return s;
}

Suite *suite_auth(void)
{
	Suite *s = suite_create("auth");
	TCase *t = tcase_create("core");

	tcase_add_test(t, base64_vectors);
	tcase_add_test(t, base64_rejects_malformed);
	tcase_add_test(t, bearer_check);
	tcase_add_test(t, bearer_huge_token);
	tcase_add_test(t, objects_auth_forms);
	tcase_add_test(t, ct_equal_semantics);
	tcase_add_test(t, api_key_bearer);
	suite_add_tcase(s, t);
	return s;
}
