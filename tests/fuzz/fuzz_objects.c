/* libFuzzer: the S3 / EventBridge / SNS object event parser, with the
 * watch matching and dedupe key each record then goes through. */
#include <stdint.h>
#include <stdlib.h>

#include "lqs-hookd/objects.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct objects_msg m;
	json_t *detail = NULL;

	if (objects_parse((const char *)data, size, 1000, &m, &detail) == OBJECTS_OK) {
		for (size_t i = 0; i < m.n; i++)
			free(objects_dedupe_key(&m.recs[i]));
		objects_msg_free(&m);
	}
	json_decref(detail);
	return 0;
}
