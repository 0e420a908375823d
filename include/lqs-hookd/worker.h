/* Worker pool: claims stored events, runs their handler, records the run,
 * reschedules transient failures with backoff, drains on shutdown. */
#ifndef LQS_WORKER_H
#define LQS_WORKER_H
#include <stdint.h>

struct store;
struct workers;

struct workers *workers_start(struct store *st, int n);
/* Change the number of workers (reload); extra ones retire after their
 * current attempt. */
void workers_resize(struct workers *w, int n);
/* A new event is runnable: wake an idle worker. */
void workers_kick(struct workers *w);
/* n new events are runnable: wake up to n idle workers. */
void workers_kick_n(struct workers *w, int n);
/* Stop claiming; wait up to drain_s for running attempts, then interrupt
 * them (their events stay runnable for the next start) and join. */
void workers_stop(struct workers *w, double drain_s);
/* Threads alive (for readiness). */
int workers_alive(struct workers *w);
/* The delay before attempt number attempt+1 (attempt counts from 1). */
double worker_retry_delay(double base, double max, int attempt, double retry_after, double jitter01);

#endif
