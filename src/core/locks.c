#include "lqs-hookd/locks.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/util.h"

/* Few keys are held at once (at most one per worker), so a small array
 * scanned under one mutex is simpler and faster than a hash table. */
#define LOCKS_MAX 512

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char held[LOCKS_MAX][64];
static int n_held;

static int find(const char *key)
{
	for (int i = 0; i < n_held; i++)
		if (strcmp(held[i], key) == 0)
			return i;
	return -1;
}

void locks_acquire(const char *key)
{
	pthread_mutex_lock(&mu);
	while (find(key) >= 0 || n_held >= LOCKS_MAX)
		pthread_cond_wait(&cv, &mu);
	str_copy(held[n_held++], key, sizeof(held[0]));
	pthread_mutex_unlock(&mu);
}

void locks_release(const char *key)
{
	int i;

	pthread_mutex_lock(&mu);
	i = find(key);
	if (i >= 0) {
		memcpy(held[i], held[n_held - 1], sizeof(held[0]));
		n_held--;
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}
