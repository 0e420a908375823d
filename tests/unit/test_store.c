#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "suites.h"

static char dir[64], path[128];
static struct store *st;

static void setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/lqs-store-XXXXXX");
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

static void mk(struct event *ev, const char *rid, const char *hook)
{
	memset(ev, 0, sizeof(*ev));
	str_copy(ev->current_state, "finalizing", sizeof(ev->current_state));
	str_copy(ev->process_type, "digestion", sizeof(ev->process_type));
	str_copy(ev->resource_id, rid, sizeof(ev->resource_id));
	if (hook)
		str_copy(ev->hook_id, hook, sizeof(ev->hook_id));
}

#define R1 "11111111-1111-1111-1111-111111111111"
#define R2 "22222222-2222-2222-2222-222222222222"

START_TEST(enqueue_get_durable)
{
	struct event ev;
	char id[37], err[256];
	json_t *doc;

	mk(&ev, R1, NULL);
	ck_assert_int_eq(store_enqueue(st, &ev, "digestion_stats", 0, 100, id), STORE_OK);
	ck_assert_int_eq(store_unfinished(st), 1);
	doc = store_get(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_status")), "STARTED");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_event_status")), "OK");
	ck_assert(json_is_false(json_object_get(doc, "done")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "event"), "resource_id")), R1);
	json_decref(doc);
	/* reopen: still there */
	store_close(st);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(store_unfinished(st), 1);
	doc = store_get(st, id);
	ck_assert_ptr_nonnull(doc);
	json_decref(doc);
	ck_assert_ptr_null(store_get(st, "00000000-0000-0000-0000-000000000000"));
}
END_TEST

START_TEST(dedupe_and_full)
{
	struct event ev;
	char id1[37], id2[37];

	mk(&ev, R1, "33333333-3333-3333-3333-333333333333");
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 100, id1), STORE_OK);
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 100, id2), STORE_DUPLICATE);
	ck_assert_str_eq(id1, id2);
	/* window 0: no dedupe */
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 0, 100, id2), STORE_OK);
	ck_assert_str_ne(id1, id2);
	/* another state is another delivery */
	str_copy(ev.current_state, "completed", sizeof(ev.current_state));
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 3, id2), STORE_OK);
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 0, 3, id2), STORE_FULL);
	/* an unrouted event is stored finished: it does not count as queued */
	ck_assert_int_eq(store_enqueue(st, &ev, NULL, 0, 100, id2), STORE_OK);
	ck_assert_int_eq(store_unfinished(st), 3);
	json_t *doc = store_get(st, id2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "result"), "status")), "not_routed");
	ck_assert(json_is_true(json_object_get(doc, "done")));
	json_decref(doc);
}
END_TEST

START_TEST(claim_serialises_per_resource)
{
	struct event ev;
	char a[37], b[37], c[37];
	struct store_claim c1, c2, c3;
	int64_t due;

	mk(&ev, R1, NULL);
	store_enqueue(st, &ev, "h", 0, 100, a);
	store_enqueue(st, &ev, "h", 0, 100, b);
	mk(&ev, R2, NULL);
	store_enqueue(st, &ev, "h", 0, 100, c);
	ck_assert_int_eq(store_claim(st, now_ms(), &c1, &due), 1);
	ck_assert_str_eq(c1.id, a);   /* oldest first */
	ck_assert_int_eq(c1.attempt, 1);
	/* b has the same resource as a, which is running: c comes next */
	ck_assert_int_eq(store_claim(st, now_ms(), &c2, &due), 1);
	ck_assert_str_eq(c2.id, c);
	ck_assert_int_eq(store_claim(st, now_ms(), &c3, &due), 0);
	ck_assert_int_eq(store_finish(st, a, ST_COMPLETED, NULL, NULL, 0, NULL, 0), STORE_OK);
	ck_assert_int_eq(store_claim(st, now_ms(), &c3, &due), 1);
	ck_assert_str_eq(c3.id, b);
	store_claim_release(&c1);
	store_claim_release(&c2);
	store_claim_release(&c3);
}
END_TEST

START_TEST(retry_later_and_finish)
{
	struct event ev;
	char id[37];
	struct store_claim c;
	int64_t due, now = now_ms();
	json_t *doc, *res = json_pack("{s:i}", "record_count", 3);

	mk(&ev, R1, NULL);
	store_enqueue(st, &ev, "h", 0, 100, id);
	ck_assert_int_eq(store_claim(st, now, &c, &due), 1);
	store_claim_release(&c);
	ck_assert_int_eq(store_finish(st, id, ST_RETRYING, NULL, "HTTP503: down", now + 60000, NULL, 0), STORE_OK);
	doc = store_get(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_status")), "CONTINUE");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "retrying");
	ck_assert(json_is_string(json_object_get(doc, "next_attempt_at")));
	json_decref(doc);
	/* not due yet */
	ck_assert_int_eq(store_claim(st, now, &c, &due), 0);
	ck_assert_int_eq(due, now + 60000);
	ck_assert_int_eq(store_claim(st, now + 60000, &c, &due), 1);
	ck_assert_int_eq(c.attempt, 2);
	store_claim_release(&c);
	ck_assert_int_eq(store_finish(st, id, ST_COMPLETED, res, NULL, 0, NULL, 0), STORE_OK);
	doc = store_get(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_status")), "FINISHED");
	ck_assert(json_is_true(json_object_get(doc, "done")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "result"), "record_count")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "attempts")), 2);
	json_decref(doc);
	ck_assert_int_eq(store_unfinished(st), 0);
	json_decref(res);
}
END_TEST

START_TEST(recover_replay_history_prune)
{
	struct event ev;
	char id[37], err[256];
	struct store_claim c;
	int64_t due;
	json_t *doc, *hist;

	mk(&ev, R1, NULL);
	store_enqueue(st, &ev, "h", 0, 100, id);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	/* the process dies mid-attempt */
	store_close(st);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(store_recover(st), 1);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_str_eq(c.id, id);
	store_claim_release(&c);
	ck_assert_int_eq(store_replay(st, id), STORE_CONFLICT);   /* still running */
	ck_assert_int_eq(store_finish(st, id, ST_FAILED, NULL, "HTTP404: gone", 0, NULL, 0), STORE_OK);
	doc = store_get(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_event_status")), "FAILED");
	json_decref(doc);
	ck_assert_int_eq(store_replay(st, id), STORE_OK);
	doc = store_get(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "queued");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "attempts")), 0);
	json_decref(doc);
	hist = store_history(st, id);
	/* received, the interrupted attempt, recovered, replay (the finished
	 * attempt's own row is the worker's to write, with its outcome) */
	ck_assert_uint_eq(json_array_size(hist), 4);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 1), "step")), "attempt");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 1), "error")),
			 "interrupted: the daemon stopped while the attempt ran");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 2), "step")), "recovered");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 3), "step")), "replay");
	json_decref(hist);
	ck_assert_int_eq(store_replay(st, "00000000-0000-0000-0000-000000000000"), STORE_NOTFOUND);
	/* prune: only finished events older than the cut-off */
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	ck_assert_int_eq(store_finish(st, id, ST_COMPLETED, NULL, NULL, 0, NULL, 0), STORE_OK);
	ck_assert_int_eq(store_prune(st, now_ms() - 100000, now_ms() - 100000), 0);
	ck_assert_int_eq(store_prune(st, now_ms() + 1000, 0), 1);
	ck_assert_ptr_null(store_get(st, id));
	ck_assert_ptr_null(store_history(st, id));
}
END_TEST

START_TEST(list_filters_and_cursor)
{
	struct event ev;
	char id[37];
	struct store_query q = { .limit = 2 };
	json_t *page;
	const char *cur;

	for (int i = 0; i < 5; i++) {
		mk(&ev, i % 2 ? R1 : R2, NULL);
		store_enqueue(st, &ev, "h", 0, 100, id);
	}
	page = store_list(st, &q);
	ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 2);
	cur = json_string_value(json_object_get(page, "next_cursor"));
	ck_assert_ptr_nonnull(cur);
	q.after_seq = strtoll(cur, NULL, 10);
	json_decref(page);
	page = store_list(st, &q);
	ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 2);
	json_decref(page);
	q.after_seq = 0;
	q.limit = 100;
	q.resource_id = R1;
	page = store_list(st, &q);
	ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 2);
	ck_assert(json_is_null(json_object_get(page, "next_cursor")));
	json_decref(page);
	q.resource_id = NULL;
	q.state = "failed";
	page = store_list(st, &q);
	ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 0);
	json_decref(page);
}
END_TEST

/* The receive path's group commit: written in one transaction, durable
 * only after store_sync(); a duplicate inside the batch sees its twin. */
START_TEST(batch_commit_then_sync)
{
	struct event a, b;
	struct store_item it[3];
	char wal[160];

	mk(&a, R1, NULL);
	mk(&b, R2, NULL);
	memset(it, 0, sizeof(it));
	it[0] = (struct store_item){ .ev = &a, .handler = "h", .body = store_event_body(&a) };
	it[1] = (struct store_item){ .ev = &b, .handler = NULL, .body = store_event_body(&b) };
	it[2] = (struct store_item){ .ev = &a, .handler = "h", .body = store_event_body(&a) };
	store_enqueue_batch_nosync(st, it, 3, 60000, 100);
	ck_assert_int_eq(it[0].result, STORE_OK);
	ck_assert_int_eq(it[1].result, STORE_OK);
	ck_assert_int_eq(it[2].result, STORE_DUPLICATE);
	ck_assert_str_eq(it[2].id, it[0].id);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ck_assert_int_eq(access(wal, F_OK), 0);
	ck_assert_int_eq(store_sync(st), 0);
	ck_assert_int_eq(store_sync(st), 0);   /* the WAL descriptor is kept */
	ck_assert_int_eq(store_unfinished(st), 1);
	for (int i = 0; i < 3; i++)
		free(it[i].body);
}
END_TEST

/* A version 3 store (dedupe through its own hash index, no flags or
 * progress) opens as version 5: the index is gone, the columns are there,
 * and earlier deliveries are still recognised. */
START_TEST(upgrade_from_v3)
{
	struct event ev;
	char id1[37], id2[37], err[256];
	sqlite3 *db;
	sqlite3_stmt *s;

	mk(&ev, R1, NULL);
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 100, id1), STORE_OK);
	store_close(st);
	st = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE INDEX events_dedupe_hash ON events(dedupe_hash, received_at);"
					  "ALTER TABLE events DROP COLUMN flags; ALTER TABLE events DROP COLUMN progress;"
					  "PRAGMA user_version = 3;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 100, id2), STORE_DUPLICATE);
	ck_assert_str_eq(id1, id2);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_master WHERE "
					      "name = 'events_dedupe_hash'), (SELECT user_version FROM pragma_user_version)",
					      -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 0);
	ck_assert_int_eq(sqlite3_column_int(s, 1), 5);
	sqlite3_finalize(s);
	sqlite3_close(db);
	json_t *doc = store_get(st, id1);
	ck_assert(json_is_null(json_object_get(doc, "progress")));
	ck_assert(json_is_false(json_object_get(doc, "replayed")));
	json_decref(doc);
}
END_TEST

/* A store written by a newer lqs-hookd is refused, with a message that
 * says why and what to do. */
START_TEST(newer_schema_refused)
{
	char err[512];
	sqlite3 *db;

	store_close(st);
	st = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "schema version 99, newer than this lqs-hookd knows (5)"));
}
END_TEST

static void finish_failed(const char *id)
{
	struct store_claim c;
	int64_t due;

	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_str_eq(c.id, id);
	ck_assert_int_eq(store_finish(st, c.id, ST_FAILED, NULL, "E: x", 0, NULL, 0), STORE_OK);
	store_claim_release(&c);
}

/* Replays (one or many) reach the handler as flags; a bulk replay takes
 * what matches, in order, a page at a time, and a dry run changes nothing. */
START_TEST(replay_flags_and_bulk)
{
	struct event ev[5];
	char id[5][37];
	struct store_claim c;
	int64_t due, next = -1;
	json_t *ids;

	for (int i = 0; i < 5; i++) {
		mk(&ev[i], i % 2 ? R2 : R1, NULL);
		snprintf(ev[i].hook_id, sizeof(ev[i].hook_id), "00000000-0000-4000-8000-00000000000%d", i);
		ck_assert_int_eq(store_enqueue(st, &ev[i], i == 4 ? "other" : "h", 60000, 100, id[i]), STORE_OK);
		finish_failed(id[i]);
	}
	/* the worker's mark before its on_failure, seen by the next claim */
	ck_assert_int_eq(store_mark(st, id[0], EVENT_FLAG_MARKED_FAILED), STORE_OK);
	ck_assert_int_eq(store_replay(st, id[0]), STORE_OK);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_uint_eq(c.flags, EVENT_FLAG_MARKED_FAILED | EVENT_FLAG_REPLAYED);
	json_t *prog = json_pack("{s:i}", "parts_fetched", 3);
	ck_assert_int_eq(store_progress(st, c.id, prog), STORE_OK);
	json_decref(prog);
	json_t *doc = store_get(st, c.id);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "progress"), "parts_fetched")), 3);
	ck_assert(json_is_true(json_object_get(doc, "replayed")));
	json_decref(doc);
	ck_assert_int_eq(store_finish(st, c.id, ST_COMPLETED, NULL, NULL, 0, NULL, 0), STORE_OK);
	store_claim_release(&c);

	/* failed with handler h: id[1], id[2], id[3]; a dry run lists them */
	struct store_query q = { .state = ST_FAILED, .handler = "h", .limit = 2 };
	ids = json_array();
	ck_assert_int_eq(store_replay_matching(st, &q, true, ids, &next), STORE_OK);
	ck_assert_uint_eq(json_array_size(ids), 2);
	ck_assert_str_eq(json_string_value(json_array_get(ids, 0)), id[1]);
	ck_assert_int_gt(next, 0);
	json_decref(ids);
	ck_assert_int_eq(store_unfinished(st), 0);
	/* for real, page by page */
	ids = json_array();
	ck_assert_int_eq(store_replay_matching(st, &q, false, ids, &next), STORE_OK);
	ck_assert_uint_eq(json_array_size(ids), 2);
	ck_assert_int_gt(next, 0);
	q.after_seq = next;
	ck_assert_int_eq(store_replay_matching(st, &q, false, ids, &next), STORE_OK);
	ck_assert_uint_eq(json_array_size(ids), 3);
	ck_assert_str_eq(json_string_value(json_array_get(ids, 2)), id[3]);
	ck_assert_int_eq(next, 0);
	json_decref(ids);
	ck_assert_int_eq(store_unfinished(st), 3);
	doc = store_get(st, id[4]);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), ST_FAILED);
	json_decref(doc);
	doc = store_get(st, id[2]);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), ST_QUEUED);
	json_decref(doc);
}
END_TEST

/* History pages: "received" first, then the rows in order, with a cursor
 * until the last page. */
START_TEST(history_pages)
{
	struct event ev;
	char id[37];
	json_t *steps, *all = json_array();
	int64_t cursor = 0, next;
	int pages = 0;

	mk(&ev, R1, NULL);
	ck_assert_int_eq(store_enqueue(st, &ev, "h", 60000, 100, id), STORE_OK);
	for (int i = 0; i < 7; i++) {
		struct store_hist h = { .step = "lqs_call", .started_ms = 1000 + i, .ended_ms = 1001 + i };
		ck_assert_int_eq(store_history_add(st, id, &h), STORE_OK);
	}
	do {
		ck_assert_int_eq(store_history_page(st, id, cursor, 3, &steps, &next), STORE_OK);
		ck_assert_uint_le(json_array_size(steps), 3);
		json_array_extend(all, steps);
		json_decref(steps);
		cursor = next;
		pages++;
	} while (next && pages < 10);
	ck_assert_int_eq(pages, 3);
	ck_assert_uint_eq(json_array_size(all), 8);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "step")), "received");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 7), "started_at")),
			 "1970-01-01T00:00:01.006Z");
	json_decref(all);
	ck_assert_int_eq(store_history_page(st, "00000000-0000-4000-8000-000000000000", 0, 3, &steps, &next),
			 STORE_NOTFOUND);
	ck_assert_ptr_null(steps);
}
END_TEST

Suite *suite_store(void)
{
	Suite *s = suite_create("store");
	TCase *t = tcase_create("core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, enqueue_get_durable);
	tcase_add_test(t, dedupe_and_full);
	tcase_add_test(t, claim_serialises_per_resource);
	tcase_add_test(t, retry_later_and_finish);
	tcase_add_test(t, recover_replay_history_prune);
	tcase_add_test(t, list_filters_and_cursor);
	tcase_add_test(t, batch_commit_then_sync);
	tcase_add_test(t, upgrade_from_v3);
	tcase_add_test(t, newer_schema_refused);
	tcase_add_test(t, replay_flags_and_bulk);
	tcase_add_test(t, history_pages);
	suite_add_tcase(s, t);
	return s;
}
