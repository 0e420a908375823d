/* The batch timers: one thread that closes the open batches whose quiet or
 * max_age time has come (each with its trigger event, in the store's
 * transaction). Deadlines are stored with the batches, so a restart closes
 * what fell due while the daemon was down. */
#ifndef LQS_BATCHER_H
#define LQS_BATCHER_H

struct store;
struct batcher;

/* on_runnable(ctx, n): n trigger events can run (wake the workers). */
struct batcher *batcher_start(struct store *st, void (*on_runnable)(void *ctx, int n), void *ctx);
void batcher_stop(struct batcher *b);

#endif
