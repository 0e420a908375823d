/* What a store backend provides: every operation of store.h, by pointer.
 * A backend's store struct begins with struct store, whose ops it sets. */
#ifndef LQS_STORE_BACKEND_H
#define LQS_STORE_BACKEND_H
#include <pthread.h>

#include "lqs-hookd/store.h"

struct store_ops {
	const char *name;
	void (*set_max_size)(struct store *st, int64_t bytes);
	void (*close)(struct store *st);
	void (*submit)(struct store *st, struct store_item *items, size_t n, const struct store_limits *lim);
	int (*durable)(struct store *st);
	int (*claim)(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms);
	int (*renew)(struct store *st);
	int (*recover)(struct store *st);
	enum store_result (*finish)(struct store *st, const struct store_outcome *o, struct store_claim *next,
				    int *claimed, int64_t *next_due_ms);
	enum store_result (*requeue)(struct store *st, const char *id, int64_t claimed_ms, const char *why);
	enum store_result (*history_add)(struct store *st, const char *id, const struct store_hist *h);
	enum store_result (*mark)(struct store *st, const char *id, unsigned flag);
	enum store_result (*progress)(struct store *st, const char *id, json_t *progress);
	void (*lock)(struct store *st, const char *key);
	bool (*trylock)(struct store *st, const char *key);
	void (*unlock)(struct store *st, const char *key);
	enum store_result (*get)(struct store *st, const char *id, struct store_event *out);
	enum store_result (*history_page)(struct store *st, const char *id, int64_t after_seq, int limit,
					  struct store_step **steps, size_t *n, int64_t *next_cursor);
	enum store_result (*list)(struct store *st, const struct store_query *q, struct store_event **rows,
				  size_t *n, int64_t *next_cursor);
	enum store_result (*changes)(struct store *st, const struct store_cursor *after, struct store_change *out,
				     size_t max, size_t *n);
	enum store_result (*changes_head)(struct store *st, struct store_cursor *head);
	/* optional (NULL: the caller reads the feed on a timer) */
	int (*changes_notify)(struct store *st, void (*wake)(void *arg, bool live), void *arg);
	enum store_result (*replay)(struct store *st, const char *id);
	enum store_result (*replay_matching)(struct store *st, const struct store_query *q, bool dry_run, json_t *ids,
					     int64_t *next_cursor);
	int (*prune)(struct store *st, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only);
	enum store_result (*archive_pending)(struct store *st, int limit, struct store_event **rows, size_t *n);
	enum store_result (*archive_mark)(struct store *st, char (*ids)[37], const int64_t *finished_ms, size_t n,
					  int64_t now_ms);
	int (*stats)(struct store *st, struct store_stats *out);
	int64_t (*unfinished)(struct store *st);
	bool (*writable)(struct store *st);
	enum store_result (*sweep_get)(struct store *st, const char *name, struct store_sweep *out);
	enum store_result (*sweep_put)(struct store *st, const struct store_sweep *s);
	int (*batches_close_due)(struct store *st, int64_t now, struct store_closed *closed, int max,
				 int64_t *next_due_ms);
	enum store_result (*batch_get)(struct store *st, const char *id, struct store_batch *out);
	enum store_result (*batches_list)(struct store *st, const char *state, int64_t after_seq, int limit,
					  struct store_batch **rows, size_t *n, int64_t *next_cursor);
	int64_t (*batches_open)(struct store *st);
};

struct store {
	const struct store_ops *ops;
	int64_t lease_ms;
	char owner[128];
};

/* What every backend shares. */
/* Keys held in this process (keylocks.c): one holder per key. */
#define KEYLOCKS_MAX 512
struct keylocks {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char held[KEYLOCKS_MAX][64];
	int n;
};
void keylocks_init(struct keylocks *k);
void keylocks_destroy(struct keylocks *k);
/* Take key; with wait, until its holder lets go (false: held, not waiting). */
bool keylocks_take(struct keylocks *k, const char *key, bool wait);
void keylocks_release(struct keylocks *k, const char *key);
/* The LogQS delivery a duplicate is recognised by: the same hook, type,
 * resource and transition. */
void store_dedupe_key(const struct event *ev, char *out, size_t n);
/* The result an event without a route is stored with (finished at once),
 * as JSON text; NULL: out of memory. The caller frees. */
char *store_not_routed_text(const char *process_type, const char *current_state);
/* Set the figure of state to n (from a count by state). */
void store_stats_add(struct store_stats *out, const char *state, int64_t n);

/* The SQLite backend (a path). */
int sqlite_store_open(struct store **out, const char *path, char *err, size_t errlen);
/* The PostgreSQL backend (a libpq connection URI or key=value string). */
int pg_store_open(struct store **out, const char *where, const struct store_conf *conf, char *err, size_t errlen);

#endif
