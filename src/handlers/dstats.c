/* Record statistics of a digestion: counts and sizes over every index
 * entry, per topic too, and the time range. Pure computation: no I/O. */
#include "lqs-hookd/dstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/util.h"

void dstats_init(struct digestion_stats *s)
{
	memset(s, 0, sizeof(*s));
}

void dstats_free(struct digestion_stats *s)
{
	free(s->topics);
	memset(s, 0, sizeof(*s));
}

static uint64_t hash_str(const char *p)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

static struct topic_stat *topic_slot(struct digestion_stats *s, const char *id)
{
	size_t i;

	if ((s->topics_len + 1) * 2 > s->topics_cap) {
		size_t ncap = s->topics_cap ? s->topics_cap * 2 : 16;
		struct topic_stat *nt = calloc(ncap, sizeof(*nt));
		if (!nt)
			return NULL;
		for (size_t k = 0; k < s->topics_cap; k++) {
			if (!s->topics[k].topic_id[0])
				continue;
			i = hash_str(s->topics[k].topic_id) & (ncap - 1);
			while (nt[i].topic_id[0])
				i = (i + 1) & (ncap - 1);
			nt[i] = s->topics[k];
		}
		free(s->topics);
		s->topics = nt;
		s->topics_cap = ncap;
		s->n_recent = 0;   /* the remembered slots moved */
	}
	i = hash_str(id) & (s->topics_cap - 1);
	while (s->topics[i].topic_id[0]) {
		if (strcmp(s->topics[i].topic_id, id) == 0)
			return &s->topics[i];
		i = (i + 1) & (s->topics_cap - 1);
	}
	str_copy(s->topics[i].topic_id, id, sizeof(s->topics[i].topic_id));
	s->topics_len++;
	return &s->topics[i];
}

/* Integers that hold nanosecond timestamps may be numbers or strings. */
static int json_i64(json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return parse_i64(json_string_value(v), out);
	return -1;
}

static void add_to(struct digestion_stats *s, struct topic_stat *t, int64_t data_length, int64_t chunk_length,
		   int64_t timestamp)
{
	/* the tutorial's rule: the chunk's length where there is one */
	int64_t size = chunk_length >= 0 ? chunk_length : data_length;

	if (s->record_count == 0 || timestamp < s->start_time)
		s->start_time = timestamp;
	if (s->record_count == 0 || timestamp > s->end_time)
		s->end_time = timestamp;
	s->record_count++;
	s->record_size += size;
	t->record_count++;
	t->record_size += size;
}

int dstats_add_entry(struct digestion_stats *s, const char *topic, int64_t data_length, int64_t chunk_length,
		     int64_t timestamp)
{
	struct topic_stat *t = topic_slot(s, topic);

	if (!t)
		return -1;
	add_to(s, t, data_length, chunk_length, timestamp);
	return 0;
}

static struct topic_stat *recent_topic(const struct digestion_stats *s, const char *raw36)
{
	for (unsigned k = 0; k < s->n_recent; k++)
		if (memcmp(s->recent[k].raw, raw36, 36) == 0)
			return s->recent[k].slot;
	return NULL;
}

bool dstats_topic_seen(const struct digestion_stats *s, const char *raw36)
{
	return recent_topic(s, raw36) != NULL;
}

/* The 36 characters a topic was sent as, checked and lowercased. */
static bool raw_topic_canonical(const char *raw36, char canon[37])
{
	char text[37];

	memcpy(text, raw36, 36);
	text[36] = '\0';
	return uuid_canonical(text, canon);
}

bool dstats_topic_ok(struct digestion_stats *s, const char *raw36)
{
	char canon[37];

	return recent_topic(s, raw36) || raw_topic_canonical(raw36, canon);
}

int dstats_add_entry_raw(struct digestion_stats *s, const char *raw36, int64_t data_length,
			 int64_t chunk_length, int64_t timestamp)
{
	struct topic_stat *t = recent_topic(s, raw36);
	char canon[37];

	if (!t) {
		if (!raw_topic_canonical(raw36, canon))
			return 1;
		t = topic_slot(s, canon);
		if (!t)
			return -1;
		/* remember it (after topic_slot, which may forget the others) */
		unsigned k = s->n_recent < DSTATS_RECENT ? s->n_recent++ : s->next_recent++ % DSTATS_RECENT;
		memcpy(s->recent[k].raw, raw36, 36);
		s->recent[k].slot = t;
	}
	add_to(s, t, data_length, chunk_length, timestamp);
	return 0;
}

int dstats_merge(struct digestion_stats *into, const struct digestion_stats *from)
{
	for (size_t i = 0; i < from->topics_cap; i++) {
		const struct topic_stat *f = &from->topics[i];
		struct topic_stat *t;
		if (!f->topic_id[0])
			continue;
		t = topic_slot(into, f->topic_id);
		if (!t)
			return -1;
		t->record_count += f->record_count;
		t->record_size += f->record_size;
	}
	if (from->record_count) {
		if (!into->record_count || from->start_time < into->start_time)
			into->start_time = from->start_time;
		if (!into->record_count || from->end_time > into->end_time)
			into->end_time = from->end_time;
	}
	into->record_count += from->record_count;
	into->record_size += from->record_size;
	into->part_count += from->part_count;
	return 0;
}

int dstats_add_index(struct digestion_stats *s, json_t *index, const char *part, char *err,
		     size_t errlen)
{
	size_t i;
	json_t *e;

	if (!json_is_array(index)) {
		snprintf(err, errlen, "part %s: index is not an array", part);
		return -1;
	}
	json_array_foreach(index, i, e) {
		json_t *topic, *clen;
		int64_t dlen, size = 0, ts;
		char canon[37];

		if (!json_is_array(e) || json_array_size(e) != 9) {
			snprintf(err, errlen, "part %s: index entry %zu is not an array of 9 fields", part, i);
			return -1;
		}
		topic = json_array_get(e, 0);
		if (!json_is_string(topic) || !uuid_canonical(json_string_value(topic), canon)) {
			snprintf(err, errlen, "part %s: index entry %zu: topic_id is not a UUID", part, i);
			return -1;
		}
		if (json_i64(json_array_get(e, 4), &dlen) || dlen < 0) {
			snprintf(err, errlen, "part %s: index entry %zu: data_length is not a non-negative integer",
				 part, i);
			return -1;
		}
		clen = json_array_get(e, 7);
		if (json_is_null(clen)) {
			size = dlen;
		} else if (json_i64(clen, &size) || size < 0) {
			snprintf(err, errlen, "part %s: index entry %zu: chunk_length is neither null nor a non-negative integer",
				 part, i);
			return -1;
		}
		if (json_i64(json_array_get(e, 8), &ts)) {
			snprintf(err, errlen, "part %s: index entry %zu: timestamp is not an integer", part, i);
			return -1;
		}
		if (dstats_add_entry(s, canon, dlen, json_is_null(clen) ? -1 : size, ts)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	s->part_count++;
	return 0;
}

json_t *dstats_to_json(const struct digestion_stats *s, const char *digestion_id)
{
	json_t *topics = json_object();

	for (size_t i = 0; i < s->topics_cap; i++) {
		const struct topic_stat *t = &s->topics[i];
		if (t->topic_id[0])
			json_object_set_new(topics, t->topic_id,
					    json_pack("{s:I, s:I}", "record_count", (json_int_t)t->record_count,
						      "record_size", (json_int_t)t->record_size));
	}
	return json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:o}", "digestion_id", digestion_id,
			 "record_count", (json_int_t)s->record_count, "record_size",
			 (json_int_t)s->record_size, "part_count", (json_int_t)s->part_count,
			 "start_time", s->record_count ? json_integer(s->start_time) : json_null(),
			 "end_time", s->record_count ? json_integer(s->end_time) : json_null(),
			 "topics", topics);
}
