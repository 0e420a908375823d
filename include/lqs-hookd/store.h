/* The durable event store: one interface, backends behind an ops table (as
 * curl keeps its TLS backends). SQLite (src/store/sqlite/) is the embedded
 * default; callers never see which backend they talk to.
 *
 * What every backend guarantees:
 * - store_submit() writes a set of jobs; they are acknowledged only after a
 *   store_durable() that began after it returned has succeeded (SQLite: the
 *   WAL sync; a server database: its COMMIT, so durable is a no-op there).
 * - A claim has an owner and a lease that the owner renews; an event whose
 *   lease expired is runnable again (crash recovery, and failover between
 *   daemons sharing a store). Events of one resource never run at once.
 * - A database error is STORE_ERROR (or STORE_NOSPACE), never "not found". */
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
	STORE_DUPLICATE,   /* submit: same delivery seen within the window */
	STORE_FULL,        /* submit: max_queued unfinished events already held */
	STORE_NOSPACE,     /* the disk is full */
	STORE_NOTFOUND,
	STORE_CONFLICT,    /* replay: event not in a replayable state */
	STORE_ERROR,
};

/* Results that answer "the event is in the store" (a new event, or the
 * first delivery of a duplicate): said only once durable. */
static inline bool store_result_stored(enum store_result r)
{
	return r == STORE_OK || r == STORE_DUPLICATE;
}

/* Event flags (bits of struct store_claim.flags). */
#define EVENT_FLAG_REPLAYED 1u        /* an operator replayed it */
#define EVENT_FLAG_MARKED_FAILED 2u   /* its handler may have set the resource failed */

/* ---- opening ---- */

/* What a server database needs besides its address. */
struct store_conf {
	const char *password;   /* NULL: from the address, ~/.pgpass or PGPASSWORD */
	int connections;        /* connections this daemon opens at most (0: the default) */
};
#define STORE_DEFAULT_CONNECTIONS 8
/* Whether where names a PostgreSQL database (a postgresql:// or
 * postgres:// URI, or libpq's key=value form) rather than a SQLite path. */
bool store_is_postgres(const char *where);
/* where, fit for a log: any password in it replaced by "***". */
void store_redact(const char *where, char *out, size_t n);
/* where: a path selects SQLite, a PostgreSQL address PostgreSQL. */
int store_open(struct store **out, const char *where, char *err, size_t errlen);
int store_open_conf(struct store **out, const char *where, const struct store_conf *conf, char *err, size_t errlen);
/* Cap the store's size (0: no cap); beyond it writes fail as NOSPACE. */
void store_set_max_size(struct store *st, int64_t bytes);
void store_close(struct store *st);
/* Which backend serves it ("sqlite"). */
const char *store_backend(const struct store *st);

/* ---- intake: jobs in, durably ---- */

/* An object event to store, with the batch it goes to (objects.h has the
 * record). The source decides which watch and batch; the store keeps the
 * batch and closes it, in the same transaction as the object that makes
 * it close, with its trigger event. */
struct object_rec;
struct store_object {
	const struct object_rec *rec;
	const char *format;       /* s3, eventbridge, sns */
	const char *watch;        /* NULL: it matched no watch (stored, not routed) */
	const char *prefix;       /* its batch's path in the bucket ("" the root, else ends in /) */
	bool marker;              /* closes its batch at once, and is not one of its objects */
	const char *trigger;      /* the handler of the batch's trigger event (NULL: none) */
	int64_t count;            /* close at this many objects (0: never) */
	int64_t quiet_ms;         /* close after so long without a new object (0: never) */
	int64_t max_age_ms;       /* close so long after the first object (0: never) */
	/* out */
	char batch_id[37];        /* the batch it joined or closed ("" none) */
	char trigger_id[37];      /* the trigger event, when it closed its batch */
};

/* One job: ev, handler (NULL: unrouted, stored finished) and body (the
 * canonical JSON, store_event_body()) in; id and result out. Or, with obj
 * set (ev, handler and body unused), an object event: id is its object
 * id, STORE_DUPLICATE when the same notification was stored before. */
struct store_item {
	struct store_object *obj;
	const struct event *ev;
	const char *handler;
	char *body;
	/* NULL: a hook delivery (a duplicate is the same delivery within the
	 * dedupe window). "sweep:NAME": found by a sweep; a duplicate of any
	 * event of the same resource and state that is unfinished, failed (a
	 * dead letter waits for a replay) or received within recent_ms. */
	const char *source;
	int64_t recent_ms;
	char id[37];
	enum store_result result;
};
char *store_event_body(const struct event *ev);

struct store_limits {
	int64_t dedupe_ms;    /* a repeat within this is a duplicate (0: off) */
	int64_t max_queued;   /* unfinished events held at most (0: no limit) */
};
/* Write jobs in one transaction. Each gets STORE_OK, STORE_DUPLICATE (id =
 * the first delivery) or STORE_FULL; when the transaction fails, that
 * failure for all. Nothing may be acknowledged before store_durable(). */
void store_submit(struct store *st, struct store_item *items, size_t n, const struct store_limits *lim);
/* Make every submit so far durable; 0 on success. Any thread, any time. */
int store_durable(struct store *st);
/* store_submit + store_durable, for one caller alone (tests, tools). */
void store_submit_durable(struct store *st, struct store_item *items, size_t n, const struct store_limits *lim);

/* ---- work: claims, leases, outcomes ---- */

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

/* How long a claim holds an event unless renewed (store_renew). */
void store_set_lease(struct store *st, int64_t lease_ms);
/* This daemon's name as the owner of its claims. */
const char *store_owner(const struct store *st);
/* Claim the oldest runnable event whose resource has no running event (a
 * running event whose lease expired counts as runnable). Returns 1 with *c
 * filled, 0 when none is due (*next_due_ms: the earliest future run time,
 * or 0), -1 on error. */
int store_claim(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms);
void store_claim_release(struct store_claim *c);
/* Extend the lease of every event this owner holds. Returns how many. */
int store_renew(struct store *st);
/* Make runnable the events whose lease has expired (an owner that died).
 * Returns how many, or -1. */
int store_recover(struct store *st);

/* How an attempt ended. */
struct store_outcome {
	const char *id;
	const char *state;       /* ST_COMPLETED, ST_FAILED or ST_RETRYING */
	json_t *result;          /* may be NULL */
	const char *error;       /* may be NULL */
	int64_t next_run_ms;     /* ST_RETRYING: when */
	const struct store_hist *hist;   /* the attempt's rows, written with it */
	size_t n_hist;
};
/* Write the outcome (only while this owner holds the event: otherwise
 * STORE_CONFLICT, and the event stays as its new holder has it); with next,
 * the same commit claims the caller's next event (*claimed as store_claim,
 * *next_due_ms). When the outcome cannot be written, nothing is claimed. */
enum store_result store_finish(struct store *st, const struct store_outcome *o, struct store_claim *next,
			       int *claimed, int64_t *next_due_ms);
/* Give a running event back, runnable, not counted as an attempt. */
enum store_result store_requeue(struct store *st, const char *id, int64_t claimed_ms, const char *why);
enum store_result store_history_add(struct store *st, const char *id, const struct store_hist *h);
/* Set flags on an event (EVENT_FLAG_*). */
enum store_result store_mark(struct store *st, const char *id, unsigned flag);
/* The running attempt's progress (shown until the next attempt starts). */
enum store_result store_progress(struct store *st, const char *id, json_t *progress);

/* Advisory locks by key (a log id): one holder at a time among all the
 * daemons on the store. store_lock waits. */
void store_lock(struct store *st, const char *key);
/* The same without waiting: false when another holds it (or the store
 * cannot be reached). */
bool store_trylock(struct store *st, const char *key);
void store_unlock(struct store *st, const char *key);

/* ---- views: what the API renders ---- */

struct store_event {
	int64_t seq;
	char id[37];
	int64_t received_ms, updated_ms, finished_ms;   /* finished: 0 if not */
	json_t *event;          /* the canonical event (owned) */
	char handler[64];       /* "" when unrouted */
	char state[16];
	int attempts;
	int64_t next_run_ms;
	json_t *result;         /* owned; NULL when none */
	char *error;            /* owned; NULL when none */
	json_t *progress;       /* owned; NULL when none */
	unsigned flags;
	char source[80];        /* "" : a hook delivery; "sweep:NAME" */
};
void store_event_clear(struct store_event *e);

struct store_step {
	char step[32];
	int64_t started_ms, ended_ms;   /* ended 0: open */
	json_t *detail;         /* owned; NULL when none */
	char *error;            /* owned; NULL when none */
};
void store_steps_free(struct store_step *s, size_t n);
/* store_event_clear each of n events, then free the array. */
void store_events_free(struct store_event *e, size_t n);

/* event_json.c: the status document of an event and one history step, as
 * GET /events/{id} and its history serve them (new references). */
json_t *store_event_json(const struct store_event *e);
json_t *store_step_json(const struct store_step *h);

/* One event: STORE_OK, STORE_NOTFOUND or STORE_ERROR. */
enum store_result store_get(struct store *st, const char *id, struct store_event *out);
/* Up to limit history steps after the cursor (0: from the start, which
 * begins with the "received" step); *next_cursor 0 on the last page. */
enum store_result store_history_page(struct store *st, const char *id, int64_t after_seq, int limit,
				     struct store_step **steps, size_t *n, int64_t *next_cursor);

struct store_query {
	const char *state;         /* NULL: any */
	const char *process_type;  /* NULL: any */
	const char *resource_id;   /* NULL: any */
	const char *handler;       /* NULL: any */
	int64_t since_ms;          /* 0: any */
	int64_t after_seq;         /* cursor; 0: from the start */
	int limit;
};
/* Events in seq order; *next_cursor 0 on the last page. */
enum store_result store_list(struct store *st, const struct store_query *q, struct store_event **rows, size_t *n,
			     int64_t *next_cursor);

/* ---- the change feed: what changed, in order (a stream, an archive) ---- */

/* A place in the feed: past received events, past history steps, past
 * opened batches. */
struct store_cursor {
	int64_t received, steps, batches;
	/* A server database orders each source by writing transaction, then
	 * seq (its seqs are taken before commit, so not in commit order); 0 in
	 * SQLite, whose writers take turns. */
	int64_t received_tx, steps_tx, batches_tx;
};
/* Is a before b in any source? */
bool store_cursor_behind(const struct store_cursor *a, const struct store_cursor *b);
/* Move a up to b in every source where it is behind. */
void store_cursor_catch_up(struct store_cursor *a, const struct store_cursor *b);

struct store_change {
	struct store_cursor cursor;   /* pass back to get what follows */
	char event_id[37];      /* batch_opened: the batch's id */
	/* "received", a history step (started, attempt, outcome, replay,
	 * recovered, requeued, lqs_call), or "batch_opened" */
	char what[32];
	int64_t at_ms;
	/* the event's (batch_opened: watch, prefix, "batch", the batch's state) */
	char handler[64];
	char resource_id[1024];
	char process_type[16];
	char event_state[16];   /* its state now */
	char step_state[16];    /* outcome: the state it led to; batch_opened: the bucket */
	int attempt;            /* started, attempt, outcome: its number (0: none) */
	char error[512];        /* the step's error, cut */
};
/* Changes after the cursor (zeros: from the start), oldest first, at most
 * max. It costs the write path nothing: it reads what is stored anyway. */
enum store_result store_changes(struct store *st, const struct store_cursor *after, struct store_change *out,
				size_t max, size_t *n);
/* The feed's end now: a cursor past everything stored. */
enum store_result store_changes_head(struct store *st, struct store_cursor *head);
/* Be told of changes instead of reading on a timer: wake(arg, true) is
 * called (from a thread of the store's) whenever any daemon sharing the
 * store may have added some, and once as soon as that works;
 * wake(arg, false) while it does not (read on a timer meanwhile). A wake
 * can come before its changes are readable (an older transaction still
 * open): read again shortly after one. wake NULL: no more calls after
 * this returns. -1: the store cannot tell (SQLite: one daemon writes). */
int store_changes_notify(struct store *st, void (*wake)(void *arg, bool live), void *arg);

/* ---- sweeps: when each last ran, shared by every daemon on the store ---- */

struct store_sweep {
	char name[64];
	int64_t started_ms;     /* the last run began (0: never ran) */
	int64_t finished_ms;    /* and ended (0: still running, or interrupted) */
	int64_t found, enqueued, duplicates;   /* what the last finished run did */
	int64_t runs, errors;   /* runs finished, and those that failed, ever */
	char error[512];        /* the last run's error ("" : it succeeded) */
	char owner[128];        /* the daemon that ran it */
};
enum store_result store_sweep_get(struct store *st, const char *name, struct store_sweep *out);
/* Write (insert or replace) the record, durably. */
enum store_result store_sweep_put(struct store *st, const struct store_sweep *s);

/* ---- batches of objects ---- */

/* A batch a timer closed. */
struct store_closed {
	char batch_id[37];
	char reason[16];          /* quiet or max_age */
	char trigger_id[37];
};
/* Close up to max open batches whose quiet or max_age time has come (each
 * with its trigger event, in one transaction). Returns how many closed
 * (closed[0..n)), or -1; *next_due_ms: when the next one is due (0: none
 * open with a timer; now or before: more are due). */
int store_batches_close_due(struct store *st, int64_t now, struct store_closed *closed, int max,
			    int64_t *next_due_ms);

struct store_batch {
	char id[37];
	char watch[64];
	char bucket[64];
	char *prefix;             /* owned */
	char state[8];            /* open, closed */
	int64_t opened_ms, last_object_ms, closed_ms, due_ms;   /* 0: not (yet) */
	int64_t objects;
	char reason[16];          /* count, quiet, max_age, marker ("" while open) */
	char trigger_event_id[37];
	json_t *keys;             /* store_batch_get only: [{key, size, etag, version_id, kind, received_at}] */
};
void store_batch_clear(struct store_batch *b);
enum store_result store_batch_get(struct store *st, const char *id, struct store_batch *out);
/* Batches (state NULL: any) in seq order after the cursor. */
enum store_result store_batches_list(struct store *st, const char *state, int64_t after_seq, int limit,
				     struct store_batch **rows, size_t *n, int64_t *next_cursor);
/* Open batches now (cheap: for a gauge). */
int64_t store_batches_open(struct store *st);

/* ---- administration ---- */

/* Replay a finished event from scratch (attempts reset, history kept). */
enum store_result store_replay(struct store *st, const char *id);
/* Replay every event matching q (q->state: completed or failed), in seq
 * order, at most q->limit; ids appended to ids. With dry_run nothing
 * changes. *next_cursor: 0 when nothing more matches. */
enum store_result store_replay_matching(struct store *st, const struct store_query *q, bool dry_run,
					json_t *ids, int64_t *next_cursor);
/* Delete finished events older than the cut-offs. Returns rows deleted or -1. */
/* With archived_only, an event not yet in the archive is kept whatever its
 * age (store_archive_mark). */
int store_prune(struct store *st, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only);

/* ---- the archive's side ---- */

/* Finished events not archived since they last finished, oldest finish
 * first, at most limit; free each with store_event_clear, then the array. */
enum store_result store_archive_pending(struct store *st, int limit, struct store_event **rows, size_t *n);
/* They are in the archive (durably): each id with the finish it was
 * archived at; one finished again since (a replay) stays pending. */
enum store_result store_archive_mark(struct store *st, char (*ids)[37], const int64_t *finished_ms, size_t n,
				     int64_t now_ms);

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
