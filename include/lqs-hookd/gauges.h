/* The gauges of the store and the worker pool, for /metrics. */
#ifndef LQS_GAUGES_H
#define LQS_GAUGES_H

struct store;
struct workers;

/* Register them with the metrics registry (once, at start). */
void gauges_register(struct store *st, struct workers *w);

#endif
