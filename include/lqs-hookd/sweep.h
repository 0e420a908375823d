/* Sweeps: a scheduled look at LogQS for resources left in a state (a
 * digestion in `finalizing` whose hook delivery never came). Each run lists
 * them, and stores the event a hook would have sent for each one old enough,
 * through the intake, so that the usual duplicate rule, retries, history,
 * dead letters and replay apply. One thread runs every sweep; a run's
 * record is in the store, so a restart neither repeats nor forgets one. */
#ifndef LQS_SWEEP_H
#define LQS_SWEEP_H
#include <stdbool.h>

#include <jansson.h>

struct intake;
struct store;
struct sweeper;

struct sweeper *sweeper_start(struct store *st, struct intake *in);
/* The configuration changed (reload): look at the sweeps again. */
void sweeper_kick(struct sweeper *sw);
/* End the run under way (its LogQS calls give up), answer every waiting
 * request, end the thread; later requests are refused. Before the intake
 * stops. NULL is fine. */
void sweeper_stop(struct sweeper *sw);
/* Stop, then free (once no request can reach it). */
void sweeper_free(struct sweeper *sw);

/* A run asked for now (POST /sweeps/NAME/run, `sweep NAME --now`). done()
 * runs on the sweeper's thread once status and report are set. */
struct sweep_request {
	char name[64];
	void (*done)(struct sweep_request *r);
	void *ctx;
	unsigned status;      /* 200 ran (see report.error), 404 no such sweep,
			       * 409 nothing to run its events, 503 stopping */
	json_t *report;       /* what the run did (the requester's) */
	struct sweep_request *next;   /* the sweeper's */
};
/* Queue a request; false when stopping (nothing queued, done not called). */
bool sweeper_request(struct sweeper *sw, struct sweep_request *r);

/* Every configured sweep: its settings, last run, next run (new ref). */
json_t *sweeper_status(struct sweeper *sw);

#endif
