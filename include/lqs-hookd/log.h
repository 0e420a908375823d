/* Structured logging: one JSON object per line on stderr. */
#ifndef LQS_LOG_H
#define LQS_LOG_H
#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

enum log_format { LOG_FMT_JSON = 0, LOG_FMT_JOURNAL };

void log_set_level(enum log_level lvl);
/* "json", "journal" or "auto" (journal when stderr is systemd's journal
 * stream and journald support is built in). Returns 0, -1 for an unknown
 * name, or 1 when the journal was asked for but is not there (no journald,
 * or a build without it): then lines go to stderr as JSON. */
int log_set_format(const char *name);
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
/* event_id and resource_id may be NULL; they are emitted as fields when set. */
void log_event(enum log_level lvl, const char *event_id, const char *resource_id,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A numeric field of its own on a log line ("attempt": 3). key must be a
 * plain lowercase identifier (it is written as is). */
struct log_field {
	const char *key;
	double value;
};
void log_event_fields(enum log_level lvl, const char *event_id, const char *resource_id,
		      const struct log_field *fields, size_t n_fields, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* The JSON line written for one log entry, newline included and
 * NUL-terminated; every value escaped, invalid UTF-8 replaced. Returns its
 * length (at most cap - 1; cap must be at least 64). For tests. */
#define LOG_LINE_MAX 16384
size_t log_format_line(char *out, size_t cap, const char *ts, const char *level, const char *msg,
		       const char *event_id, const char *resource_id, const struct log_field *fields,
		       size_t n_fields);

#define log_error(...) log_event(LOG_LVL_ERROR, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_event(LOG_LVL_WARN, NULL, NULL, __VA_ARGS__)
#define log_info(...)  log_event(LOG_LVL_INFO, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_event(LOG_LVL_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
