/* lqs-mock: a small LogQS REST API stand-in for tests, the demo and benchmarks.
 *
 * Serves one datastore from a JSON fixture (or a synthetic digestion), checks
 * the API key, pages lists, applies PATCHes, records every request it gets
 * and injects faults on demand. Control endpoints live under /_mock/. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/util.h"
#include "mock.h"

#define MOCK_MAX_BODY (16 * 1024 * 1024)
#define MOCK_MAX_FAULTS 64

struct fault {
	char method[16];
	char path[256];     /* substring of the resource path; "" matches all */
	int status;         /* 0: answer normally (after the delay) */
	int count;          /* calls left; -1: forever */
	int delay_ms;
	int retry_after;
	bool drop;          /* close the connection without an answer */
	char body[1024];    /* non-empty: answer this text (status or 200) */
};

static struct {
	pthread_mutex_t mu;
	json_t *ds;                /* {logs:{id:obj}, digestions:{id:obj}, parts:{id:obj}} */
	json_t *requests;          /* recorded requests */
	struct fault faults[MOCK_MAX_FAULTS];
	int n_faults;
	char datastore_id[37];
	char bearer[1200];
	int max_page;
	int list_index_max;
	bool record_bodies;
	/* synthetic digestion */
	long syn_parts, syn_entries, syn_digestions;
	char **syn_cache;              /* the first digestion's parts, rendered */
	size_t *syn_cache_len;
	char syn_digestion[37], syn_log[37];   /* the first one */
	json_t *syn_expected;
	char imds_key[128], imds_secret[128];   /* --imds KEY:SECRET: an instance metadata service */
	char static_path[256];         /* --static PATH=FILE: GET PATH answers FILE */
	char *static_body;
	size_t static_len;
	volatile sig_atomic_t stop;
} M = { .mu = PTHREAD_MUTEX_INITIALIZER, .max_page = 100, .list_index_max = 100, .record_bodies = true };

struct mreq {
	struct buf body;
	bool too_big;
};

static void now_iso(char out[32])
{
	iso8601_ms(now_ms(), out);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text, int retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, "x-logqs-version", "1.1");
	if (retry_after > 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", retry_after);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text_dup(struct MHD_Connection *c, const char *text)
{
	char *t = strdup(text);

	return t ? send_text(c, 200, t, 0) : MHD_NO;
}

/* A response from memory that lives as long as the process. */
static enum MHD_Result send_static(struct MHD_Connection *c, char *text, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);

	json_decref(doc);
	if (!text)
		return MHD_NO;
	return send_text(c, status, text, 0);
}

enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *kind,
				  const char *msg, int retry_after)
{
	char text[600];
	json_t *doc = json_object();
	char *s;

	snprintf(text, sizeof(text), "[%s] %s", kind, msg);
	json_object_set_new(doc, "message", json_string(text));
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s ? send_text(c, status, s, retry_after) : MHD_NO;
}

/* ---- synthetic digestion: parts are generated when asked for ---- */

static const char *const syn_topics[3] = {
	"aaaaaaaa-0000-4000-8000-000000000001",
	"aaaaaaaa-0000-4000-8000-000000000002",
	"aaaaaaaa-0000-4000-8000-000000000003",
};

static void syn_digestion_id(long d, char out[37])
{
	snprintf(out, 37, "dddddddd-0000-4000-8000-%012u", (unsigned)(d % 1000000L) + 1);
}

static void syn_log_id(long d, char out[37])
{
	snprintf(out, 37, "11111111-0000-4000-8000-%012u", (unsigned)(d % 1000000L) + 1);
}

/* Which synthetic digestion an id names, or -1. */
static long syn_which(const char *id)
{
	unsigned n;
	char want[37];

	if (!M.syn_parts || sscanf(id, "dddddddd-0000-4000-8000-%12u", &n) != 1 || n < 1 ||
	    (long)n > M.syn_digestions)
		return -1;
	syn_digestion_id((long)n - 1, want);
	return strcmp(want, id) == 0 ? (long)n - 1 : -1;
}

static void syn_part_id(long p, char out[37])
{
	snprintf(out, 37, "bbbbbbbb-0000-4000-8000-%012u", (unsigned)(p % 1000000000L));
}

static void syn_entry(long p, long e, int *topic, int64_t *dlen, int64_t *clen, int64_t *ts, bool *ts_str)
{
	*topic = (int)((p + e) % 3);
	*dlen = 100 + e % 7;
	*clen = e % 3 == 0 ? -1 : 50 + e % 5;
	*ts = 1700000000000000000LL + (int64_t)p * M.syn_entries * 1000 + e * 1000;
	*ts_str = e % 4 == 0;
}

static char *syn_part_json(long d, long p)
{
	struct buf b;
	char id[37], now[32], dig[37], log[37];

	syn_part_id(p, id);
	syn_digestion_id(d, dig);
	syn_log_id(d, log);
	now_iso(now);
	buf_init(&b, 0);
	buf_printf(&b, "{\"data\":{\"id\":\"%s\",\"digestion_id\":\"%s\",\"log_id\":\"%s\",\"sequence\":%ld,"
		       "\"state\":\"completed\",\"created_at\":\"%s\",\"context\":null,\"index\":[",
		   id, dig, log, p, now);
	for (long e = 0; e < M.syn_entries; e++) {
		int topic;
		int64_t dlen, clen, ts;
		bool ts_str;
		char cl[24];
		syn_entry(p, e, &topic, &dlen, &clen, &ts, &ts_str);
		if (clen < 0)
			str_copy(cl, "null", sizeof(cl));
		else
			snprintf(cl, sizeof(cl), "%" PRId64, clen);
		buf_printf(&b, "%s[\"%s\",null,null,%ld,%" PRId64 ",%s,%s,%s,%s%" PRId64 "%s]", e ? "," : "",
			   syn_topics[topic], e * 100, dlen, clen < 0 ? "null" : "\"lz4\"",
			   clen < 0 ? "null" : "0", cl, ts_str ? "\"" : "", ts, ts_str ? "\"" : "");
	}
	buf_append_str(&b, "]}}");
	return buf_steal(&b);
}

static void syn_setup(long parts, long entries, long digestions)
{
	int64_t count = 0, size = 0, tmin = 0, tmax = 0;
	int64_t tc[3] = { 0 }, tsz[3] = { 0 };
	json_t *topics = json_object();
	char now[32];

	M.syn_parts = parts;
	M.syn_entries = entries;
	M.syn_digestions = digestions;
	syn_digestion_id(0, M.syn_digestion);
	syn_log_id(0, M.syn_log);
	for (long p = 0; p < parts; p++) {
		for (long e = 0; e < entries; e++) {
			int topic;
			int64_t dlen, clen, ts, s;
			bool ts_str;
			syn_entry(p, e, &topic, &dlen, &clen, &ts, &ts_str);
			s = clen >= 0 ? clen : dlen;
			if (count == 0 || ts < tmin)
				tmin = ts;
			if (count == 0 || ts > tmax)
				tmax = ts;
			count++;
			size += s;
			tc[topic]++;
			tsz[topic] += s;
		}
	}
	for (int t = 0; t < 3; t++)
		if (tc[t])
			json_object_set_new(topics, syn_topics[t],
					    json_pack("{s:I, s:I}", "record_count", (json_int_t)tc[t],
						      "record_size", (json_int_t)tsz[t]));
	M.syn_expected = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "digestion_id", M.syn_digestion,
				   "record_count", (json_int_t)count, "record_size", (json_int_t)size,
				   "part_count", (json_int_t)parts, "start_time", (json_int_t)tmin,
				   "end_time", (json_int_t)tmax, "topics", topics);
	now_iso(now);
	json_t *ids = json_array();
	for (long d = 0; d < digestions; d++) {
		char dig[37], log[37];
		syn_digestion_id(d, dig);
		syn_log_id(d, log);
		json_array_append_new(ids, json_string(dig));
		json_object_set_new(json_object_get(M.ds, "logs"), log,
				    json_pack("{s:s, s:s, s:s, s:{s:s}}", "id", log, "name", "synthetic",
					      "created_at", now, "context", "source", "lqs-mock synthetic"));
		json_object_set_new(json_object_get(M.ds, "digestions"), dig,
				    json_pack("{s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:s}", "id", dig, "log_id", log,
					      "state", "finalizing", "name", "synthetic", "context",
					      "created_at", now, "updated_at", now, "transitioned_at", now));
	}
	/* Every synthetic digestion has these figures but its own id. */
	json_object_set_new(M.syn_expected, "digestion_ids", ids);
	/* Render the first digestion's parts once: serving them is then a copy,
	 * so benchmarks measure the client, not this mock. */
	M.syn_cache = calloc((size_t)parts, sizeof(*M.syn_cache));
	M.syn_cache_len = calloc((size_t)parts, sizeof(*M.syn_cache_len));
	for (long p = 0; M.syn_cache && M.syn_cache_len && p < parts; p++) {
		M.syn_cache[p] = syn_part_json(0, p);
		M.syn_cache_len[p] = strlen(M.syn_cache[p]);
	}
}

/* ---- fixture ---- */

static int load_fixture(const char *path)
{
	json_error_t jerr;
	json_t *f = json_load_file(path, 0, &jerr), *arr, *v;
	const char *names[6][2] = { { "logs", "logs" }, { "digestions", "digestions" },
				    { "digestion_parts", "parts" }, { "objectStores", "objectStores" },
				    { "groups", "groups" }, { "ingestions", "ingestions" } };
	size_t i;

	if (!f) {
		fprintf(stderr, "lqs-mock: %s:%d: %s\n", path, jerr.line, jerr.text);
		return -1;
	}
	if (json_is_string(json_object_get(f, "datastore_id")))
		str_copy(M.datastore_id, json_string_value(json_object_get(f, "datastore_id")),
			 sizeof(M.datastore_id));
	if (json_is_string(json_object_get(f, "api_key_id")) && json_is_string(json_object_get(f, "api_key_secret")))
		auth_basic_bearer(json_string_value(json_object_get(f, "api_key_id")),
				  json_string_value(json_object_get(f, "api_key_secret")), M.bearer,
				  sizeof(M.bearer));
	for (int k = 0; k < 6; k++) {
		arr = json_object_get(f, names[k][0]);
		json_array_foreach(arr, i, v) {
			json_t *id = json_object_get(v, "id");
			if (json_is_string(id))
				json_object_set(json_object_get(M.ds, names[k][1]), json_string_value(id), v);
		}
	}
	json_decref(f);
	return 0;
}

/* ---- request handling ---- */

static struct fault *fault_match(const char *method, const char *path)
{
	for (int i = 0; i < M.n_faults; i++) {
		struct fault *f = &M.faults[i];
		if (f->count == 0)
			continue;
		if (f->method[0] && strcasecmp(f->method, method) != 0)
			continue;
		if (f->path[0] && !strstr(path, f->path))
			continue;
		return f;
	}
	return NULL;
}

static void record(const char *method, const char *url, const char *query, const char *resource,
		   const char *auth, const struct buf *body)
{
	char now[32];
	json_t *r;
	json_error_t jerr;

	now_iso(now);
	r = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:b, s:s}", "method", method, "url", url, "path",
		      resource ? resource : "", "query", query, "authorization", auth, "auth_ok",
		      auth && M.bearer[0] && strcmp(auth, M.bearer) == 0, "at", now);
	if (body->len && M.record_bodies) {
		json_t *b = json_loadb(body->data, body->len, 0, &jerr);
		json_object_set_new(r, "body", b ? b : json_string(body->data));
	}
	json_array_append_new(M.requests, r);
}

static enum MHD_Result header_into(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	char lower[128];
	size_t i;

	for (i = 0; key[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	lower[i] = '\0';
	json_object_set_new(cls, lower, json_string(value ? value : ""));
	return MHD_YES;
}

int qint(struct MHD_Connection *c, const char *name, int def)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	int64_t n;

	return v && parse_i64(v, &n) == 0 && n >= 0 && n < 1000000000 ? (int)n : def;
}

json_t *list_envelope(json_t *items, int offset, int limit, int count)
{
	return json_pack("{s:i, s:i, s:s, s:s, s:i, s:o}", "offset", offset, "limit", limit, "order",
			 "created_at", "sort", "ASC", "count", count, "data", items);
}

static int cmp_sequence(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t sx = json_integer_value(json_object_get(x, "sequence"));
	json_int_t sy = json_integer_value(json_object_get(y, "sequence"));

	return sx < sy ? -1 : sx > sy;
}

static enum MHD_Result list_parts(struct MHD_Connection *c, const char *dig_id)
{
	int offset = qint(c, "offset", 0), limit = qint(c, "limit", 100);
	json_t *items = json_array();
	int count = 0;

	if (limit > M.max_page)
		limit = M.max_page;
	long d = syn_which(dig_id);
	if (d >= 0) {
		char log[37];
		syn_log_id(d, log);
		count = (int)M.syn_parts;
		for (long p = offset; p < M.syn_parts && p < (long)offset + limit; p++) {
			char id[37];
			syn_part_id(p, id);
			json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:i, s:s, s:n}", "id", id,
							       "digestion_id", dig_id, "log_id", log,
							       "sequence", (int)p, "state", "completed", "index"));
		}
		return send_json(c, 200, list_envelope(items, offset, limit, count));
	}
	json_t *parts = json_object_get(M.ds, "parts"), *v, **sel = NULL;
	const char *k;
	size_t n = 0;
	sel = calloc(json_object_size(parts) + 1, sizeof(*sel));
	json_object_foreach(parts, k, v) {
		(void)k;
		if (json_is_string(json_object_get(v, "digestion_id")) &&
		    strcmp(json_string_value(json_object_get(v, "digestion_id")), dig_id) == 0)
			sel[n++] = v;
	}
	qsort(sel, n, sizeof(*sel), cmp_sequence);
	count = (int)n;
	for (size_t i = (size_t)offset; i < n && i < (size_t)offset + (size_t)limit; i++) {
		json_t *p = json_deep_copy(sel[i]);
		json_t *idx = json_object_get(p, "index");
		/* The real server may omit an index in listings: big ones are
		 * left out here, so clients must fetch those parts. */
		if (json_is_array(idx) && (int)json_array_size(idx) > M.list_index_max)
			json_object_set_new(p, "index", json_null());
		json_array_append_new(items, p);
	}
	free(sel);
	return send_json(c, 200, list_envelope(items, offset, limit, count));
}

/* GET digestions: the state and updated_at_lte filters, ordered by
 * created_at, paged like every list. */
static enum MHD_Result list_digestions(struct MHD_Connection *c)
{
	int offset = qint(c, "offset", 0), limit = qint(c, "limit", 100);
	const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	const char *lte = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "updated_at_lte");
	json_t *all = json_object_get(M.ds, "digestions"), *v, **sel, *items = json_array();
	int64_t lte_ms = 0, at;
	const char *k;
	size_t n = 0;

	if (lte && iso8601_parse(lte, &lte_ms) != 0) {
		json_decref(items);
		return send_error(c, 400, "BadRequest", "updated_at_lte is not a date-time", 0);
	}
	if (limit > M.max_page)
		limit = M.max_page;
	sel = calloc(json_object_size(all) + 1, sizeof(*sel));
	json_object_foreach(all, k, v) {
		const char *st = json_string_value(json_object_get(v, "state"));
		const char *up = json_string_value(json_object_get(v, "updated_at"));
		(void)k;
		if (state && (!st || strcmp(st, state) != 0))
			continue;
		if (lte && (!up || iso8601_parse(up, &at) != 0 || at > lte_ms))
			continue;
		sel[n++] = v;
	}
	qsort(sel, n, sizeof(*sel), mock_cmp_created);
	for (size_t i = (size_t)offset; i < n && i < (size_t)offset + (size_t)limit; i++)
		json_array_append(items, sel[i]);
	free(sel);
	return send_json(c, 200, list_envelope(items, offset, limit, (int)n));
}

/* POST /_mock/digestions: digestions (one object or an array) merged in by
 * id; "age_s" sets created_at, updated_at and transitioned_at that many
 * seconds back, "updated_age_s" then updated_at alone. */
static enum MHD_Result put_digestions(struct MHD_Connection *c, const struct buf *body)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body->data ? body->data : "", body->len, 0, &jerr), *arr, *v;
	size_t i;

	arr = json_is_array(doc) ? doc : json_pack("[O]", doc);
	if (!json_is_object(json_array_get(arr, 0))) {
		json_decref(arr);
		json_decref(doc);
		return send_error(c, 400, "BadRequest", "a digestion object or an array of them", 0);
	}
	json_array_foreach(arr, i, v) {
		const char *id = json_string_value(json_object_get(v, "id"));
		json_t *have = id ? json_object_get(json_object_get(M.ds, "digestions"), id) : NULL, *age;
		char t[32];
		if (!id)
			continue;
		if (!have) {
			have = json_object();
			json_object_set_new(json_object_get(M.ds, "digestions"), id, have);
		}
		json_object_update(have, v);
		if ((age = json_object_get(have, "age_s")) != NULL) {
			iso8601_ms(now_ms() - (int64_t)(json_number_value(age) * 1000), t);
			json_object_set_new(have, "created_at", json_string(t));
			json_object_set_new(have, "updated_at", json_string(t));
			json_object_set_new(have, "transitioned_at", json_string(t));
			json_object_del(have, "age_s");
		}
		if ((age = json_object_get(have, "updated_age_s")) != NULL) {
			iso8601_ms(now_ms() - (int64_t)(json_number_value(age) * 1000), t);
			json_object_set_new(have, "updated_at", json_string(t));
			json_object_del(have, "updated_age_s");
		}
	}
	if (arr != doc)
		json_decref(arr);
	json_decref(doc);
	return send_json(c, 200, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result patch_resource(struct MHD_Connection *c, json_t *obj, const struct buf *body)
{
	json_error_t jerr;
	json_t *patch = json_loadb(body->data ? body->data : "", body->len, 0, &jerr);
	char now[32];

	if (!json_is_object(patch)) {
		json_decref(patch);
		return send_error(c, 400, "BadRequest", "PATCH body must be a JSON object", 0);
	}
	json_t *st = json_object_get(patch, "state");
	if (json_is_string(st) && json_object_get(obj, "state"))
		json_object_set(obj, "previous_state", json_object_get(obj, "state"));
	json_object_update(obj, patch);
	now_iso(now);
	json_object_set_new(obj, "updated_at", json_string(now));
	json_decref(patch);
	return send_json(c, 200, json_pack("{s:O}", "data", obj));
}

static enum MHD_Result api(struct MHD_Connection *c, const char *method, const char *res,
			   const struct buf *body)
{
	char a[128], b[128], d[128];
	json_t *obj;

	if (strcmp(res, "users/me") == 0)
		return send_json(c, 200, json_pack("{s:{s:s, s:s}}", "data", "id",
						   "99999999-0000-4000-8000-000000000001", "username", "mock"));
	if (sscanf(res, "digestions/%36[^/]/parts/%36[^/]%c", a, b, d) == 2) {
		if (strcmp(method, "GET") != 0)
			return send_error(c, 405, "MethodNotAllowed", "method not allowed", 0);
		long dn = syn_which(a);
		if (dn >= 0) {
			long p;
			char want[37];
			if (sscanf(b, "bbbbbbbb-0000-4000-8000-%12ld", &p) == 1 && p < 1000000000L && p >= 0 && p < M.syn_parts) {
				syn_part_id(p, want);
				if (strcmp(want, b) == 0) {
					if (dn == 0 && M.syn_cache && M.syn_cache[p])
						return send_static(c, M.syn_cache[p], M.syn_cache_len[p]);
					return send_text(c, 200, syn_part_json(dn, p), 0);
				}
			}
			return send_error(c, 404, "NotFound", "digestion part not found", 0);
		}
		obj = json_object_get(json_object_get(M.ds, "parts"), b);
		if (!obj || strcmp(json_string_value(json_object_get(obj, "digestion_id")) ?: "", a) != 0)
			return send_error(c, 404, "NotFound", "digestion part not found", 0);
		return send_json(c, 200, json_pack("{s:O}", "data", obj));
	}
	if (sscanf(res, "digestions/%36[^/]/parts%c", a, d) == 1 && strcmp(res + strlen(a) + 11, "/parts") == 0) {
		if (!json_object_get(json_object_get(M.ds, "digestions"), a))
			return send_error(c, 404, "NotFound", "digestion not found", 0);
		return list_parts(c, a);
	}
	{
		enum MHD_Result ret;
		if (mock_collection(c, method, res, body, M.ds, &ret))
			return ret;
	}
	if (strcmp(res, "digestions") == 0) {
		if (strcmp(method, "GET") != 0)
			return send_error(c, 405, "MethodNotAllowed", "method not allowed", 0);
		return list_digestions(c);
	}
	if (sscanf(res, "digestions/%36[^/]%c", a, d) == 1)
		obj = json_object_get(json_object_get(M.ds, "digestions"), a);
	else if (sscanf(res, "logs/%36[^/]%c", a, d) == 1)
		obj = json_object_get(json_object_get(M.ds, "logs"), a);
	else
		return send_error(c, 404, "NotFound", "no such resource", 0);
	if (!obj)
		return send_error(c, 404, "NotFound", "resource not found", 0);
	if (strcmp(method, "GET") == 0)
		return send_json(c, 200, json_pack("{s:O}", "data", obj));
	if (strcmp(method, "PATCH") == 0)
		return patch_resource(c, obj, body);
	return send_error(c, 405, "MethodNotAllowed", "method not allowed", 0);
}

static enum MHD_Result control(struct MHD_Connection *c, const char *method, const char *url,
			       const struct buf *body)
{
	json_error_t jerr;

	if (strcmp(url, "/_mock/requests") == 0 && strcmp(method, "GET") == 0)
		return send_json(c, 200, json_pack("{s:O}", "requests", M.requests));
	if (strcmp(url, "/_mock/requests") == 0 && strcmp(method, "DELETE") == 0) {
		json_array_clear(M.requests);
		return send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(url, "/_mock/state") == 0)
		return send_json(c, 200, json_incref(M.ds));
	/* One resource, indented, integers exact: for people (the demo). */
	if (strncmp(url, "/_mock/logs/", 12) == 0 || strncmp(url, "/_mock/digestions/", 18) == 0) {
		bool is_log = url[7] == 'l';
		json_t *o = json_object_get(json_object_get(M.ds, is_log ? "logs" : "digestions"),
					    url + (is_log ? 12 : 18));
		char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (!text)
			return send_error(c, 404, "NotFound", "resource not found", 0);
		return send_text(c, 200, text, 0);
	}
	if (strcmp(url, "/_mock/digestions") == 0 && strcmp(method, "POST") == 0)
		return put_digestions(c, body);
	if (strcmp(url, "/_mock/expected") == 0)
		return send_json(c, 200, M.syn_expected ? json_incref(M.syn_expected) : json_null());
	if (strcmp(url, "/_mock/faults") == 0 && strcmp(method, "DELETE") == 0) {
		M.n_faults = 0;
		return send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(url, "/_mock/faults") == 0 && strcmp(method, "POST") == 0) {
		json_t *f = json_loadb(body->data ? body->data : "", body->len, 0, &jerr);
		struct fault *x;
		if (!json_is_object(f) || M.n_faults >= MOCK_MAX_FAULTS) {
			json_decref(f);
			return send_error(c, 400, "BadRequest", "fault must be a JSON object", 0);
		}
		x = &M.faults[M.n_faults++];
		memset(x, 0, sizeof(*x));
		str_copy(x->method, json_string_value(json_object_get(f, "method")) ?: "", sizeof(x->method));
		str_copy(x->path, json_string_value(json_object_get(f, "path")) ?: "", sizeof(x->path));
		x->status = (int)json_integer_value(json_object_get(f, "status"));
		x->count = json_object_get(f, "count") ? (int)json_integer_value(json_object_get(f, "count")) : -1;
		x->delay_ms = (int)json_integer_value(json_object_get(f, "delay_ms"));
		x->retry_after = (int)json_integer_value(json_object_get(f, "retry_after"));
		x->drop = json_is_true(json_object_get(f, "drop"));
		str_copy(x->body, json_string_value(json_object_get(f, "body")) ?: "", sizeof(x->body));
		json_decref(f);
		return send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	return send_error(c, 404, "NotFound", "no such control endpoint", 0);
}

/* IMDSv2: a token for a PUT, then only with it: the role, its credentials. */
static enum MHD_Result imds(struct MHD_Connection *c, const char *method, const char *url)
{
	const char *tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-aws-ec2-metadata-token");
	char exp[32];

	if (strcmp(url, "/latest/api/token") == 0)
		return strcmp(method, "PUT") == 0 ? send_text_dup(c, "imds-session-token")
						  : send_error(c, 405, "MethodNotAllowed", "PUT only", 0);
	if (!tok || strcmp(tok, "imds-session-token") != 0)
		return send_error(c, 401, "Unauthorized", "IMDSv2 token required", 0);
	if (strcmp(url, "/latest/meta-data/iam/security-credentials/") == 0)
		return send_text_dup(c, "hookd-role");
	if (strcmp(url, "/latest/meta-data/iam/security-credentials/hookd-role") == 0) {
		iso8601_ms(now_ms() + 6LL * 3600 * 1000, exp);
		return send_json(c, 200, json_pack("{s:s, s:s, s:s, s:s, s:s}", "Code", "Success", "AccessKeyId",
						   M.imds_key, "SecretAccessKey", M.imds_secret, "Token", "",
						   "Expiration", exp));
	}
	return send_error(c, 404, "NotFound", "no such metadata", 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct mreq *r = *con_cls;
	const char *auth, *lqs, *res;
	char ds[64];
	enum MHD_Result ret;
	struct fault fcopy;
	bool faulted = false;

	(void)cls;
	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		buf_init(&r->body, MOCK_MAX_BODY);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_big && buf_append(&r->body, upload, *upload_size))
			r->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->too_big)
		return send_error(c, 413, "TooLarge", "body too large", 0);

	if (M.imds_key[0] && strncmp(url, "/latest/", 8) == 0) {
		pthread_mutex_lock(&M.mu);
		record(method, url, NULL, url + 1, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
									   "X-aws-ec2-metadata-token"), &r->body);
		pthread_mutex_unlock(&M.mu);
		return imds(c, method, url);
	}
	if (M.static_body && strcmp(url, M.static_path) == 0) {
		pthread_mutex_lock(&M.mu);
		record(method, url, NULL, NULL, NULL, &r->body);
		pthread_mutex_unlock(&M.mu);
		return send_static(c, M.static_body, M.static_len);
	}
	pthread_mutex_lock(&M.mu);
	if (strncmp(url, "/_mock/", 7) == 0) {
		ret = control(c, method, url, &r->body);
		pthread_mutex_unlock(&M.mu);
		return ret;
	}
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	/* {prefix}/lqs/{datastore}/api/{resource} */
	lqs = strstr(url, "/lqs/");
	res = NULL;
	ds[0] = '\0';
	if (strncmp(url, "/target/", 8) == 0) {
		/* a REST target (a workflow's execute call): recorded, no API key */
		res = url + 1;
	} else if (lqs) {
		const char *api = strstr(lqs + 5, "/api/");
		if (api && (size_t)(api - (lqs + 5)) < sizeof(ds)) {
			memcpy(ds, lqs + 5, (size_t)(api - (lqs + 5)));
			ds[api - (lqs + 5)] = '\0';
			res = api + 5;
		} else if (strncmp(lqs + 5, "api/", 4) == 0) {
			res = lqs + 9;
		}
	}
	{
		/* Rebuild the query string for the record. */
		struct buf q;
		buf_init(&q, 4096);
		const char *keys[] = { "include_count", "offset", "limit", "order", "sort", "state", "updated_at_lte",
				       "bucket_name", "name", "group_id", "log_id", "object_store_id", "object_key", NULL };
		for (int i = 0; keys[i]; i++) {
			const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, keys[i]);
			if (v)
				buf_printf(&q, "%s%s=%s", q.len ? "&" : "", keys[i], v);
		}
		record(method, url, q.data, res, auth, &r->body);
		if (res && strncmp(res, "target/", 7) == 0) {
			json_t *h = json_object();
			MHD_get_connection_values(c, MHD_HEADER_KIND, header_into, h);
			json_object_set_new(json_array_get(M.requests, json_array_size(M.requests) - 1), "headers", h);
		}
		buf_free(&q);
	}
	struct fault *f = res ? fault_match(method, res) : NULL;
	if (f) {
		fcopy = *f;
		if (f->count > 0)
			f->count--;
		faulted = true;
	}
	pthread_mutex_unlock(&M.mu);

	if (faulted && fcopy.delay_ms > 0) {
		struct timespec ts = { fcopy.delay_ms / 1000, (long)(fcopy.delay_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (faulted && fcopy.drop)
		return MHD_NO;
	if (faulted && fcopy.body[0]) {
		char *text = strdup(fcopy.body);
		return text ? send_text(c, fcopy.status ? (unsigned)fcopy.status : 200, text, 0) : MHD_NO;
	}
	if (faulted && fcopy.status)
		return send_error(c, (unsigned)fcopy.status, fcopy.status >= 500 ? "ServiceUnavailable" : "Injected",
				  "fault injected by lqs-mock", fcopy.retry_after);
	if (!res)
		return send_error(c, 404, "NotFound", "not a LogQS API path", 0);
	if (strncmp(res, "target/", 7) == 0)
		return send_text_dup(c, "162");   /* an execution id, as a workflow's execute answers */
	if (!M.bearer[0] || !auth || strcmp(auth, M.bearer) != 0)
		return send_error(c, 401, "Unauthorized", "invalid API key", 0);
	if (M.datastore_id[0] && strcmp(ds, M.datastore_id) != 0)
		return send_error(c, 404, "NotFound", "datastore not found", 0);
	{
		/* the rendered synthetic parts are read-only: no lock needed */
		char a[64], b[64];
		if (M.syn_cache && strcmp(method, "GET") == 0 &&
		    sscanf(res, "digestions/%36[^/]/parts/%36s", a, b) == 2 && syn_which(a) == 0)
			return api(c, method, res, &r->body);
	}
	pthread_mutex_lock(&M.mu);
	ret = api(c, method, res, &r->body);
	pthread_mutex_unlock(&M.mu);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct mreq *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r) {
		buf_free(&r->body);
		free(r);
		*con_cls = NULL;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	M.stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lqs-mock [--port N] [--fixture FILE] [--synthetic PARTSxENTRIES[xDIGESTIONS]]\n"
		"                [--datastore UUID] [--key-id ID] [--key-secret SECRET]\n"
		"                [--max-page N] [--list-index-max N] [--no-record-bodies]\n"
		"Serves a LogQS datastore on 127.0.0.1 and prints PORT=<port> once listening.\n"
		"Control: GET/DELETE /_mock/requests, POST/DELETE /_mock/faults,\n"
		"         GET /_mock/state, GET /_mock/expected (synthetic stats),\n"
		"         POST /_mock/digestions (add or age digestions: age_s, updated_age_s).\n"
		"Also: --tls-cert FILE --tls-key FILE (HTTPS), --static PATH=FILE (GET PATH answers FILE),\n"
		"      --imds KEY:SECRET (an IMDSv2 instance metadata service with these credentials),\n"
		"      /target/... (a REST target: recorded, answered 200).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "fixture", required_argument, NULL, 'f' },
		{ "synthetic", required_argument, NULL, 'S' },
		{ "datastore", required_argument, NULL, 'd' },
		{ "key-id", required_argument, NULL, 'i' },
		{ "key-secret", required_argument, NULL, 's' },
		{ "max-page", required_argument, NULL, 'm' },
		{ "list-index-max", required_argument, NULL, 'x' },
		{ "no-record-bodies", no_argument, NULL, 'n' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "static", required_argument, NULL, 'T' },
		{ "imds", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t port = 0, v;
	const char *fixture = NULL, *key_id = NULL, *key_secret = NULL, *synthetic = NULL;
	char *tls_cert = NULL, *tls_key = NULL;
	size_t len;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *di;
	struct sigaction sig;
	int opt;

	M.ds = json_pack("{s:{}, s:{}, s:{}, s:{}, s:{}, s:{}}", "logs", "digestions", "parts", "objectStores", "groups",
			 "ingestions");
	M.requests = json_array();
	while ((opt = getopt_long(argc, argv, "p:f:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': if (parse_i64(optarg, &port) || port < 0 || port > 65535) { usage(stderr); return 2; } break;
		case 'f': fixture = optarg; break;
		case 'S': synthetic = optarg; break;
		case 'd': str_copy(M.datastore_id, optarg, sizeof(M.datastore_id)); break;
		case 'i': key_id = optarg; break;
		case 's': key_secret = optarg; break;
		case 'm': if (parse_i64(optarg, &v) || v < 1) { usage(stderr); return 2; } M.max_page = (int)v; break;
		case 'x': if (parse_i64(optarg, &v) || v < 0) { usage(stderr); return 2; } M.list_index_max = (int)v; break;
		case 'n': M.record_bodies = false; break;
		case 'C': tls_cert = file_read_all(optarg, 1 << 20, &len); if (!tls_cert) { perror(optarg); return 2; } break;
		case 'K': tls_key = file_read_all(optarg, 1 << 20, &len); if (!tls_key) { perror(optarg); return 2; } break;
		case 'I': {
			const char *colon = strchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof(M.imds_key)) {
				fprintf(stderr, "lqs-mock: --imds KEY:SECRET\n");
				return 2;
			}
			snprintf(M.imds_key, sizeof(M.imds_key), "%.*s", (int)(colon - optarg), optarg);
			str_copy(M.imds_secret, colon + 1, sizeof(M.imds_secret));
			break;
		}
		case 'T': {
			const char *eq = strchr(optarg, '=');
			if (!eq || (size_t)(eq - optarg) >= sizeof(M.static_path) ||
			    !(M.static_body = file_read_all(eq + 1, 1 << 20, &M.static_len))) {
				fprintf(stderr, "lqs-mock: --static PATH=FILE\n");
				return 2;
			}
			snprintf(M.static_path, sizeof(M.static_path), "%.*s", (int)(eq - optarg), optarg);
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (fixture && load_fixture(fixture))
		return 1;
	if (key_id && key_secret)
		auth_basic_bearer(key_id, key_secret, M.bearer, sizeof(M.bearer));
	if (synthetic) {
		long parts, entries, digestions = 1;
		char x, y;
		int got = sscanf(synthetic, "%ld%c%ld%c%ld", &parts, &x, &entries, &y, &digestions);
		if ((got != 3 && got != 5) || x != 'x' || (got == 5 && y != 'x') || parts < 1 || entries < 0 ||
		    digestions < 1 || digestions > 100000) {
			fprintf(stderr, "lqs-mock: --synthetic takes PARTSxENTRIES[xDIGESTIONS], e.g. 1000x1000\n");
			return 2;
		}
		syn_setup(parts, entries, digestions);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* --tls-cert and --tls-key: HTTPS (a signer's certificate host, say) */
	struct MHD_OptionItem tls_opts[] = { { MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert },
					     { MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key },
					     { MHD_OPTION_END, 0, NULL } };
	struct MHD_OptionItem no_opts[] = { { MHD_OPTION_END, 0, NULL } };
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
				     (tls_cert && tls_key ? MHD_USE_TLS : 0),
			     (uint16_t)port, NULL, NULL, on_request, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_ARRAY, tls_cert && tls_key ? tls_opts : no_opts,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, 60u,
			     MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "lqs-mock: cannot listen on 127.0.0.1:%lld\n", (long long)port);
		return 1;
	}
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("PORT=%u\n", di ? di->port : (unsigned)port);
	fflush(stdout);
	memset(&sig, 0, sizeof(sig));
	sig.sa_handler = on_signal;
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	while (!M.stop)
		pause();
	MHD_stop_daemon(d);
	json_decref(M.ds);
	json_decref(M.requests);
	json_decref(M.syn_expected);
	for (long p = 0; M.syn_cache && p < M.syn_parts; p++)
		free(M.syn_cache[p]);
	free(M.syn_cache);
	free(M.syn_cache_len);
	return 0;
}
