/* Object events: every format AWS uses, each with its key encoding, and
 * the field-precise errors for what is not one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/trigger.h"
#include "lqs-hookd/watch.h"
#include "lqs-hookd/util.h"
#include "suites.h"

static struct objects_msg m;
static json_t *detail;

static enum objects_result parse(const char *body)
{
	objects_msg_free(&m);
	json_decref(detail);
	detail = NULL;
	return objects_parse(body, strlen(body), 1000, &m, &detail);
}

static void teardown(void)
{
	objects_msg_free(&m);
	json_decref(detail);
	detail = NULL;
}

/* The documented example: a PUT of "raw/a b+c.csv", form-encoded. */
#define S3_PUT                                                                                                    \
	"{\"Records\":[{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"eu-west-1\","            \
	"\"eventTime\":\"2024-05-01T10:00:00.123Z\",\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"s3SchemaVersion\":" \
	"\"1.0\",\"bucket\":{\"name\":\"my-bucket\",\"arn\":\"arn:aws:s3:::my-bucket\"},\"object\":{\"key\":"        \
	"\"raw/a+b%2Bc.csv\",\"size\":1024,\"eTag\":\"d41d8cd98f00b204e9800998ecf8427e\",\"sequencer\":"            \
	"\"0055AED6DCD90281E5\"}}}]}"

START_TEST(s3_notification)
{
	char *k;

	ck_assert_int_eq(parse(S3_PUT), OBJECTS_OK);
	ck_assert_int_eq(m.kind, OBJECTS_RECORDS);
	ck_assert_str_eq(m.format, "s3");
	ck_assert_uint_eq(m.n, 1);
	ck_assert_str_eq(m.recs[0].kind, "created");
	ck_assert_str_eq(m.recs[0].bucket, "my-bucket");
	ck_assert_str_eq(m.recs[0].key, "raw/a b+c.csv");
	ck_assert_uint_eq(m.recs[0].key_len, 13);
	ck_assert_int_eq(m.recs[0].size, 1024);
	ck_assert_str_eq(m.recs[0].etag, "d41d8cd98f00b204e9800998ecf8427e");
	ck_assert_str_eq(m.recs[0].sequencer, "0055AED6DCD90281E5");
	ck_assert_str_eq(m.recs[0].region, "eu-west-1");
	ck_assert_int_eq(m.recs[0].event_ms, 1714557600123LL);
	k = objects_dedupe_key(&m.recs[0]);
	ck_assert_str_eq(k, "my-bucket|created|s:0055AED6DCD90281E5|raw/a b+c.csv");
	free(k);
	/* several records, a removal, and a type that is not ours */
	ck_assert_int_eq(parse("{\"Records\":[{\"eventName\":\"ObjectRemoved:Delete\",\"s3\":{\"bucket\":{\"name\":"
			       "\"b-1\"},\"object\":{\"key\":\"dt%3D2018-05-04/_SUCCESS\",\"versionId\":\"v1\"}}},"
			       "{\"eventName\":\"ObjectRestore:Completed\",\"s3\":{}},"
			       "{\"eventName\":\"s3:ObjectCreated:Copy\",\"s3\":{\"bucket\":{\"name\":\"b-1\"},"
			       "\"object\":{\"key\":\"%C3%A9t%C3%A9/x%25y\"}}}]}"),
			 OBJECTS_OK);
	ck_assert_uint_eq(m.n, 2);
	ck_assert_uint_eq(m.ignored, 1);
	ck_assert_str_eq(m.recs[0].kind, "removed");
	ck_assert_str_eq(m.recs[0].key, "dt=2018-05-04/_SUCCESS");
	ck_assert_int_eq(m.recs[0].size, -1);
	k = objects_dedupe_key(&m.recs[0]);
	ck_assert_str_eq(k, "b-1|removed|v:v1|dt=2018-05-04/_SUCCESS");
	free(k);
	ck_assert_str_eq(m.recs[1].key, "\xC3\xA9t\xC3\xA9/x%y");
	ck_assert_str_eq(m.recs[1].event_name, "ObjectCreated:Copy");
	/* the first message after configuration */
	ck_assert_int_eq(parse("{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2024-05-01T10:00:00Z\","
			       "\"Bucket\":\"my-bucket\",\"RequestId\":\"R\",\"HostId\":\"H\"}"),
			 OBJECTS_OK);
	ck_assert_int_eq(m.kind, OBJECTS_TEST_EVENT);
}
END_TEST

START_TEST(eventbridge_keys_are_raw)
{
	ck_assert_int_eq(parse("{\"version\":\"0\",\"id\":\"5f1e\",\"detail-type\":\"Object Created\",\"source\":"
			       "\"aws.s3\",\"account\":\"1\",\"time\":\"2024-05-01T10:00:00Z\",\"region\":\"eu-west-1\","
			       "\"resources\":[\"arn:aws:s3:::my-bucket\"],\"detail\":{\"version\":\"0\",\"bucket\":"
			       "{\"name\":\"my-bucket\"},\"object\":{\"key\":\"raw/a b+c%20.csv\",\"size\":5,\"etag\":"
			       "\"e1\",\"version-id\":\"vv\",\"sequencer\":\"617f\"},\"reason\":\"PutObject\"}}"),
			 OBJECTS_OK);
	ck_assert_str_eq(m.format, "eventbridge");
	ck_assert_uint_eq(m.n, 1);
	ck_assert_str_eq(m.recs[0].key, "raw/a b+c%20.csv");
	ck_assert_str_eq(m.recs[0].etag, "e1");
	ck_assert_str_eq(m.recs[0].version_id, "vv");
	ck_assert_str_eq(m.recs[0].event_name, "Object Created/PutObject");
	ck_assert_int_eq(m.recs[0].event_ms, 1714557600000LL);
	ck_assert_int_eq(parse("{\"detail-type\":\"Object Tags Added\",\"source\":\"aws.s3\",\"detail\":{}}"), OBJECTS_OK);
	ck_assert_uint_eq(m.n, 0);
	ck_assert_uint_eq(m.ignored, 1);
	ck_assert_int_eq(parse("{\"detail-type\":\"Object Deleted\",\"source\":\"aws.s3\",\"detail\":{\"bucket\":"
			       "{\"name\":\"my-bucket\"},\"object\":{\"key\":\"k\"}}}"),
			 OBJECTS_OK);
	ck_assert_str_eq(m.recs[0].kind, "removed");
}
END_TEST

START_TEST(sns_envelopes)
{
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Type", "Notification", "MessageId", "m1", "TopicArn",
				"arn:aws:sns:eu-west-1:1:t", "Subject", "Amazon S3 Notification", "Message", S3_PUT);
	char *body = json_dumps(env, JSON_COMPACT);

	ck_assert_int_eq(parse(body), OBJECTS_OK);
	ck_assert_str_eq(m.format, "sns");
	ck_assert_int_eq(m.kind, OBJECTS_RECORDS);
	ck_assert_uint_eq(m.n, 1);
	ck_assert_str_eq(m.recs[0].key, "raw/a b+c.csv");   /* the S3 message inside: form-decoded */
	ck_assert_str_eq(json_string_value(json_object_get(m.sns, "MessageId")), "m1");
	free(body);
	json_object_set_new(env, "Type", json_string("SubscriptionConfirmation"));
	json_object_set_new(env, "SubscribeURL", json_string("https://sns.eu-west-1.amazonaws.com/?Action=x"));
	body = json_dumps(env, JSON_COMPACT);
	ck_assert_int_eq(parse(body), OBJECTS_OK);
	ck_assert_int_eq(m.kind, OBJECTS_SNS_CONFIRM);
	free(body);
	json_object_set_new(env, "Type", json_string("Notification"));
	json_object_set_new(env, "Message", json_string("not json"));
	body = json_dumps(env, JSON_COMPACT);
	ck_assert_int_eq(parse(body), OBJECTS_INVALID);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(detail, 0), "loc"), 1)), "Message");
	free(body);
	json_decref(env);
	/* raw delivery: the bare S3 message */
	ck_assert_int_eq(parse(S3_PUT), OBJECTS_OK);
	ck_assert_ptr_null(m.sns);
}
END_TEST

/* The path to the bad field, as FastAPI would give it. */
static const char *loc_text(size_t i)
{
	static char out[256];
	json_t *loc = json_object_get(json_array_get(detail, i), "loc"), *v;
	size_t k, at = 0;

	out[0] = '\0';
	json_array_foreach(loc, k, v) {
		if (json_is_integer(v))
			at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%lld", k ? "." : "", (long long)json_integer_value(v));
		else
			at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%s", k ? "." : "", json_string_value(v));
	}
	return out;
}

START_TEST(errors_name_the_field)
{
	ck_assert_int_eq(parse("{\"Records\":[1"), OBJECTS_SYNTAX);
	ck_assert(json_is_string(detail));
	ck_assert_int_eq(parse("[]"), OBJECTS_INVALID);
	ck_assert_str_eq(loc_text(0), "body");
	ck_assert_int_eq(parse("{\"hello\":1}"), OBJECTS_INVALID);
	ck_assert_str_eq(loc_text(0), "body.Records");
	ck_assert_int_eq(parse("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"B!\"},"
			       "\"object\":{\"key\":\"a%2\",\"size\":-1}}}]}"),
			 OBJECTS_INVALID);
	ck_assert_uint_eq(json_array_size(detail), 3);
	ck_assert_str_eq(loc_text(0), "body.Records.0.s3.bucket.name");
	ck_assert_str_eq(loc_text(1), "body.Records.0.s3.object.key");
	ck_assert_str_eq(loc_text(2), "body.Records.0.s3.object.size");
	ck_assert_uint_eq(m.n, 0);   /* nothing kept from an invalid message */
	/* a NUL, an over-long key, bytes that are not UTF-8 */
	const char *keys[] = { "a%00b", "%FF", "%C3" };
	for (size_t i = 0; i < 3; i++) {
		char body[256];
		snprintf(body, sizeof(body), "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
			 "{\"name\":\"bbb\"},\"object\":{\"key\":\"%s\"}}}]}", keys[i]);
		ck_assert_msg(parse(body) == OBJECTS_INVALID, "accepted %s", keys[i]);
	}
	char *lng = malloc(1100), *body = malloc(1300);
	memset(lng, 'k', 1025);
	lng[1025] = '\0';
	snprintf(body, 1300, "{\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"detail\":{\"bucket\":"
		 "{\"name\":\"bbb\"},\"object\":{\"key\":\"%s\"}}}", lng);
	ck_assert_int_eq(parse(body), OBJECTS_INVALID);
	ck_assert_str_eq(loc_text(0), "body.detail.object.key");
	lng[1024] = '\0';
	snprintf(body, 1300, "{\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"detail\":{\"bucket\":"
		 "{\"name\":\"bbb\"},\"object\":{\"key\":\"%s\"}}}", lng);
	ck_assert_int_eq(parse(body), OBJECTS_OK);   /* 1024 bytes is S3's own limit */
	free(lng);
	free(body);
}
END_TEST

/* Which watch takes an object, and the batch's path. */
START_TEST(watches_and_paths)
{
	struct config c;
	char err[1024], path[1100];
	static const char text[] = "[auth]\nauth = none\n"
				   "[watch csv]\nbucket = bkt\nprefix = inst/\nsuffix = .csv\nignore = inst/scratch/*\n"
				   "[watch all]\nbucket = bkt\nprefix_depth = 1\nevents = removed\n"
				   "[watch root]\nbucket = other\nprefix_depth = 0\nmarker =\n";
	struct object_rec r;
	const struct watch_cfg *w;
	bool marker;

	ck_assert_int_eq(config_load_buffer(&c, "w.conf", text, sizeof(text) - 1, NULL, err, sizeof(err)), 0);
	memset(&r, 0, sizeof(r));
	str_copy(r.bucket, "bkt", sizeof(r.bucket));
	str_copy(r.kind, "created", sizeof(r.kind));
#define KEY(k) (r.key = (char *)(uintptr_t)(k), r.key_len = strlen(k))
	KEY("inst/exp1/run/a.csv");
	w = watch_match(&c, &r, path, sizeof(path), &marker);
	ck_assert_str_eq(w->name, "csv");
	ck_assert_str_eq(path, "inst/exp1/");
	ck_assert(!marker);
	KEY("inst/exp1/a.json");   /* the suffix does not match; "all" takes removals only */
	ck_assert_ptr_null(watch_match(&c, &r, path, sizeof(path), &marker));
	KEY("inst/exp1/_SUCCESS");   /* the marker whatever the suffixes */
	w = watch_match(&c, &r, path, sizeof(path), &marker);
	ck_assert(w && marker);
	ck_assert_str_eq(path, "inst/exp1/");
	KEY("inst/scratch/a.csv");
	ck_assert_ptr_null(watch_match(&c, &r, path, sizeof(path), &marker));
	KEY("inst/top.csv");   /* fewer folders than prefix_depth */
	w = watch_match(&c, &r, path, sizeof(path), &marker);
	ck_assert_str_eq(path, "inst/");
	str_copy(r.kind, "removed", sizeof(r.kind));
	KEY("inst/exp1/a.csv");
	w = watch_match(&c, &r, path, sizeof(path), &marker);
	ck_assert_str_eq(w->name, "all");
	ck_assert_str_eq(path, "inst/");
	str_copy(r.kind, "created", sizeof(r.kind));
	str_copy(r.bucket, "other", sizeof(r.bucket));
	KEY("x/y/_SUCCESS");   /* no marker there: an object like any */
	w = watch_match(&c, &r, path, sizeof(path), &marker);
	ck_assert(w && !marker);
	ck_assert_str_eq(path, "");
#undef KEY
	r.key = NULL;
	config_free(&c);
}
END_TEST

/* A REST trigger's body from its template. */
START_TEST(trigger_templates)
{
	json_t *batch = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[{s:s}, {s:s}]}", "batch_id", "b-1", "watch",
				  "w", "bucket", "bkt", "prefix", "run \"42\"/", "path", "s3://bkt/run \"42\"/", "reason",
				  "marker", "closed_at", "2026-12-02T18:00:00.000Z", "count", 2, "objects", "key", "a.csv",
				  "key", "b\\c.csv");
	char why[256], *out;
	json_t *doc;

	out = trigger_render("{\"workflowId\": 7, \"programParameters\": \"--var datapath={path}\", \"n\": {count}, "
			     "\"keys\": {keys}, \"{literal\": \"{}\"}", batch, why, sizeof(why));
	ck_assert_ptr_nonnull(out);
	doc = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(doc);   /* text is escaped: quotes and backslashes stay JSON */
	ck_assert_str_eq(json_string_value(json_object_get(doc, "programParameters")), "--var datapath=s3://bkt/run \"42\"/");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "n")), 2);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(doc, "keys"), 1)), "b\\c.csv");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "{literal")), "{}");
	json_decref(doc);
	free(out);
	out = trigger_render(trigger_default_body, batch, why, sizeof(why));
	doc = json_loads(out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "detail-type")), "package-objects-ready");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "detail"), "prefix")), "run \"42\"/");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "time")), "2026-12-02T18:00:00.000Z");
	json_decref(doc);
	free(out);
	ck_assert_ptr_null(trigger_render("{\"a\": \"{nope}\"}", batch, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "unknown placeholder {nope}"));
	json_decref(batch);
}
END_TEST

Suite *suite_objects(void)
{
	Suite *s = suite_create("objects");
	TCase *t = tcase_create("core");

	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_add_test(t, s3_notification);
	tcase_add_test(t, eventbridge_keys_are_raw);
	tcase_add_test(t, sns_envelopes);
	tcase_add_test(t, errors_name_the_field);
	tcase_add_test(t, watches_and_paths);
	tcase_add_test(t, trigger_templates);
	suite_add_tcase(s, t);
	return s;
}
