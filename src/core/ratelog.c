#include "lqs-hookd/ratelog.h"

#include <stdio.h>
#include <string.h>

#include "lqs-hookd/log.h"

void ratelog_init(struct ratelog *rl, const char *what)
{
	memset(rl, 0, sizeof(*rl));
	pthread_mutex_init(&rl->mu, NULL);
	rl->what = what;
}

void ratelog_destroy(struct ratelog *rl)
{
	pthread_mutex_destroy(&rl->mu);
}

static void summary_locked(const struct ratelog *rl, char *out, size_t outlen)
{
	size_t at;

	out[0] = '\0';
	if (!rl->suppressed)
		return;
	at = (size_t)snprintf(out, outlen, "%lld more %s not logged in the last %.0f s (by status: ",
			      (long long)rl->suppressed, rl->what, (double)rl->interval_ms / 1000.0);
	for (int i = 0; i < RATELOG_CODES && rl->by[i].n && at < outlen; i++) {
		char code[16] = "other";
		if (rl->by[i].status)
			snprintf(code, sizeof(code), "%u", rl->by[i].status);
		at += (size_t)snprintf(out + at, outlen - at, "%s%s: %lld", i ? ", " : "", code,
				       (long long)rl->by[i].n);
	}
	if (at < outlen)
		snprintf(out + at, outlen - at, ")");
}

void ratelog_summary(struct ratelog *rl, char *out, size_t outlen)
{
	pthread_mutex_lock(&rl->mu);
	summary_locked(rl, out, outlen);
	pthread_mutex_unlock(&rl->mu);
}

/* Under rl->mu: end the window if it is over; its summary goes to out. */
static void roll_locked(struct ratelog *rl, int64_t now, int64_t interval, char *out, size_t outlen)
{
	out[0] = '\0';
	if (rl->window_start && now - rl->window_start < interval)
		return;
	summary_locked(rl, out, outlen);
	rl->window_start = now;
	rl->interval_ms = interval;
	rl->logged = rl->suppressed = 0;
	memset(rl->by, 0, sizeof(rl->by));
}

bool ratelog_allow(struct ratelog *rl, int64_t now, int64_t interval, int64_t max, unsigned status)
{
	char summary[512];
	bool ok;

	pthread_mutex_lock(&rl->mu);
	roll_locked(rl, now, interval, summary, sizeof(summary));
	ok = rl->logged < max;
	if (ok) {
		rl->logged++;
	} else {
		int i = 0;
		rl->suppressed++;
		while (i < RATELOG_CODES - 1 && rl->by[i].n && rl->by[i].status != status)
			i++;
		rl->by[i].status = rl->by[i].n && rl->by[i].status != status ? 0 : status;
		rl->by[i].n++;
	}
	pthread_mutex_unlock(&rl->mu);
	if (summary[0])
		log_warn("%s", summary);
	return ok;
}

void ratelog_tick(struct ratelog *rl, int64_t now, int64_t interval)
{
	char summary[512];

	pthread_mutex_lock(&rl->mu);
	summary[0] = '\0';
	if (rl->suppressed)
		roll_locked(rl, now, interval, summary, sizeof(summary));
	pthread_mutex_unlock(&rl->mu);
	if (summary[0])
		log_warn("%s", summary);
}
