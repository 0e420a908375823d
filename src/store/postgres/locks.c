/* Advisory locks shared by every daemon on the database: PostgreSQL's
 * session advisory locks, held on one connection of their own (so that a
 * daemon that dies lets go of them with its connection). Two workers of one
 * daemon wanting the same key wait in this process first: a session may
 * take the same lock twice, which would let both through. */
#include "pg_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* How often a lock another daemon holds is asked for again. */
#define PG_LOCK_POLL_MS 100

/* 1: taken; 0: another daemon holds it; -1: the database cannot be reached. */
static int cluster_try(struct pgs *st, const char *key, const char *fn)
{
	char sql[96], err[512];
	PGresult *r;
	int got = -1;

	pthread_mutex_lock(&st->lock_mu);
	if (!st->lockc.c || PQstatus(st->lockc.c) != CONNECTION_OK) {
		if (st->lockc.c) {
			PQfinish(st->lockc.c);
			log_error("store: the connection holding this daemon's advisory locks was lost; "
				  "locks held then may be taken by another daemon");
		}
		st->lockc.c = pg_connect(st, err, sizeof(err));
	}
	if (st->lockc.c) {
		const char *v[1];
		char k[24];
		snprintf(k, sizeof(k), "%lld", (long long)pg_key('l', key, NULL));
		v[0] = k;
		snprintf(sql, sizeof(sql), "SELECT %s($1::bigint)", fn);
		r = PQexecParams(st->lockc.c, sql, 1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
	}
	pthread_mutex_unlock(&st->lock_mu);
	return got;
}

void pg_lock(struct store *b, const char *key)
{
	struct pgs *st = pg_of(b);
	bool said = false;

	keylocks_take(&st->keys, key, true);
	for (;;) {
		int got = cluster_try(st, key, "pg_try_advisory_lock");
		struct timespec ts = { 0, PG_LOCK_POLL_MS * 1000000L };
		if (got == 1)
			break;
		if (got < 0 && !said) {
			log_error("store: cannot take lock '%s': the database cannot be reached; waiting", key);
			said = true;
		}
		nanosleep(&ts, NULL);
	}
}

bool pg_trylock(struct store *b, const char *key)
{
	struct pgs *st = pg_of(b);

	if (!keylocks_take(&st->keys, key, false))
		return false;
	if (cluster_try(st, key, "pg_try_advisory_lock") == 1)
		return true;
	keylocks_release(&st->keys, key);
	return false;
}

void pg_unlock(struct store *b, const char *key)
{
	struct pgs *st = pg_of(b);

	/* a lost connection let go of it already */
	cluster_try(st, key, "pg_advisory_unlock");
	keylocks_release(&st->keys, key);
}
