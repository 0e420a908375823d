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
#include "lqs-hookd/store.h"

/* The first watch (in the file's order) that takes r, with its batch path
 * in path ("" the bucket's root, else folders ending in '/') and whether r
 * is its marker; NULL when none does. */
const struct watch_cfg *watch_match(const struct config *cfg, const struct object_rec *r, char *path, size_t n,
				    bool *marker);
/* Whether this watch takes r (path and marker as watch_match). */
bool watch_takes(const struct watch_cfg *w, const struct object_rec *r, char *path, size_t n, bool *marker);
/* Longest batch path kept (S3 keys are at most 1024 bytes). */
#define WATCH_PATH_MAX 1100
/* One job per record of m (arrays of m->n): the first watch that takes it,
 * or with only set, that watch or none. paths[i] are malloc'd (the caller
 * frees them). false when out of memory. */
struct store_item;
struct store_object;
bool objects_route(const struct config *cfg, const struct objects_msg *m, const char *only, struct store_item *jobs,
		   struct store_object *objs, char **paths);
/* The first depth folders of key ("a/b/c.csv", 1: "a/"); -1 if too long. */
int watch_batch_path(const char *key, int64_t depth, char *out, size_t n);

#endif
