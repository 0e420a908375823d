/* libFuzzer: the EventCreateRequest parser and validator. */
#include <stdint.h>
#include <stdlib.h>

#include "lqs-hookd/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event ev;
	json_t *detail = NULL;

	if (event_parse((const char *)data, size, &ev, &detail) == EVENT_OK) {
		json_t *j = event_to_json(&ev);
		char *s = json_dumps(j, JSON_COMPACT);
		free(s);
		json_decref(j);
		event_free(&ev);
	}
	json_decref(detail);
	return 0;
}
