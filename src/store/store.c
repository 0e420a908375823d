/* The store's front: picks a backend, and passes each call to it. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lqs-hookd/util.h"

/* A claim lasts this long unless renewed (store_set_lease). */
#define STORE_DEFAULT_LEASE_MS 30000

bool store_is_postgres(const char *where)
{
	return strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0 ||
	       (strchr(where, '=') && !strchr(where, '/')) || strncmp(where, "host=", 5) == 0 ||
	       strncmp(where, "dbname=", 7) == 0 || strncmp(where, "service=", 8) == 0;
}

void store_redact(const char *where, char *out, size_t n)
{
	char *scheme, *at, *colon, *pw, rest[512];

	str_copy(out, where, n);
	scheme = strstr(out, "://");
	if (scheme && (at = strchr(scheme + 3, '@')) != NULL &&
	    (colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3))) != NULL) {
		/* postgresql://user:password@host/db */
		str_copy(rest, at, sizeof(rest));
		snprintf(colon + 1, n - (size_t)(colon + 1 - out), "***%s", rest);
	}
	/* the key=value form, or ?password= in a URI */
	for (char *p = out; (pw = strstr(p, "password=")) != NULL; p = pw + 9) {
		char *v = pw + 9, *end = v + strcspn(v, " &");
		if ((pw > out && !strchr(" ?&", pw[-1])) || end == v || strncmp(v, "***", 3) == 0)
			continue;
		str_copy(rest, end, sizeof(rest));
		snprintf(v, n - (size_t)(v - out), "***%s", rest);
	}
}

int store_open(struct store **out, const char *where, char *err, size_t errlen)
{
	return store_open_conf(out, where, NULL, err, errlen);
}

int store_open_conf(struct store **out, const char *where, const struct store_conf *conf, char *err, size_t errlen)
{
	char host[64] = "host";
	char rnd[37];
	int rc;

	*out = NULL;
	rc = store_is_postgres(where) ? pg_store_open(out, where, conf, err, errlen)
				      : sqlite_store_open(out, where, err, errlen);
	if (rc != 0)
		return rc;
	(*out)->lease_ms = STORE_DEFAULT_LEASE_MS;
	/* host, process and a random part: a restarted daemon is a new owner */
	gethostname(host, sizeof(host) - 1);
	uuid_new(rnd);
	snprintf((*out)->owner, sizeof((*out)->owner), "%s:%ld:%.8s", host, (long)getpid(), rnd + 28);
	return 0;
}

const char *store_backend(const struct store *st)
{
	return st->ops->name;
}

void store_set_lease(struct store *st, int64_t lease_ms)
{
	st->lease_ms = lease_ms;
}

const char *store_owner(const struct store *st)
{
	return st->owner;
}

void store_dedupe_key(const struct event *ev, char *out, size_t n)
{
	snprintf(out, n, "%s|%s|%s|%s|%s", ev->hook_id, ev->process_type, ev->resource_id, ev->previous_state,
		 ev->current_state);
}

char *store_not_routed_text(const char *process_type, const char *current_state)
{
	json_t *res = event_not_routed(process_type, current_state);
	char *text = res ? json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(res);
	return text;
}

void store_stats_add(struct store_stats *out, const char *state, int64_t n)
{
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

char *store_event_body(const struct event *ev)
{
	json_t *doc = event_to_json(ev);
	char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(doc);
	return body;
}

void store_submit_durable(struct store *st, struct store_item *items, size_t n, const struct store_limits *lim)
{
	bool stored = false;

	store_submit(st, items, n, lim);
	for (size_t i = 0; i < n; i++)
		stored |= store_result_stored(items[i].result);
	if (stored && store_durable(st) != 0)
		for (size_t i = 0; i < n; i++)
			if (store_result_stored(items[i].result))
				items[i].result = STORE_ERROR;
}

void store_event_clear(struct store_event *e)
{
	json_decref(e->event);
	json_decref(e->result);
	json_decref(e->progress);
	free(e->error);
	memset(e, 0, sizeof(*e));
}

void store_events_free(struct store_event *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		store_event_clear(&e[i]);
	free(e);
}

void store_steps_free(struct store_step *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++) {
		json_decref(s[i].detail);
		free(s[i].error);
	}
	free(s);
}

void store_claim_release(struct store_claim *c)
{
	json_decref(c->event);
	c->event = NULL;
}

void store_set_max_size(struct store *st, int64_t bytes) { st->ops->set_max_size(st, bytes); }
void store_close(struct store *st) { if (st) st->ops->close(st); }
void store_submit(struct store *st, struct store_item *items, size_t n, const struct store_limits *lim)
{
	st->ops->submit(st, items, n, lim);
}
int store_durable(struct store *st) { return st->ops->durable(st); }
int store_claim(struct store *st, int64_t now, struct store_claim *c, int64_t *next_due_ms)
{
	return st->ops->claim(st, now, c, next_due_ms);
}
int store_renew(struct store *st) { return st->ops->renew(st); }
int store_recover(struct store *st) { return st->ops->recover(st); }
enum store_result store_finish(struct store *st, const struct store_outcome *o, struct store_claim *next,
			       int *claimed, int64_t *next_due_ms)
{
	return st->ops->finish(st, o, next, claimed, next_due_ms);
}
enum store_result store_requeue(struct store *st, const char *id, int64_t claimed_ms, const char *why)
{
	return st->ops->requeue(st, id, claimed_ms, why);
}
enum store_result store_history_add(struct store *st, const char *id, const struct store_hist *h)
{
	return st->ops->history_add(st, id, h);
}
enum store_result store_mark(struct store *st, const char *id, unsigned flag) { return st->ops->mark(st, id, flag); }
enum store_result store_progress(struct store *st, const char *id, json_t *progress)
{
	return st->ops->progress(st, id, progress);
}
void store_lock(struct store *st, const char *key) { st->ops->lock(st, key); }
bool store_trylock(struct store *st, const char *key) { return st->ops->trylock(st, key); }
void store_unlock(struct store *st, const char *key) { st->ops->unlock(st, key); }
enum store_result store_get(struct store *st, const char *id, struct store_event *out)
{
	memset(out, 0, sizeof(*out));
	return st->ops->get(st, id, out);
}
enum store_result store_history_page(struct store *st, const char *id, int64_t after_seq, int limit,
				     struct store_step **steps, size_t *n, int64_t *next_cursor)
{
	*steps = NULL;
	*n = 0;
	*next_cursor = 0;
	return st->ops->history_page(st, id, after_seq, limit, steps, n, next_cursor);
}
enum store_result store_list(struct store *st, const struct store_query *q, struct store_event **rows, size_t *n,
			     int64_t *next_cursor)
{
	*rows = NULL;
	*n = 0;
	*next_cursor = 0;
	return st->ops->list(st, q, rows, n, next_cursor);
}
enum store_result store_changes(struct store *st, const struct store_cursor *after, struct store_change *out,
				size_t max, size_t *n)
{
	*n = 0;
	return st->ops->changes(st, after, out, max, n);
}
/* (tx, seq) order within each source */
static bool pos_before(int64_t atx, int64_t a, int64_t btx, int64_t b)
{
	return atx < btx || (atx == btx && a < b);
}

bool store_cursor_behind(const struct store_cursor *a, const struct store_cursor *b)
{
	return pos_before(a->received_tx, a->received, b->received_tx, b->received) ||
	       pos_before(a->steps_tx, a->steps, b->steps_tx, b->steps) ||
	       pos_before(a->batches_tx, a->batches, b->batches_tx, b->batches);
}

void store_cursor_catch_up(struct store_cursor *a, const struct store_cursor *b)
{
	if (pos_before(a->received_tx, a->received, b->received_tx, b->received)) {
		a->received_tx = b->received_tx;
		a->received = b->received;
	}
	if (pos_before(a->steps_tx, a->steps, b->steps_tx, b->steps)) {
		a->steps_tx = b->steps_tx;
		a->steps = b->steps;
	}
	if (pos_before(a->batches_tx, a->batches, b->batches_tx, b->batches)) {
		a->batches_tx = b->batches_tx;
		a->batches = b->batches;
	}
}

enum store_result store_changes_head(struct store *st, struct store_cursor *head)
{
	memset(head, 0, sizeof(*head));
	return st->ops->changes_head(st, head);
}
int store_changes_notify(struct store *st, void (*wake)(void *arg, bool live), void *arg)
{
	return st->ops->changes_notify ? st->ops->changes_notify(st, wake, arg) : -1;
}
enum store_result store_replay(struct store *st, const char *id) { return st->ops->replay(st, id); }
enum store_result store_replay_matching(struct store *st, const struct store_query *q, bool dry_run,
					json_t *ids, int64_t *next_cursor)
{
	*next_cursor = 0;
	return st->ops->replay_matching(st, q, dry_run, ids, next_cursor);
}
int store_prune(struct store *st, int64_t completed_before_ms, int64_t failed_before_ms, bool archived_only)
{
	return st->ops->prune(st, completed_before_ms, failed_before_ms, archived_only);
}
enum store_result store_archive_pending(struct store *st, int limit, struct store_event **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	return st->ops->archive_pending(st, limit, rows, n);
}
enum store_result store_archive_mark(struct store *st, char (*ids)[37], const int64_t *finished_ms, size_t n,
				     int64_t now_ms)
{
	return n ? st->ops->archive_mark(st, ids, finished_ms, n, now_ms) : STORE_OK;
}
int store_stats(struct store *st, struct store_stats *out) { return st->ops->stats(st, out); }
int64_t store_unfinished(struct store *st) { return st->ops->unfinished(st); }
bool store_writable(struct store *st) { return st->ops->writable(st); }
enum store_result store_sweep_get(struct store *st, const char *name, struct store_sweep *out)
{
	return st->ops->sweep_get(st, name, out);
}
enum store_result store_sweep_put(struct store *st, const struct store_sweep *s)
{
	return st->ops->sweep_put(st, s);
}
int store_batches_close_due(struct store *st, int64_t now, struct store_closed *closed, int max,
			    int64_t *next_due_ms)
{
	*next_due_ms = 0;
	return st->ops->batches_close_due(st, now, closed, max, next_due_ms);
}
void store_batch_clear(struct store_batch *b)
{
	free(b->prefix);
	json_decref(b->keys);
	memset(b, 0, sizeof(*b));
}
enum store_result store_batch_get(struct store *st, const char *id, struct store_batch *out)
{
	memset(out, 0, sizeof(*out));
	return st->ops->batch_get(st, id, out);
}
enum store_result store_batches_list(struct store *st, const char *state, int64_t after_seq, int limit,
				     struct store_batch **rows, size_t *n, int64_t *next_cursor)
{
	*rows = NULL;
	*n = 0;
	*next_cursor = 0;
	return st->ops->batches_list(st, state, after_seq, limit, rows, n, next_cursor);
}
int64_t store_batches_open(struct store *st) { return st->ops->batches_open(st); }
