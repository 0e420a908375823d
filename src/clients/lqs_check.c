#include "lqs-hookd/lqs_check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* A check answers now, not after a long timeout. */
#define LQS_CHECK_MAX_TIMEOUT_S 15.0

static const char *s_or(json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_string_value(v) : dflt;
}

void lqs_check_once(const struct config *base, struct lqs_check_result *out)
{
	struct config cfg = *base;   /* shallow: only numbers are changed */
	struct lqs_client *c;
	struct lqs_error e;
	json_t *me = NULL;
	char *url;

	memset(out, 0, sizeof(*out));
	cfg.retry_count = 0;
	if (cfg.request_timeout > LQS_CHECK_MAX_TIMEOUT_S)
		cfg.request_timeout = LQS_CHECK_MAX_TIMEOUT_S;
	c = lqs_client_new(&cfg);
	if (!c) {
		str_copy(out->message, "cannot create the LogQS client (out of memory?)", sizeof(out->message));
		return;
	}
	url = lqs_url(c, "users/me", NULL);
	str_copy(out->url, url ? url : "?", sizeof(out->url));
	free(url);
	bool nokey = !cfg.api_key_id || !*cfg.api_key_id || !cfg.api_key_secret || !*cfg.api_key_secret;
	static const char nokey_text[] = "no LogQS API key is configured (api_key_id and api_key_secret, or "
					 "LQS_API_KEY_ID and LQS_API_KEY_SECRET): LogQS will refuse every call";
	if (lqs_get(c, "users/me", &me, &e) == 0) {
		out->ok = !nokey;
		out->status = 200;
		str_copy(out->user, s_or(json_object_get(me, "username"), s_or(json_object_get(me, "id"), "")),
			 sizeof(out->user));
		if (nokey)
			snprintf(out->message, sizeof(out->message), "LogQS reachable at %s, but %s", out->url,
				 nokey_text);
		else
			snprintf(out->message, sizeof(out->message), "LogQS reachable at %s; API key accepted%s%s%s",
				 out->url, out->user[0] ? " (user " : "", out->user, out->user[0] ? ")" : "");
	} else if ((e.status == 401 || e.status == 403) && nokey) {
		out->status = e.status;
		snprintf(out->message, sizeof(out->message), "LogQS reachable at %s, but %s", out->url, nokey_text);
	} else if (e.status == 401 || e.status == 403) {
		out->status = e.status;
		snprintf(out->message, sizeof(out->message),
			 "LogQS reachable at %s, but the API key was refused: %s (check api_key_id and api_key_secret)",
			 out->url, e.message);
	} else if (e.status) {
		out->status = e.status;
		snprintf(out->message, sizeof(out->message), "LogQS at %s answered: %s", out->url, e.message);
	} else {
		snprintf(out->message, sizeof(out->message), "cannot reach LogQS at %s: %s (check api_url)%s%s",
			 out->url, e.message, nokey ? "; also, " : "", nokey ? nokey_text : "");
	}
	json_decref(me);
	lqs_client_free(c);
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, stopping, kicked;
	enum lqs_check_state state;
	char message[2048];
} K = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, .state = LQS_CHECK_UNKNOWN };

/* Under K.mu: record a result, logging a change of state once. */
static void set_state_locked(bool ok, const char *message)
{
	enum lqs_check_state now = ok ? LQS_CHECK_OK : LQS_CHECK_FAILING;
	bool changed = now != K.state || (!ok && strcmp(message, K.message) != 0);

	K.state = now;
	str_copy(K.message, ok ? "" : message, sizeof(K.message));
	metrics_lqs_check(ok);
	if (!changed)
		return;
	if (ok)
		log_info("LogQS check OK: %s", message);
	else
		log_warn("LogQS check FAILED: %s", message);
}

static void *check_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "lqs-check");
	pthread_mutex_lock(&K.mu);
	while (!K.stopping) {
		struct lqs_check_result res;
		struct config_ref *ref;
		double every;

		K.kicked = false;
		pthread_mutex_unlock(&K.mu);
		ref = config_current();
		lqs_check_once(&ref->cfg, &res);
		every = ref->cfg.lqs_check_interval;
		config_put(ref);
		pthread_mutex_lock(&K.mu);
		set_state_locked(res.ok, res.message);
		/* while it fails, try again now and then; once it works, only a
		 * reload (or a refused call, see lqs_check_note) makes it ask */
		struct timespec until;
		until = deadline_in_us((int64_t)(every * 1e6));
		while (!K.stopping && !K.kicked) {
			if (K.state == LQS_CHECK_FAILING) {
				if (pthread_cond_timedwait(&K.cv, &K.mu, &until) == ETIMEDOUT)
					break;
			} else {
				pthread_cond_wait(&K.cv, &K.mu);
			}
		}
	}
	pthread_mutex_unlock(&K.mu);
	return NULL;
}

int lqs_check_start(void)
{
	pthread_mutex_lock(&K.mu);
	K.stopping = false;
	K.state = LQS_CHECK_UNKNOWN;
	K.started = pthread_create(&K.thread, NULL, check_main, NULL) == 0;
	pthread_mutex_unlock(&K.mu);
	return K.started ? 0 : -1;
}

void lqs_check_kick(void)
{
	pthread_mutex_lock(&K.mu);
	K.kicked = true;
	pthread_cond_broadcast(&K.cv);
	pthread_mutex_unlock(&K.mu);
}

void lqs_check_stop(void)
{
	pthread_mutex_lock(&K.mu);
	K.stopping = true;
	pthread_cond_broadcast(&K.cv);
	pthread_mutex_unlock(&K.mu);
	/* a check in flight ends within its own timeout (at most 15 s) */
	if (K.started)
		pthread_join(K.thread, NULL);
	K.started = false;
}

enum lqs_check_state lqs_check_state(char *msg, size_t msglen)
{
	enum lqs_check_state s;

	pthread_mutex_lock(&K.mu);
	s = K.state;
	if (msg && msglen)
		str_copy(msg, K.message, msglen);
	pthread_mutex_unlock(&K.mu);
	return s;
}

void lqs_check_note(int status, const char *message)
{
	char why[2048];
	bool refused = status == 401 || status == 403, ok = status >= 200 && status < 300;

	if (!refused && !ok)
		return;
	pthread_mutex_lock(&K.mu);
	if (refused) {
		snprintf(why, sizeof(why), "LogQS refused the API key: %s (check api_key_id and api_key_secret)",
			 message ? message : "");
		set_state_locked(false, why);
		pthread_cond_broadcast(&K.cv);   /* the checker starts its retry schedule */
	} else if (K.state != LQS_CHECK_OK) {
		set_state_locked(true, "a LogQS call succeeded");
	}
	pthread_mutex_unlock(&K.mu);
}
