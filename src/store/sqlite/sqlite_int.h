/* Inside the SQLite backend: what its files share. */
#ifndef LQS_STORE_SQLITE_INT_H
#define LQS_STORE_SQLITE_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "../backend.h"

/* How long a write waits for another process holding the database (an
 * operator's sqlite3 shell, a backup) before it fails. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* Prepared statements are kept for reuse, keyed by the address of their
 * SQL literal: preparing costs more than running most of them. */
#define STMT_CACHE 64

/* A worker's outcome waiting to be written (see sq_finish). */
struct finish_req {
	const struct store_outcome *o;
	char *result;                /* o->result as text */
	enum store_result out;
	bool done;
	bool lost;                   /* the event was no longer this owner's */
	struct store_claim *claim;   /* non-NULL: also claim the caller's next event */
	int claimed;
	int64_t next_due_ms;
	struct finish_req *next;
};

/* One connection guarded by one mutex: SQLite serialises writers anyway,
 * and a single connection keeps the per-resource claim check atomic. An
 * SQLite store belongs to one daemon at a time (a file lock says so), so
 * its advisory locks live in this process. */
struct sq {
	struct store base;
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
	int lock_fd;                 /* holds the store's flock */
	/* the WAL file, synced by sq_durable() outside st->lock */
	pthread_mutex_t sync_mu;
	int wal_fd;
	dev_t wal_dev;
	ino_t wal_ino;
	struct { const char *sql; sqlite3_stmt *s; } cache[STMT_CACHE];
	int n_cache;
	/* advisory locks */
	struct keylocks keys;
};

static inline struct sq *sq_of(struct store *b)
{
	return (struct sq *)(void *)b;
}

/* The statements run on every event go through the statement cache. */
extern const char SQL_BEGIN[], SQL_COMMIT[], SQL_ROLLBACK[];

/* open.c: helpers every file uses. */
enum store_result sq_map_rc(int rc);
void sq_log_db_error(struct sq *st, const char *what);
int sq_exec_text(struct sq *st, const char *sql);
int sq_exec(struct sq *st, const char *sql);
sqlite3_stmt *sq_prep(struct sq *st, const char *sql);
void sq_release(struct sq *st, sqlite3_stmt *s);
void sq_bind_text(sqlite3_stmt *s, int i, const char *v);
int64_t sq_scalar(struct sq *st, const char *sql);
int sq_hist_insert(struct sq *st, const char *id, const struct store_hist *h);

/* The operations, by file. */
void sq_set_max_size(struct store *b, int64_t bytes);
void sq_close(struct store *b);
/* submit.c */
void sq_submit(struct store *b, struct store_item *items, size_t n, const struct store_limits *lim);
int sq_durable(struct store *b);
/* work.c */
int sq_claim_locked(struct sq *st, int64_t now, struct store_claim *c, int64_t *next_due_ms);
int sq_claim(struct store *b, int64_t now, struct store_claim *c, int64_t *next_due_ms);
int sq_renew(struct store *b);
int sq_recover(struct store *b);
enum store_result sq_finish(struct store *b, const struct store_outcome *o, struct store_claim *next,
			    int *claimed, int64_t *next_due_ms);
enum store_result sq_requeue(struct store *b, const char *id, int64_t claimed_ms, const char *why);
enum store_result sq_history_add(struct store *b, const char *id, const struct store_hist *h);
enum store_result sq_mark(struct store *b, const char *id, unsigned flag);
enum store_result sq_progress(struct store *b, const char *id, json_t *progress);
void sq_lock(struct store *b, const char *key);
bool sq_trylock(struct store *b, const char *key);
void sq_unlock(struct store *b, const char *key);
/* views.c */
enum store_result sq_get(struct store *b, const char *id, struct store_event *out);
enum store_result sq_history_page(struct store *b, const char *id, int64_t after_seq, int limit,
				  struct store_step **steps, size_t *n, int64_t *next_cursor);
enum store_result sq_list(struct store *b, const struct store_query *q, struct store_event **rows, size_t *n,
			  int64_t *next_cursor);
enum store_result sq_changes_head(struct store *b, struct store_cursor *head);
enum store_result sq_changes(struct store *b, const struct store_cursor *after, struct store_change *out, size_t max,
			     size_t *n);
/* admin.c */
enum store_result sq_replay(struct store *b, const char *id);
enum store_result sq_replay_matching(struct store *b, const struct store_query *q, bool dry_run, json_t *ids,
				     int64_t *next_cursor);
int sq_prune(struct store *b, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only);
enum store_result sq_archive_pending(struct store *b, int limit, struct store_event **rows, size_t *n);
enum store_result sq_archive_mark(struct store *b, char (*ids)[37], const int64_t *finished_ms, size_t n,
				  int64_t now_ms);
int sq_stats(struct store *b, struct store_stats *out);
int64_t sq_unfinished(struct store *b);
bool sq_writable(struct store *b);
/* objects.c */
enum store_result sq_object_put(struct sq *st, struct store_item *it, int64_t now, int64_t *added);
int sq_batches_close_due(struct store *b, int64_t now, struct store_closed *closed, int max, int64_t *next_due_ms);
enum store_result sq_batch_get(struct store *b, const char *id, struct store_batch *out);
enum store_result sq_batches_list(struct store *b, const char *state, int64_t after_seq, int limit,
				  struct store_batch **rows, size_t *n, int64_t *next_cursor);
int64_t sq_batches_open(struct store *b);
/* sweeps.c */
enum store_result sq_sweep_get(struct store *b, const char *name, struct store_sweep *out);
enum store_result sq_sweep_put(struct store *b, const struct store_sweep *s);

#endif
