/* Intake: where every source (POST /events today; object events and an SQS
 * poller next) hands validated jobs to the store. Jobs of concurrent
 * submissions share one commit and one sync (group commit, in two stages:
 * the committer writes batch N+1 while the syncer waits on the disk for
 * batch N). A submission's ticket says when every one of its jobs has its
 * result: stored and durable, a duplicate, or refused. Only then may a
 * source acknowledge (202, delete an SQS message). */
#ifndef LQS_INTAKE_H
#define LQS_INTAKE_H
#include <stdbool.h>
#include <stddef.h>

#include "lqs-hookd/store.h"

struct intake;

/* The caller's, alive until done() has run. jobs[i].result and .id are
 * set when done() runs: STORE_OK and STORE_DUPLICATE only once durable. */
struct intake_ticket {
	struct store_item *jobs;
	size_t n;
	void (*done)(struct intake_ticket *t);   /* on the syncer's thread */
	void *ctx;
	struct intake_ticket *next;                /* intake's */
};

/* on_runnable(ctx, n): n new events can run (wake the workers). */
struct intake *intake_start(struct store *st, void (*on_runnable)(void *ctx, int n), void *ctx, char *err,
			    size_t errlen);
/* A source says a submission may come (a request is being read), and
 * that it is over (submitted or not). While every expected submission is
 * in, the committer stops waiting for more. */
void intake_expect(struct intake *in);
void intake_release(struct intake *in, bool submitted);
/* Queue a submission; false (nothing queued) when stopping. */
bool intake_submit(struct intake *in, struct intake_ticket *t);
/* Submit from a thread of the caller's own (a sweep, a poller) and wait
 * until every job has its result; false (nothing stored) when stopping. */
bool intake_submit_wait(struct intake *in, struct store_item *items, size_t n);
/* Commit and sync what is queued, run every ticket, end the threads;
 * later submissions are refused. */
void intake_stop(struct intake *in);
/* Stop, then free (once no source can call it any more). */
void intake_free(struct intake *in);

#endif
