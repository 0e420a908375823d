/* Keys held in this process, one holder per key: the SQLite store's
 * advisory locks, and the first step of the PostgreSQL store's (a session
 * may take its own lock twice, so two workers of one daemon wait here).
 * Few keys are held at once (one per worker at most): a small array
 * scanned under one mutex is enough. */
#include "backend.h"

#include <string.h>

#include "lqs-hookd/util.h"

void keylocks_init(struct keylocks *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
}

void keylocks_destroy(struct keylocks *k)
{
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
}

static int held_at(const struct keylocks *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->held[i], key) == 0)
			return i;
	return -1;
}

bool keylocks_take(struct keylocks *k, const char *key, bool wait)
{
	bool got;

	pthread_mutex_lock(&k->mu);
	while (wait && (held_at(k, key) >= 0 || k->n >= KEYLOCKS_MAX))
		pthread_cond_wait(&k->cv, &k->mu);
	got = held_at(k, key) < 0 && k->n < KEYLOCKS_MAX;
	if (got)
		str_copy(k->held[k->n++], key, sizeof(k->held[0]));
	pthread_mutex_unlock(&k->mu);
	return got;
}

void keylocks_release(struct keylocks *k, const char *key)
{
	int i;

	pthread_mutex_lock(&k->mu);
	i = held_at(k, key);
	if (i >= 0) {
		memcpy(k->held[i], k->held[k->n - 1], sizeof(k->held[0]));
		k->n--;
	}
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
}
