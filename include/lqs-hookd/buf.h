/* Size-capped growable byte buffer: the only way lqs-hookd accumulates input. */
#ifndef LQS_BUF_H
#define LQS_BUF_H
#include <stddef.h>

struct buf {
	char *data;   /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max;   /* hard limit on len; 0 means no limit */
};

void buf_init(struct buf *b, size_t max);
/* Append n bytes. On failure the buffer frees itself, so callers have one
 * rule: on error, the buffer is empty. Returns 0, -E2BIG or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
/* Drop the first n bytes (what has been sent), keeping the rest. */
void buf_consume(struct buf *b, size_t n);
/* Make room for total bytes at once (a hint, e.g. a Content-Length; never
 * beyond max, and a failure here is not an error). */
void buf_expect(struct buf *b, size_t total);
void buf_free(struct buf *b);
/* Hand over ownership of the data; the buffer is left empty. */
char *buf_steal(struct buf *b);

#endif
