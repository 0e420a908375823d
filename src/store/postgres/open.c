/* The PostgreSQL backend: the connection pool (with reconnection and
 * backoff), prepared statements and the small helpers the other files
 * share; opening (schema.c makes the schema current) and the ops table. */
#include "pg_int.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

static const struct store_ops pg_ops = {
	.name = "postgresql",
	.set_max_size = pg_set_max_size,
	.close = pg_close,
	.submit = pg_submit,
	.durable = pg_durable,
	.claim = pg_claim,
	.renew = pg_renew,
	.recover = pg_recover,
	.finish = pg_finish,
	.requeue = pg_requeue,
	.history_add = pg_history_add,
	.mark = pg_mark,
	.progress = pg_progress,
	.lock = pg_lock,
	.trylock = pg_trylock,
	.unlock = pg_unlock,
	.get = pg_get_event,
	.history_page = pg_history_page,
	.list = pg_list,
	.changes = pg_changes,
	.changes_head = pg_changes_head,
	.changes_notify = pg_changes_notify,
	.replay = pg_replay,
	.replay_matching = pg_replay_matching,
	.prune = pg_prune,
	.archive_pending = pg_archive_pending,
	.archive_mark = pg_archive_mark,
	.stats = pg_stats,
	.unfinished = pg_unfinished,
	.writable = pg_writable,
	.sweep_get = pg_sweep_get,
	.sweep_put = pg_sweep_put,
	.batches_close_due = pg_batches_close_due,
	.batch_get = pg_batch_get,
	.batches_list = pg_batches_list,
	.batches_open = pg_batches_open,
};


void pgp_text(struct pgp *p, const char *s)
{
	p->v[p->n++] = s && *s ? s : NULL;
}

void pgp_int(struct pgp *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

void pgp_null(struct pgp *p)
{
	p->v[p->n++] = NULL;
}

void pga_init(struct pga *a)
{
	buf_init(&a->b, 0);
	a->failed = buf_append(&a->b, "{", 1) != 0;
}

static void pga_next(struct pga *a)
{
	if (!a->failed && a->b.len > 1 && buf_append(&a->b, ",", 1) != 0)
		a->failed = true;
}

void pga_text(struct pga *a, const char *s)
{
	pga_next(a);
	if (!s || !*s) {
		a->failed |= buf_append_str(&a->b, "NULL") != 0;
		return;
	}
	/* quoted, with '"' and '\' escaped: any text is one element */
	a->failed |= buf_append(&a->b, "\"", 1) != 0;
	while (*s && !a->failed) {
		size_t k = strcspn(s, "\"\\");
		a->failed |= buf_append(&a->b, s, k) != 0;
		s += k;
		if (*s) {
			char esc[2] = { '\\', *s++ };
			a->failed |= buf_append(&a->b, esc, 2) != 0;
		}
	}
	a->failed |= buf_append(&a->b, "\"", 1) != 0;
}

void pga_int(struct pga *a, int64_t v)
{
	pga_next(a);
	a->failed |= buf_printf(&a->b, "%lld", (long long)v) != 0;
}

const char *pga_end(struct pga *a)
{
	a->failed |= buf_append(&a->b, "}", 1) != 0;
	return a->failed ? NULL : a->b.data;
}

void pga_free(struct pga *a)
{
	buf_free(&a->b);
}

/* Connect one connection, set up as every statement expects. */
PGconn *pg_connect(struct pgs *st, char *err, size_t errlen)
{
	const char *keys[] = { "dbname", "password", "application_name", "connect_timeout", "keepalives_idle",
			       "keepalives_interval", "keepalives_count", NULL };
	const char *vals[] = { st->conninfo, st->password, "lqs-hookd", "5", "15", "5", "3", NULL };
	PGconn *c;
	PGresult *r;

	if (!st->password) {
		keys[1] = "application_name";
		vals[1] = "lqs-hookd";
	}
	c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		/* libpq's message names the server, never the password */
		snprintf(err, errlen, "%s", c ? PQerrorMessage(c) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(c);
		return NULL;
	}
	/* 202 means committed: a COMMIT returns once the server has it on
	 * disk, whatever the server's default. Transactions that only keep
	 * the workers' books turn it off for themselves (pg_begin). */
	r = PQexec(c, "SET synchronous_commit = on; SET statement_timeout = '" PG_STATEMENT_TIMEOUT "'; "
		      "SET idle_in_transaction_session_timeout = '60s'");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	if (!st->target[0])
		snprintf(st->target, sizeof(st->target), "%s@%s/%s", PQuser(c), PQhost(c)[0] == '/' ? "(socket)" : PQhost(c),
			 PQdb(c));
	return c;
}

/* Under st->mu: make c a working connection, or fail fast during backoff. */
static bool ensure_connected(struct pgs *st, struct pgc *c)
{
	char err[512];
	int64_t now = mono_ms();

	if (c->c && PQstatus(c->c) == CONNECTION_OK) {
		/* an idle connection the server has closed (a restart, a
		 * terminated backend) says so on its socket: noticed here, it is
		 * replaced before a statement fails on it */
		struct pollfd pf = { .fd = PQsocket(c->c), .events = POLLIN };
		if (poll(&pf, 1, 0) > 0 && PQconsumeInput(c->c)) {
			PGnotify *n;
			while ((n = PQnotifies(c->c)) != NULL)
				PQfreemem(n);
		}
		if (PQstatus(c->c) == CONNECTION_OK && !(pf.revents & (POLLHUP | POLLERR)))
			return true;
	}
	if (now < st->retry_at)
		return false;
	if (c->c)
		PQfinish(c->c);
	c->c = NULL;
	c->n = 0;
	pthread_mutex_unlock(&st->mu);
	PGconn *nc = pg_connect(st, err, sizeof(err));
	pthread_mutex_lock(&st->mu);
	if (!nc) {
		st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : PG_RECONNECT_MIN_MS;
		if (st->backoff_ms > PG_RECONNECT_MAX_MS)
			st->backoff_ms = PG_RECONNECT_MAX_MS;
		st->retry_at = mono_ms() + st->backoff_ms;
		if (!st->down_logged)
			log_error("store: cannot reach PostgreSQL %s: %s (trying again, every %d s at most)", st->target,
				  err, PG_RECONNECT_MAX_MS / 1000);
		st->down_logged = true;
		return false;
	}
	if (st->down_logged)
		log_info("store: connected to PostgreSQL %s again", st->target);
	st->down_logged = false;
	st->backoff_ms = 0;
	st->retry_at = 0;
	c->c = nc;
	return true;
}

struct pgc *pg_get(struct pgs *st)
{
	struct pgc *c = NULL;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		for (int i = 0; i < st->n_pool && !c; i++)
			if (!st->pool[i].busy)
				c = &st->pool[i];
		if (c)
			break;
		pthread_cond_wait(&st->cv, &st->mu);
	}
	c->busy = true;
	if (!ensure_connected(st, c)) {
		c->busy = false;
		pthread_cond_signal(&st->cv);
		c = NULL;
	}
	pthread_mutex_unlock(&st->mu);
	return c;
}

void pg_put(struct pgs *st, struct pgc *c)
{
	if (!c)
		return;
	/* a connection left inside a transaction (a failure on the way, a
	 * read) is rolled back before anyone else uses it, and outside the
	 * pool's lock: a round trip there would hold up every pg_get */
	pg_rollback(st, c);
	pthread_mutex_lock(&st->mu);
	c->busy = false;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static int stmt_index(struct pgs *st, struct pgc *c, const char *sql)
{
	char name[16];
	PGresult *r;

	for (int i = 0; i < c->n; i++)
		if (c->sql[i] == sql)
			return i;
	if (c->n >= PG_STMTS)
		return -1;
	snprintf(name, sizeof(name), "s%d", c->n);
	r = PQprepare(c->c, name, sql, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		log_error("store: prepare: %s", PQerrorMessage(c->c));
		PQclear(r);
		(void)st;
		return -2;
	}
	PQclear(r);
	c->sql[c->n] = sql;
	return c->n++;
}

PGresult *pg_q(struct pgs *st, struct pgc *c, const char *sql, const struct pgp *p)
{
	int i = stmt_index(st, c, sql), n = p ? p->n : 0;
	const char *const *v = p ? p->v : NULL;
	PGresult *r;
	ExecStatusType s;

	if (i == -2)
		return NULL;
	if (i < 0) {
		r = PQexecParams(c->c, sql, n, NULL, v, NULL, NULL, 0);
	} else {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		r = PQexecPrepared(c->c, name, n, v, NULL, NULL, 0);
	}
	s = PQresultStatus(r);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return r;
	{
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		char line[160];
		str_copy(line, sql, sizeof(line));
		log_error("store: %s%s%s: %s", line, state ? " [" : "", state ? state : "",
			  PQerrorMessage(c->c)[0] ? PQerrorMessage(c->c) : "failed");
	}
	PQclear(r);
	return NULL;
}

enum store_result pg_do(struct pgs *st, struct pgc *c, const char *sql, const struct pgp *p)
{
	PGresult *r = pg_q(st, c, sql, p);

	if (!r)
		return pg_fail(c);
	PQclear(r);
	return STORE_OK;
}

enum store_result pg_run(struct pgs *st, const char *sql, const struct pgp *p)
{
	struct pgc *c = pg_get(st);
	enum store_result r;

	if (!c)
		return STORE_ERROR;
	r = pg_do(st, c, sql, p);
	pg_put(st, c);
	return r;
}

int64_t pg_changed(PGresult *r)
{
	const char *t = PQcmdTuples(r);
	int64_t v = 0;

	parse_i64(t, &v);
	return v;
}

enum store_result pg_fail(struct pgc *c)
{
	const char *m = c->c ? PQerrorMessage(c->c) : "";

	/* class 53: insufficient resources (53100: the disk is full) */
	if (strstr(m, "No space left") || strstr(m, "could not extend file"))
		return STORE_NOSPACE;
	return STORE_ERROR;
}

enum store_result pg_begin(struct pgs *st, struct pgc *c, bool synchronous)
{
	static const char begin_sync[] = "BEGIN";
	/* bookkeeping a crash may lose: an event claimed or finished again */
	static const char begin_async[] = "BEGIN; SET LOCAL synchronous_commit = off";
	PGresult *r = PQexec(c->c, synchronous ? begin_sync : begin_async);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok && PQstatus(c->c) == CONNECTION_BAD) {
		/* closed under us with nothing done yet: one new connection, at
		 * once (a terminated backend, a server restarted meanwhile) */
		char err[256];
		PGconn *nc = pg_connect(st, err, sizeof(err));
		if (nc) {
			PQfinish(c->c);
			c->c = nc;
			c->n = 0;
			PQclear(r);
			r = PQexec(c->c, synchronous ? begin_sync : begin_async);
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		}
	}
	if (!ok)
		log_error("store: BEGIN: %s", PQerrorMessage(c->c));
	PQclear(r);
	return ok ? STORE_OK : pg_fail(c);
}

enum store_result pg_commit(struct pgs *st, struct pgc *c)
{
	PGresult *r = PQexec(c->c, "COMMIT");
	/* a COMMIT of an aborted transaction answers ROLLBACK: not committed */
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;

	if (ok && c->wrote)
		pg_note_written(st);
	c->wrote = false;
	if (!ok)
		log_error("store: COMMIT: %s", PQerrorMessage(c->c)[0] ? PQerrorMessage(c->c) : "rolled back");
	PQclear(r);
	return ok ? STORE_OK : pg_fail(c);
}

void pg_rollback(struct pgs *st, struct pgc *c)
{
	PGresult *r;

	(void)st;
	c->wrote = false;
	if (!c->c || PQstatus(c->c) != CONNECTION_OK || PQtransactionStatus(c->c) == PQTRANS_IDLE)
		return;
	r = PQexec(c->c, "ROLLBACK");
	PQclear(r);
}

int64_t pg_int(PGresult *r, int row, int col)
{
	int64_t v = 0;

	if (!PQgetisnull(r, row, col))
		parse_i64(PQgetvalue(r, row, col), &v);
	return v;
}

const char *pg_str(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

bool pg_null_at(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

json_t *pg_json(PGresult *r, int row, int col)
{
	json_error_t jerr;
	json_t *v;

	if (PQgetisnull(r, row, col))
		return NULL;
	v = json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, &jerr);
	return v ? v : json_string(PQgetvalue(r, row, col));
}

int64_t pg_key(char ns, const char *a, const char *b)
{
	/* FNV-1a, 64 bits, over "ns|a|b" */
	uint64_t h = 1469598103934665603ULL;
	const char *parts[3] = { NULL, a, b };
	char n[2] = { ns, '\0' };

	parts[0] = n;
	for (int i = 0; i < 3; i++) {
		for (const char *s = parts[i]; s && *s; s++) {
			h ^= (unsigned char)*s;
			h *= 1099511628211ULL;
		}
		h ^= '|';
		h *= 1099511628211ULL;
	}
	return (int64_t)h;
}

static int cmp_key(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

enum store_result pg_xact_locks(struct pgs *st, struct pgc *c, int64_t *keys, size_t n)
{
	struct pgp p = { .n = 0 };
	struct pga arr;
	enum store_result r = STORE_ERROR;

	if (!n)
		return STORE_OK;
	qsort(keys, n, sizeof(*keys), cmp_key);
	pga_init(&arr);
	for (size_t i = 0; i < n; i++)
		if (!i || keys[i] != keys[i - 1])
			pga_int(&arr, keys[i]);
	if (pga_end(&arr)) {
		pgp_text(&p, arr.b.data);
		/* in array order: unnest yields its elements in order */
		r = pg_do(st, c, "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k", &p);
	}
	pga_free(&arr);
	return r;
}

int pg_hist_insert(struct pgs *st, struct pgc *c, const char *id, const struct store_hist *h)
{
	char *detail = h->detail ? json_dumps(h->detail, JSON_COMPACT) : NULL;
	struct pgp p = { .n = 0 };
	enum store_result r;

	pgp_text(&p, id);
	pgp_text(&p, h->step);
	pgp_int(&p, h->started_ms);
	if (h->ended_ms)
		pgp_int(&p, h->ended_ms);
	else
		pgp_null(&p);
	pgp_text(&p, detail);
	pgp_text(&p, h->error);
	r = pg_do(st, c, "INSERT INTO history(event_id, step, started_at, ended_at, detail, error) "
			 "VALUES ($1,$2,$3,$4,$5,$6)", &p);
	/* a statement of its own is committed now; in a transaction, the
	 * COMMIT tells */
	if (r == STORE_OK && PQtransactionStatus(c->c) == PQTRANS_IDLE)
		pg_note_written(st);
	else if (r == STORE_OK)
		c->wrote = true;
	free(detail);
	return r == STORE_OK ? 0 : -1;
}

void pg_count_unfinished(struct pgs *st, struct pgc *c, bool force)
{
	int64_t now = mono_ms();
	PGresult *r;

	if (!force && now - atomic_load(&st->counted_at) < PG_COUNT_EVERY_MS)
		return;
	r = pg_q(st, c, "SELECT (SELECT count(*) FROM events WHERE state = 'queued') + "
			"(SELECT count(*) FROM events WHERE state = 'running') + "
			"(SELECT count(*) FROM events WHERE state = 'retrying')", NULL);
	if (r && PQntuples(r) == 1) {
		atomic_store(&st->unfinished, pg_int(r, 0, 0));
		atomic_store(&st->counted_at, now);
	}
	PQclear(r);
}

int pg_store_open(struct store **out, const char *where, const struct store_conf *conf, char *err, size_t errlen)
{
	struct pgs *st = calloc(1, sizeof(*st));
	int n = conf && conf->connections > 0 ? conf->connections : STORE_DEFAULT_CONNECTIONS;

	if (!st) {
		str_copy(err, "out of memory", errlen);
		return -1;
	}
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	pthread_mutex_init(&st->lock_mu, NULL);
	pthread_mutex_init(&st->wake_mu, NULL);
	st->notify_fd = -1;
	keylocks_init(&st->keys);
	st->base.ops = &pg_ops;
	st->conninfo = strdup(where);
	st->password = conf && conf->password && *conf->password ? strdup(conf->password) : NULL;
	st->pool = calloc((size_t)n, sizeof(*st->pool));
	st->n_pool = n;
	if (!st->conninfo || !st->pool) {
		str_copy(err, "out of memory", errlen);
		pg_close(&st->base);
		return -1;
	}
	/* the first connection is made now, so a wrong address or password
	 * stops the start with libpq's reason */
	{
		char why[512];
		st->pool[0].c = pg_connect(st, why, sizeof(why));
		if (!st->pool[0].c) {
			snprintf(err, errlen, "cannot connect to the PostgreSQL store: %s", why);
			pg_close(&st->base);
			return -1;
		}
	}
	if (pg_prepare_schema(st, st->pool[0].c, err, errlen) != 0) {
		pg_close(&st->base);
		return -1;
	}
	pg_count_unfinished(st, &st->pool[0], true);
	pg_notify_start(st);
	*out = &st->base;
	return 0;
}

void pg_set_max_size(struct store *b, int64_t bytes)
{
	struct pgs *st = pg_of(b);

	atomic_store(&st->max_size, bytes);
	atomic_store(&st->sized_at, 0);
}

void pg_close(struct store *b)
{
	struct pgs *st = pg_of(b);

	pg_notify_stop(st);
	for (int i = 0; st->pool && i < st->n_pool; i++)
		if (st->pool[i].c)
			PQfinish(st->pool[i].c);
	if (st->lockc.c)
		PQfinish(st->lockc.c);
	free(st->pool);
	free(st->conninfo);
	if (st->password) {
		secure_zero(st->password, strlen(st->password));
		free(st->password);
	}
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->lock_mu);
	pthread_mutex_destroy(&st->wake_mu);
	keylocks_destroy(&st->keys);
	free(st);
}

int pg_durable(struct store *b)
{
	/* every acknowledging COMMIT was synchronous: nothing left to sync */
	(void)b;
	return 0;
}
