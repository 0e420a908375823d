/* Inside the worker pool: what one attempt needs from it. */
#ifndef LQS_WORK_INT_H
#define LQS_WORK_INT_H
#include <stdatomic.h>
#include <stdint.h>

#include "lqs-hookd/lqs.h"
#include "lqs-hookd/store.h"

struct attempt_env {
	struct store *st;
	atomic_bool *abort_calls;   /* shutdown: LogQS calls end early */
};

/* Run one claimed event: its handler, its outcome (with its history) and
 * its log line. When next is non-NULL, the commit that records this outcome
 * also claims the worker's next event (*got_next as in store_claim), saving
 * a commit per event. *client is the worker's LogQS client, renewed when
 * the configuration's generation changes. */
void attempt_one(const struct attempt_env *env, struct lqs_client **client, unsigned *client_gen,
		 struct store_claim *c, unsigned *seed, struct store_claim *next, int *got_next, int64_t *next_due);

#endif
