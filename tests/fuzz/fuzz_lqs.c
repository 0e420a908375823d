/* libFuzzer: LogQS responses as the digestion_stats handler reads them — a
 * list envelope of parts, or one part, and every index entry in them. */
#include <stdint.h>
#include <stdlib.h>

#include "lqs-hookd/dstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Differential check: where the tree reader and the streaming reader both
 * accept one part response, they must agree on every figure. */
static void differential(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
	json_t *d = doc ? json_object_get(doc, "data") : NULL;
	struct digestion_stats a, b;
	char err[512];

	dstats_init(&a);
	dstats_init(&b);
	int rb = dstats_scan_part(&b, (const char *)data, size, "p", err, sizeof(err));
	if (json_is_object(d) && json_is_array(json_object_get(d, "index")) &&
	    dstats_add_index(&a, json_object_get(d, "index"), "p", err, sizeof(err)) == 0 && rb == 0) {
		json_t *ja = dstats_to_json(&a, "d"), *jb = dstats_to_json(&b, "d");
		if (!json_equal(ja, jb))
			abort();
		json_decref(ja);
		json_decref(jb);
	}
	dstats_free(&a);
	dstats_free(&b);
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	differential(data, size);
	json_t *doc = json_loadb((const char *)data, size, 0, &jerr), *d, *part;
	struct digestion_stats s;
	char err[512];
	size_t i;

	if (!doc)
		return 0;
	dstats_init(&s);
	d = json_object_get(doc, "data");
	if (json_is_array(d)) {
		json_array_foreach(d, i, part)
			if (json_is_array(json_object_get(part, "index")))
				dstats_add_index(&s, json_object_get(part, "index"), "p", err, sizeof(err));
	} else if (json_is_object(d)) {
		dstats_add_index(&s, json_object_get(d, "index"), "p", err, sizeof(err));
	}
	json_t *j = dstats_to_json(&s, "d");
	json_decref(j);
	dstats_free(&s);
	json_decref(doc);
	return 0;
}
