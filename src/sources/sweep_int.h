/* Inside the sweeper: one run, apart from its scheduling. */
#ifndef LQS_SWEEP_INT_H
#define LQS_SWEEP_INT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct intake;
struct sweep_cfg;

/* What one run did. */
struct sweep_outcome {
	int64_t listed;       /* resources LogQS listed in that state */
	int64_t found;        /* of those, old enough (at most max_per_run) */
	int64_t enqueued;     /* new events stored */
	int64_t duplicates;   /* already held: a hook came, or an earlier run */
	int64_t lqs_calls;
	bool truncated;       /* max_per_run reached: the rest next time */
	int auth_status;      /* 401 or 403 when LogQS refused the key, else 0 */
	char error_kind[16];  /* "" , "lqs", "auth", "store", "queue_full" */
	char error[800];      /* "" when the run succeeded */
	json_t *events;       /* [{resource_id, event_id, new}] */
};

/* One run of sweep s now: list, then enqueue through the intake (waiting
 * until every event is durable). abort ends its LogQS calls early. */
void sweep_run(struct intake *in, const struct config *cfg, const struct sweep_cfg *s, const atomic_bool *abort,
	       struct sweep_outcome *out);

#endif
