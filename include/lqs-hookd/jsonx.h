/* Small JSON helpers the API views share. */
#ifndef LQS_JSONX_H
#define LQS_JSONX_H
#include <stdint.h>

#include <jansson.h>

/* ISO 8601 UTC with milliseconds, or null for 0. */
json_t *json_time_or_null(int64_t ms);
/* A page's next_cursor: the number as a string, or null for 0 (the last). */
json_t *json_cursor_or_null(int64_t next);
/* The string, or null for NULL or "". */
json_t *json_str_or_null(const char *s);

#endif
