/* A streaming reader for digestion part responses: {"data": {..., "index":
 * [[...9 fields...], ...], ...}, ...}. It walks the text once and adds each
 * index entry to the statistics without building a JSON tree, which is where
 * the time of a large digestion went. Everything it reads is validated as
 * dstats_add_index() validates it; the JSON around is checked for structure
 * (balanced, well-formed tokens, nothing after the document). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lqs-hookd/dstats.h"
#include "lqs-hookd/util.h"

#define SCAN_MAX_DEPTH 2048   /* as jansson */
/* Longest text accepted for an integer sent as a string. */
#define INT_TEXT_MAX 32

struct scan {
	const char *p, *end;
	const char *part;
	char *err;
	size_t errlen;
};

static int fail(struct scan *s, const char *what)
{
	snprintf(s->err, s->errlen, "part %s: %s", s->part, what);
	return -1;
}

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* A string token; raw and rawlen give its content between the quotes (escapes
 * left as they are, *escaped tells whether there were any). */
static int string(struct scan *s, const char **raw, size_t *rawlen, bool *escaped)
{
	const char *start;

	if (s->p >= s->end || *s->p != '"')
		return fail(s, "malformed JSON (string expected)");
	start = ++s->p;
	*escaped = false;
	while (s->p < s->end && *s->p != '"') {
		unsigned char ch = (unsigned char)*s->p;
		if (ch >= 0x20 && ch != '\\') {
			s->p++;   /* the common case: a plain character */
			continue;
		}
		if (ch < 0x20)
			return fail(s, "malformed JSON (control character in a string)");
		if (ch == '\\') {
			*escaped = true;
			if (++s->p >= s->end)
				break;
			if (*s->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (s->p + i >= s->end || !((s->p[i] >= '0' && s->p[i] <= '9') ||
								    (s->p[i] >= 'a' && s->p[i] <= 'f') ||
								    (s->p[i] >= 'A' && s->p[i] <= 'F')))
						return fail(s, "malformed JSON (bad \\u escape)");
				s->p += 4;
			} else if (!strchr("\"\\/bfnrt", *s->p)) {
				return fail(s, "malformed JSON (bad escape)");
			}
		}
		s->p++;
	}
	if (s->p >= s->end)
		return fail(s, "malformed JSON (unterminated string)");
	*raw = start;
	*rawlen = (size_t)(s->p - start);
	s->p++;
	return 0;
}

/* A JSON number token: digits only when integer_only. */
static int number(struct scan *s, bool integer_only, int64_t *out, bool *is_integer)
{
	const char *start = s->p;
	bool neg = false, frac = false;
	uint64_t v = 0;
	bool overflow = false;

	if (s->p < s->end && *s->p == '-') {
		neg = true;
		s->p++;
	}
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return fail(s, "malformed JSON (number expected)");
	if (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9')
		return fail(s, "malformed JSON (leading zero)");
	{
		/* One tight pass; 19 digits always fit in 64 bits, so only a longer
		 * run (rare) is read again with overflow checks. */
		const char *d0 = s->p, *p = s->p, *end = s->end;
		while (p < end) {
			unsigned d = (unsigned)(*p - '0');
			if (d > 9)
				break;
			v = v * 10 + d;   /* wraps past 19 digits: read again below */
			p++;
		}
		if (p - d0 > 19) {
			v = 0;
			for (const char *q = d0; q < p; q++) {
				unsigned d = (unsigned)(*q - '0');
				if (v > (UINT64_MAX - d) / 10) {
					overflow = true;
					break;
				}
				v = v * 10 + d;
			}
		}
		s->p = p;
	}
	if (s->p < s->end && *s->p == '.') {
		frac = true;
		s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return fail(s, "malformed JSON (bad fraction)");
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		frac = true;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return fail(s, "malformed JSON (bad exponent)");
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	*is_integer = !frac && !overflow && v <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX);
	if (integer_only && !*is_integer)
		return 1;   /* well-formed, but not an integer we can hold */
	if (*is_integer)
		*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	(void)start;
	return 0;
}

static int skip(struct scan *s, int depth);

static int literal(struct scan *s, const char *word)
{
	size_t n = word[4] ? 5 : 4;   /* true, false, null */

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "malformed JSON (unexpected token)");
	s->p += n;
	return 0;
}

/* Skip any value; containers are walked for well-formedness. */
static int skip(struct scan *s, int depth)
{
	const char *raw;
	size_t len;
	bool esc, isint;
	int64_t v;

	ws(s);
	if (s->p >= s->end)
		return fail(s, "malformed JSON (value expected)");
	if (depth > SCAN_MAX_DEPTH)
		return fail(s, "malformed JSON (nested too deep)");
	switch (*s->p) {
	case '"':
		return string(s, &raw, &len, &esc);
	case 't': return literal(s, "true");
	case 'f': return literal(s, "false");
	case 'n': return literal(s, "null");
	case '[':
	case '{': {
		char close = *s->p == '[' ? ']' : '}';
		bool object = close == '}';
		s->p++;
		ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return 0;
		}
		for (;;) {
			if (object) {
				ws(s);
				if (string(s, &raw, &len, &esc))
					return -1;
				ws(s);
				if (s->p >= s->end || *s->p != ':')
					return fail(s, "malformed JSON (':' expected)");
				s->p++;
			}
			if (skip(s, depth + 1))
				return -1;
			ws(s);
			if (s->p < s->end && *s->p == ',') {
				s->p++;
				continue;
			}
			if (s->p < s->end && *s->p == close) {
				s->p++;
				return 0;
			}
			return fail(s, "malformed JSON (',' or end of container expected)");
		}
	}
	default:
		return number(s, false, &v, &isint) < 0 ? -1 : 0;
	}
}

/* An integer field: a JSON integer, or a string holding one (timestamps may
 * come as either). 1: present but not such an integer; 2: null. */
static int int_field(struct scan *s, int64_t *out)
{
	const char *raw;
	size_t len;
	bool esc, isint;
	int rc;

	ws(s);
	if (s->p < s->end && *s->p == 'n')
		return literal(s, "null") ? -1 : 2;
	if (s->p < s->end && *s->p == '"') {
		if (string(s, &raw, &len, &esc))
			return -1;
		if (esc || len == 0 || len >= INT_TEXT_MAX)
			return 1;
		return parse_dec_i64(raw, len, out) ? 1 : 0;
	}
	if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
		rc = number(s, true, out, &isint);
		return rc;
	}
	rc = skip(s, 1);
	return rc ? -1 : 1;
}

/* One entry. As in dstats_add_index, a wrong number of fields is reported
 * before a bad field, so the entry is read to its end before judging. */
/* An entry's topic_id: *ok when it is a UUID, its 36 characters in topic.
 * -1 on malformed JSON. */
static inline int topic_field(struct scan *s, struct digestion_stats *st, char topic[36], bool *ok)
{
	const char *raw;
	size_t len;
	bool esc;

	if (s->end - s->p >= 38 && *s->p == '"' && s->p[37] == '"' && dstats_topic_seen(st, s->p + 1)) {
		/* a topic this digestion already sent: known to be a plain
		 * 36-character UUID, nothing to check again */
		memcpy(topic, s->p + 1, 36);
		*ok = true;
		s->p += 38;
	} else if (s->p < s->end && *s->p == '"') {
		if (string(s, &raw, &len, &esc))
			return -1;
		if (!esc && len == 36) {
			memcpy(topic, raw, 36);
			*ok = dstats_topic_ok(st, topic);
		}
	} else if (skip(s, 1)) {
		return -1;
	}
	return 0;
}

static int entry(struct scan *s, struct digestion_stats *st, size_t i)
{
	char why[160] = "", topic[36];
	bool has_topic = false;
	int64_t dlen = 0, clen = 0, ts = 0;
	int fields = 0, rc;
	bool clen_null = false;

	ws(s);
	if (s->p >= s->end || *s->p != '[') {
		snprintf(why, sizeof(why), "index entry %zu is not an array of 9 fields", i);
		return fail(s, why);
	}
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == ']') {
		snprintf(why, sizeof(why), "index entry %zu is not an array of 9 fields", i);
		return fail(s, why);
	}
	for (;; fields++) {
		ws(s);
		switch (fields) {
		case 0:
			if (topic_field(s, st, topic, &has_topic))
				return -1;
			if (!has_topic && !why[0])
				snprintf(why, sizeof(why), "index entry %zu: topic_id is not a UUID", i);
			break;
		case 4:
			rc = int_field(s, &dlen);
			if (rc < 0)
				return -1;
			if ((rc || dlen < 0) && !why[0])
				snprintf(why, sizeof(why), "index entry %zu: data_length is not a non-negative integer", i);
			break;
		case 7:
			rc = int_field(s, &clen);
			if (rc < 0)
				return -1;
			clen_null = rc == 2;
			if ((rc == 1 || (!clen_null && clen < 0)) && !why[0])
				snprintf(why, sizeof(why),
					 "index entry %zu: chunk_length is neither null nor a non-negative integer", i);
			break;
		case 8:
			rc = int_field(s, &ts);
			if (rc < 0)
				return -1;
			if (rc && !why[0])
				snprintf(why, sizeof(why), "index entry %zu: timestamp is not an integer", i);
			break;
		default:
			if (skip(s, 1))
				return -1;
		}
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			break;
		}
		return fail(s, "malformed JSON (',' or ']' expected in an index entry)");
	}
	if (fields != 8) {
		snprintf(why, sizeof(why), "index entry %zu is not an array of 9 fields", i);
		return fail(s, why);
	}
	if (why[0])
		return fail(s, why);
	rc = dstats_add_entry_raw(st, topic, dlen, clen_null ? -1 : clen, ts);
	if (rc > 0) {
		snprintf(why, sizeof(why), "index entry %zu: topic_id is not a UUID", i);
		return fail(s, why);
	}
	return rc < 0 ? fail(s, "out of memory") : 0;
}

/* The index array itself. */
static int index_array(struct scan *s, struct digestion_stats *st)
{
	size_t i = 0;

	ws(s);
	if (s->p >= s->end || *s->p != '[')
		return fail(s, "index is not an array");
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;; i++) {
		if (entry(s, st, i))
			return -1;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return 0;
		}
		return fail(s, "malformed JSON (',' or ']' expected in the index)");
	}
}

/* Members of an object: calls on(key) for each, which must consume the value. */
static int members(struct scan *s, int (*on)(struct scan *, const char *, size_t, bool, void *), void *ctx)
{
	const char *raw;
	size_t len;
	bool esc;

	ws(s);
	if (s->p >= s->end || *s->p != '{')
		return fail(s, "malformed response (object expected)");
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		ws(s);
		if (string(s, &raw, &len, &esc))
			return -1;
		ws(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "malformed JSON (':' expected)");
		s->p++;
		if (on(s, raw, esc ? 0 : len, esc, ctx))
			return -1;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		return fail(s, "malformed JSON (',' or '}' expected)");
	}
}

struct data_ctx {
	struct digestion_stats *st;
	int seen;        /* "index" members met */
	int has_index;   /* an array was counted */
};

static int on_data_member(struct scan *s, const char *key, size_t len, bool esc, void *ctx)
{
	struct data_ctx *d = ctx;

	(void)esc;
	if (len == 5 && memcmp(key, "index", 5) == 0) {
		if (++d->seen > 1)
			return fail(s, "the part has two \"index\" members");
		ws(s);
		if (s->p < s->end && *s->p == 'n')
			return literal(s, "null");
		d->has_index = 1;
		return index_array(s, d->st);
	}
	return skip(s, 2);
}

struct top_ctx {
	struct data_ctx data;
	int seen_data;
};

static int on_top_member(struct scan *s, const char *key, size_t len, bool esc, void *ctx)
{
	struct top_ctx *t = ctx;

	(void)esc;
	if (len == 4 && memcmp(key, "data", 4) == 0) {
		if (++t->seen_data > 1)
			return fail(s, "the response has two \"data\" members");
		return members(s, on_data_member, &t->data);
	}
	return skip(s, 1);
}

int dstats_scan_part(struct digestion_stats *st, const char *json, size_t len, const char *part, char *err,
		     size_t errlen)
{
	struct scan s = { json, json + len, part, err, errlen };
	struct top_ctx t = { { st, 0, 0 }, 0 };
	int64_t before_parts = st->part_count;

	if (members(&s, on_top_member, &t))
		return -1;
	ws(&s);
	if (s.p != s.end)
		return fail(&s, "malformed JSON (text after the document)");
	if (!t.seen_data)
		return fail(&s, "response has no \"data\" member");
	if (!t.data.has_index)
		return fail(&s, "index is missing (null) even when fetched");
	st->part_count = before_parts + 1;
	return 0;
}
