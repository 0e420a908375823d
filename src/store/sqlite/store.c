#include "lqs-hookd/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* How long a write waits for another process holding the database (an
 * operator's sqlite3 shell, a backup) before it fails. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* One connection guarded by one mutex: SQLite serialises writers anyway,
 * and a single connection keeps the per-resource claim check atomic. */
/* Prepared statements are kept for reuse, keyed by the address of their
 * SQL literal: preparing costs more than running most of them. */
#define STMT_CACHE 64

/* A worker's outcome waiting to be written (see store_finish). */
struct finish_req {
	const char *id, *state, *result, *error;
	int64_t next_run_ms;
	const struct store_hist *hist;
	size_t n_hist;
	enum store_result out;
	bool done;
	struct store_claim *claim;   /* non-NULL: also claim the caller's next event */
	int claimed;
	int64_t next_due_ms;
	struct finish_req *next;
};

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
	/* outcomes waiting for the next shared commit */
	pthread_mutex_t fq_mu;
	pthread_cond_t fq_cv;
	struct finish_req *fq_head;
	bool fq_leader;
	/* written under lock, read without it: the HTTP threads check it for
	 * every POST and must never wait behind a commit */
	_Atomic int64_t unfinished;
	char *path;
	/* the WAL file, synced by store_sync() outside st->lock */
	pthread_mutex_t sync_mu;
	int wal_fd;
	dev_t wal_dev;
	ino_t wal_ino;
	struct { const char *sql; sqlite3_stmt *s; } cache[STMT_CACHE];
	int n_cache;
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
	"  progress TEXT"
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
	"PRAGMA user_version = 5;";

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
/* The newest schema this build knows; a newer store is refused. */
#define STORE_SCHEMA_VERSION 5
/* Version 3 replaced the (state, ...) indexes by partial ones. */
static const char *const migrate_2_to_3 =
	"DROP INDEX IF EXISTS events_runnable;"
	"DROP INDEX IF EXISTS events_state_seq;"
	"DROP INDEX IF EXISTS events_resource;";

static enum store_result map_rc(int rc)
{
	if (rc == SQLITE_FULL || rc == SQLITE_IOERR)
		return STORE_NOSPACE;
	return STORE_ERROR;
}

static void log_db_error(struct store *st, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
}

static int exec_text(struct store *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("store: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
	}
	return rc;
}

static sqlite3_stmt *prep(struct store *st, const char *sql);
static void release(struct store *st, sqlite3_stmt *s);

/* The statements run on every event (BEGIN, COMMIT, the synchronous
 * switch) go through the statement cache instead of being parsed anew. */
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

static int exec(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int rc;

	if (sql != SQL_BEGIN && sql != SQL_COMMIT && sql != SQL_ROLLBACK)
		return exec_text(st, sql);
	s = prep(st, sql);
	if (!s)
		return exec_text(st, sql);
	rc = sqlite3_step(s);
	release(st, s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return SQLITE_OK;
	log_error("store: %s: %s", sql, sqlite3_errmsg(st->db));
	return rc;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v && *v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static sqlite3_stmt *prep(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	for (int i = 0; i < st->n_cache; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].s;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_db_error(st, "prepare");
		return NULL;
	}
	if (st->n_cache < STMT_CACHE) {
		st->cache[st->n_cache].sql = sql;
		st->cache[st->n_cache].s = s;
		st->n_cache++;
	}
	return s;
}

/* Done with a statement from prep(): reset a cached one (releasing its read
 * lock), finalize one the cache had no room for. */
static void release(struct store *st, sqlite3_stmt *s)
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

static int64_t scalar_i64(struct store *st, const char *sql)
{
	sqlite3_stmt *s = prep(st, sql);
	int64_t v = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	release(st, s);
	return v;
}

int store_open(struct store **out, const char *path, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc;

	if (!st) {
		str_copy(err, "out of memory", errlen);
		return -1;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->fq_mu, NULL);
	pthread_cond_init(&st->fq_cv, NULL);
	pthread_mutex_init(&st->sync_mu, NULL);
	st->wal_fd = -1;
	st->path = strdup(path);
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open store '%s': %s", path,
			 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		store_close(st);
		return -1;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	/* WAL with synchronous=NORMAL: commits do not sync, checkpoints do
	 * (the WAL before it is copied back, the database after, the WAL header
	 * when the file is reused). Commits that acknowledge events are made
	 * durable by store_sync(), which syncs the WAL once they are written,
	 * outside the store lock: that is synchronous=FULL for those commits,
	 * without holding every other writer while the disk flushes. The
	 * workers' bookkeeping is not synced: losing its last commits to a
	 * power cut only makes an event run again, which handlers are built
	 * for. */
	if (scalar_i64(st, "PRAGMA user_version") > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "store '%s' has schema version %lld, newer than this lqs-hookd knows (%d): "
			 "run the newer lqs-hookd, or restore a backup taken before the upgrade", path,
			 (long long)scalar_i64(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
		store_close(st);
		return -1;
	}
	/* Each step brings a store one version up, so an old store takes
	 * every step after its own, in order, each in its own transaction. */
	{
		static const char *const *const steps[] = { NULL, &migrate_1_to_2, &migrate_2_to_3,
							   &migrate_3_to_4, &migrate_4_to_5 };
		int64_t v = scalar_i64(st, "PRAGMA user_version");
		for (; v >= 1 && v < STORE_SCHEMA_VERSION; v++) {
			char sql[1024];
			snprintf(sql, sizeof(sql), "BEGIN; %s PRAGMA user_version = %lld; COMMIT;", *steps[v],
				 (long long)v + 1);
			if (exec(st, sql) != SQLITE_OK) {
				snprintf(err, errlen, "cannot upgrade store '%s' from version %lld: %s", path,
					 (long long)v, sqlite3_errmsg(st->db));
				exec(st, "ROLLBACK");
				store_close(st);
				return -1;
			}
		}
	}
	if (exec(st, "PRAGMA journal_mode=WAL;") != SQLITE_OK ||
	    exec(st, "PRAGMA synchronous=NORMAL;") != SQLITE_OK ||
	    exec(st, "PRAGMA foreign_keys=ON;") != SQLITE_OK ||
	    exec(st, schema) != SQLITE_OK) {
		snprintf(err, errlen, "cannot initialise store '%s': %s", path, sqlite3_errmsg(st->db));
		store_close(st);
		return -1;
	}
	st->unfinished = scalar_i64(st, "SELECT count(*) FROM events WHERE state IN "
					"('queued','running','retrying')");
	*out = st;
	return 0;
}

void store_set_max_size(struct store *st, int64_t bytes)
{
	char sql[96];
	int64_t page = scalar_i64(st, "PRAGMA page_size");
	/* max_page_count cannot go below the current size; SQLite keeps the
	 * larger of the two, so a shrink takes effect as data is pruned. */
	int64_t pages = bytes > 0 && page > 0 ? bytes / page : 4294967294LL;

	pthread_mutex_lock(&st->lock);
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)(pages > 0 ? pages : 1));
	exec(st, sql);
	pthread_mutex_unlock(&st->lock);
}

void store_close(struct store *st)
{
	if (!st)
		return;
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
	free(st->path);
	free(st);
}

static int hist_insert(struct store *st, const char *id, const struct store_hist *h)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO history(event_id, step, started_at, ended_at, detail, error) "
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
	bind_text(s, 5, detail);
	bind_text(s, 6, h->error);
	rc = sqlite3_step(s);
	release(st, s);
	free(detail);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_recover(struct store *st)
{
	sqlite3_stmt *s;
	int n = 0;
	int64_t now = now_ms();

	pthread_mutex_lock(&st->lock);
	exec(st, SQL_BEGIN);
	s = prep(st, "SELECT id, updated_at, attempts FROM events WHERE state = 'running'");
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		json_t *d = json_pack("{s:i}", "attempt", sqlite3_column_int(s, 2));
		struct store_hist a = { .step = "attempt", .started_ms = sqlite3_column_int64(s, 1), .ended_ms = now,
					.detail = d, .error = "interrupted: the daemon stopped while the attempt ran" };
		struct store_hist h = { .step = "recovered", .started_ms = now, .ended_ms = now,
					.error = "attempt interrupted (the daemon stopped while it ran)" };
		hist_insert(st, id, &a);
		hist_insert(st, id, &h);
		json_decref(d);
		n++;
	}
	release(st, s);
	s = prep(st, "UPDATE events SET state='queued', next_run_at=0, updated_at=? WHERE state='running'");
	if (s) {
		sqlite3_bind_int64(s, 1, now);
		sqlite3_step(s);
		release(st, s);
	}
	if (exec(st, SQL_COMMIT) != SQLITE_OK) {
		exec(st, SQL_ROLLBACK);
		n = -1;
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

static void dedupe_key(const struct event *ev, char *out, size_t n)
{
	snprintf(out, n, "%s|%s|%s|%s|%s", ev->hook_id, ev->process_type, ev->resource_id,
		 ev->previous_state, ev->current_state);
}

char *store_event_body(const struct event *ev)
{
	json_t *doc = event_to_json(ev);
	char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(doc);
	return body;
}

/* One item of a batch, inside the open transaction. */
static enum store_result enqueue_one(struct store *st, struct store_item *it, int64_t now, int64_t dedupe_ms,
				     int64_t max_queued, int64_t *added)
{
	char key[200];
	sqlite3_stmt *s;
	int rc;

	dedupe_key(it->ev, key, sizeof(key));
	if (dedupe_ms > 0) {
		/* sees this batch's own inserts: same connection, same transaction */
		enum store_result r = STORE_OK;
		s = prep(st, "SELECT id FROM events INDEXED BY events_resource WHERE resource_id=? AND received_at>=? "
			     "AND dedupe_key=? ORDER BY seq LIMIT 1");
		if (!s)
			return STORE_ERROR;
		sqlite3_bind_text(s, 1, it->ev->resource_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, now - dedupe_ms);
		sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW) {
			str_copy(it->id, (const char *)sqlite3_column_text(s, 0), sizeof(it->id));
			r = STORE_DUPLICATE;
		}
		release(st, s);
		if (r == STORE_DUPLICATE)
			return r;
	}
	if (max_queued > 0 && atomic_load(&st->unfinished) + *added >= max_queued)
		return STORE_FULL;
	uuid_new(it->id);
	if (!it->handler) {
		/* No route: nothing to run, so the event is stored finished, in the
		 * same commit, and never costs a worker a round trip. */
		json_t *res = event_not_routed(it->ev->process_type, it->ev->current_state);
		char *result = res ? json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(res);
		if (!result)
			return STORE_ERROR;
		s = prep(st, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, "
			     "resource_id, dedupe_key, body, handler, state, result, finished_at) "
			     "VALUES (?,?,?,?,?,?,?,?,NULL,'completed',?,?)");
		if (!s) {
			free(result);
			return STORE_ERROR;
		}
		sqlite3_bind_text(s, 1, it->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, now);
		sqlite3_bind_int64(s, 3, now);
		sqlite3_bind_text(s, 4, it->ev->process_type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, it->ev->current_state, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 6, it->ev->resource_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 7, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 8, it->body, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 9, result, -1, SQLITE_TRANSIENT);
		free(result);
		sqlite3_bind_int64(s, 10, now);
		rc = sqlite3_step(s);
		release(st, s);
		if (rc != SQLITE_DONE) {
			log_db_error(st, "enqueue");
			return map_rc(rc);
		}
		return STORE_OK;
	}
	s = prep(st, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, "
		     "resource_id, dedupe_key, body, handler, state) VALUES (?,?,?,?,?,?,?,?,?,'queued')");
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_text(s, 4, it->ev->process_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, it->ev->current_state, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, it->ev->resource_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, it->body, -1, SQLITE_STATIC);
	bind_text(s, 9, it->handler);
	rc = sqlite3_step(s);
	release(st, s);
	if (rc != SQLITE_DONE) {
		log_db_error(st, "enqueue");
		return map_rc(rc);
	}
	(*added)++;
	return STORE_OK;
}

void store_enqueue_batch_nosync(struct store *st, struct store_item *items, size_t n, int64_t dedupe_ms,
				int64_t max_queued)
{
	int64_t now = now_ms(), added = 0;
	enum store_result failure = STORE_OK;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = exec(st, SQL_BEGIN);
	if (rc != SQLITE_OK)
		failure = map_rc(rc);
	for (size_t i = 0; i < n; i++) {
		if (failure != STORE_OK) {
			items[i].result = failure;
			continue;
		}
		items[i].result = items[i].body ? enqueue_one(st, &items[i], now, dedupe_ms, max_queued, &added)
						 : STORE_ERROR;
		if (items[i].result == STORE_NOSPACE || items[i].result == STORE_ERROR)
			failure = items[i].result;
	}
	if (failure == STORE_OK) {
		rc = exec(st, SQL_COMMIT);
		if (rc != SQLITE_OK)
			failure = map_rc(rc);
	}
	if (failure != STORE_OK) {
		/* all or nothing: no 202 for an event that is not in the store */
		exec(st, SQL_ROLLBACK);
		for (size_t i = 0; i < n; i++)
			if (store_result_stored(items[i].result))
				items[i].result = failure;
		added = 0;
	}
	atomic_fetch_add(&st->unfinished, added);
	pthread_mutex_unlock(&st->lock);
}

/* fsync the directory holding path. */
static int dir_sync(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (!slash)
		str_copy(dir, ".", sizeof(dir));
	else if (slash == path)
		str_copy(dir, "/", sizeof(dir));
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Open (or, if the file was replaced, reopen) the WAL for syncing. Under
 * sync_mu. The WAL exists from the first commit on and keeps its inode
 * while the store is open; the check costs one stat. */
static int wal_fd_locked(struct store *st)
{
	char path[4096];
	struct stat a, b;

	if (snprintf(path, sizeof(path), "%s-wal", st->path) >= (int)sizeof(path) || stat(path, &a) != 0) {
		log_error("store: cannot find the write-ahead log to sync it: %s", strerror(errno));
		return -1;
	}
	if (st->wal_fd >= 0 && a.st_dev == st->wal_dev && a.st_ino == st->wal_ino)
		return st->wal_fd;
	if (st->wal_fd >= 0)
		close(st->wal_fd);
	st->wal_fd = open(path, O_RDWR | O_CLOEXEC);
	if (st->wal_fd < 0)
		log_error("store: cannot open the write-ahead log to sync it: %s", strerror(errno));
	if (st->wal_fd >= 0 && fstat(st->wal_fd, &b) == 0) {
		st->wal_dev = b.st_dev;
		st->wal_ino = b.st_ino;
	}
	/* A new WAL (or store) is durable only once its directory entry is:
	 * SQLite would sync the directory on its own first sync of the file,
	 * which the commits no longer make. Once per (re)opened WAL. */
	if (st->wal_fd >= 0 && dir_sync(st->path) != 0) {
		log_error("store: cannot sync the store's directory: %s", strerror(errno));
		close(st->wal_fd);
		st->wal_fd = -1;
	}
	return st->wal_fd;
}

int store_sync(struct store *st)
{
	int fd, rc = -1;

	pthread_mutex_lock(&st->sync_mu);
	fd = wal_fd_locked(st);   /* it says why when it fails */
	if (fd >= 0) {
		rc = fdatasync(fd);
		if (rc != 0)
			log_error("store: cannot sync the write-ahead log: %s", strerror(errno));
	}
	pthread_mutex_unlock(&st->sync_mu);
	return rc == 0 ? 0 : -1;
}

void store_enqueue_batch(struct store *st, struct store_item *items, size_t n, int64_t dedupe_ms,
			 int64_t max_queued)
{
	bool stored = false;

	store_enqueue_batch_nosync(st, items, n, dedupe_ms, max_queued);
	for (size_t i = 0; i < n; i++)
		stored |= store_result_stored(items[i].result);
	if (stored && store_sync(st) != 0)
		for (size_t i = 0; i < n; i++)
			if (store_result_stored(items[i].result))
				items[i].result = STORE_ERROR;
}

enum store_result store_enqueue(struct store *st, const struct event *ev, const char *handler,
				int64_t dedupe_ms, int64_t max_queued, char id_out[37])
{
	struct store_item it = { .ev = ev, .handler = handler, .body = store_event_body(ev) };

	store_enqueue_batch(st, &it, 1, dedupe_ms, max_queued);
	free(it.body);
	str_copy(id_out, it.id, 37);
	return it.result;
}

/* Claim under st->lock (the caller holds it). */
static int claim_locked(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms)
{
	sqlite3_stmt *s;
	int found = 0;

	memset(c, 0, sizeof(*c));
	*next_due_ms = 0;
	/* Oldest first; never two running events for one resource. Each query
	 * walks an index in the order wanted, so a claim stays cheap however
	 * long the backlog: new events by arrival, due retries by due time. */
	static const char *const queries[2] = {
		"SELECT id, resource_id, handler, attempts, body, seq, flags FROM events e "
		"WHERE state = 'queued' AND NOT EXISTS (SELECT 1 FROM events r "
		"WHERE r.resource_id = e.resource_id AND r.state = 'running') ORDER BY seq LIMIT 1",
		"SELECT id, resource_id, handler, attempts, body, seq, flags FROM events e "
		"WHERE state = 'retrying' AND next_run_at <= ? AND NOT EXISTS (SELECT 1 FROM events r "
		"WHERE r.resource_id = e.resource_id AND r.state = 'running') ORDER BY next_run_at LIMIT 1",
	};
	int64_t best_seq = -1;
	for (int q = 0; q < 2; q++) {
		s = prep(st, queries[q]);
		if (!s)
			return -1;
		if (q == 1)
			sqlite3_bind_int64(s, 1, now);
		if (sqlite3_step(s) == SQLITE_ROW && (best_seq < 0 || sqlite3_column_int64(s, 5) < best_seq)) {
			const char *h = (const char *)sqlite3_column_text(s, 2);
			json_error_t jerr;
			if (found)
				json_decref(c->event);
			best_seq = sqlite3_column_int64(s, 5);
			str_copy(c->id, (const char *)sqlite3_column_text(s, 0), sizeof(c->id));
			str_copy(c->resource_id, (const char *)sqlite3_column_text(s, 1), sizeof(c->resource_id));
			str_copy(c->handler, h ? h : "", sizeof(c->handler));
			c->attempt = sqlite3_column_int(s, 3) + 1;
			c->flags = (unsigned)sqlite3_column_int(s, 6);
			c->event = json_loads((const char *)sqlite3_column_text(s, 4), 0, &jerr);
			found = 1;
		}
		release(st, s);
	}
	if (found) {
		/* One statement, no fsync: the attempt's history row is written
		 * with its outcome. A claim lost to a crash only means the event
		 * runs again; a "running" row left by one is found by recovery. */
		int rc = SQLITE_ERROR;
		c->claimed_ms = now_ms();
		s = prep(st, "UPDATE events SET state='running', attempts=attempts+1, updated_at=?, progress=NULL "
			     "WHERE id=?");
		if (s) {
			sqlite3_bind_int64(s, 1, c->claimed_ms);
			sqlite3_bind_text(s, 2, c->id, -1, SQLITE_STATIC);
			rc = sqlite3_step(s);
			release(st, s);
		}
		if (rc != SQLITE_DONE) {
			json_decref(c->event);
			c->event = NULL;
			found = -1;
		}
	} else {
		s = prep(st, "SELECT min(next_run_at) FROM events WHERE state = 'retrying' AND next_run_at > ?");
		if (s) {
			sqlite3_bind_int64(s, 1, now);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
				*next_due_ms = sqlite3_column_int64(s, 0);
			release(st, s);
		}
	}
	return found;
}

int store_claim(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms)
{
	int found;

	pthread_mutex_lock(&st->lock);
	found = claim_locked(st, now, c, next_due_ms);
	pthread_mutex_unlock(&st->lock);
	return found;
}

void store_claim_release(struct store_claim *c)
{
	json_decref(c->event);
	c->event = NULL;
}

/* Write one outcome inside the leader's transaction. Returns the SQLite
 * code and adds to *finished the events it took out of the queue. */
static int finish_one(struct store *st, struct finish_req *r, int64_t now, int64_t *finished)
{
	bool final = strcmp(r->state, ST_COMPLETED) == 0 || strcmp(r->state, ST_FAILED) == 0;
	sqlite3_stmt *s;
	int rc;

	for (size_t i = 0; i < r->n_hist; i++)
		if ((rc = hist_insert(st, r->id, &r->hist[i])) != SQLITE_OK)
			return rc;
	s = prep(st, "UPDATE events SET state=?, result=?, error=?, next_run_at=?, updated_at=?, "
		     "finished_at=? WHERE id=? AND state='running'");
	if (!s)
		return SQLITE_ERROR;
	sqlite3_bind_text(s, 1, r->state, -1, SQLITE_STATIC);
	bind_text(s, 2, r->result);
	bind_text(s, 3, r->error);
	sqlite3_bind_int64(s, 4, final ? 0 : r->next_run_ms);
	sqlite3_bind_int64(s, 5, now);
	if (final)
		sqlite3_bind_int64(s, 6, now);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_text(s, 7, r->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	release(st, s);
	if (rc != SQLITE_DONE)
		return rc;
	if (final && sqlite3_changes(st->db) > 0)
		(*finished)++;
	return SQLITE_OK;
}

/* Outcomes share commits: the first worker to arrive becomes the leader and
 * writes every outcome queued by then in one transaction, while the others
 * wait for theirs. A commit costs the same pages and locks for one outcome
 * or twenty, so a busy pool pays for far fewer of them. Losing the last of
 * these commits to a power cut only makes those events run again. */
enum store_result store_finish_claim(struct store *st, const char *id, const char *state, json_t *result,
				     const char *error, int64_t next_run_ms, const struct store_hist *hist,
				     size_t n_hist, struct store_claim *next, int *claimed, int64_t *next_due_ms)
{
	char *res = result ? json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	struct finish_req me = { .id = id, .state = state, .result = res, .error = error,
				 .next_run_ms = next_run_ms, .hist = hist, .n_hist = n_hist, .claim = next };

	pthread_mutex_lock(&st->fq_mu);
	me.next = st->fq_head;
	st->fq_head = &me;
	while (!me.done) {
		if (st->fq_leader) {
			pthread_cond_wait(&st->fq_cv, &st->fq_mu);
			continue;
		}
		struct finish_req *batch = st->fq_head, *r;
		int64_t now = now_ms(), finished = 0;
		int rc;

		st->fq_head = NULL;
		st->fq_leader = true;
		pthread_mutex_unlock(&st->fq_mu);

		pthread_mutex_lock(&st->lock);
		rc = exec(st, SQL_BEGIN);
		for (r = batch; r && rc == SQLITE_OK; r = r->next)
			rc = finish_one(st, r, now, &finished);
		/* each worker's next event, claimed in the same commit */
		for (r = batch; r && rc == SQLITE_OK; r = r->next)
			if (r->claim)
				r->claimed = claim_locked(st, now, r->claim, &r->next_due_ms);
		if (rc == SQLITE_OK)
			rc = exec(st, SQL_COMMIT);
		if (rc != SQLITE_OK) {
			exec(st, SQL_ROLLBACK);
			finished = 0;
			for (r = batch; r; r = r->next)
				if (r->claim && r->claimed == 1) {
					store_claim_release(r->claim);
					r->claimed = 0;
				}
		}
		atomic_fetch_sub(&st->unfinished, finished);
		pthread_mutex_unlock(&st->lock);

		pthread_mutex_lock(&st->fq_mu);
		for (r = batch; r; r = r->next) {
			r->out = rc == SQLITE_OK ? STORE_OK : map_rc(rc);
			r->done = true;
		}
		st->fq_leader = false;
		pthread_cond_broadcast(&st->fq_cv);
	}
	pthread_mutex_unlock(&st->fq_mu);
	free(res);
	if (claimed)
		*claimed = me.claimed;
	if (next_due_ms)
		*next_due_ms = me.next_due_ms;
	return me.out;
}

enum store_result store_finish(struct store *st, const char *id, const char *state, json_t *result,
			       const char *error, int64_t next_run_ms, const struct store_hist *hist,
			       size_t n_hist)
{
	return store_finish_claim(st, id, state, result, error, next_run_ms, hist, n_hist, NULL, NULL, NULL);
}

enum store_result store_requeue(struct store *st, const char *id, int64_t claimed_ms, const char *why)
{
	int64_t now = now_ms();
	struct store_hist a = { .step = "attempt", .started_ms = claimed_ms, .ended_ms = now, .error = why };
	struct store_hist h = { .step = "requeued", .started_ms = now, .ended_ms = now, .error = why };
	sqlite3_stmt *s;
	enum store_result out = STORE_ERROR;

	pthread_mutex_lock(&st->lock);
	exec(st, SQL_BEGIN);
	hist_insert(st, id, &a);
	/* An interrupted attempt does not count against max_attempts. */
	s = prep(st, "UPDATE events SET state='queued', next_run_at=0, updated_at=?, "
		     "attempts=max(attempts-1,0) WHERE id=? AND state='running'");
	if (s) {
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			out = STORE_OK;
		release(st, s);
	}
	hist_insert(st, id, &h);
	if (exec(st, SQL_COMMIT) != SQLITE_OK) {
		exec(st, SQL_ROLLBACK);
		out = STORE_ERROR;
	}
	pthread_mutex_unlock(&st->lock);
	return out;
}

enum store_result store_history_add(struct store *st, const char *id, const struct store_hist *h)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = hist_insert(st, id, h);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_OK ? STORE_OK : map_rc(rc);
}

static json_t *col_json(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	json_error_t jerr;
	json_t *v;

	if (!t)
		return json_null();
	v = json_loads(t, JSON_DECODE_ANY, &jerr);
	return v ? v : json_string(t);
}

static json_t *col_str(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);

	return t ? json_string(t) : json_null();
}

static json_t *col_time(sqlite3_stmt *s, int i)
{
	char ts[32];

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	iso8601_ms(sqlite3_column_int64(s, i), ts);
	return json_string(ts);
}

#define EVENT_COLS "seq, id, received_at, updated_at, body, handler, state, attempts, next_run_at, " \
		   "result, error, finished_at, progress, flags"

/* The status document: the okdata-style trace view of one event. */
static json_t *event_row(sqlite3_stmt *s)
{
	const char *state = (const char *)sqlite3_column_text(s, 6);
	int attempts = sqlite3_column_int(s, 7);
	bool done = strcmp(state, ST_COMPLETED) == 0 || strcmp(state, ST_FAILED) == 0;
	const char *trace = done ? "FINISHED" : (attempts == 0 && strcmp(state, ST_QUEUED) == 0 ? "STARTED" : "CONTINUE");
	json_t *o = json_object();

	json_object_set_new(o, "event_id", col_str(s, 1));
	json_object_set_new(o, "received_at", col_time(s, 2));
	json_object_set_new(o, "updated_at", col_time(s, 3));
	json_object_set_new(o, "event", col_json(s, 4));
	json_object_set_new(o, "handler", col_str(s, 5));
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "trace_status", json_string(trace));
	json_object_set_new(o, "trace_event_status",
			    json_string(strcmp(state, ST_FAILED) == 0 ? "FAILED" : "OK"));
	json_object_set_new(o, "done", json_boolean(done));
	json_object_set_new(o, "attempts", json_integer(attempts));
	json_object_set_new(o, "next_attempt_at",
			    strcmp(state, ST_RETRYING) == 0 ? col_time(s, 8) : json_null());
	json_object_set_new(o, "result", col_json(s, 9));
	json_object_set_new(o, "error", col_str(s, 10));
	json_object_set_new(o, "finished_at", col_time(s, 11));
	/* what the running (or last) attempt reported while it ran */
	json_object_set_new(o, "progress", col_json(s, 12));
	json_object_set_new(o, "replayed", json_boolean(sqlite3_column_int(s, 13) & EVENT_FLAG_REPLAYED));
	return o;
}

json_t *store_get(struct store *st, const char *id)
{
	sqlite3_stmt *s;
	json_t *o = NULL;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT " EVENT_COLS " FROM events WHERE id=?");
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			o = event_row(s);
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return o;
}

enum store_result store_history_page(struct store *st, const char *id, int64_t after_seq, int limit,
				     json_t **steps_out, int64_t *next_cursor)
{
	sqlite3_stmt *s;
	json_t *steps = NULL;
	enum store_result out = STORE_ERROR;
	int n = 0;
	int64_t last = 0;

	*steps_out = NULL;
	*next_cursor = 0;
	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT received_at FROM events WHERE id=?");
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			steps = json_array();
			out = STORE_OK;
			/* "received" is the row itself; no history row is written for
			 * it, which keeps the acknowledging commit small */
			if (after_seq == 0) {
				json_t *h = json_object();
				json_object_set_new(h, "step", json_string("received"));
				json_object_set_new(h, "started_at", col_time(s, 0));
				json_object_set_new(h, "ended_at", col_time(s, 0));
				json_object_set_new(h, "duration_ms", json_integer(0));
				json_object_set_new(h, "detail", json_null());
				json_object_set_new(h, "error", json_null());
				json_array_append_new(steps, h);
				n++;
			}
		} else if (rc == SQLITE_DONE) {
			out = STORE_NOTFOUND;
		} else {
			log_db_error(st, "history");
		}
		release(st, s);
	}
	s = steps ? prep(st, "SELECT step, started_at, ended_at, detail, error, seq FROM history "
			     "WHERE event_id=? AND seq > ? ORDER BY seq LIMIT ?") : NULL;
	if (steps && !s)
		out = STORE_ERROR;
	if (s) {
		int rc;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, after_seq);
		/* one more than fits, to know whether a next page exists */
		sqlite3_bind_int(s, 3, limit > 0 ? limit + 1 - n : -1);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (limit > 0 && n == limit) {
				*next_cursor = last;
				break;
			}
			json_t *h = json_object();
			int64_t a = sqlite3_column_int64(s, 1);
			json_object_set_new(h, "step", col_str(s, 0));
			json_object_set_new(h, "started_at", col_time(s, 1));
			json_object_set_new(h, "ended_at", col_time(s, 2));
			if (sqlite3_column_type(s, 2) != SQLITE_NULL)
				json_object_set_new(h, "duration_ms",
						    json_integer(sqlite3_column_int64(s, 2) - a));
			else
				json_object_set_new(h, "duration_ms", json_null());
			json_object_set_new(h, "detail", col_json(s, 3));
			json_object_set_new(h, "error", col_str(s, 4));
			json_array_append_new(steps, h);
			last = sqlite3_column_int64(s, 5);
			n++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			log_db_error(st, "history");
			out = STORE_ERROR;
		}
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	if (out == STORE_OK)
		*steps_out = steps;
	else
		json_decref(steps);
	return out;
}

json_t *store_history(struct store *st, const char *id)
{
	json_t *steps;
	int64_t next;

	return store_history_page(st, id, 0, 0, &steps, &next) == STORE_OK ? steps : NULL;
}

json_t *store_list(struct store *st, const struct store_query *q)
{
	sqlite3_stmt *s;
	json_t *items = json_array(), *out;
	int n = 0, limit = q->limit > 0 ? q->limit : 100;
	int64_t last_seq = 0;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT " EVENT_COLS " FROM events WHERE seq > ? "
		     "AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR process_type = ?3) "
		     "AND (?4 IS NULL OR resource_id = ?4) AND received_at >= ?5 "
		     "AND (?7 IS NULL OR handler = ?7) ORDER BY seq LIMIT ?6");
	if (s) {
		sqlite3_bind_int64(s, 1, q->after_seq);
		bind_text(s, 2, q->state);
		bind_text(s, 3, q->process_type);
		bind_text(s, 4, q->resource_id);
		sqlite3_bind_int64(s, 5, q->since_ms);
		sqlite3_bind_int(s, 6, limit + 1);
		bind_text(s, 7, q->handler);
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (n == limit) {
				n++;
				break;
			}
			json_array_append_new(items, event_row(s));
			last_seq = sqlite3_column_int64(s, 0);
			n++;
		}
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	out = json_pack("{s:o}", "data", items);
	if (n > limit) {
		char cur[32];
		snprintf(cur, sizeof(cur), "%lld", (long long)last_seq);
		json_object_set_new(out, "next_cursor", json_string(cur));
	} else {
		json_object_set_new(out, "next_cursor", json_null());
	}
	return out;
}

/* A replay starts the event from scratch and says so to its handler. */
static const char SQL_REPLAY_ONE[] =
	"UPDATE events SET state='queued', attempts=0, next_run_at=0, result=NULL, error=NULL, "
	"finished_at=NULL, progress=NULL, flags=flags|1, updated_at=? WHERE id=?";

enum store_result store_replay(struct store *st, const char *id)
{
	int64_t now = now_ms();
	struct store_hist h = { .step = "replay", .started_ms = now, .ended_ms = now };
	sqlite3_stmt *s;
	enum store_result out = STORE_NOTFOUND;
	const char *state = NULL;

	pthread_mutex_lock(&st->lock);
	exec(st, SQL_BEGIN);
	s = prep(st, "SELECT state FROM events WHERE id=?");
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW) {
			state = (const char *)sqlite3_column_text(s, 0);
			out = (strcmp(state, ST_FAILED) == 0 || strcmp(state, ST_COMPLETED) == 0)
				      ? STORE_OK : STORE_CONFLICT;
		}
		release(st, s);
	}
	if (out == STORE_OK) {
		s = prep(st, SQL_REPLAY_ONE);
		if (s) {
			sqlite3_bind_int64(s, 1, now);
			sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE)
				out = STORE_ERROR;
			release(st, s);
		}
		if (out == STORE_OK)
			hist_insert(st, id, &h);
	}
	if (out == STORE_OK && exec(st, SQL_COMMIT) == SQLITE_OK) {
		atomic_fetch_add(&st->unfinished, 1);
	} else {
		exec(st, SQL_ROLLBACK);
		if (out == STORE_OK)
			out = STORE_ERROR;
	}
	pthread_mutex_unlock(&st->lock);
	return out;
}

enum store_result store_replay_matching(struct store *st, const struct store_query *q, bool dry_run,
					json_t *ids, int64_t *next_cursor)
{
	int64_t now = now_ms(), last = 0;
	struct store_hist h = { .step = "replay", .started_ms = now, .ended_ms = now };
	sqlite3_stmt *s;
	enum store_result out = STORE_OK;
	int n = 0, limit = q->limit > 0 ? q->limit : 100, rc;
	char (*found)[37] = calloc((size_t)limit, sizeof(*found));

	*next_cursor = 0;
	if (!found)
		return STORE_ERROR;
	pthread_mutex_lock(&st->lock);
	if (!dry_run && exec(st, SQL_BEGIN) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		free(found);
		return STORE_ERROR;
	}
	s = prep(st, "SELECT id, seq FROM events WHERE seq > ?1 AND state = ?2 "
		     "AND (?3 IS NULL OR handler = ?3) AND (?4 IS NULL OR process_type = ?4) "
		     "AND (?5 IS NULL OR resource_id = ?5) AND received_at >= ?6 ORDER BY seq LIMIT ?7");
	if (!s) {
		out = STORE_ERROR;
	} else {
		sqlite3_bind_int64(s, 1, q->after_seq);
		bind_text(s, 2, q->state);
		bind_text(s, 3, q->handler);
		bind_text(s, 4, q->process_type);
		bind_text(s, 5, q->resource_id);
		sqlite3_bind_int64(s, 6, q->since_ms);
		sqlite3_bind_int(s, 7, limit + 1);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (n == limit) {
				*next_cursor = last;
				break;
			}
			str_copy(found[n], (const char *)sqlite3_column_text(s, 0), sizeof(found[n]));
			last = sqlite3_column_int64(s, 1);
			n++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			out = STORE_ERROR;
		release(st, s);
	}
	for (int i = 0; i < n && out == STORE_OK && !dry_run; i++) {
		s = prep(st, SQL_REPLAY_ONE);
		if (!s) {
			out = STORE_ERROR;
			break;
		}
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_text(s, 2, found[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		release(st, s);
		if (rc != SQLITE_DONE || hist_insert(st, found[i], &h) != SQLITE_OK)
			out = map_rc(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
	}
	if (!dry_run) {
		if (out == STORE_OK && exec(st, SQL_COMMIT) == SQLITE_OK) {
			atomic_fetch_add(&st->unfinished, n);
		} else {
			exec(st, SQL_ROLLBACK);
			out = out == STORE_OK ? STORE_ERROR : out;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (out != STORE_OK) {
		log_db_error(st, "replay");
		*next_cursor = 0;
	}
	for (int i = 0; i < n && out == STORE_OK; i++)
		json_array_append_new(ids, json_string(found[i]));
	free(found);
	return out;
}

enum store_result store_mark(struct store *st, const char *id, unsigned flag)
{
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "UPDATE events SET flags = flags | ? WHERE id = ?");
	if (s) {
		sqlite3_bind_int(s, 1, (int)flag);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_DONE ? STORE_OK : map_rc(rc);
}

enum store_result store_progress(struct store *st, const char *id, json_t *progress)
{
	char *text = progress ? json_dumps(progress, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	sqlite3_stmt *s;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "UPDATE events SET progress = ? WHERE id = ? AND state = 'running'");
	if (s) {
		bind_text(s, 1, text);
		sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	free(text);
	return rc == SQLITE_DONE ? STORE_OK : map_rc(rc);
}

int store_prune(struct store *st, int64_t completed_before_ms, int64_t failed_before_ms)
{
	sqlite3_stmt *s;
	int n = -1;

	pthread_mutex_lock(&st->lock);
	exec(st, SQL_BEGIN);
	exec(st, "CREATE TEMP TABLE IF NOT EXISTS prune_ids(id TEXT PRIMARY KEY)");
	exec(st, "DELETE FROM prune_ids");
	s = prep(st, "INSERT INTO prune_ids SELECT id FROM events WHERE "
		     "(state='completed' AND finished_at < ?) OR (state='failed' AND finished_at < ?)");
	if (s) {
		sqlite3_bind_int64(s, 1, completed_before_ms);
		sqlite3_bind_int64(s, 2, failed_before_ms);
		if (sqlite3_step(s) == SQLITE_DONE)
			n = sqlite3_changes(st->db);
		release(st, s);
	}
	if (n > 0) {
		exec(st, "DELETE FROM history WHERE event_id IN (SELECT id FROM prune_ids)");
		exec(st, "DELETE FROM events WHERE id IN (SELECT id FROM prune_ids)");
	}
	if (exec(st, SQL_COMMIT) != SQLITE_OK) {
		exec(st, SQL_ROLLBACK);
		n = -1;
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

int store_stats(struct store *st, struct store_stats *out)
{
	sqlite3_stmt *s;
	struct stat sb;
	char wal[4096];

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT state, count(*) FROM events GROUP BY state");
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(s, 0);
		int64_t n = sqlite3_column_int64(s, 1);
		if (strcmp(state, ST_QUEUED) == 0)
			out->queued = n;
		else if (strcmp(state, ST_RUNNING) == 0)
			out->running = n;
		else if (strcmp(state, ST_RETRYING) == 0)
			out->retrying = n;
		else if (strcmp(state, ST_COMPLETED) == 0)
			out->completed = n;
		else if (strcmp(state, ST_FAILED) == 0)
			out->failed = n;
	}
	release(st, s);
	s = prep(st, "SELECT min(received_at) FROM (SELECT received_at FROM events WHERE state = 'queued' "
		     "UNION ALL SELECT received_at FROM events WHERE state = 'retrying')");
	if (s && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		out->oldest_runnable_ms = sqlite3_column_int64(s, 0);
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	if (stat(st->path, &sb) == 0)
		out->size_bytes = sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", st->path);
	if (stat(wal, &sb) == 0)
		out->size_bytes += sb.st_size;
	return 0;
}

int64_t store_unfinished(struct store *st)
{
	return atomic_load(&st->unfinished);
}

bool store_writable(struct store *st)
{
	int rc;

	/* A probe answers quickly: a short busy wait, not the writers' 5 s. */
	pthread_mutex_lock(&st->lock);
	sqlite3_busy_timeout(st->db, 200);
	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		exec(st, SQL_ROLLBACK);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_OK;
}
