/* Rate-limited warnings: at most N lines per interval, then one summary
 * line per interval that counts what was left out, by HTTP status. */
#ifndef LQS_RATELOG_H
#define LQS_RATELOG_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RATELOG_CODES 8

struct ratelog {
	pthread_mutex_t mu;
	const char *what;           /* "rejected requests": names the summary */
	int64_t window_start;       /* ms, monotonic */
	int64_t interval_ms;        /* of the current window */
	int64_t logged;             /* lines this window */
	int64_t suppressed;         /* left out this window */
	struct { unsigned status; int64_t n; } by[RATELOG_CODES];
};

void ratelog_init(struct ratelog *rl, const char *what);
void ratelog_destroy(struct ratelog *rl);
/* Whether a line for status may be logged now (max per interval_ms);
 * when not, it is counted for the summary. A window that ended with lines
 * left out has its summary logged first. */
bool ratelog_allow(struct ratelog *rl, int64_t now_ms, int64_t interval_ms, int64_t max, unsigned status);
/* Log the summary of a window that has ended (called periodically, so a
 * burst is summed up even when nothing follows it). */
void ratelog_tick(struct ratelog *rl, int64_t now_ms, int64_t interval_ms);
/* The summary text of the current window ("" when nothing was left out). */
void ratelog_summary(struct ratelog *rl, char *out, size_t outlen);

#endif
