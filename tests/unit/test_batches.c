/* Objects and batches in the store: joining, closing by count, marker and
 * timers, each close writing exactly one trigger event, duplicates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lqs-hookd/names.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "suites.h"

static char dir[64], path[128];
static struct store *st;

static void setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/lqs-batch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
}

static void teardown(void)
{
	char cmd[128];

	store_close(st);
	st = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Store one object of watch w (NULL: none) under prefix; returns its
 * result, with the batch and trigger ids. */
static enum store_result put(const char *w, const char *key, const char *seq, bool marker, int64_t count,
			     int64_t quiet_ms, int64_t max_age_ms, struct store_object *o)
{
	struct object_rec r;
	struct store_item it;

	enum store_result res;

	memset(&r, 0, sizeof(r));
	str_copy(r.kind, "created", sizeof(r.kind));
	str_copy(r.bucket, "bkt", sizeof(r.bucket));
	r.key = strdup(key);
	r.key_len = strlen(key);
	r.size = 7;
	str_copy(r.sequencer, seq, sizeof(r.sequencer));
	*o = (struct store_object){ .rec = &r, .format = "s3", .watch = w, .prefix = "inst/exp1/", .marker = marker,
				    .trigger = "h", .count = count, .quiet_ms = quiet_ms, .max_age_ms = max_age_ms };
	it = (struct store_item){ .obj = o };
	store_submit_durable(st, &it, 1, &(struct store_limits){ 0, 0 });
	res = it.result;
	free(r.key);
	o->rec = NULL;
	return res;
}

static json_t *trigger_body(const char *event_id)
{
	struct store_event e;
	json_t *body;

	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(store_get(st, event_id, &e), STORE_OK);
	ck_assert_str_eq(e.state, ST_QUEUED);
	ck_assert_str_eq(e.handler, "h");
	body = json_incref(e.event);
	store_event_clear(&e);
	return body;
}

START_TEST(count_closes_once_with_one_trigger)
{
	struct store_object o;
	char first[37];
	json_t *body;

	ck_assert_int_eq(put("w", "inst/exp1/a.csv", "01", false, 3, 0, 0, &o), STORE_OK);
	str_copy(first, o.batch_id, sizeof(first));
	ck_assert_str_eq(o.trigger_id, "");
	ck_assert_int_eq(put("w", "inst/exp1/a.csv", "01", false, 3, 0, 0, &o), STORE_DUPLICATE);   /* again */
	ck_assert_int_eq(put("w", "inst/exp1/b.csv", "02", false, 3, 0, 0, &o), STORE_OK);
	ck_assert_int_eq(store_batches_open(st), 1);
	ck_assert_int_eq(put("w", "inst/exp1/c d.csv", "03", false, 3, 0, 0, &o), STORE_OK);
	ck_assert_str_eq(o.batch_id, first);
	ck_assert_str_ne(o.trigger_id, "");
	ck_assert_int_eq(store_batches_open(st), 0);
	body = trigger_body(o.trigger_id);
	ck_assert_str_eq(json_string_value(json_object_get(body, "reason")), "count");
	ck_assert_str_eq(json_string_value(json_object_get(body, "path")), "s3://bkt/inst/exp1/");
	ck_assert_int_eq(json_integer_value(json_object_get(body, "count")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(body, "objects"), 2), "key")),
			 "inst/exp1/c d.csv");
	json_decref(body);
	/* the next object opens the next batch */
	ck_assert_int_eq(put("w", "inst/exp1/e.csv", "04", false, 3, 0, 0, &o), STORE_OK);
	ck_assert_str_ne(o.batch_id, first);
	ck_assert_int_eq(store_batches_open(st), 1);
}
END_TEST

START_TEST(marker_and_unrouted)
{
	struct store_object o;
	struct store_batch b;
	json_t *body;

	ck_assert_int_eq(put("w", "inst/exp1/a.csv", "01", false, 20, 0, 0, &o), STORE_OK);
	ck_assert_int_eq(put("w", "inst/exp1/_SUCCESS", "02", true, 20, 0, 0, &o), STORE_OK);
	ck_assert_str_ne(o.trigger_id, "");
	body = trigger_body(o.trigger_id);
	ck_assert_str_eq(json_string_value(json_object_get(body, "reason")), "marker");
	ck_assert_int_eq(json_integer_value(json_object_get(body, "count")), 1);   /* the marker is not one */
	json_decref(body);
	ck_assert_int_eq(store_batch_get(st, o.batch_id, &b), STORE_OK);
	ck_assert_str_eq(b.state, "closed");
	ck_assert_str_eq(b.reason, "marker");
	ck_assert_str_eq(b.trigger_event_id, o.trigger_id);
	ck_assert_uint_eq(json_array_size(b.keys), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(b.keys, 1), "role")), "marker");
	store_batch_clear(&b);
	/* a marker alone (a watch on _SUCCESS only): a batch of none, closed */
	ck_assert_int_eq(put("w", "inst/exp1/_SUCCESS", "03", true, 20, 0, 0, &o), STORE_OK);
	ck_assert_str_ne(o.trigger_id, "");
	/* no watch: stored, no batch */
	ck_assert_int_eq(put(NULL, "elsewhere/x", "04", false, 0, 0, 0, &o), STORE_OK);
	ck_assert_str_eq(o.batch_id, "");
	ck_assert_int_eq(store_batches_open(st), 0);
}
END_TEST

START_TEST(timers_quiet_and_max_age)
{
	struct store_object o;
	struct store_batch *rows;
	size_t n;
	int64_t next, cursor, now = now_ms();
	char quiet_id[37];
	struct store_closed c[4];

	ck_assert_int_eq(put("w", "inst/exp1/a.csv", "01", false, 0, 1000, 0, &o), STORE_OK);
	str_copy(quiet_id, o.batch_id, sizeof(quiet_id));
	ck_assert_int_eq(store_batches_close_due(st, now, c, 4, &next), 0);
	ck_assert_int_ge(next, now + 900);
	ck_assert_int_eq(store_batches_close_due(st, now + 1500, c, 4, &next), 1);
	ck_assert_int_eq(next, 0);
	ck_assert_str_eq(c[0].batch_id, quiet_id);
	ck_assert_str_eq(c[0].reason, "quiet");
	ck_assert_str_ne(c[0].trigger_id, "");
	ck_assert_int_eq(store_batches_list(st, "closed", 0, 10, &rows, &n, &cursor), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rows[0].reason, "quiet");
	ck_assert_str_eq(rows[0].id, quiet_id);
	store_batch_clear(&rows[0]);
	free(rows);
	/* max_age counts from the first object, whatever comes after */
	ck_assert_int_eq(put("w", "inst/exp1/b.csv", "02", false, 0, 60000, 1000, &o), STORE_OK);
	ck_assert_int_eq(put("w", "inst/exp1/c.csv", "03", false, 0, 60000, 1000, &o), STORE_OK);
	ck_assert_int_eq(store_batches_close_due(st, now_ms() + 1200, c, 4, &next), 1);
	ck_assert_int_eq(store_batches_list(st, NULL, 0, 1, &rows, &n, &cursor), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_gt(cursor, 0);   /* a second page */
	store_batch_clear(&rows[0]);
	free(rows);
	ck_assert_int_eq(store_batches_list(st, NULL, cursor, 10, &rows, &n, &cursor), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rows[0].reason, "max_age");
	ck_assert_int_eq(rows[0].objects, 2);
	ck_assert_int_eq(cursor, 0);
	store_batch_clear(&rows[0]);
	free(rows);
}
END_TEST

Suite *suite_batches(void)
{
	Suite *s = suite_create("batches");
	TCase *t = tcase_create("core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, count_closes_once_with_one_trigger);
	tcase_add_test(t, marker_and_unrouted);
	tcase_add_test(t, timers_quiet_and_max_age);
	suite_add_tcase(s, t);
	return s;
}
