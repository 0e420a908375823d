/* Which watch an object event belongs to, and the path of its batch. */
#include "lqs-hookd/watch.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/util.h"

static bool any_prefix(const struct watch_cfg *w, const char *key)
{
	for (int i = 0; i < w->n_prefixes; i++)
		if (strncmp(key, w->prefixes[i], strlen(w->prefixes[i])) == 0)
			return true;
	return w->n_prefixes == 0;
}

static bool any_suffix(const struct watch_cfg *w, const char *key, size_t len)
{
	for (int i = 0; i < w->n_suffixes; i++) {
		size_t n = strlen(w->suffixes[i]);
		if (n <= len && memcmp(key + len - n, w->suffixes[i], n) == 0)
			return true;
	}
	return w->n_suffixes == 0;
}

static bool ignored(const struct watch_cfg *w, const char *key)
{
	for (int i = 0; i < w->n_ignore; i++)
		if (fnmatch(w->ignore[i], key, 0) == 0)
			return true;
	return false;
}

/* The key's last segment is the watch's marker. */
static bool is_marker(const struct watch_cfg *w, const struct object_rec *r)
{
	const char *slash = strrchr(r->key, '/'), *name = slash ? slash + 1 : r->key;

	return w->marker[0] && strcmp(r->kind, "created") == 0 && strcmp(name, w->marker) == 0;
}

int watch_batch_path(const char *key, int64_t depth, char *out, size_t n)
{
	size_t at = 0;
	const char *p = key, *slash;

	out[0] = '\0';
	for (int64_t d = 0; d < depth && (slash = strchr(p, '/')) != NULL; d++) {
		size_t seg = (size_t)(slash - p) + 1;
		if (at + seg >= n)
			return -1;
		memcpy(out + at, p, seg);
		at += seg;
		out[at] = '\0';
		p = slash + 1;
	}
	return 0;
}

bool watch_takes(const struct watch_cfg *w, const struct object_rec *r, char *path, size_t n, bool *marker)
{
	bool created = strcmp(r->kind, "created") == 0;

	if (strcmp(w->bucket, r->bucket) != 0 || !(created ? w->on_created : w->on_removed))
		return false;
	if (!any_prefix(w, r->key) || ignored(w, r->key))
		return false;
	/* the marker closes its batch whatever the suffixes say: they choose
	 * the batch's data, it is a signal */
	*marker = is_marker(w, r);
	if (!*marker && !any_suffix(w, r->key, r->key_len))
		return false;
	return watch_batch_path(r->key, w->prefix_depth, path, n) == 0;
}

const struct watch_cfg *watch_match(const struct config *cfg, const struct object_rec *r, char *path, size_t n,
				    bool *marker)
{
	for (int i = 0; i < cfg->n_watches; i++)
		if (watch_takes(&cfg->watches[i], r, path, n, marker))
			return &cfg->watches[i];
	return NULL;
}

bool objects_route(const struct config *cfg, const struct objects_msg *m, const char *only, struct store_item *jobs,
		   struct store_object *objs, char **paths)
{
	const struct watch_cfg *one = only && *only ? config_watch(cfg, only) : NULL;

	for (size_t i = 0; i < m->n; i++) {
		struct store_object *o = &objs[i];
		const struct watch_cfg *w;
		bool marker = false;
		paths[i] = malloc(WATCH_PATH_MAX);
		if (!paths[i])
			return false;
		if (only && *only)
			w = one && watch_takes(one, &m->recs[i], paths[i], WATCH_PATH_MAX, &marker) ? one : NULL;
		else
			w = watch_match(cfg, &m->recs[i], paths[i], WATCH_PATH_MAX, &marker);
		*o = (struct store_object){ .rec = &m->recs[i], .format = m->format };
		if (w) {
			o->watch = w->name;
			o->prefix = paths[i];
			o->marker = marker;
			o->trigger = w->trigger[0] ? w->trigger : NULL;
			o->count = w->count;
			o->quiet_ms = (int64_t)(w->quiet * 1000.0);
			o->max_age_ms = (int64_t)(w->max_age * 1000.0);
		}
		jobs[i] = (struct store_item){ .obj = o };
	}
	return true;
}
