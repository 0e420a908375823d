/* Inside the PostgreSQL backend: what its files share.
 *
 * Several daemons may share one database, so nothing here may assume it is
 * alone: claims take rows with FOR UPDATE SKIP LOCKED and a transaction
 * advisory lock per resource; intake takes transaction advisory locks on
 * what makes a duplicate (and on a batch) before it looks; the change feed
 * is ordered by (transaction id, seq) and shows only what every earlier
 * transaction has settled. Leases run on the database server's clock. */
#ifndef LQS_STORE_PG_INT_H
#define LQS_STORE_PG_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <libpq-fe.h>

#include "../backend.h"
#include "lqs-hookd/buf.h"

/* Statements prepared on one connection (by the address of their SQL). */
#define PG_STMTS 96
/* The first wait before connecting again after a failure; it doubles. */
#define PG_RECONNECT_MIN_MS 100
#define PG_RECONNECT_MAX_MS 5000
/* How stale the shared count of unfinished events may be. */
#define PG_COUNT_EVERY_MS 250
/* At most one change notification a daemon sends in this time. */
#define PG_NOTIFY_EVERY_MS 20
/* A statement never runs longer (a stuck server does not hold a worker). */
#define PG_STATEMENT_TIMEOUT "30s"

/* The database server's clock, in ms since the epoch (leases use it, so
 * daemons on hosts whose clocks differ still agree on expiry). */
#define PG_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

struct pgc {
	PGconn *c;
	bool busy;
	const char *sql[PG_STMTS];   /* prepared as "s<i>" */
	int n;
	/* its transaction wrote rows the change feed shows: its COMMIT is
	 * followed by a notification (others' commits are not) */
	bool wrote;
};

struct pgs {
	struct store base;
	char *conninfo;          /* as configured (may hold a password: never logged) */
	char *password;          /* from the password setting (file, credential), or NULL */
	char target[256];        /* what the logs call it: user@host/db */
	struct pgc *pool;
	int n_pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* connecting again after a failure: not before this (ms, monotonic) */
	int64_t retry_at, backoff_ms;
	bool down_logged;
	/* the connection holding this daemon's session advisory locks */
	pthread_mutex_t lock_mu;
	struct pgc lockc;
	struct keylocks keys;     /* first taken in this process */
	/* unfinished events in the whole database: counted every
	 * PG_COUNT_EVERY_MS, plus what this daemon added since */
	_Atomic int64_t unfinished;
	_Atomic int64_t counted_at;
	_Atomic int64_t max_size;
	_Atomic int64_t size_bytes;
	_Atomic int64_t sized_at;
	/* the first recovery looks for this host's earlier runs too */
	atomic_bool recovered_once;
	/* change notifications (notify.c) */
	pthread_t notify_thread;
	bool notify_started;
	int notify_fd;              /* eventfd: wakes the thread */
	atomic_bool notify_stop;
	atomic_bool written;        /* committed since the last NOTIFY */
	atomic_bool retell;         /* a new subscriber waits to hear the state */
	pthread_mutex_t wake_mu;
	void (*wake)(void *arg, bool live);
	void *wake_arg;
};

static inline struct pgs *pg_of(struct store *b)
{
	return (struct pgs *)(void *)b;
}

/* Parameters, as text (NULL: SQL NULL). */
struct pgp {
	const char *v[20];
	char num[20][24];
	int n;
};
void pgp_text(struct pgp *p, const char *s);   /* "" is NULL too */
void pgp_int(struct pgp *p, int64_t v);
void pgp_null(struct pgp *p);

/* A PostgreSQL array literal ("{...}") built element by element, so that
 * one statement takes a column of values for a whole batch. */
struct pga {
	struct buf b;
	bool failed;
};
void pga_init(struct pga *a);
void pga_text(struct pga *a, const char *s);   /* NULL or "": NULL */
void pga_int(struct pga *a, int64_t v);
/* The literal (NULL: out of memory); pga_free after. */
const char *pga_end(struct pga *a);
void pga_free(struct pga *a);

/* open.c: the pool and statements. */
/* A new connection, set up as every statement expects (NULL: err says why). */
PGconn *pg_connect(struct pgs *st, char *err, size_t errlen);
struct pgc *pg_get(struct pgs *st);   /* NULL: the database cannot be reached now */
void pg_put(struct pgs *st, struct pgc *c);
/* Run a statement (prepared once per connection); NULL when it failed
 * (said in the log). The caller PQclear()s. */
PGresult *pg_q(struct pgs *st, struct pgc *c, const char *sql, const struct pgp *p);
/* pg_q for statements whose rows are not wanted: 0, or the failure. */
enum store_result pg_do(struct pgs *st, struct pgc *c, const char *sql, const struct pgp *p);
/* pg_do on a connection of its own, taken from the pool and given back. */
enum store_result pg_run(struct pgs *st, const char *sql, const struct pgp *p);
/* Rows a statement changed. */
int64_t pg_changed(PGresult *r);
/* What the last failure on c means for the caller. */
enum store_result pg_fail(struct pgc *c);
enum store_result pg_begin(struct pgs *st, struct pgc *c, bool synchronous);
enum store_result pg_commit(struct pgs *st, struct pgc *c);
void pg_rollback(struct pgs *st, struct pgc *c);
int64_t pg_int(PGresult *r, int row, int col);   /* NULL: 0 */
const char *pg_str(PGresult *r, int row, int col);   /* NULL: "" */
bool pg_null_at(PGresult *r, int row, int col);
json_t *pg_json(PGresult *r, int row, int col);   /* NULL: NULL */
/* A 64-bit advisory lock key for a text (one namespace per letter). */
int64_t pg_key(char ns, const char *a, const char *b);
/* Take transaction advisory locks on keys (sorted here: two intakes never
 * wait on each other in a circle). */
enum store_result pg_xact_locks(struct pgs *st, struct pgc *c, int64_t *keys, size_t n);
int pg_hist_insert(struct pgs *st, struct pgc *c, const char *id, const struct store_hist *h);
/* The shared count of unfinished events, taken again when stale. */
void pg_count_unfinished(struct pgs *st, struct pgc *c, bool force);

/* schema.c: create the schema, or bring it up to date (one daemon at a
 * time); -1 with err when it cannot, or the database's is newer. */
int pg_prepare_schema(struct pgs *st, PGconn *c, char *err, size_t errlen);

/* notify.c: the thread that sends and hears change notifications. */
void pg_notify_start(struct pgs *st);
void pg_notify_stop(struct pgs *st);
/* Something a status stream shows was committed: a NOTIFY follows. */
void pg_note_written(struct pgs *st);

/* The operations, by file. */
void pg_set_max_size(struct store *b, int64_t bytes);
void pg_close(struct store *b);
/* submit.c */
void pg_submit(struct store *b, struct store_item *items, size_t n, const struct store_limits *lim);
int pg_durable(struct store *b);
/* work.c */
int pg_claim_in(struct pgs *st, struct pgc *c, int64_t now, struct store_claim *cl, int64_t *next_due_ms);
int pg_claim(struct store *b, int64_t now, struct store_claim *c, int64_t *next_due_ms);
int pg_renew(struct store *b);
int pg_recover(struct store *b);
enum store_result pg_finish(struct store *b, const struct store_outcome *o, struct store_claim *next,
			    int *claimed, int64_t *next_due_ms);
enum store_result pg_requeue(struct store *b, const char *id, int64_t claimed_ms, const char *why);
enum store_result pg_history_add(struct store *b, const char *id, const struct store_hist *h);
enum store_result pg_mark(struct store *b, const char *id, unsigned flag);
enum store_result pg_progress(struct store *b, const char *id, json_t *progress);
/* locks.c */
void pg_lock(struct store *b, const char *key);
bool pg_trylock(struct store *b, const char *key);
void pg_unlock(struct store *b, const char *key);
/* views.c */
enum store_result pg_get_event(struct store *b, const char *id, struct store_event *out);
enum store_result pg_history_page(struct store *b, const char *id, int64_t after_seq, int limit,
				  struct store_step **steps, size_t *n, int64_t *next_cursor);
enum store_result pg_list(struct store *b, const struct store_query *q, struct store_event **rows, size_t *n,
			  int64_t *next_cursor);
enum store_result pg_archive_pending(struct store *b, int limit, struct store_event **rows, size_t *n);
enum store_result pg_archive_mark(struct store *b, char (*ids)[37], const int64_t *finished_ms, size_t n,
				  int64_t now_ms);
/* feed.c, notify.c */
int pg_changes_notify(struct store *b, void (*wake)(void *arg, bool live), void *arg);
enum store_result pg_changes_head(struct store *b, struct store_cursor *head);
enum store_result pg_changes(struct store *b, const struct store_cursor *after, struct store_change *out, size_t max,
			     size_t *n);
/* admin.c */
enum store_result pg_replay(struct store *b, const char *id);
enum store_result pg_replay_matching(struct store *b, const struct store_query *q, bool dry_run, json_t *ids,
				     int64_t *next_cursor);
int pg_prune(struct store *b, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only);
int pg_stats(struct store *b, struct store_stats *out);
int64_t pg_unfinished(struct store *b);
bool pg_writable(struct store *b);
enum store_result pg_sweep_get(struct store *b, const char *name, struct store_sweep *out);
enum store_result pg_sweep_put(struct store *b, const struct store_sweep *s);
/* objects.c */
enum store_result pg_object_put(struct pgs *st, struct pgc *c, struct store_item *it, int64_t now, int64_t *added);
void pg_object_keys(struct store_item *it, int64_t *keys, size_t *n);
int pg_batches_close_due(struct store *b, int64_t now, struct store_closed *closed, int max, int64_t *next_due_ms);
enum store_result pg_batch_get(struct store *b, const char *id, struct store_batch *out);
enum store_result pg_batches_list(struct store *b, const char *state, int64_t after_seq, int limit,
				  struct store_batch **rows, size_t *n, int64_t *next_cursor);
int64_t pg_batches_open(struct store *b);

#endif
