/* The mock LogQS's collections for ingesting objects: objectStores,
 * groups, logs and ingestions. Lists filter on any field (UUIDs compared
 * with or without hyphens), page, and count; creation checks the required
 * fields and the unique names (409), as the real server does. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/util.h"
#include "mock.h"

static const struct {
	const char *name;
	const char *required[3];   /* fields a create needs */
	const char *unique[3];     /* fields that together must be unique */
} collections[] = {
	{ "objectStores", { "bucket_name", NULL }, { NULL } },
	{ "groups", { "name", NULL }, { "name", NULL } },
	{ "logs", { "group_id", "name", NULL }, { "group_id", "name", NULL } },
	{ "ingestions", { "log_id", NULL }, { NULL } },
};

/* A value as compared: UUIDs without hyphens, lower case. */
static void norm(const char *in, char *out, size_t n)
{
	size_t o = 0;

	for (; *in && o + 1 < n; in++)
		if (*in != '-')
			out[o++] = (char)tolower((unsigned char)*in);
	out[o] = '\0';
}

static bool same(json_t *v, const char *want)
{
	char a[1200], b[1200];
	const char *s = json_string_value(v);

	if (!s) {
		if (json_is_boolean(v))
			return strcmp(want, json_is_true(v) ? "True" : "False") == 0;
		return json_is_null(v) && strcmp(want, "null") == 0;
	}
	if (strlen(s) == 36 && strlen(want) >= 32 && strlen(want) <= 36) {
		norm(s, a, sizeof(a));
		norm(want, b, sizeof(b));
		return strcmp(a, b) == 0;
	}
	return strcmp(s, want) == 0;
}

struct filter {
	const char *k[16], *v[16];
	int n;
};

static enum MHD_Result add_filter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	static const char *const paging[] = { "include_count", "offset", "limit", "order", "sort", NULL };
	struct filter *f = cls;

	(void)kind;
	for (int i = 0; paging[i]; i++)
		if (strcmp(key, paging[i]) == 0)
			return MHD_YES;
	if (f->n < 16) {
		f->k[f->n] = key;
		f->v[f->n] = value ? value : "";
		f->n++;
	}
	return MHD_YES;
}

int mock_cmp_created(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(x, "created_at")) ?: "",
		       json_string_value(json_object_get(y, "created_at")) ?: "");

	return c ? c : strcmp(json_string_value(json_object_get(x, "id")) ?: "",
			      json_string_value(json_object_get(y, "id")) ?: "");
}

static enum MHD_Result list(struct MHD_Connection *c, json_t *all)
{
	struct filter f = { .n = 0 };
	int offset = qint(c, "offset", 0), limit = qint(c, "limit", 100);
	json_t **sel = calloc(json_object_size(all) + 1, sizeof(*sel)), *v, *items = json_array();
	const char *k;
	size_t n = 0;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_filter, &f);
	json_object_foreach(all, k, v) {
		bool ok = true;
		(void)k;
		for (int i = 0; i < f.n && ok; i++)
			ok = same(json_object_get(v, f.k[i]), f.v[i]);
		if (ok)
			sel[n++] = v;
	}
	qsort(sel, n, sizeof(*sel), mock_cmp_created);
	for (size_t i = (size_t)offset; i < n && i < (size_t)offset + (size_t)limit; i++)
		json_array_append(items, sel[i]);
	free(sel);
	return send_json(c, 200, list_envelope(items, offset, limit, (int)n));
}

static enum MHD_Result create(struct MHD_Connection *c, json_t *all, int which, const struct buf *body)
{
	json_t *doc = json_loadb(body->data ? body->data : "", body->len, 0, NULL), *v;
	char id[37], now[32], msg[200];
	const char *k;

	if (!json_is_object(doc)) {
		json_decref(doc);
		return send_error(c, 400, "BadRequest", "body must be a JSON object", 0);
	}
	for (int i = 0; collections[which].required[i]; i++)
		if (!json_is_string(json_object_get(doc, collections[which].required[i]))) {
			snprintf(msg, sizeof(msg), "%s is required", collections[which].required[i]);
			json_decref(doc);
			return send_error(c, 422, "ValidationError", msg, 0);
		}
	json_object_foreach(all, k, v) {
		bool dup = collections[which].unique[0] != NULL;
		(void)k;
		for (int i = 0; collections[which].unique[i] && dup; i++)
			dup = same(json_object_get(v, collections[which].unique[i]),
				   json_string_value(json_object_get(doc, collections[which].unique[i])));
		if (dup) {
			json_decref(doc);
			return send_error(c, 409, "Conflict", "a resource with that name already exists", 0);
		}
	}
	uuid_new(id);
	iso8601_ms(now_ms(), now);
	json_object_set_new(doc, "id", json_string(id));
	json_object_set_new(doc, "created_at", json_string(now));
	json_object_set_new(doc, "updated_at", json_string(now));
	if (strcmp(collections[which].name, "ingestions") == 0 && !json_object_get(doc, "state"))
		json_object_set_new(doc, "state", json_string("ready"));
	json_object_set(all, id, doc);
	return send_json(c, 200, json_pack("{s:o}", "data", doc));
}

bool mock_collection(struct MHD_Connection *c, const char *method, const char *res, const struct buf *body,
		     json_t *ds, enum MHD_Result *ret)
{
	for (int i = 0; i < (int)(sizeof(collections) / sizeof(collections[0])); i++) {
		json_t *all;
		if (strcmp(res, collections[i].name) != 0)
			continue;
		all = json_object_get(ds, collections[i].name);
		if (!all) {
			all = json_object();
			json_object_set_new(ds, collections[i].name, all);
		}
		if (strcmp(method, "GET") == 0)
			*ret = list(c, all);
		else if (strcmp(method, "POST") == 0)
			*ret = create(c, all, i, body);
		else
			*ret = send_error(c, 405, "MethodNotAllowed", "method not allowed", 0);
		return true;
	}
	return false;
}
