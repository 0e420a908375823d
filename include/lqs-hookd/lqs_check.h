/* The LogQS settings check: one users/me call that says whether LogQS is
 * reachable and takes the API key. Run by `check-lqs`, and in the daemon
 * in the background at start, on reload, and again while it fails, so that
 * a missing or refused key is seen before every event becomes a dead
 * letter. Its state feeds /readyz (readyz_requires_lqs) and a metric. */
#ifndef LQS_LQS_CHECK_H
#define LQS_LQS_CHECK_H
#include <stdbool.h>
#include <stddef.h>

struct config;

enum lqs_check_state { LQS_CHECK_UNKNOWN = -1, LQS_CHECK_FAILING = 0, LQS_CHECK_OK = 1 };

struct lqs_check_result {
	bool ok;
	int status;           /* HTTP status of users/me, 0 when none */
	char url[512];
	char user[128];       /* who the key belongs to, when ok */
	char message[2048];   /* one line for people: what is wrong and what to do */
};

/* One check with these settings, now (no retries, at most 15 s). */
void lqs_check_once(const struct config *cfg, struct lqs_check_result *out);

/* The background checker (it reads the installed configuration). */
int lqs_check_start(void);
/* Check again now (after a reload). */
void lqs_check_kick(void);
void lqs_check_stop(void);
/* The last known state; msg gets the failure's message. */
enum lqs_check_state lqs_check_state(char *msg, size_t msglen);
/* What workers learn from real calls: a refused key (401/403) makes the
 * state failing at once; any success makes it ok. */
void lqs_check_note(int status, const char *message);

#endif
