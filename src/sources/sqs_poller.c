/* The SQS pollers (sqs.h). Each receives up to max_messages with a long
 * poll, reads every message into object records, stores them all in one
 * intake submission, and once that is durable deletes the messages whose
 * records were all stored (or were duplicates). */
#include "lqs-hookd/sqs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/aws.h"
#include "lqs-hookd/backoff.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/watch.h"

/* After an error, the wait before the next call: from 1 s, doubling, to a
 * minute; after a refused credential, a minute at once. */
#define SQS_BACKOFF_BASE_S 1.0
#define SQS_BACKOFF_MAX_S 60.0
#define SQS_MAX_RECORDS 10000
/* Messages held while the store refuses them stay hidden this much longer
 * than the next try. */
#define SQS_HOLD_MARGIN_S 30

struct poller {
	struct sqs_pollers *owner;
	char name[64];
	pthread_t thread;
	bool started;
	/* what the last call said, for /readyz */
	enum sqs_fail last;
	char error[512];
};

struct sqs_pollers {
	struct intake *in;
	atomic_bool stopping;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct poller *p;
	int n;
};

/* Sleep up to ms, ending early when stopping. */
static void nap(struct sqs_pollers *s, int64_t ms)
{
	struct timespec until = deadline_in_us(ms * 1000);

	pthread_mutex_lock(&s->mu);
	while (!atomic_load(&s->stopping) && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->mu);
}

struct msg {
	const char *id, *receipt;
	struct objects_msg objs;
	bool readable;
	size_t first, n;        /* its jobs in the submission */
};

/* Read each message's body into records; a body that is not an object
 * event stays unreadable (left for the redrive policy). */
static size_t read_messages(struct poller *p, json_t *list, struct msg *m, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		json_t *mm = json_array_get(list, i), *detail = NULL;
		const char *body = json_string_value(json_object_get(mm, "Body"));
		m[i].id = json_string_value(json_object_get(mm, "MessageId"));
		m[i].receipt = json_string_value(json_object_get(mm, "ReceiptHandle"));
		/* the queue itself is trusted (IAM): an SNS envelope in it is not
		 * checked again; SubscriptionConfirmations never reach a queue */
		if (body && objects_parse(body, strlen(body), SQS_MAX_RECORDS, &m[i].objs, &detail) == OBJECTS_OK) {
			m[i].readable = true;
			total += m[i].objs.kind == OBJECTS_RECORDS ? m[i].objs.n : 0;
		} else {
			char *why = detail ? json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
			log_warn("sqs %s: message %s is not an object event; left for the queue's redrive policy: %.300s",
				 p->name, m[i].id ? m[i].id : "?", why ? why : "no body");
			metrics_sqs_message(p->name, "unreadable");
			free(why);
		}
		json_decref(detail);
	}
	return total;
}

/* Store the records of the readable messages; true for each message whose
 * records are all durable (or duplicates). */
static void store_messages(struct poller *p, const struct config *cfg, const struct sqs_cfg *q, struct msg *m, size_t n,
			   size_t total, bool *stored)
{
	struct store_item *jobs = calloc(total + 1, sizeof(*jobs));
	struct store_object *objs = calloc(total + 1, sizeof(*objs));
	char **paths = calloc(total + 1, sizeof(*paths));
	size_t at = 0;
	bool ok = jobs && objs && paths;

	for (size_t i = 0; i < n && ok; i++) {
		m[i].first = at;
		m[i].n = m[i].readable && m[i].objs.kind == OBJECTS_RECORDS ? m[i].objs.n : 0;
		if (m[i].n)
			ok = objects_route(cfg, &m[i].objs, q->watch, jobs + at, objs + at, paths + at);
		at += m[i].n;
	}
	if (ok && at)
		ok = intake_submit_wait(p->owner->in, jobs, at);
	for (size_t i = 0; i < n; i++) {
		stored[i] = ok && m[i].readable;
		for (size_t k = m[i].first; stored[i] && k < m[i].first + m[i].n; k++) {
			stored[i] = store_result_stored(jobs[k].result);
			if (stored[i])
				metrics_object_received(jobs[k].result == STORE_DUPLICATE ? "duplicate"
							: !objs[k].watch ? "not_routed" : objs[k].marker ? "marker" : "stored");
			if (jobs[k].result == STORE_OK && objs[k].trigger_id[0]) {
				log_info("batch %s closed (%s: s3://%s/%s); trigger event %s", objs[k].batch_id,
					 objs[k].marker ? "marker" : "count", objs[k].rec->bucket, objs[k].prefix,
					 objs[k].trigger_id);
				metrics_batch_closed(objs[k].marker ? "marker" : "count");
			}
		}
	}
	for (size_t k = 0; paths && k < at; k++)
		free(paths[k]);
	free(paths);
	free(objs);
	free(jobs);
}

/* The batch entries (Id, ReceiptHandle) of the messages that are stored
 * (stored_ones) or that were read but not stored; with visibility >= 0,
 * each with that VisibilityTimeout. */
static json_t *entries_of(struct msg *m, size_t n, const bool *stored, bool stored_ones, int visibility)
{
	json_t *entries = json_array();
	char id[32];

	for (size_t i = 0; i < n; i++) {
		if (!m[i].receipt || stored[i] != stored_ones || (!stored_ones && !m[i].readable))
			continue;
		snprintf(id, sizeof(id), "m%zu", i);
		json_t *e = json_pack("{s:s, s:s}", "Id", id, "ReceiptHandle", m[i].receipt);
		if (visibility >= 0)
			json_object_set_new(e, "VisibilityTimeout", json_integer(visibility));
		json_array_append_new(entries, e);
	}
	return entries;
}

/* The wait before the next try after `round` failures in a row: from 1 s,
 * doubling, to a minute. */
static int64_t retry_ms(int round, double jitter01)
{
	double s = backoff_delay(SQS_BACKOFF_BASE_S, round, jitter01);

	return (int64_t)((s < SQS_BACKOFF_MAX_S ? s : SQS_BACKOFF_MAX_S) * 1000);
}

/* Delete what is stored (up to ten, one call). SQS_OK, or how the call
 * failed (error says why). */
static enum sqs_fail delete_messages(struct poller *p, const struct sqs_cfg *q, const struct aws_creds *cr,
				     struct msg *m, size_t n, const bool *stored, char *error, size_t errlen)
{
	json_t *entries = entries_of(m, n, stored, true, -1);
	struct sqs_result res = { .fail = SQS_OK };
	enum sqs_fail f = SQS_OK;

	if (json_array_size(entries)) {
		sqs_call(q, cr, "DeleteMessageBatch", json_pack("{s:O}", "Entries", entries), 30000, &res);
		f = res.fail;
		if (f)
			snprintf(error, errlen, "%.380s; the messages come back after their visibility timeout and are "
				 "recognised as duplicates", res.error);
		else
			metrics_sqs_deleted(p->name, (int)json_array_size(entries) -
							     (int)json_array_size(json_object_get(res.doc, "Failed")));
		sqs_result_clear(&res);
	}
	json_decref(entries);
	return f;
}

/* Set the visibility timeout of the messages not stored: to keep them
 * while they are held, or (0) to hand them back at once. A failed call
 * loses nothing: they come back after their current timeout. */
static void set_visibility(struct poller *p, const struct sqs_cfg *q, const struct aws_creds *cr, struct msg *m,
			   size_t n, const bool *stored, int seconds)
{
	json_t *entries = entries_of(m, n, stored, false, seconds);
	struct sqs_result res = { .fail = SQS_OK };

	if (json_array_size(entries)) {
		sqs_call(q, cr, "ChangeMessageVisibilityBatch", json_pack("{s:O}", "Entries", entries), 30000, &res);
		if (res.fail)
			log_warn("sqs %s: could not set the visibility of %zu held message(s) (%.300s); they come "
				 "back after their visibility timeout", p->name, json_array_size(entries), res.error);
		sqs_result_clear(&res);
	}
	json_decref(entries);
}

/* Store the readable messages; while the store refuses them (full, out of
 * space, failing), hold them — hidden on the queue, so their receive count
 * does not grow towards the dead-letter queue — and try again with backoff.
 * Stopping hands them back. */
static void store_holding(struct poller *p, const struct config *cfg, const struct sqs_cfg *q,
			  const struct aws_creds *cr, struct msg *m, size_t n, size_t total, bool *stored)
{
	for (int round = 0;; round++) {
		size_t refused = 0;
		int64_t ms;

		store_messages(p, cfg, q, m, n, total, stored);
		for (size_t i = 0; i < n; i++)
			refused += m[i].readable && !stored[i];
		if (!refused) {
			if (round)
				log_info("sqs %s: the store took the %zu held message(s)", p->name, n);
			return;
		}
		metrics_sqs_error(p->name, "store");
		if (atomic_load(&p->owner->stopping)) {
			log_warn("sqs %s: stopping: %zu message(s) the store refused are handed back to the queue",
				 p->name, refused);
			set_visibility(p, q, cr, m, n, stored, 0);
			return;
		}
		ms = retry_ms(round, 0.5);
		if (round == 0) {
			log_warn("sqs %s: the store refused the records of %zu message(s) (the store says why); "
				 "they are held and tried again", p->name, refused);
			for (size_t i = 0; i < refused; i++)
				metrics_sqs_message(p->name, "store_refused");
		}
		/* hidden until well after the next try */
		set_visibility(p, q, cr, m, n, stored, (int)(ms / 1000) + SQS_HOLD_MARGIN_S);
		nap(p->owner, ms);
	}
}

static void set_state(struct poller *p, enum sqs_fail f, const char *error)
{
	bool changed;

	pthread_mutex_lock(&p->owner->mu);
	changed = p->last != f;
	p->last = f;
	str_copy(p->error, error ? error : "", sizeof(p->error));
	pthread_mutex_unlock(&p->owner->mu);
	if (changed && f == SQS_OK)
		log_info("sqs %s: receiving", p->name);
	else if (changed && f == SQS_AUTH)
		log_error("sqs %s: AWS refused the credentials: %s (the poller tries again every minute)", p->name,
			  error);
}

/* One round: receive, store, delete. Returns the wait before the next, ms. */
static int64_t poll_once(struct poller *p, const struct config *cfg, const struct sqs_cfg *q, struct aws_creds *cr,
			 int *fails)
{
	struct sqs_result res;
	char why[512];
	json_t *body, *list;
	double t0 = mono_s();
	size_t n;

	if (aws_creds_get(cfg, cr, why, sizeof(why)) != 0) {
		set_state(p, SQS_AUTH, why);
		metrics_sqs_error(p->name, "credentials");
		return 60000;
	}
	body = json_pack("{s:I, s:I, s:[s]}", "MaxNumberOfMessages", (json_int_t)q->max_messages, "WaitTimeSeconds",
			 (json_int_t)q->wait, "AttributeNames", "ApproximateReceiveCount");
	if (q->visibility_timeout)
		json_object_set_new(body, "VisibilityTimeout", json_integer(q->visibility_timeout));
	sqs_call(q, cr, "ReceiveMessage", body, (q->wait + 10) * 1000L, &res);
	metrics_sqs_receive(p->name, mono_s() - t0);
	if (res.fail) {
		int64_t ms = res.fail == SQS_AUTH ? 60000
			     : retry_ms((*fails)++, (double)((unsigned)mono_ms() % 1000) / 1000.0);
		if (res.fail == SQS_AUTH)
			aws_creds_clear(cr);   /* expired ones are taken anew */
		else
			log_warn("sqs %s: %s; next try in %.1f s", p->name, res.error, (double)ms / 1000.0);
		set_state(p, res.fail, res.error);
		metrics_sqs_error(p->name, sqs_fail_name(res.fail));
		sqs_result_clear(&res);
		return ms;
	}
	list = json_object_get(res.doc, "Messages");
	n = json_array_size(list);
	enum sqs_fail df = SQS_OK;
	if (n) {
		struct msg *m = calloc(n, sizeof(*m));
		bool *stored = calloc(n, sizeof(*stored));
		if (m && stored) {
			size_t total = read_messages(p, list, m, n);
			metrics_sqs_messages_received(p->name, (int)n);
			store_holding(p, cfg, q, cr, m, n, total, stored);
			df = delete_messages(p, q, cr, m, n, stored, why, sizeof(why));
		}
		for (size_t i = 0; m && i < n; i++)
			objects_msg_free(&m[i].objs);
		free(m);
		free(stored);
	}
	sqs_result_clear(&res);
	if (df) {
		/* a delete that is not allowed is a policy to fix, not a blip */
		int64_t ms = df == SQS_AUTH ? 60000 : (int64_t)(backoff_delay(SQS_BACKOFF_BASE_S, (*fails)++, 0.5) * 1000);
		if (df != SQS_AUTH)
			log_warn("sqs %s: %s", p->name, why);
		set_state(p, df, why);
		metrics_sqs_error(p->name, sqs_fail_name(df));
		return ms;
	}
	*fails = 0;
	set_state(p, SQS_OK, NULL);
	return 0;
}

static void *poller_main(void *arg)
{
	struct poller *p = arg;
	struct aws_creds cr;
	int fails = 0;

	pthread_setname_np(pthread_self(), "lqs-sqs");
	memset(&cr, 0, sizeof(cr));
	while (!atomic_load(&p->owner->stopping)) {
		struct config_ref *ref = config_current();
		const struct sqs_cfg *q = NULL;
		int64_t wait = 1000;
		for (int i = 0; i < ref->cfg.n_sqs && !q; i++)
			if (strcmp(ref->cfg.sqs[i].name, p->name) == 0)
				q = &ref->cfg.sqs[i];
		if (q)
			wait = poll_once(p, &ref->cfg, q, &cr, &fails);
		config_put(ref);
		if (wait > 0)
			nap(p->owner, wait);
	}
	aws_creds_clear(&cr);
	return NULL;
}

/* The running pollers, for /readyz. */
static pthread_mutex_t running_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sqs_pollers *running;

bool sqs_running_ok(char *msg, size_t msglen)
{
	bool ok;

	pthread_mutex_lock(&running_mu);
	ok = sqs_ok(running, msg, msglen);
	pthread_mutex_unlock(&running_mu);
	return ok;
}

struct sqs_pollers *sqs_start(struct intake *in)
{
	struct config_ref *ref = config_current();
	struct sqs_pollers *s = calloc(1, sizeof(*s));
	int total = 0;

	if (!s) {
		config_put(ref);
		return NULL;
	}
	s->in = in;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (int i = 0; i < ref->cfg.n_sqs; i++)
		total += (int)ref->cfg.sqs[i].pollers;
	s->p = calloc((size_t)total + 1, sizeof(*s->p));
	for (int i = 0; s->p && i < ref->cfg.n_sqs; i++)
		for (int k = 0; k < ref->cfg.sqs[i].pollers; k++) {
			struct poller *p = &s->p[s->n++];
			p->owner = s;
			str_copy(p->name, ref->cfg.sqs[i].name, sizeof(p->name));
			p->last = SQS_OK;
			p->started = pthread_create(&p->thread, NULL, poller_main, p) == 0;
		}
	if (s->n)
		log_info("sqs: %d poller(s) for %d queue(s)", s->n, ref->cfg.n_sqs);
	config_put(ref);
	pthread_mutex_lock(&running_mu);
	running = s;
	pthread_mutex_unlock(&running_mu);
	return s;
}

void sqs_stop(struct sqs_pollers *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&running_mu);
	running = NULL;
	pthread_mutex_unlock(&running_mu);
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, true);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->n; i++)
		if (s->p[i].started)
			pthread_join(s->p[i].thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->p);
	free(s);
}

bool sqs_ok(struct sqs_pollers *s, char *msg, size_t msglen)
{
	bool ok = true;

	if (!s)
		return true;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n && ok; i++)
		if (s->p[i].last == SQS_AUTH) {
			ok = false;
			snprintf(msg, msglen, "sqs %s: %s", s->p[i].name, s->p[i].error);
		}
	pthread_mutex_unlock(&s->mu);
	return ok;
}

int sqs_check(const struct config *cfg)
{
	int bad = 0;

	if (cfg->n_sqs == 0) {
		printf("no [sqs] section is configured\n");
		return 1;
	}
	for (int i = 0; i < cfg->n_sqs; i++) {
		const struct sqs_cfg *q = &cfg->sqs[i];
		struct aws_creds cr;
		struct sqs_result res;
		char why[512];
		memset(&cr, 0, sizeof(cr));
		if (aws_creds_get(cfg, &cr, why, sizeof(why)) != 0) {
			printf("FAILED: sqs %s: %s\n", q->name, why);
			bad++;
			continue;
		}
		sqs_call(q, &cr, "GetQueueAttributes",
			 json_pack("{s:[s, s]}", "AttributeNames", "ApproximateNumberOfMessages", "RedrivePolicy"), 15000, &res);
		if (res.fail) {
			printf("FAILED: sqs %s: %s%s\n", q->name, res.error,
			       res.fail == SQS_AUTH ? " (check the credentials and the IAM policy)" : "");
			bad++;
		} else {
			json_t *a = json_object_get(res.doc, "Attributes");
			printf("OK: sqs %s: %s reachable with the %s credentials; %s message(s) waiting; %s\n", q->name,
			       q->queue_url, cr.source,
			       json_string_value(json_object_get(a, "ApproximateNumberOfMessages")) ?: "?",
			       json_object_get(a, "RedrivePolicy") ? "a dead-letter queue is set"
								   : "NO dead-letter queue: unreadable messages come back forever");
		}
		sqs_result_clear(&res);
		aws_creds_clear(&cr);
	}
	return bad ? 1 : 0;
}
