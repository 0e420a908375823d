/* Object events in: S3 notifications, EventBridge events, SNS messages. */
#include "lqs-hookd/objects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/util.h"

/* Where a bad field is: "body", then the path to it. */
struct where {
	const char *path[8];
	int idx[8];          /* >= 0: an array index instead of a name */
	int n;
};

static void at_push(struct where *w, const char *name, int idx)
{
	if (w->n < 8) {
		w->path[w->n] = name;
		w->idx[w->n] = idx;
		w->n++;
	}
}

static void add_err(json_t *errs, const struct where *w, const char *field, const char *type, const char *msg)
{
	json_t *loc = json_pack("[s]", "body");

	for (int i = 0; i < w->n; i++)
		json_array_append_new(loc, w->idx[i] >= 0 ? json_integer(w->idx[i]) : json_string(w->path[i]));
	if (field)
		json_array_append_new(loc, json_string(field));
	json_array_append_new(errs, json_pack("{s:o, s:s, s:s}", "loc", loc, "msg", msg, "type", type));
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool utf8_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len((const unsigned char *)s + i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

int objects_form_decode(const char *in, char **out, size_t *outlen)
{
	size_t n = strlen(in), o = 0;
	char *d = malloc(n + 1);

	if (!d)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '+') {
			d[o++] = ' ';
		} else if (in[i] == '%') {
			/* the string ends in a NUL, which is no hex digit */
			int hi = hexval(in[i + 1]);
			int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
			if (lo < 0 || (hi == 0 && lo == 0)) {
				free(d);
				return -1;
			}
			d[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			d[o++] = in[i];
		}
	}
	d[o] = '\0';
	if (o == 0 || o > OBJECT_MAX_KEY || !utf8_ok(d, o)) {
		free(d);
		return -1;
	}
	*out = d;
	*outlen = o;
	return 0;
}

static const char *str_at(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Copy an optional string field into a fixed buffer; a bad one is an error. */
static void opt_str(json_t *o, const char *key, char *dst, size_t n, json_t *errs, const struct where *w)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return;
	if (!json_is_string(v) || strlen(json_string_value(v)) >= n || !utf8_ok(json_string_value(v), strlen(json_string_value(v)))) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Input should be a string of at most %zu characters", n - 1);
		add_err(errs, w, key, "string_type", msg);
		return;
	}
	str_copy(dst, json_string_value(v), n);
}

/* The fields every format shares, from the object's block. form: keys are
 * form-encoded (S3 notifications), else raw (EventBridge). */
static void object_fields(json_t *obj, bool form, const char *etag_key, const char *version_key,
			  struct object_rec *r, json_t *errs, struct where *w)
{
	const char *key = str_at(obj, "key");
	json_t *size = json_object_get(obj, "size");

	if (!json_is_object(obj)) {
		add_err(errs, w, NULL, "missing", "Field required: the object block");
		return;
	}
	if (!key) {
		add_err(errs, w, "key", "missing", "Field required");
	} else if (form ? objects_form_decode(key, &r->key, &r->key_len) != 0
			: (strlen(key) == 0 || strlen(key) > OBJECT_MAX_KEY || !utf8_ok(key, strlen(key)) ||
			   !(r->key = strdup(key)))) {
		add_err(errs, w, "key", "value_error",
			form ? "Value error, not a form-encoded S3 key (bad %-escape, NUL, not UTF-8, empty or over 1024 bytes)"
			     : "Value error, not an S3 key (empty, not UTF-8 or over 1024 bytes)");
	} else if (!form) {
		r->key_len = strlen(r->key);
	}
	r->size = -1;
	if (json_is_integer(size) && json_integer_value(size) >= 0)
		r->size = json_integer_value(size);
	else if (size && !json_is_null(size))
		add_err(errs, w, "size", "int_type", "Input should be a non-negative integer");
	opt_str(obj, etag_key, r->etag, sizeof(r->etag), errs, w);
	opt_str(obj, version_key, r->version_id, sizeof(r->version_id), errs, w);
	opt_str(obj, "sequencer", r->sequencer, sizeof(r->sequencer), errs, w);
}

static bool bucket_ok(const char *b)
{
	size_t n = b ? strlen(b) : 0;

	return n >= 3 && n <= 63 && strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-_") == n;
}

static void bucket_field(json_t *bucket, struct object_rec *r, json_t *errs, struct where *w)
{
	const char *name = str_at(bucket, "name");

	at_push(w, "bucket", -1);
	if (!bucket_ok(name))
		add_err(errs, w, "name", name ? "value_error" : "missing",
			name ? "Value error, not an S3 bucket name" : "Field required");
	else
		str_copy(r->bucket, name, sizeof(r->bucket));
	w->n--;
}

static int64_t time_of(json_t *v)
{
	int64_t ms = 0;

	return json_is_string(v) && iso8601_parse(json_string_value(v), &ms) == 0 ? ms : 0;
}

/* One S3 notification record: 1 read, 0 ignored (another event type). */
static int s3_record(json_t *rec, struct object_rec *r, json_t *errs, struct where *w)
{
	const char *name = str_at(rec, "eventName");
	json_t *s3 = json_object_get(rec, "s3");

	if (!json_is_object(rec)) {
		add_err(errs, w, NULL, "dict_type", "Input should be an object (an S3 event record)");
		return 0;
	}
	if (!name) {
		add_err(errs, w, "eventName", "missing", "Field required");
		return 0;
	}
	/* older notifications may carry the s3: prefix */
	if (strncmp(name, "s3:", 3) == 0)
		name += 3;
	if (strncmp(name, "ObjectCreated:", 14) != 0 && strncmp(name, "ObjectRemoved:", 14) != 0)
		return 0;
	str_copy(r->kind, name[6] == 'C' ? "created" : "removed", sizeof(r->kind));
	str_copy(r->event_name, name, sizeof(r->event_name));
	r->event_ms = time_of(json_object_get(rec, "eventTime"));
	opt_str(rec, "awsRegion", r->region, sizeof(r->region), errs, w);
	at_push(w, "s3", -1);
	if (!json_is_object(s3)) {
		add_err(errs, w, NULL, "missing", "Field required");
	} else {
		bucket_field(json_object_get(s3, "bucket"), r, errs, w);
		at_push(w, "object", -1);
		object_fields(json_object_get(s3, "object"), true, "eTag", "versionId", r, errs, w);
		w->n--;
	}
	w->n--;
	return 1;
}

/* An EventBridge event from aws.s3: 1 read, 0 ignored. */
static int eventbridge(json_t *doc, struct object_rec *r, json_t *errs, struct where *w)
{
	const char *dt = str_at(doc, "detail-type"), *reason;
	json_t *detail = json_object_get(doc, "detail");

	if (!dt || (strcmp(dt, "Object Created") != 0 && strcmp(dt, "Object Deleted") != 0))
		return 0;
	str_copy(r->kind, dt[7] == 'C' ? "created" : "removed", sizeof(r->kind));
	reason = str_at(detail, "reason");
	snprintf(r->event_name, sizeof(r->event_name), "%s/%s", dt, reason ? reason : "");
	r->event_ms = time_of(json_object_get(doc, "time"));
	opt_str(doc, "region", r->region, sizeof(r->region), errs, w);
	at_push(w, "detail", -1);
	if (!json_is_object(detail)) {
		add_err(errs, w, NULL, "missing", "Field required");
	} else {
		bucket_field(json_object_get(detail, "bucket"), r, errs, w);
		at_push(w, "object", -1);
		object_fields(json_object_get(detail, "object"), false, "etag", "version-id", r, errs, w);
		w->n--;
	}
	w->n--;
	return 1;
}

static bool is_eventbridge(json_t *doc)
{
	const char *src = str_at(doc, "source");

	return src && strcmp(src, "aws.s3") == 0 && json_is_string(json_object_get(doc, "detail-type"));
}

static bool grow(struct objects_msg *m, size_t *cap)
{
	if (m->n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 4;
	struct object_rec *nr = realloc(m->recs, ncap * sizeof(*nr));
	if (!nr)
		return false;
	m->recs = nr;
	*cap = ncap;
	return true;
}

/* The message proper (S3 Records, a test event, an EventBridge event). */
static enum objects_result read_message(json_t *doc, struct objects_msg *m, size_t max, json_t *errs,
					struct where *w)
{
	json_t *records = json_object_get(doc, "Records"), *rec;
	size_t cap = 0, i;

	if (!json_is_object(doc)) {
		add_err(errs, w, NULL, "dict_type", "Input should be an object: an S3 notification, an EventBridge "
			"event or an SNS message");
		return OBJECTS_INVALID;
	}
	if (str_at(doc, "Event") && strcmp(str_at(doc, "Event"), "s3:TestEvent") == 0) {
		m->kind = OBJECTS_TEST_EVENT;
		return OBJECTS_OK;
	}
	if (is_eventbridge(doc)) {
		if (!grow(m, &cap))
			return OBJECTS_NOMEM;
		memset(&m->recs[0], 0, sizeof(m->recs[0]));
		if (eventbridge(doc, &m->recs[0], errs, w))
			m->n = 1;
		else
			m->ignored = 1;
		return json_array_size(errs) ? OBJECTS_INVALID : OBJECTS_OK;
	}
	if (!json_is_array(records)) {
		add_err(errs, w, "Records", "missing", "Field required: not an S3 notification ({\"Records\":[…]}), an "
			"EventBridge event (source aws.s3) or an SNS message");
		return OBJECTS_INVALID;
	}
	if (json_array_size(records) > max) {
		char msg[96];
		snprintf(msg, sizeof(msg), "List should have at most %zu items (max_records)", max);
		add_err(errs, w, "Records", "too_long", msg);
		return OBJECTS_INVALID;
	}
	at_push(w, "Records", -1);
	json_array_foreach(records, i, rec) {
		if (!grow(m, &cap))
			return OBJECTS_NOMEM;
		memset(&m->recs[m->n], 0, sizeof(m->recs[0]));
		at_push(w, NULL, (int)i);
		if (s3_record(rec, &m->recs[m->n], errs, w))
			m->n++;
		else
			m->ignored++;
		w->n--;
	}
	w->n--;
	return json_array_size(errs) ? OBJECTS_INVALID : OBJECTS_OK;
}

static enum objects_result syntax(json_error_t *jerr, const char *what, json_t **detail)
{
	char msg[400];

	snprintf(msg, sizeof(msg), "JSON decode error%s: %s (line %d, column %d, position %d)", what, jerr->text,
		 jerr->line, jerr->column, jerr->position);
	*detail = json_string(msg);
	return *detail ? OBJECTS_SYNTAX : OBJECTS_NOMEM;
}

/* An SNS envelope: its type, and for a notification the message inside. */
static enum objects_result sns(json_t *doc, struct objects_msg *m, size_t max, json_t *errs)
{
	const char *type = str_at(doc, "Type"), *msg = str_at(doc, "Message");
	struct where w = { .n = 0 };
	json_error_t jerr;
	json_t *inner;
	enum objects_result r;

	m->sns = json_incref(doc);
	if (strcmp(type, "SubscriptionConfirmation") == 0 || strcmp(type, "UnsubscribeConfirmation") == 0) {
		m->kind = type[0] == 'S' ? OBJECTS_SNS_CONFIRM : OBJECTS_SNS_UNSUBSCRIBE;
		return OBJECTS_OK;
	}
	if (!msg) {
		add_err(errs, &w, "Message", "missing", "Field required");
		return OBJECTS_INVALID;
	}
	inner = json_loads(msg, JSON_REJECT_DUPLICATES, &jerr);
	if (!inner) {
		/* the envelope is fine; what it carries is not an object event */
		add_err(errs, &w, "Message", "json_invalid", "Value error, the SNS Message is not JSON");
		return OBJECTS_INVALID;
	}
	at_push(&w, "Message", -1);
	r = read_message(inner, m, max, errs, &w);
	json_decref(inner);
	return r;
}

enum objects_result objects_parse(const char *body, size_t len, size_t max_records, struct objects_msg *out,
				  json_t **detail)
{
	json_error_t jerr;
	json_t *doc, *errs;
	struct where w = { .n = 0 };
	enum objects_result r;
	const char *type;

	memset(out, 0, sizeof(*out));
	*detail = NULL;
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!doc)
		return syntax(&jerr, "", detail);
	errs = json_array();
	type = str_at(doc, "Type");
	if (type && json_is_string(json_object_get(doc, "TopicArn")) &&
	    (strcmp(type, "Notification") == 0 || strcmp(type, "SubscriptionConfirmation") == 0 ||
	     strcmp(type, "UnsubscribeConfirmation") == 0)) {
		str_copy(out->format, "sns", sizeof(out->format));
		r = sns(doc, out, max_records, errs);
	} else {
		str_copy(out->format, is_eventbridge(doc) ? "eventbridge" : "s3", sizeof(out->format));
		r = read_message(doc, out, max_records, errs, &w);
	}
	json_decref(doc);
	if (r == OBJECTS_INVALID) {
		*detail = errs;
		objects_msg_free(out);
		return r;
	}
	json_decref(errs);
	if (r != OBJECTS_OK)
		objects_msg_free(out);
	return r;
}

void objects_msg_free(struct objects_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->recs[i].key);
	free(m->recs);
	json_decref(m->sns);
	m->recs = NULL;
	m->n = 0;
	m->sns = NULL;
}

char *objects_dedupe_key(const struct object_rec *r)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "%s|%s|", r->bucket, r->kind);
	if (r->version_id[0])
		buf_printf(&b, "v:%s|", r->version_id);
	else if (r->sequencer[0])
		buf_printf(&b, "s:%s|", r->sequencer);
	else
		buf_printf(&b, "e:%s|", r->etag);
	buf_append(&b, r->key, r->key_len);
	return buf_steal(&b);
}
