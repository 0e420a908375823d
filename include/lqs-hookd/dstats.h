/* Record statistics of a digestion (the digestion_stats handler's
 * figures), apart from the handler so that the scanner and the unit tests
 * use them without it. */
#ifndef LQS_DSTATS_H
#define LQS_DSTATS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Record statistics of a digestion, exposed for unit tests. */
struct topic_stat {
	char topic_id[37];
	int64_t record_count;
	int64_t record_size;
};

#define DSTATS_RECENT 8

struct digestion_stats {
	int64_t record_count;
	int64_t record_size;
	int64_t part_count;
	int64_t start_time;   /* min timestamp (ns); valid when record_count > 0 */
	int64_t end_time;
	struct topic_stat *topics;   /* open-addressed table */
	size_t topics_cap, topics_len;
	/* the last few topics seen, by their text as sent: a part's entries
	 * cycle through a handful of topics */
	struct {
		char raw[36];
		struct topic_stat *slot;
	} recent[DSTATS_RECENT];
	unsigned n_recent, next_recent;
};

void dstats_init(struct digestion_stats *s);
void dstats_free(struct digestion_stats *s);
/* Add one part's index. part names the part in errors. Returns 0, or -1
 * with a message naming the part and entry. */
int dstats_add_index(struct digestion_stats *s, json_t *index, const char *part, char *err,
		     size_t errlen);
/* One index entry (topic already a canonical UUID; chunk_length -1: null). */
int dstats_add_entry(struct digestion_stats *s, const char *topic, int64_t data_length, int64_t chunk_length,
		     int64_t timestamp);
/* Whether these 36 characters are a topic seen last (so a valid one). */
bool dstats_topic_seen(const struct digestion_stats *s, const char *raw36);
/* Whether the 36 characters a topic was sent as are a UUID (cheap for the
 * topics seen last). */
bool dstats_topic_ok(struct digestion_stats *s, const char *raw36);
/* dstats_add_entry for a topic known by the 36 characters it was sent as:
 * 1 when they are not a UUID, -1 when out of memory. */
int dstats_add_entry_raw(struct digestion_stats *s, const char *raw36, int64_t data_length,
			 int64_t chunk_length, int64_t timestamp);
/* A fetched part's response body ({"data": {..., "index": [...]}}), read
 * without building a JSON tree; counts the part. Same checks and messages as
 * dstats_add_index. Returns 0 or -1. */
int dstats_scan_part(struct digestion_stats *s, const char *json, size_t len, const char *part, char *err,
		     size_t errlen);
/* Add the figures of from into into (parts scanned apart, counted as one). */
int dstats_merge(struct digestion_stats *into, const struct digestion_stats *from);
json_t *dstats_to_json(const struct digestion_stats *s, const char *digestion_id);

#endif
