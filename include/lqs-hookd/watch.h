/* Watches: which object events a [watch] takes (bucket, prefixes,
 * suffixes, ignore globs, event kinds), whether one is its marker, and the
 * batch an object joins: the watch, the bucket and the first prefix_depth
 * folders of its key. */
#ifndef LQS_WATCH_H
#define LQS_WATCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/objects.h"

/* The first watch (in the file's order) that takes r, with its batch path
 * in path ("" the bucket's root, else folders ending in '/') and whether r
 * is its marker; NULL when none does. */
const struct watch_cfg *watch_match(const struct config *cfg, const struct object_rec *r, char *path, size_t n,
				    bool *marker);
/* The first depth folders of key ("a/b/c.csv", 1: "a/"); -1 if too long. */
int watch_batch_path(const char *key, int64_t depth, char *out, size_t n);

#endif
