#include "lqs-hookd/jsonx.h"

#include <stdio.h>

#include "lqs-hookd/util.h"

json_t *json_time_or_null(int64_t ms)
{
	char t[32];

	if (!ms)
		return json_null();
	iso8601_ms(ms, t);
	return json_string(t);
}

json_t *json_str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *json_cursor_or_null(int64_t next)
{
	char cur[32];

	if (!next)
		return json_null();
	snprintf(cur, sizeof(cur), "%lld", (long long)next);
	return json_string(cur);
}
