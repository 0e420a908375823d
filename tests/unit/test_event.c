#include <string.h>

#include "lqs-hookd/event.h"
#include "suites.h"

#define RID "00000000-0000-0000-0000-000000000000"

static json_t *parse_err(const char *body, enum event_parse_result want)
{
	struct event ev;
	json_t *detail = NULL;

	ck_assert_int_eq(event_parse(body, strlen(body), &ev, &detail), want);
	ck_assert_ptr_nonnull(detail);
	return detail;
}

/* The error for one field, or NULL. */
static json_t *err_for(json_t *detail, const char *field)
{
	size_t i;
	json_t *e;

	json_array_foreach(detail, i, e) {
		json_t *loc = json_object_get(e, "loc");
		if (json_array_size(loc) == 2 && strcmp(json_string_value(json_array_get(loc, 1)), field) == 0)
			return e;
	}
	return NULL;
}

static const char *type_of(json_t *detail, const char *field)
{
	json_t *e = err_for(detail, field);

	return e ? json_string_value(json_object_get(e, "type")) : "(none)";
}

START_TEST(valid_minimal_and_full)
{
	struct event ev;
	json_t *detail = NULL, *j;
	const char *min = "{\"current_state\":\"finalizing\",\"process_type\":\"digestion\",\"resource_id\":\"" RID "\"}";
	const char *full = "{\"previous_state\":\"processing\",\"current_state\":\"finalizing\","
			   "\"process_type\":\"digestion\",\"resource_id\":\"6F0C1C4E-8F5A-4D8E-9B3A-2F1D5C7E9A01\","
			   "\"workflow_id\":null,\"hook_id\":\"11111111-2222-3333-4444-555555555555\","
			   "\"datastore_id\":null,\"datastore_endpoint\":\"https://x\",\"extra\":[1,2]}";

	ck_assert_int_eq(event_parse(min, strlen(min), &ev, &detail), EVENT_OK);
	ck_assert_ptr_null(detail);
	ck_assert_str_eq(ev.current_state, "finalizing");
	ck_assert_str_eq(ev.previous_state, "");
	event_free(&ev);

	ck_assert_int_eq(event_parse(full, strlen(full), &ev, &detail), EVENT_OK);
	/* UUIDs are normalised to lowercase */
	ck_assert_str_eq(ev.resource_id, "6f0c1c4e-8f5a-4d8e-9b3a-2f1d5c7e9a01");
	ck_assert_str_eq(ev.hook_id, "11111111-2222-3333-4444-555555555555");
	ck_assert_str_eq(ev.datastore_endpoint, "https://x");
	j = event_to_json(&ev);
	ck_assert(json_is_null(json_object_get(j, "workflow_id")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "previous_state")), "processing");
	ck_assert_ptr_null(json_object_get(j, "extra"));   /* unknown fields ignored */
	json_decref(j);
	event_free(&ev);
}
END_TEST

START_TEST(missing_fields_all_listed)
{
	json_t *d = parse_err("{}", EVENT_INVALID);

	ck_assert_uint_eq(json_array_size(d), 3);
	ck_assert_str_eq(type_of(d, "current_state"), "missing");
	ck_assert_str_eq(type_of(d, "process_type"), "missing");
	ck_assert_str_eq(type_of(d, "resource_id"), "missing");
	ck_assert_str_eq(json_string_value(json_object_get(err_for(d, "resource_id"), "msg")), "Field required");
	json_decref(d);
	/* null counts as missing for required fields */
	d = parse_err("{\"current_state\":null,\"process_type\":\"digestion\",\"resource_id\":\"" RID "\"}",
		      EVENT_INVALID);
	ck_assert_uint_eq(json_array_size(d), 1);
	ck_assert_str_eq(type_of(d, "current_state"), "missing");
	json_decref(d);
}
END_TEST

START_TEST(wrong_types_and_enums)
{
	json_t *d = parse_err("{\"current_state\":\"bogus\",\"process_type\":7,\"resource_id\":12,"
			      "\"previous_state\":true,\"hook_id\":[],\"datastore_endpoint\":5}",
			      EVENT_INVALID);

	ck_assert_str_eq(type_of(d, "current_state"), "enum");
	ck_assert_str_eq(type_of(d, "process_type"), "enum");
	ck_assert_str_eq(type_of(d, "previous_state"), "enum");
	ck_assert_str_eq(type_of(d, "resource_id"), "uuid_type");
	ck_assert_str_eq(type_of(d, "hook_id"), "uuid_type");
	ck_assert_str_eq(type_of(d, "datastore_endpoint"), "string_type");
	/* the enum message lists the permitted values */
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(err_for(d, "process_type"), "msg")),
				     "'ingestion', 'ingestion_part', 'digestion' or 'digestion_part'"));
	json_decref(d);
}
END_TEST

START_TEST(malformed_uuids)
{
	static const char *const bad[] = {
		"0000000-0000-0000-0000-000000000000",     /* short */
		"000000000-0000-0000-0000-000000000000",   /* long */
		"{00000000-0000-0000-0000-000000000000}",  /* braces */
		"00000000000000000000000000000000",        /* no hyphens */
		"g0000000-0000-0000-0000-000000000000",    /* non-hex */
		"00000000-0000-0000-0000-00000000000 ",    /* space */
		"",
	};
	char body[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"current_state\":\"ready\",\"process_type\":\"ingestion\",\"resource_id\":\"%s\"}", bad[i]);
		json_t *d = parse_err(body, EVENT_INVALID);
		ck_assert_msg(strcmp(type_of(d, "resource_id"), "uuid_parsing") == 0, "accepted '%s'", bad[i]);
		json_decref(d);
	}
}
END_TEST

START_TEST(syntax_errors)
{
	static const char *const bad[] = {
		"{\"current_state\":",                  /* truncated */
		"{} garbage",                           /* trailing garbage */
		"{\"a\":1,\"a\":2}",                    /* duplicate keys */
		"\xff\xfe{}",                           /* invalid UTF-8 */
		"",                                     /* empty */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *d = parse_err(bad[i], EVENT_SYNTAX);
		ck_assert(json_is_string(d));
		ck_assert_ptr_nonnull(strstr(json_string_value(d), "position"));
		json_decref(d);
	}
}
END_TEST

START_TEST(not_an_object)
{
	static const char *const docs[] = { "[]", "\"string\"", "42", "null" };

	for (size_t i = 0; i < 4; i++) {
		struct event ev;
		json_t *d = NULL;
		enum event_parse_result r = event_parse(docs[i], strlen(docs[i]), &ev, &d);
		/* every non-object top level is a validation error, as in FastAPI */
		ck_assert_int_eq(r, EVENT_INVALID);
		{
			json_t *loc = json_object_get(json_array_get(d, 0), "loc");
			ck_assert_uint_eq(json_array_size(loc), 1);
			ck_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 0), "type")),
					 "model_attributes_type");
		}
		json_decref(d);
	}
}
END_TEST

START_TEST(deep_nesting)
{
	static char body[200010];
	json_t *d;

	memset(body, '[', 100000);
	memset(body + 100000, ']', 100000);
	body[200000] = '\0';
	d = parse_err(body, EVENT_SYNTAX);
	json_decref(d);
}
END_TEST

Suite *suite_event(void)
{
	Suite *s = suite_create("event");
	TCase *t = tcase_create("core");

	tcase_add_test(t, valid_minimal_and_full);
	tcase_add_test(t, missing_fields_all_listed);
	tcase_add_test(t, wrong_types_and_enums);
	tcase_add_test(t, malformed_uuids);
	tcase_add_test(t, syntax_errors);
	tcase_add_test(t, not_an_object);
	tcase_add_test(t, deep_nesting);
	suite_add_tcase(s, t);
	return s;
}
