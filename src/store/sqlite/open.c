/* The SQLite backend: schema and upgrades, opening and closing, the
 * statement cache and the small helpers the other files share; the ops
 * table. */
#include "sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
const char SQL_COMMIT[] = "COMMIT";
const char SQL_ROLLBACK[] = "ROLLBACK";

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.set_max_size = sq_set_max_size,
	.close = sq_close,
	.submit = sq_submit,
	.durable = sq_durable,
	.claim = sq_claim,
	.renew = sq_renew,
	.recover = sq_recover,
	.finish = sq_finish,
	.requeue = sq_requeue,
	.history_add = sq_history_add,
	.mark = sq_mark,
	.progress = sq_progress,
	.lock = sq_lock,
	.trylock = sq_trylock,
	.unlock = sq_unlock,
	.get = sq_get,
	.history_page = sq_history_page,
	.list = sq_list,
	.changes = sq_changes,
	.changes_head = sq_changes_head,
	.replay = sq_replay,
	.replay_matching = sq_replay_matching,
	.prune = sq_prune,
	.archive_pending = sq_archive_pending,
	.archive_mark = sq_archive_mark,
	.stats = sq_stats,
	.unfinished = sq_unfinished,
	.writable = sq_writable,
	.sweep_get = sq_sweep_get,
	.sweep_put = sq_sweep_put,
	.batches_close_due = sq_batches_close_due,
	.batch_get = sq_batch_get,
	.batches_list = sq_batches_list,
	.batches_open = sq_batches_open,
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS events ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  received_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  process_type TEXT NOT NULL,"
	"  current_state TEXT NOT NULL,"
	"  resource_id TEXT NOT NULL,"
	"  dedupe_key TEXT NOT NULL,"
	"  dedupe_hash INTEGER,"
	"  body TEXT NOT NULL,"
	"  handler TEXT,"
	"  state TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_run_at INTEGER NOT NULL DEFAULT 0,"
	"  result TEXT,"
	"  error TEXT,"
	"  finished_at INTEGER,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  progress TEXT,"
	"  owner TEXT,"
	"  lease_until INTEGER,"
	"  source TEXT,"
	"  archived_at INTEGER"
	");"
	/* Partial indexes: an event is in the "queued" one only while queued,
	 * and so on, so a state change touches one or two small indexes and a
	 * finished event touches none (see bench/RESULTS.md). */
	"CREATE INDEX IF NOT EXISTS events_queued ON events(seq) WHERE state = 'queued';"
	"CREATE INDEX IF NOT EXISTS events_retrying ON events(next_run_at) WHERE state = 'retrying';"
	"CREATE INDEX IF NOT EXISTS events_running ON events(resource_id) WHERE state = 'running';"
	"CREATE INDEX IF NOT EXISTS events_failed ON events(seq) WHERE state = 'failed';"
	"CREATE INDEX IF NOT EXISTS events_resource ON events(resource_id);"
	"CREATE TABLE IF NOT EXISTS history ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  event_id TEXT NOT NULL,"
	"  step TEXT NOT NULL,"
	"  started_at INTEGER NOT NULL,"
	"  ended_at INTEGER,"
	"  detail TEXT,"
	"  error TEXT"
	");"
	"CREATE INDEX IF NOT EXISTS history_event ON history(event_id, seq);"
	"CREATE TABLE IF NOT EXISTS sweeps ("
	"  name TEXT PRIMARY KEY,"
	"  started_at INTEGER NOT NULL DEFAULT 0,"
	"  finished_at INTEGER NOT NULL DEFAULT 0,"
	"  found INTEGER NOT NULL DEFAULT 0,"
	"  enqueued INTEGER NOT NULL DEFAULT 0,"
	"  duplicates INTEGER NOT NULL DEFAULT 0,"
	"  runs INTEGER NOT NULL DEFAULT 0,"
	"  errors INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT,"
	"  owner TEXT"
	");"
	"CREATE TABLE IF NOT EXISTS objects ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  received_at INTEGER NOT NULL,"
	"  dedupe_key TEXT NOT NULL UNIQUE,"
	"  bucket TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  size INTEGER,"
	"  etag TEXT,"
	"  version_id TEXT,"
	"  sequencer TEXT,"
	"  event_name TEXT,"
	"  event_at INTEGER,"
	"  format TEXT,"
	"  watch TEXT,"
	"  role TEXT NOT NULL,"
	"  batch_id TEXT"
	");"
	"CREATE INDEX IF NOT EXISTS objects_batch ON objects(batch_id, seq) WHERE batch_id IS NOT NULL;"
	"CREATE TABLE IF NOT EXISTS batches ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  watch TEXT NOT NULL,"
	"  bucket TEXT NOT NULL,"
	"  prefix TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  opened_at INTEGER NOT NULL,"
	"  last_object_at INTEGER NOT NULL,"
	"  closed_at INTEGER,"
	"  due_at INTEGER,"
	"  objects INTEGER NOT NULL DEFAULT 0,"
	"  trigger TEXT,"
	"  count_limit INTEGER NOT NULL DEFAULT 0,"
	"  quiet_ms INTEGER NOT NULL DEFAULT 0,"
	"  max_age_ms INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT,"
	"  trigger_event_id TEXT"
	");"
	/* one open batch per (watch, bucket, prefix): closing is exactly once */
	"CREATE UNIQUE INDEX IF NOT EXISTS batches_open ON batches(watch, bucket, prefix) WHERE state = 'open';"
	"CREATE INDEX IF NOT EXISTS batches_due ON batches(due_at) WHERE state = 'open' AND due_at IS NOT NULL;"
	/* finished, not archived since: what the archive writer takes next */
	"CREATE INDEX IF NOT EXISTS events_unarchived ON events(finished_at) "
	"WHERE finished_at IS NOT NULL AND archived_at IS NULL;"
	"PRAGMA user_version = 9;";

/* Version 1 stores indexed the whole dedupe key and kept an index for
 * pruning; version 2 indexes a 64-bit hash of the key instead. Rows from
 * before keep no hash, and so are no longer seen as earlier deliveries. */
static const char *const migrate_1_to_2 =
	"ALTER TABLE events ADD COLUMN dedupe_hash INTEGER;"
	"DROP INDEX IF EXISTS events_dedupe;"
	"DROP INDEX IF EXISTS events_finished;";
/* Version 4 finds earlier deliveries through the resource index (the
 * dedupe key holds the resource id), so an event adds one index entry at a
 * random place instead of two; dedupe_hash is no longer written. */
static const char *const migrate_3_to_4 = "DROP INDEX IF EXISTS events_dedupe_hash;";
/* Version 5 keeps, per event, flags (replayed; its resource marked failed
 * by this daemon) and the running attempt's progress. */
static const char *const migrate_4_to_5 =
	"ALTER TABLE events ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE events ADD COLUMN progress TEXT;";
/* Version 6: a claim has an owner and a lease. */
static const char *const migrate_5_to_6 =
	"ALTER TABLE events ADD COLUMN owner TEXT;"
	"ALTER TABLE events ADD COLUMN lease_until INTEGER;";
/* Version 7: where an event came from (NULL: a hook; "sweep:NAME"), and
 * the sweeps table (created by the schema itself). */
static const char *const migrate_6_to_7 = "ALTER TABLE events ADD COLUMN source TEXT;";
/* Version 8: object events and their batches (tables the schema creates). */
static const char *const migrate_7_to_8 = "";
/* the archive: when each event was archived (NULL: not since it finished) */
static const char *const migrate_8_to_9 = "ALTER TABLE events ADD COLUMN archived_at INTEGER;";
/* The newest schema this build knows; a newer store is refused. */
#define STORE_SCHEMA_VERSION 9
/* Version 3 replaced the (state, ...) indexes by partial ones. */
static const char *const migrate_2_to_3 =
	"DROP INDEX IF EXISTS events_runnable;"
	"DROP INDEX IF EXISTS events_state_seq;"
	"DROP INDEX IF EXISTS events_resource;";

enum store_result sq_map_rc(int rc)
{
	if (rc == SQLITE_FULL || rc == SQLITE_IOERR)
		return STORE_NOSPACE;
	return STORE_ERROR;
}

void sq_log_db_error(struct sq *st, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
}

int sq_exec_text(struct sq *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("store: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
	}
	return rc;
}

int sq_exec(struct sq *st, const char *sql)
{
	sqlite3_stmt *s;
	int rc;

	if (sql != SQL_BEGIN && sql != SQL_COMMIT && sql != SQL_ROLLBACK)
		return sq_exec_text(st, sql);
	s = sq_prep(st, sql);
	if (!s)
		return sq_exec_text(st, sql);
	rc = sqlite3_step(s);
	sq_release(st, s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return SQLITE_OK;
	log_error("store: %s: %s", sql, sqlite3_errmsg(st->db));
	return rc;
}

void sq_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v && *v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

sqlite3_stmt *sq_prep(struct sq *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	for (int i = 0; i < st->n_cache; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].s;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		sq_log_db_error(st, "prepare");
		return NULL;
	}
	if (st->n_cache < STMT_CACHE) {
		st->cache[st->n_cache].sql = sql;
		st->cache[st->n_cache].s = s;
		st->n_cache++;
	}
	return s;
}

/* Done with a statement from sq_prep(): reset a cached one (releasing its read
 * lock), finalize one the cache had no room for. */
void sq_release(struct sq *st, sqlite3_stmt *s)
{
	if (!s)
		return;
	for (int i = 0; i < st->n_cache; i++) {
		if (st->cache[i].s == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return;
		}
	}
	sqlite3_finalize(s);
}

int64_t sq_scalar(struct sq *st, const char *sql)
{
	sqlite3_stmt *s = sq_prep(st, sql);
	int64_t v = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sq_release(st, s);
	return v;
}

/* One daemon per SQLite store: two would each think they held every
 * lease and every advisory lock. A second one is refused, by name. */
static int take_file_lock(struct sq *st, char *err, size_t errlen)
{
	st->lock_fd = open(st->path, O_RDONLY | O_CLOEXEC);
	if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "store '%s' is in use by another lqs-hookd (%s): one daemon per SQLite store",
			 st->path, strerror(errno));
		return -1;
	}
	return 0;
}

int sqlite_store_open(struct store **out, const char *path, char *err, size_t errlen)
{
	struct sq *st = calloc(1, sizeof(*st));
	int rc;

	if (!st) {
		str_copy(err, "out of memory", errlen);
		return -1;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->fq_mu, NULL);
	pthread_cond_init(&st->fq_cv, NULL);
	pthread_mutex_init(&st->sync_mu, NULL);
	keylocks_init(&st->keys);
	st->base.ops = &sqlite_ops;
	st->wal_fd = -1;
	st->lock_fd = -1;
	st->path = strdup(path);
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open store '%s': %s", path,
			 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		sq_close(&st->base);
		return -1;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (take_file_lock(st, err, errlen) != 0) {
		sq_close(&st->base);
		return -1;
	}
	/* WAL with synchronous=NORMAL: commits do not sync, checkpoints do
	 * (the WAL before it is copied back, the database after, the WAL header
	 * when the file is reused). Commits that acknowledge events are made
	 * durable by sq_durable(), which syncs the WAL once they are written,
	 * outside the store lock: that is synchronous=FULL for those commits,
	 * without holding every other writer while the disk flushes. The
	 * workers' bookkeeping is not synced: losing its last commits to a
	 * power cut only makes an event run again, which handlers are built
	 * for. */
	if (sq_scalar(st, "PRAGMA user_version") > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "store '%s' has schema version %lld, newer than this lqs-hookd knows (%d): "
			 "run the newer lqs-hookd, or restore a backup taken before the upgrade", path,
			 (long long)sq_scalar(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
		sq_close(&st->base);
		return -1;
	}
	/* Each step brings a store one version up, so an old store takes
	 * every step after its own, in order, each in its own transaction. */
	{
		static const char *const *const steps[] = { NULL, &migrate_1_to_2, &migrate_2_to_3,
							   &migrate_3_to_4, &migrate_4_to_5, &migrate_5_to_6,
							   &migrate_6_to_7, &migrate_7_to_8, &migrate_8_to_9 };
		int64_t v = sq_scalar(st, "PRAGMA user_version");
		for (; v >= 1 && v < STORE_SCHEMA_VERSION; v++) {
			char sql[1024];
			snprintf(sql, sizeof(sql), "BEGIN; %s PRAGMA user_version = %lld; COMMIT;", *steps[v],
				 (long long)v + 1);
			if (sq_exec(st, sql) != SQLITE_OK) {
				snprintf(err, errlen, "cannot upgrade store '%s' from version %lld: %s", path,
					 (long long)v, sqlite3_errmsg(st->db));
				sq_exec(st, "ROLLBACK");
				sq_close(&st->base);
				return -1;
			}
		}
	}
	if (sq_exec(st, "PRAGMA journal_mode=WAL;") != SQLITE_OK ||
	    sq_exec(st, "PRAGMA synchronous=NORMAL;") != SQLITE_OK ||
	    sq_exec(st, "PRAGMA foreign_keys=ON;") != SQLITE_OK ||
	    sq_exec(st, schema) != SQLITE_OK) {
		snprintf(err, errlen, "cannot initialise store '%s': %s", path, sqlite3_errmsg(st->db));
		sq_close(&st->base);
		return -1;
	}
	st->unfinished = sq_scalar(st, "SELECT count(*) FROM events WHERE state IN "
					"('queued','running','retrying')");
	/* this daemon holds the store alone (the file lock): the leases of
	 * whatever ran before are void, and sq_recover makes those runnable */
	sq_exec(st, "UPDATE events SET lease_until = 0 WHERE state = 'running'");
	*out = &st->base;
	return 0;
}

void sq_set_max_size(struct store *b, int64_t bytes)
{
	struct sq *st = sq_of(b);
	char sql[96];
	int64_t page = sq_scalar(st, "PRAGMA page_size");
	/* max_page_count cannot go below the current size; SQLite keeps the
	 * larger of the two, so a shrink takes effect as data is pruned. */
	int64_t pages = bytes > 0 && page > 0 ? bytes / page : 4294967294LL;

	pthread_mutex_lock(&st->lock);
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)(pages > 0 ? pages : 1));
	sq_exec(st, sql);
	pthread_mutex_unlock(&st->lock);
}

void sq_close(struct store *b)
{
	struct sq *st = sq_of(b);

	for (int i = 0; i < st->n_cache; i++)
		sqlite3_finalize(st->cache[i].s);
	st->n_cache = 0;
	if (st->db) {
		/* Fold the WAL back so the file is self-contained after exit. */
		sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		sqlite3_close(st->db);
	}
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->fq_mu);
	pthread_cond_destroy(&st->fq_cv);
	if (st->wal_fd >= 0)
		close(st->wal_fd);
	pthread_mutex_destroy(&st->sync_mu);
	keylocks_destroy(&st->keys);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	free(st->path);
	free(st);
}

int sq_hist_insert(struct sq *st, const char *id, const struct store_hist *h)
{
	sqlite3_stmt *s = sq_prep(st, "INSERT INTO history(event_id, step, started_at, ended_at, detail, error) "
				   "VALUES (?,?,?,?,?,?)");
	char *detail = NULL;
	int rc;

	if (!s)
		return SQLITE_ERROR;
	if (h->detail)
		detail = json_dumps(h->detail, JSON_COMPACT);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, h->step, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, h->started_ms);
	if (h->ended_ms)
		sqlite3_bind_int64(s, 4, h->ended_ms);
	else
		sqlite3_bind_null(s, 4);
	sq_bind_text(s, 5, detail);
	sq_bind_text(s, 6, h->error);
	rc = sqlite3_step(s);
	sq_release(st, s);
	free(detail);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
