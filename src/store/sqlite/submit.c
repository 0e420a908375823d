/* Intake's side of the store: jobs written in one transaction (with the
 * duplicate rule and the queue limit), then made durable by one sync of
 * the write-ahead log, outside the store lock. */
#include "sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* Whether the prepared, bound query finds an earlier event: then
 * STORE_DUPLICATE with its id in it->id. */
static enum store_result held_already(struct sq *st, sqlite3_stmt *s, struct store_item *it)
{
	enum store_result r = STORE_OK;

	if (!s)
		return STORE_ERROR;
	if (sqlite3_step(s) == SQLITE_ROW) {
		str_copy(it->id, (const char *)sqlite3_column_text(s, 0), sizeof(it->id));
		r = STORE_DUPLICATE;
	}
	sq_release(st, s);
	return r;
}

/* One item of a batch, inside the open transaction. */
static enum store_result enqueue_one(struct sq *st, struct store_item *it, int64_t now, int64_t dedupe_ms,
				     int64_t max_queued, int64_t *added)
{
	char key[200], *result = NULL;
	sqlite3_stmt *s;
	enum store_result r;
	int rc;

	store_dedupe_key(it->ev, key, sizeof(key));
	if (it->source) {
		/* found by a sweep: LogQS may have sent its hook after all, or an
		 * earlier run found it; what matters is the resource in that state */
		s = sq_prep(st, "SELECT id FROM events INDEXED BY events_resource WHERE resource_id=? AND "
			     "process_type=? AND current_state=? AND (state IN ('queued','running','retrying','failed') "
			     "OR received_at>=?) ORDER BY seq DESC LIMIT 1");
		if (s) {
			sqlite3_bind_text(s, 1, it->ev->resource_id, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, it->ev->process_type, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, it->ev->current_state, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, now - it->recent_ms);
		}
		if ((r = held_already(st, s, it)) != STORE_OK)
			return r;
	} else if (dedupe_ms > 0) {
		/* sees this batch's own inserts: same connection, same transaction */
		s = sq_prep(st, "SELECT id FROM events INDEXED BY events_resource WHERE resource_id=? AND received_at>=? "
			     "AND dedupe_key=? ORDER BY seq LIMIT 1");
		if (s) {
			sqlite3_bind_text(s, 1, it->ev->resource_id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, now - dedupe_ms);
			sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
		}
		if ((r = held_already(st, s, it)) != STORE_OK)
			return r;
	}
	if (max_queued > 0 && atomic_load(&st->unfinished) + *added >= max_queued)
		return STORE_FULL;
	uuid_new(it->id);
	/* No route: nothing to run, so the event is stored finished, in the
	 * same commit, and never costs a worker a round trip. */
	if (!it->handler && !(result = store_not_routed_text(it->ev->process_type, it->ev->current_state)))
		return STORE_ERROR;
	s = sq_prep(st, "INSERT INTO events(id, received_at, updated_at, process_type, current_state, "
		     "resource_id, dedupe_key, body, handler, state, result, finished_at, source) "
		     "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
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
	sq_bind_text(s, 9, it->handler);
	sqlite3_bind_text(s, 10, it->handler ? ST_QUEUED : ST_COMPLETED, -1, SQLITE_STATIC);
	sq_bind_text(s, 11, result);
	if (it->handler)
		sqlite3_bind_null(s, 12);
	else
		sqlite3_bind_int64(s, 12, now);
	sq_bind_text(s, 13, it->source);
	rc = sqlite3_step(s);
	sq_release(st, s);
	free(result);
	if (rc != SQLITE_DONE) {
		sq_log_db_error(st, "enqueue");
		return sq_map_rc(rc);
	}
	if (!it->handler)
		return STORE_OK;   /* finished already: not counted as unfinished */
	(*added)++;
	return STORE_OK;
}

void sq_submit(struct store *b, struct store_item *items, size_t n, const struct store_limits *lim)
{
	struct sq *st = sq_of(b);
	int64_t dedupe_ms = lim ? lim->dedupe_ms : 0, max_queued = lim ? lim->max_queued : 0;
	int64_t now = now_ms(), added = 0;
	enum store_result failure = STORE_OK;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = sq_exec(st, SQL_BEGIN);
	if (rc != SQLITE_OK)
		failure = sq_map_rc(rc);
	for (size_t i = 0; i < n; i++) {
		if (failure != STORE_OK) {
			items[i].result = failure;
			continue;
		}
		if (items[i].obj)
			items[i].result = sq_object_put(st, &items[i], now, &added);
		else
			items[i].result = items[i].body ? enqueue_one(st, &items[i], now, dedupe_ms, max_queued, &added)
							 : STORE_ERROR;
		if (items[i].result == STORE_NOSPACE || items[i].result == STORE_ERROR)
			failure = items[i].result;
	}
	if (failure == STORE_OK) {
		rc = sq_exec(st, SQL_COMMIT);
		if (rc != SQLITE_OK)
			failure = sq_map_rc(rc);
	}
	if (failure != STORE_OK) {
		/* all or nothing: no 202 for an event that is not in the store */
		sq_exec(st, SQL_ROLLBACK);
		for (size_t i = 0; i < n; i++)
			if (store_result_stored(items[i].result))
				items[i].result = failure;
		added = 0;
	}
	atomic_fetch_add(&st->unfinished, added);
	pthread_mutex_unlock(&st->lock);
}


/* Open (or, if the file was replaced, reopen) the WAL for syncing. Under
 * sync_mu. The WAL exists from the first commit on and keeps its inode
 * while the store is open; the check costs one stat. */
static int wal_fd_locked(struct sq *st)
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
	if (st->wal_fd >= 0 && fsync_parent_dir(st->path) != 0) {
		log_error("store: cannot sync the store's directory: %s", strerror(errno));
		close(st->wal_fd);
		st->wal_fd = -1;
	}
	return st->wal_fd;
}

int sq_durable(struct store *b)
{
	struct sq *st = sq_of(b);
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
