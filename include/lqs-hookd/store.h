/* Durable event store (SQLite, WAL, fsync per commit). Every query lives here. */
#ifndef LQS_STORE_H
#define LQS_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lqs-hookd/event.h"
#include "lqs-hookd/names.h"

struct store;

enum store_result {
	STORE_OK = 0,
	STORE_DUPLICATE,   /* enqueue: same delivery seen within the window */
	STORE_FULL,        /* enqueue: max_queued unfinished events already held */
	STORE_NOSPACE,     /* the disk is full */
	STORE_NOTFOUND,
	STORE_CONFLICT,    /* replay: event not in a replayable state */
	STORE_ERROR,
};

/* Results that answer "the event is in the store" (a new event, or the
 * first delivery of a duplicate): said only once a sync has covered it. */
static inline bool store_result_stored(enum store_result r)
{
	return r == STORE_OK || r == STORE_DUPLICATE;
}


/* Event flags (bits of struct store_claim.flags). */
#define EVENT_FLAG_REPLAYED 1u        /* an operator replayed it */
#define EVENT_FLAG_MARKED_FAILED 2u   /* its handler may have set the resource failed */

struct store_claim {
	char id[37];
	char resource_id[37];
	char handler[64];      /* "" when unrouted */
	int attempt;           /* number of this attempt, from 1 */
	int64_t claimed_ms;    /* when the attempt started */
	unsigned flags;        /* EVENT_FLAG_* */
	json_t *event;         /* the canonical event; caller decrefs */
};

struct store_hist {
	const char *step;
	int64_t started_ms, ended_ms;
	json_t *detail;        /* borrowed; may be NULL */
	const char *error;     /* may be NULL */
};

int store_open(struct store **out, const char *path, char *err, size_t errlen);
/* Cap the store file's size (0: no cap); beyond it writes fail as NOSPACE. */
void store_set_max_size(struct store *st, int64_t bytes);
void store_close(struct store *st);

/* Make events whose attempt was cut short by a crash runnable again.
 * Returns how many were recovered, or -1. */
int store_recover(struct store *st);

/* One event of a batch: ev, handler (NULL: unrouted) and body (the
 * canonical JSON, store_event_body()) in; id and result out. */
struct store_item {
	const struct event *ev;
	const char *handler;
	char *body;
	char id[37];
	enum store_result result;
};
char *store_event_body(const struct event *ev);
/* Store many events in one transaction, fsynced once (group commit). Each
 * item gets STORE_OK, STORE_DUPLICATE (id = the first delivery), STORE_FULL,
 * or, when the transaction could not commit or sync, the failure for all. */
void store_enqueue_batch(struct store *st, struct store_item *items, size_t n, int64_t dedupe_ms,
			 int64_t max_queued);
/* The same, committed but not yet synced: nothing may be acknowledged
 * until a store_sync() that began after this returned has succeeded. */
void store_enqueue_batch_nosync(struct store *st, struct store_item *items, size_t n, int64_t dedupe_ms,
				int64_t max_queued);
/* Make every commit made so far durable (syncs the write-ahead log); 0 on
 * success. Safe to call from any thread, without the store lock. */
int store_sync(struct store *st);

/* Store an event durably. handler may be NULL (unrouted). dedupe_ms 0
 * disables duplicate detection. id_out receives the new event's id, or the
 * first delivery's id for STORE_DUPLICATE. */
enum store_result store_enqueue(struct store *st, const struct event *ev, const char *handler,
				int64_t dedupe_ms, int64_t max_queued, char id_out[37]);

/* Claim the oldest runnable event whose resource has no running event.
 * Returns 1 with *c filled, 0 when none is due (*next_due_ms gets the
 * earliest future run time, or 0), -1 on error. */
int store_claim(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms);
void store_claim_release(struct store_claim *c);

/* End an attempt. state is ST_COMPLETED, ST_FAILED or ST_RETRYING (then
 * next_run_ms is when). hist rows (the attempt's own row first) are written
 * in the same transaction. */
enum store_result store_finish(struct store *st, const char *id, const char *state, json_t *result,
			       const char *error, int64_t next_run_ms, const struct store_hist *hist,
			       size_t n_hist);
/* The same, and in the same commit claim the caller's next event (as
 * store_claim: *claimed is 1, 0 with *next_due_ms, or -1). When the outcome
 * cannot be written, nothing is claimed. */
enum store_result store_finish_claim(struct store *st, const char *id, const char *state, json_t *result,
				     const char *error, int64_t next_run_ms, const struct store_hist *hist,
				     size_t n_hist, struct store_claim *next, int *claimed, int64_t *next_due_ms);
/* Put a running event back as runnable (drain on shutdown). */
enum store_result store_requeue(struct store *st, const char *id, int64_t claimed_ms, const char *why);
enum store_result store_history_add(struct store *st, const char *id, const struct store_hist *h);

/* Status documents (NULL: not found). */
json_t *store_get(struct store *st, const char *id);
/* Every history step of an event (NULL: not found). */
json_t *store_history(struct store *st, const char *id);
/* One page of it: up to limit steps after the cursor (0: from the start,
 * which begins with the "received" step); *next_cursor is 0 on the last
 * page. STORE_OK, STORE_NOTFOUND or STORE_ERROR. */
enum store_result store_history_page(struct store *st, const char *id, int64_t after_seq, int limit,
				     json_t **steps, int64_t *next_cursor);
/* Set flags on an event (EVENT_FLAG_*). */
enum store_result store_mark(struct store *st, const char *id, unsigned flag);
/* The running attempt's progress (shown by store_get until the next attempt). */
enum store_result store_progress(struct store *st, const char *id, json_t *progress);

struct store_query {
	const char *state;         /* NULL: any */
	const char *process_type;  /* NULL: any */
	const char *resource_id;   /* NULL: any */
	const char *handler;       /* NULL: any */
	int64_t since_ms;          /* 0: any */
	int64_t after_seq;         /* cursor; 0: from the start */
	int limit;
};
json_t *store_list(struct store *st, const struct store_query *q);

/* Replay a finished event from scratch (attempts reset, history kept). */
enum store_result store_replay(struct store *st, const char *id);
/* Replay every event matching q (q->state must be completed or failed),
 * in seq order, at most q->limit; their ids are appended to ids. With
 * dry_run nothing changes. *next_cursor: 0 when nothing more matches, else
 * the cursor (after_seq) for the next call. */
enum store_result store_replay_matching(struct store *st, const struct store_query *q, bool dry_run,
					json_t *ids, int64_t *next_cursor);
/* Delete finished events older than the cut-offs. Returns rows deleted or -1. */
int store_prune(struct store *st, int64_t completed_before_ms, int64_t failed_before_ms);

/* Figures for metrics and readiness. */
struct store_stats {
	int64_t queued, running, retrying, completed, failed;
	int64_t oldest_runnable_ms;   /* received_at of the oldest runnable, 0 if none */
	int64_t size_bytes;
};
int store_stats(struct store *st, struct store_stats *out);
/* Unfinished events (kept in memory; cheap). */
int64_t store_unfinished(struct store *st);
/* Is the store writable right now? */
bool store_writable(struct store *st);

#endif
