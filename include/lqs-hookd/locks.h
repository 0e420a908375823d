/* Named locks: at most one holder per key (a log id, a resource id). */
#ifndef LQS_LOCKS_H
#define LQS_LOCKS_H

void locks_acquire(const char *key);
void locks_release(const char *key);

#endif
