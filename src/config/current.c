/* The running configuration, shared by every thread and swapped whole on
 * reload: a reference stays valid until its holder puts it back. */
#include "lqs-hookd/config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_ref *current;
static unsigned current_generation;

static void ref_drop_locked(struct config_ref *r)
{
	if (r && --r->refs == 0) {
		config_free(&r->cfg);
		free(r);
	}
}

void config_install(struct config *cfg)
{
	struct config_ref *r = calloc(1, sizeof(*r));

	if (!r)
		return;
	r->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	r->refs = 1;
	pthread_mutex_lock(&current_lock);
	r->generation = ++current_generation;
	ref_drop_locked(current);
	current = r;
	pthread_mutex_unlock(&current_lock);
}

struct config_ref *config_current(void)
{
	struct config_ref *r;

	pthread_mutex_lock(&current_lock);
	r = current;
	if (r)
		r->refs++;
	pthread_mutex_unlock(&current_lock);
	return r;
}

void config_put(struct config_ref *r)
{
	pthread_mutex_lock(&current_lock);
	ref_drop_locked(r);
	pthread_mutex_unlock(&current_lock);
}

void config_uninstall(void)
{
	pthread_mutex_lock(&current_lock);
	ref_drop_locked(current);
	current = NULL;
	pthread_mutex_unlock(&current_lock);
}
