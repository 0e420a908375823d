/* Small helpers shared by every module. */
#ifndef LQS_UTIL_H
#define LQS_UTIL_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The commit this binary was built from (git describe), or "unknown". */
extern const char lqs_build_commit[];

/* Copy with truncation; always NUL-terminates (dst size > 0). Returns strlen(src). */
size_t str_copy(char *dst, const char *src, size_t size);
/* Strict decimal parsers: whole string, no overflow. Return 0 or -1. */
int parse_i64(const char *s, int64_t *out);
/* The n characters at p as a base-10 integer: an optional sign and digits,
 * nothing else, within int64 (what parse_i64 accepts of such text). */
int parse_dec_i64(const char *p, size_t n, int64_t *out);

int parse_double(const char *s, double *out);
int parse_bool(const char *s, bool *out);
/* Milliseconds since the epoch / since an arbitrary monotonic origin. */
int64_t now_ms(void);
int64_t mono_ms(void);
/* Wait (polling every 10 ms) until *count is 0 or the time is up; true
 * when it reached 0. The one drain wait of shutdown. */
bool drain_wait(atomic_int *count, double seconds);
/* The CLOCK_REALTIME time us microseconds from now, for
 * pthread_cond_timedwait. */
struct timespec deadline_in_us(int64_t us);
/* Monotonic seconds, to the nanosecond (for durations). */
double mono_s(void);
/* Lowercase hyphenated UUID check (accepts either case; out gets lowercase). */
bool uuid_canonical(const char *s, char out[37]);
void uuid_new(char out[37]);
/* ISO 8601 UTC with milliseconds. */
void iso8601_ms(int64_t ms, char out[32]);
/* An ISO 8601 date-time as LogQS and people write it: "YYYY-MM-DDTHH:MM:SS",
 * an optional fraction, and "Z", "+HH:MM", "-HHMM" or nothing (UTC).
 * Returns 0 with *ms since the epoch, or -1. */
int iso8601_parse(const char *s, int64_t *ms);
/* The length of the well-formed UTF-8 sequence at p (shortest form, no
 * surrogates, at most U+10FFFF; NUL-terminated input), or 0. */
size_t utf8_seq_len(const unsigned char *p);
/* A duration in its largest whole unit, as people write one: "14d", "5m",
 * "90s", "1.5s". */
void duration_text(double seconds, char *out, size_t n);
/* Overwrite memory in a way the compiler may not elide. */
void secure_zero(void *p, size_t n);
/* Read a whole small file (at most max bytes), NUL-terminated. NULL on error. */
char *file_read_all(const char *path, size_t max, size_t *len);

/* fsync the directory holding path (its entry made durable); 0 on success. */
int fsync_parent_dir(const char *path);

#endif
