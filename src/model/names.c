#include "lqs-hookd/names.h"

#include <stdio.h>
#include <string.h>


const char *const lqs_process_states[] = { "ready", "queued", "processing", "finalizing", "completed",
					    "failed", "cancelled", "archived", NULL };
const char *const lqs_process_types[] = { "ingestion", "ingestion_part", "digestion", "digestion_part", NULL };
const char *const event_states[] = { ST_QUEUED, ST_RUNNING, ST_RETRYING, ST_COMPLETED, ST_FAILED, NULL };

bool name_in(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

void names_join(const char *const *list, const char *sep, char *out, size_t n)
{
	size_t at = 0;

	out[0] = '\0';
	for (size_t i = 0; list[i] && at < n; i++)
		at += (size_t)snprintf(out + at, n - at, "%s%s", i ? sep : "", list[i]);
}
