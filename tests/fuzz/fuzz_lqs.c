/* libFuzzer: LogQS responses as the digestion_stats handler reads them — a
 * list envelope of parts, or one part, and every index entry in them. */
#include <stdint.h>
#include <stdlib.h>

#include "lqs-hookd/handlers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
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
