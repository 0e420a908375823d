#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "suites.h"

/* With LQS_TEST_PG (the socket folder of a throwaway PostgreSQL server),
 * each test's store is a fresh database there instead of an SQLite file:
 * the same tests, the other backend. */
static char dir[64], path[1024], dbname[64];
static struct store *st;
static struct store_event got;   /* the last get() */

static const char *pg_dir(void)
{
	const char *d = getenv("LQS_TEST_PG");

	return d && *d ? d : NULL;
}

/* A statement on the server's maintenance database. */
static void pg_admin(const char *sql)
{
	char ci[1200];
	PGconn *c;
	PGresult *r;

	snprintf(ci, sizeof(ci), "host=%s dbname=postgres user=hookd options='-c client_min_messages=warning'",
		 pg_dir());
	c = PQconnectdb(ci);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static void setup(void)
{
	static unsigned serial;
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/lqs-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	if (pg_dir()) {
		char sql[160];
		snprintf(dbname, sizeof(dbname), "ut_%ld_%u", (long)getpid(), serial++);
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
		pg_admin(sql);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
		pg_admin(sql);
		snprintf(path, sizeof(path), "postgresql://hookd@/%s?host=%s", dbname, pg_dir());
	}
	ck_assert_msg(store_open(&st, path, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
	char cmd[128];

	store_event_clear(&got);
	store_close(st);
	st = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	if (pg_dir()) {
		char sql[160];
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", dbname);
		pg_admin(sql);
	}
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

/* One event submitted and made durable. */
static enum store_result put(struct store *s, const struct event *ev, const char *handler,
				       int64_t dedupe_ms, int64_t max_queued, char id[37])
{
	struct store_item it = { .ev = ev, .handler = handler, .body = store_event_body(ev) };
	struct store_limits lim = { dedupe_ms, max_queued };

	store_submit_durable(s, &it, 1, &lim);
	free(it.body);
	str_copy(id, it.id, 37);
	return it.result;
}

static enum store_result fin(const char *id, const char *state, json_t *result, const char *error, int64_t next)
{
	struct store_outcome o = { .id = id, .state = state, .result = result, .error = error, .next_run_ms = next };

	return store_finish(st, &o, NULL, NULL, NULL);
}

/* The event's row (the test fails when it is not there). */
static const struct store_event *get(const char *id)
{
	store_event_clear(&got);
	ck_assert_int_eq(store_get(st, id, &got), STORE_OK);
	return &got;
}

/* Every history step's name, joined by spaces. */
static const char *steps_of(const char *id)
{
	static char out[512];
	struct store_step *steps;
	size_t n, at = 0;
	int64_t next;

	out[0] = '\0';
	ck_assert_int_eq(store_history_page(st, id, 0, 0, &steps, &n, &next), STORE_OK);
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%s", i ? " " : "", steps[i].step);
	store_steps_free(steps, n);
	return out;
}

START_TEST(enqueue_get_durable)
{
	struct event ev;
	char id[37], err[256];

	mk(&ev, R1, NULL);
	ck_assert_int_eq(put(st, &ev, "digestion_stats", 0, 100, id), STORE_OK);
	ck_assert_int_eq(store_unfinished(st), 1);
	ck_assert_str_eq(get(id)->state, ST_QUEUED);
	ck_assert_int_eq(got.attempts, 0);
	ck_assert_str_eq(got.handler, "digestion_stats");
	ck_assert_str_eq(json_string_value(json_object_get(got.event, "resource_id")), R1);
	/* a second daemon on the same SQLite store is refused, by name; on
	 * PostgreSQL it shares the queue */
	{
		struct store *other;
		if (pg_dir()) {
			ck_assert_int_eq(store_open(&other, path, err, sizeof(err)), 0);
			ck_assert_int_eq(store_unfinished(other), 1);
			store_close(other);
		} else {
			ck_assert_int_eq(store_open(&other, path, err, sizeof(err)), -1);
			ck_assert_ptr_nonnull(strstr(err, "is in use by another lqs-hookd"));
		}
	}
	/* reopen: still there */
	store_close(st);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(store_unfinished(st), 1);
	ck_assert_str_eq(get(id)->id, id);
	{
		struct store_event none;
		ck_assert_int_eq(store_get(st, "00000000-0000-0000-0000-000000000000", &none), STORE_NOTFOUND);
	}
	ck_assert_str_eq(store_backend(st), pg_dir() ? "postgresql" : "sqlite");
}
END_TEST

START_TEST(dedupe_and_full)
{
	struct event ev;
	char id1[37], id2[37];

	mk(&ev, R1, "33333333-3333-3333-3333-333333333333");
	ck_assert_int_eq(put(st, &ev, "h", 60000, 100, id1), STORE_OK);
	ck_assert_int_eq(put(st, &ev, "h", 60000, 100, id2), STORE_DUPLICATE);
	ck_assert_str_eq(id1, id2);
	/* window 0: no dedupe */
	ck_assert_int_eq(put(st, &ev, "h", 0, 100, id2), STORE_OK);
	ck_assert_str_ne(id1, id2);
	/* another state is another delivery */
	str_copy(ev.current_state, "completed", sizeof(ev.current_state));
	ck_assert_int_eq(put(st, &ev, "h", 60000, 3, id2), STORE_OK);
	ck_assert_int_eq(put(st, &ev, "h", 0, 3, id2), STORE_FULL);
	/* an unrouted event is stored finished: it does not count as queued */
	ck_assert_int_eq(put(st, &ev, NULL, 0, 100, id2), STORE_OK);
	ck_assert_int_eq(store_unfinished(st), 3);
	ck_assert_str_eq(json_string_value(json_object_get(get(id2)->result, "status")), "not_routed");
	ck_assert_str_eq(got.state, ST_COMPLETED);
}
END_TEST

START_TEST(claim_serialises_per_resource)
{
	struct event ev;
	char a[37], b[37], c[37];
	struct store_claim c1, c2, c3;
	int64_t due;

	mk(&ev, R1, NULL);
	put(st, &ev, "h", 0, 100, a);
	put(st, &ev, "h", 0, 100, b);
	mk(&ev, R2, NULL);
	put(st, &ev, "h", 0, 100, c);
	ck_assert_int_eq(store_claim(st, now_ms(), &c1, &due), 1);
	ck_assert_str_eq(c1.id, a);   /* oldest first */
	ck_assert_int_eq(c1.attempt, 1);
	/* b has the same resource as a, which is running: c comes next */
	ck_assert_int_eq(store_claim(st, now_ms(), &c2, &due), 1);
	ck_assert_str_eq(c2.id, c);
	ck_assert_int_eq(store_claim(st, now_ms(), &c3, &due), 0);
	ck_assert_int_eq(fin(a, ST_COMPLETED, NULL, NULL, 0), STORE_OK);
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
	json_t *res = json_pack("{s:i}", "record_count", 3);

	mk(&ev, R1, NULL);
	put(st, &ev, "h", 0, 100, id);
	ck_assert_int_eq(store_claim(st, now, &c, &due), 1);
	store_claim_release(&c);
	ck_assert_int_eq(fin(id, ST_RETRYING, NULL, "HTTP503: down", now + 60000), STORE_OK);
	ck_assert_str_eq(get(id)->state, ST_RETRYING);
	ck_assert_int_eq(got.next_run_ms, now + 60000);
	ck_assert_str_eq(got.error, "HTTP503: down");
	/* not due yet */
	ck_assert_int_eq(store_claim(st, now, &c, &due), 0);
	ck_assert_int_eq(due, now + 60000);
	ck_assert_int_eq(store_claim(st, now + 60000, &c, &due), 1);
	ck_assert_int_eq(c.attempt, 2);
	store_claim_release(&c);
	ck_assert_int_eq(fin(id, ST_COMPLETED, res, NULL, 0), STORE_OK);
	ck_assert_str_eq(get(id)->state, ST_COMPLETED);
	ck_assert_int_gt(got.finished_ms, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(got.result, "record_count")), 3);
	ck_assert_int_eq(got.attempts, 2);
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

	mk(&ev, R1, NULL);
	put(st, &ev, "h", 0, 100, id);
	/* PostgreSQL leaves a lease held by a live process (this one) until
	 * it runs out: a short one */
	if (pg_dir())
		store_set_lease(st, 500);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	/* the lease is renewed while its owner lives: nothing to recover */
	ck_assert_int_eq(store_renew(st), 1);
	ck_assert_int_eq(store_recover(st), 0);
	/* the process dies mid-attempt */
	store_close(st);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	if (pg_dir())
		usleep(700 * 1000);
	ck_assert_int_eq(store_recover(st), 1);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_str_eq(c.id, id);
	store_claim_release(&c);
	ck_assert_int_eq(store_replay(st, id), STORE_CONFLICT);   /* still running */
	ck_assert_int_eq(fin(id, ST_FAILED, NULL, "HTTP404: gone", 0), STORE_OK);
	ck_assert_str_eq(get(id)->state, ST_FAILED);
	ck_assert_int_eq(store_replay(st, id), STORE_OK);
	ck_assert_str_eq(get(id)->state, ST_QUEUED);
	ck_assert_int_eq(got.attempts, 0);
	/* received, started, the interrupted attempt, recovered, started again, replay (the finished
	 * attempt's own row is the worker's to write, with its outcome) */
	ck_assert_str_eq(steps_of(id), "received started attempt recovered started replay");
	ck_assert_int_eq(store_replay(st, "00000000-0000-0000-0000-000000000000"), STORE_NOTFOUND);
	/* prune: only finished events older than the cut-off */
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	ck_assert_int_eq(fin(id, ST_COMPLETED, NULL, NULL, 0), STORE_OK);
	ck_assert_int_eq(store_prune(st, now_ms() - 100000, now_ms() - 100000, false), 0);
	/* with an archive: not before it is archived, at the finish it was archived at */
	ck_assert_int_eq(store_prune(st, now_ms() + 1000, 0, true), 0);
	{
		struct store_event *rows;
		size_t n;
		char ids[1][37];
		int64_t fins[1];
		ck_assert_int_eq(store_archive_pending(st, 10, &rows, &n), STORE_OK);
		ck_assert_uint_eq(n, 1);
		str_copy(ids[0], rows[0].id, sizeof(ids[0]));
		fins[0] = rows[0].finished_ms - 1;   /* a finish since replaced */
		ck_assert_int_eq(store_archive_mark(st, ids, fins, 1, now_ms()), STORE_OK);
		ck_assert_int_eq(store_prune(st, now_ms() + 1000, 0, true), 0);
		fins[0] = rows[0].finished_ms;
		ck_assert_int_eq(store_archive_mark(st, ids, fins, 1, now_ms()), STORE_OK);
		store_events_free(rows, n);
		ck_assert_int_eq(store_archive_pending(st, 10, &rows, &n), STORE_OK);
		ck_assert_uint_eq(n, 0);
		free(rows);
	}
	ck_assert_int_eq(store_prune(st, now_ms() + 1000, 0, true), 1);
	{
		struct store_event e;
		struct store_step *steps;
		size_t n;
		int64_t next;
		ck_assert_int_eq(store_get(st, id, &e), STORE_NOTFOUND);
		ck_assert_int_eq(store_history_page(st, id, 0, 0, &steps, &n, &next), STORE_NOTFOUND);
	}
}
END_TEST

START_TEST(list_filters_and_cursor)
{
	struct event ev;
	char id[37];
	struct store_query q = { .limit = 2 };
	struct store_event *rows;
	size_t n;
	int64_t next;

	for (int i = 0; i < 5; i++) {
		mk(&ev, i % 2 ? R1 : R2, NULL);
		put(st, &ev, "h", 0, 100, id);
	}
#define LIST(want_n) do { \
		ck_assert_int_eq(store_list(st, &q, &rows, &n, &next), STORE_OK); \
		ck_assert_uint_eq(n, want_n); \
		for (size_t i_ = 0; i_ < n; i_++) \
			store_event_clear(&rows[i_]); \
		free(rows); \
	} while (0)
	LIST(2);
	ck_assert_int_gt(next, 0);
	q.after_seq = next;
	LIST(2);
	q.after_seq = 0;
	q.limit = 100;
	q.resource_id = R1;
	LIST(2);
	ck_assert_int_eq(next, 0);
	q.resource_id = NULL;
	q.state = "failed";
	LIST(0);
#undef LIST
}
END_TEST

/* The receive path's group commit: written in one transaction, durable
 * only after store_sync(); a duplicate inside the batch sees its twin. */
START_TEST(batch_commit_then_sync)
{
	struct event a, b;
	struct store_item it[3];
	char wal[sizeof(path) + 8];

	mk(&a, R1, NULL);
	mk(&b, R2, NULL);
	memset(it, 0, sizeof(it));
	it[0] = (struct store_item){ .ev = &a, .handler = "h", .body = store_event_body(&a) };
	it[1] = (struct store_item){ .ev = &b, .handler = NULL, .body = store_event_body(&b) };
	it[2] = (struct store_item){ .ev = &a, .handler = "h", .body = store_event_body(&a) };
	store_submit(st, it, 3, &(struct store_limits){ 60000, 100 });
	ck_assert_int_eq(it[0].result, STORE_OK);
	ck_assert_int_eq(it[1].result, STORE_OK);
	ck_assert_int_eq(it[2].result, STORE_DUPLICATE);
	ck_assert_str_eq(it[2].id, it[0].id);
	if (!pg_dir()) {   /* SQLite: the batch is in the WAL, not synced yet */
		snprintf(wal, sizeof(wal), "%s-wal", path);
		ck_assert_int_eq(access(wal, F_OK), 0);
	}
	ck_assert_int_eq(store_durable(st), 0);
	ck_assert_int_eq(store_durable(st), 0);   /* the WAL descriptor is kept */
	ck_assert_int_eq(store_unfinished(st), 1);
	for (int i = 0; i < 3; i++)
		free(it[i].body);
}
END_TEST

/* A version 3 store (dedupe through its own hash index, no flags,
 * progress, leases, sources, sweeps, objects or archive marks) opens as version 9: the index is gone, the columns
 * are there, and earlier deliveries are still recognised. */
START_TEST(upgrade_from_v3)
{
	struct event ev;
	char id1[37], id2[37], err[256];
	sqlite3 *db;
	sqlite3_stmt *s;

	if (pg_dir())
		return;   /* SQLite's upgrades (PostgreSQL's schema is at its first version) */
	mk(&ev, R1, NULL);
	ck_assert_int_eq(put(st, &ev, "h", 60000, 100, id1), STORE_OK);
	store_close(st);
	st = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE INDEX events_dedupe_hash ON events(dedupe_hash, received_at);"
					  "ALTER TABLE events DROP COLUMN flags; ALTER TABLE events DROP COLUMN progress;"
					  "ALTER TABLE events DROP COLUMN owner; ALTER TABLE events DROP COLUMN lease_until;"
					  "ALTER TABLE events DROP COLUMN source; DROP TABLE sweeps; DROP TABLE objects; DROP TABLE batches;"
					  "DROP INDEX events_unarchived; ALTER TABLE events DROP COLUMN archived_at;"
					  "PRAGMA user_version = 3;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(put(st, &ev, "h", 60000, 100, id2), STORE_DUPLICATE);
	ck_assert_str_eq(id1, id2);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_master WHERE "
					      "name = 'events_dedupe_hash'), (SELECT user_version FROM pragma_user_version)",
					      -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 0);
	ck_assert_int_eq(sqlite3_column_int(s, 1), 9);
	sqlite3_finalize(s);
	sqlite3_close(db);
	ck_assert_ptr_null(get(id1)->progress);
	ck_assert_uint_eq(got.flags, 0);
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
	if (pg_dir()) {
		PGconn *c = PQconnectdb(path);
		PGresult *r = PQexec(c, "UPDATE lqs_hookd_schema SET version = 99");
		ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
		PQclear(r);
		PQfinish(c);
		ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "has schema version 99, newer than this lqs-hookd knows (1)"));
		return;
	}
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "schema version 99, newer than this lqs-hookd knows (9)"));
}
END_TEST

static void finish_failed(const char *id)
{
	struct store_claim c;
	int64_t due;

	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_str_eq(c.id, id);
	ck_assert_int_eq(fin(c.id, ST_FAILED, NULL, "E: x", 0), STORE_OK);
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
		ck_assert_int_eq(put(st, &ev[i], i == 4 ? "other" : "h", 60000, 100, id[i]), STORE_OK);
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
	ck_assert_int_eq(json_integer_value(json_object_get(get(c.id)->progress, "parts_fetched")), 3);
	ck_assert(got.flags & EVENT_FLAG_REPLAYED);
	ck_assert_int_eq(fin(c.id, ST_COMPLETED, NULL, NULL, 0), STORE_OK);
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
	ck_assert_str_eq(get(id[4])->state, ST_FAILED);
	ck_assert_str_eq(get(id[2])->state, ST_QUEUED);
}
END_TEST

/* History pages: "received" first, then the rows in order, with a cursor
 * until the last page. */
START_TEST(history_pages)
{
	struct event ev;
	char id[37];
	struct store_step *steps;
	size_t n, total = 0;
	int64_t cursor = 0, next, started[8];
	int pages = 0;

	mk(&ev, R1, NULL);
	ck_assert_int_eq(put(st, &ev, "h", 60000, 100, id), STORE_OK);
	for (int i = 0; i < 7; i++) {
		struct store_hist h = { .step = "lqs_call", .started_ms = 1000 + i, .ended_ms = 1001 + i };
		ck_assert_int_eq(store_history_add(st, id, &h), STORE_OK);
	}
	do {
		ck_assert_int_eq(store_history_page(st, id, cursor, 3, &steps, &n, &next), STORE_OK);
		ck_assert_uint_le(n, 3);
		if (pages == 0)
			ck_assert_str_eq(steps[0].step, "received");
		for (size_t i = 0; i < n && total < 8; i++)
			started[total++] = steps[i].started_ms;
		store_steps_free(steps, n);
		cursor = next;
		pages++;
	} while (next && pages < 10);
	ck_assert_int_eq(pages, 3);
	ck_assert_uint_eq(total, 8);
	ck_assert_int_eq(started[7], 1006);
	ck_assert_int_eq(store_history_page(st, "00000000-0000-4000-8000-000000000000", 0, 3, &steps, &n, &next),
			 STORE_NOTFOUND);
	ck_assert_ptr_null(steps);
}
END_TEST

/* A claim whose lease runs out is runnable again; the late owner's outcome
 * is then not written (it is no longer its event). */
START_TEST(leases_expire_and_fence)
{
	struct event ev;
	char id[37];
	struct store_claim c;
	int64_t due;
	struct timespec ts = { 0, 30 * 1000000L };

	mk(&ev, R1, NULL);
	put(st, &ev, "h", 0, 100, id);
	ck_assert_ptr_nonnull(strchr(store_owner(st), ':'));
	store_set_lease(st, 10);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	nanosleep(&ts, NULL);
	ck_assert_int_eq(store_recover(st), 1);
	ck_assert_str_eq(get(id)->state, ST_QUEUED);
	ck_assert_str_eq(steps_of(id), "received started attempt recovered");
	/* the old attempt ends after all: its outcome is not written, and
	 * the store says so */
	ck_assert_int_eq(fin(id, ST_COMPLETED, NULL, NULL, 0), STORE_CONFLICT);
	ck_assert_str_eq(get(id)->state, ST_QUEUED);
	ck_assert_int_eq(store_unfinished(st), 1);
	/* renewed in time, it stays */
	store_set_lease(st, 60000);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	store_claim_release(&c);
	ck_assert_int_eq(store_renew(st), 1);
	ck_assert_int_eq(store_recover(st), 0);
	ck_assert_int_eq(fin(id, ST_COMPLETED, NULL, NULL, 0), STORE_OK);
	ck_assert_str_eq(get(id)->state, ST_COMPLETED);
}
END_TEST

static atomic_int lock_taken;

static void *take_lock(void *arg)
{
	store_lock(arg, "log-1");
	atomic_store(&lock_taken, 1);
	store_unlock(arg, "log-1");
	return NULL;
}

/* An advisory lock has one holder at a time; other keys are free. */
START_TEST(advisory_locks)
{
	pthread_t t;
	struct timespec ts = { 0, 50 * 1000000L };

	atomic_store(&lock_taken, 0);
	store_lock(st, "log-1");
	store_lock(st, "log-2");   /* another key: not blocked */
	ck_assert_int_eq(pthread_create(&t, NULL, take_lock, st), 0);
	nanosleep(&ts, NULL);
	ck_assert_int_eq(atomic_load(&lock_taken), 0);
	store_unlock(st, "log-1");
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&lock_taken), 1);
	store_unlock(st, "log-2");
}
END_TEST

/* The change feed: receptions and history steps, in order, resumable from
 * any cursor it gave. */
START_TEST(change_feed)
{
	struct event ev;
	char a[37], b[37];
	struct store_claim c;
	struct store_change ch[16];
	struct store_cursor cur = { 0 }, head;
	struct store_hist h[2] = { { .step = "attempt", .started_ms = 0, .ended_ms = 0 },
				   { .step = "outcome", .started_ms = 0, .ended_ms = 0 } };
	size_t n;
	int64_t due;
	char seen[256] = "";

	mk(&ev, R1, NULL);
	put(st, &ev, "h", 0, 100, a);
	mk(&ev, R2, NULL);
	put(st, &ev, "h", 0, 100, b);
	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	h[0].started_ms = h[1].started_ms = now_ms() + 5;
	struct store_outcome o = { .id = c.id, .state = ST_COMPLETED, .hist = h, .n_hist = 2 };
	ck_assert_int_eq(store_finish(st, &o, NULL, NULL, NULL), STORE_OK);
	store_claim_release(&c);
	/* two at a time, resumed from the cursor each page ends with */
	for (int page = 0; page < 5; page++) {
		ck_assert_int_eq(store_changes(st, &cur, ch, 2, &n), STORE_OK);
		for (size_t i = 0; i < n; i++) {
			size_t at = strlen(seen);
			snprintf(seen + at, sizeof(seen) - at, "%s%s:%s", at ? " " : "", ch[i].what,
				 strcmp(ch[i].event_id, a) == 0 ? "a" : "b");
		}
		if (n)
			cur = ch[n - 1].cursor;
	}
	ck_assert_str_eq(seen, "received:a received:b started:a attempt:a outcome:a");
	/* what a reader filters on comes with each change */
	ck_assert_int_eq(store_changes(st, &(struct store_cursor){ 0 }, ch, 16, &n), STORE_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(ch[2].what, "started");
	ck_assert_int_eq(ch[2].attempt, 1);
	ck_assert_str_eq(ch[4].handler, "h");
	ck_assert_str_eq(ch[4].resource_id, R1);
	ck_assert_str_eq(ch[4].event_state, ST_COMPLETED);
	/* the head is past everything: nothing after it */
	ck_assert_int_eq(store_changes_head(st, &head), STORE_OK);
	ck_assert(head.received == cur.received && head.steps == cur.steps && head.batches == 0);
	ck_assert_int_eq(store_changes(st, &head, ch, 16, &n), STORE_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* One event found by a sweep, submitted alone. */
static enum store_result put_swept(const struct event *ev, int64_t recent_ms, char id[37])
{
	struct store_item it = { .ev = ev, .handler = "h", .body = store_event_body(ev), .source = "sweep:s",
				 .recent_ms = recent_ms };

	store_submit_durable(st, &it, 1, &(struct store_limits){ 0, 100 });
	free(it.body);
	str_copy(id, it.id, 37);
	return it.result;
}

/* Run the one runnable event to the given end. */
static void run_to(const char *id, const char *state)
{
	struct store_claim c;
	int64_t due;

	ck_assert_int_eq(store_claim(st, now_ms(), &c, &due), 1);
	ck_assert_str_eq(c.id, id);
	store_claim_release(&c);
	ck_assert_int_eq(fin(id, state, NULL, strcmp(state, ST_FAILED) == 0 ? "x" : NULL, 0), STORE_OK);
}

/* A sweep never doubles a hook's work: a resource in that state with an
 * unfinished, failed or recent event is a duplicate, whatever its hook id
 * and even with the delivery rule off; only an old finished one is not. */
START_TEST(sweep_duplicates)
{
	struct event hook, swept;
	char id[37], sid[37], again[37];

	mk(&hook, R1, "99999999-9999-9999-9999-999999999999");
	mk(&swept, R1, NULL);
	ck_assert_int_eq(put(st, &hook, "h", 0, 100, id), STORE_OK);
	ck_assert_int_eq(put_swept(&swept, 0, sid), STORE_DUPLICATE);    /* unfinished */
	ck_assert_str_eq(sid, id);
	run_to(id, ST_COMPLETED);
	ck_assert_int_eq(put_swept(&swept, 60000, sid), STORE_DUPLICATE);  /* recent */
	ck_assert_str_eq(sid, id);
	ck_assert_int_eq(put_swept(&swept, 0, sid), STORE_OK);            /* old and done: the hook's work is over */
	ck_assert_str_ne(sid, id);
	ck_assert_str_eq(get(sid)->source, "sweep:s");
	ck_assert_str_eq(get(id)->source, "");
	ck_assert_int_eq(put_swept(&swept, 0, again), STORE_DUPLICATE);   /* the sweep's own, unfinished */
	ck_assert_str_eq(again, sid);
	run_to(sid, ST_FAILED);
	ck_assert_int_eq(put_swept(&swept, 0, again), STORE_DUPLICATE);   /* a dead letter waits for a replay */
	/* another state of the same resource is another matter */
	str_copy(swept.current_state, "processing", sizeof(swept.current_state));
	ck_assert_int_eq(put_swept(&swept, 0, again), STORE_OK);
}
END_TEST

/* One batch of every kind (both backends decide it the same way, whether
 * they look one event at a time or the whole batch at once): copies
 * within the batch and of stored events, a sweep's find of a queued
 * event, an unrouted event, quotes and backslashes, and max_queued
 * reached in the middle. */
START_TEST(batch_mixed)
{
	static const char odd[] = "r\"q\\s{,} NULL";
	struct event a, b, sw, un, weird, c, d;
	struct store_item it[7];
	struct store_limits lim = { 60000, 3 };

	mk(&a, R1, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
	mk(&sw, R1, NULL);
	mk(&un, R2, "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb");
	mk(&weird, odd, "cccccccc-cccc-cccc-cccc-cccccccccccc");
	mk(&c, "33333333-3333-3333-3333-333333333333", NULL);
	mk(&d, "44444444-4444-4444-4444-444444444444", NULL);
	b = a;
	it[0] = (struct store_item){ .ev = &a, .handler = "h" };
	it[1] = (struct store_item){ .ev = &b, .handler = "h" };
	it[2] = (struct store_item){ .ev = &sw, .handler = "h", .source = "sweep:s" };
	it[3] = (struct store_item){ .ev = &un, .handler = NULL };
	it[4] = (struct store_item){ .ev = &weird, .handler = "h" };
	it[5] = (struct store_item){ .ev = &c, .handler = "h" };
	it[6] = (struct store_item){ .ev = &d, .handler = "h" };
	for (int i = 0; i < 7; i++)
		it[i].body = store_event_body(it[i].ev);
	store_submit_durable(st, it, 7, &lim);
	ck_assert_int_eq(it[0].result, STORE_OK);
	ck_assert_int_eq(it[1].result, STORE_DUPLICATE);
	ck_assert_str_eq(it[1].id, it[0].id);
	ck_assert_int_eq(it[2].result, STORE_DUPLICATE);   /* the queued event of the same state */
	ck_assert_str_eq(it[2].id, it[0].id);
	ck_assert_int_eq(it[3].result, STORE_OK);
	ck_assert_int_eq(it[4].result, STORE_OK);
	ck_assert_int_eq(it[5].result, STORE_OK);
	ck_assert_int_eq(it[6].result, STORE_FULL);        /* three unfinished: the unrouted one is done */
	ck_assert_int_eq(store_unfinished(st), 3);
	ck_assert_str_eq(get(it[3].id)->state, ST_COMPLETED);
	ck_assert_str_eq(json_string_value(json_object_get(get(it[4].id)->event, "resource_id")), odd);
	{
		struct store_query q = { .resource_id = odd, .limit = 10 };
		struct store_event *rows;
		size_t n;
		int64_t next;
		ck_assert_int_eq(store_list(st, &q, &rows, &n, &next), STORE_OK);
		ck_assert_uint_eq(n, 1);
		ck_assert_str_eq(rows[0].id, it[4].id);
		store_events_free(rows, n);
	}
	ck_assert_str_eq(get(it[0].id)->state, ST_QUEUED);
	/* the same again, another batch: each a copy of what is stored */
	for (int i = 0; i < 3; i++) {
		free(it[i].body);
		it[i].body = store_event_body(it[i].ev);
	}
	store_submit_durable(st, it, 3, &lim);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(it[i].result, STORE_DUPLICATE);
		ck_assert_str_eq(it[i].id, it[0].id);
	}
	for (int i = 0; i < 7; i++)
		free(it[i].body);
}
END_TEST

/* The record of a sweep's runs outlives the daemon. */
START_TEST(sweep_records)
{
	struct store_sweep w, r;
	char err[256];

	ck_assert_int_eq(store_sweep_get(st, "s", &r), STORE_NOTFOUND);
	ck_assert_str_eq(r.name, "s");
	ck_assert_int_eq(r.started_ms, 0);
	memset(&w, 0, sizeof(w));
	str_copy(w.name, "s", sizeof(w.name));
	w.started_ms = 1000;
	w.finished_ms = 2000;
	w.found = 5;
	w.enqueued = 3;
	w.duplicates = 2;
	w.runs = 7;
	w.errors = 1;
	str_copy(w.error, "LogQS GET digestions: HTTP 503", sizeof(w.error));
	str_copy(w.owner, "host:1", sizeof(w.owner));
	ck_assert_int_eq(store_sweep_put(st, &w), STORE_OK);
	store_close(st);
	ck_assert_int_eq(store_open(&st, path, err, sizeof(err)), 0);
	ck_assert_int_eq(store_sweep_get(st, "s", &r), STORE_OK);
	ck_assert_mem_eq(&r, &w, sizeof(w));
	w.finished_ms = 0;
	w.error[0] = '\0';
	ck_assert_int_eq(store_sweep_put(st, &w), STORE_OK);
	ck_assert_int_eq(store_sweep_get(st, "s", &r), STORE_OK);
	ck_assert_int_eq(r.finished_ms, 0);
	ck_assert_str_eq(r.error, "");
}
END_TEST

/* Which backend an address names, and the address as the logs show it. */
START_TEST(store_address)
{
	char out[256];

	ck_assert(store_is_postgres("postgresql://u:pw@db/x"));
	ck_assert(store_is_postgres("host=/run/postgresql dbname=x"));
	ck_assert(store_is_postgres("dbname=x user=u"));
	ck_assert(!store_is_postgres("/var/lib/lqs-hookd/lqs-hookd.db"));
	ck_assert(!store_is_postgres("lqs-hookd.db"));
	store_redact("postgresql://u:secret@db:5432/x?sslmode=require", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://u:***@db:5432/x?sslmode=require");
	store_redact("host=db password=secret dbname=x", out, sizeof(out));
	ck_assert_str_eq(out, "host=db password=*** dbname=x");
	store_redact("postgresql://db/x?user=u&password=secret&sslmode=require", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://db/x?user=u&password=***&sslmode=require");
	store_redact("postgresql://u@db/x", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://u@db/x");
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
	tcase_add_test(t, leases_expire_and_fence);
	tcase_add_test(t, advisory_locks);
	tcase_add_test(t, change_feed);
	tcase_add_test(t, store_address);
	tcase_add_test(t, sweep_duplicates);
	tcase_add_test(t, batch_mixed);
	tcase_add_test(t, sweep_records);
	suite_add_tcase(s, t);
	return s;
}
