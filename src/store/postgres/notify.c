/* Change notifications (LISTEN/NOTIFY): every daemon on the database hears
 * that one of them has written something a status stream shows, so a
 * stream follows the others' work at once instead of on a timer.
 *
 * One thread with a connection of its own does both halves. A writer only
 * raises a flag after its COMMIT and wakes the thread: a NOTIFY inside the
 * write transactions would take the server's notification lock at each of
 * their commits and serialise the receive path. The thread sends one
 * NOTIFY for everything committed since the last (at most one every
 * PG_NOTIFY_EVERY_MS), always after the commits it stands for, and hands
 * every notification it hears, this daemon's own too, to the subscriber.
 * A lost connection is made again with backoff; meanwhile the subscriber
 * is told the channel is down (it reads on a timer), and once it is back
 * it is woken, since what was sent meanwhile was not heard. */
#include "pg_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

#define CHANNEL "lqs_hookd_changes"
/* With nothing to do the thread still looks at its connection this often. */
#define IDLE_MS 1000

/* Tell the subscriber (if any) whether notifications flow, and, when they
 * do, that there may be something new. */
static void tell(struct pgs *st, bool live)
{
	pthread_mutex_lock(&st->wake_mu);
	if (st->wake)
		st->wake(st->wake_arg, live);
	pthread_mutex_unlock(&st->wake_mu);
}

static void kick(struct pgs *st)
{
	uint64_t one = 1;

	if (st->notify_fd >= 0 && write(st->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("store: waking the notification thread: %s", strerror(errno));
}

void pg_note_written(struct pgs *st)
{
	/* one wake per NOTIFY: the thread lowers the flag as it sends */
	if (!atomic_exchange(&st->written, true))
		kick(st);
}

static PGconn *listen_connect(struct pgs *st, char *err, size_t errlen)
{
	PGconn *c = pg_connect(st, err, errlen);
	PGresult *r;

	if (!c)
		return NULL;
	/* a notification is not worth a disk flush; the name tells an
	 * operator (and pg_stat_activity) which connection this is */
	r = PQexec(c, "SET synchronous_commit = off; SET application_name = 'lqs-hookd notifications'; "
		      "LISTEN " CHANNEL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		err[strcspn(err, "\n")] = '\0';
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

/* Read what has arrived; false when the connection is gone. */
static bool hear(struct pgs *st, PGconn *c)
{
	PGnotify *n;
	int heard = 0;

	if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
		return false;
	while ((n = PQnotifies(c)) != NULL) {
		heard++;
		PQfreemem(n);
	}
	if (heard) {
		metrics_store_notifications(false, heard);
		tell(st, true);
	}
	return true;
}

static bool send_notify(PGconn *c)
{
	PGresult *r = PQexec(c, "NOTIFY " CHANNEL);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	if (ok)
		metrics_store_notifications(true, 1);
	return ok;
}

static void *notify_main(void *arg)
{
	struct pgs *st = arg;
	PGconn *c = NULL;
	int64_t backoff = 0, retry_at = 0, sent_at = 0;
	bool down = false;
	char err[512];

	pthread_setname_np(pthread_self(), "lqs-pgnotify");
	while (!atomic_load(&st->notify_stop)) {
		int64_t now = mono_ms();
		if (!c && now >= retry_at) {
			c = listen_connect(st, err, sizeof(err));
			if (c) {
				if (down)
					log_info("store: change notifications from PostgreSQL %s flow again", st->target);
				down = false;
				backoff = 0;
				tell(st, true);   /* what was sent meanwhile was not heard */
			} else {
				backoff = backoff ? backoff * 2 : PG_RECONNECT_MIN_MS;
				if (backoff > PG_RECONNECT_MAX_MS)
					backoff = PG_RECONNECT_MAX_MS;
				retry_at = now + backoff;
				if (!down) {
					log_warn("store: no change notifications from PostgreSQL %s: %s (status streams "
						 "read the tables on a timer until they are back)", st->target, err);
					tell(st, false);
				}
				down = true;
			}
		}
		if (c && atomic_exchange(&st->retell, false))
			tell(st, true);
		if (c && atomic_load(&st->written) && now - sent_at >= PG_NOTIFY_EVERY_MS) {
			/* lowered first: a commit after this point raises it again */
			atomic_store(&st->written, false);
			sent_at = now;
			if (!send_notify(c))
				atomic_store(&st->written, true);
		}
		if (c && !hear(st, c)) {
			log_warn("store: the change notification connection to PostgreSQL %s was lost: %s", st->target,
				 PQerrorMessage(c)[0] ? PQerrorMessage(c) : "closed");
			PQfinish(c);
			c = NULL;
			down = true;
			retry_at = now + PG_RECONNECT_MIN_MS;
			backoff = PG_RECONNECT_MIN_MS;
			tell(st, false);
			continue;
		}
		int64_t wait = IDLE_MS;
		if (!c)
			wait = retry_at - now;
		else if (atomic_load(&st->written))
			wait = sent_at + PG_NOTIFY_EVERY_MS - now;
		struct pollfd pf[2] = { { .fd = st->notify_fd, .events = POLLIN },
					{ .fd = c ? PQsocket(c) : -1, .events = POLLIN } };
		if (poll(pf, 2, (int)(wait < 0 ? 0 : wait > IDLE_MS ? IDLE_MS : wait)) > 0 && (pf[0].revents & POLLIN)) {
			uint64_t v;
			if (read(st->notify_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_debug("store: notification wake: %s", strerror(errno));
		}
	}
	if (c) {
		/* what was committed last is told before leaving */
		if (atomic_load(&st->written))
			send_notify(c);
		PQfinish(c);
	}
	return NULL;
}

void pg_notify_start(struct pgs *st)
{
	st->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (st->notify_fd < 0) {
		log_warn("store: no change notifications (eventfd: %s); status streams read the tables on a timer",
			 strerror(errno));
		return;
	}
	st->notify_started = pthread_create(&st->notify_thread, NULL, notify_main, st) == 0;
	if (!st->notify_started)
		log_warn("store: no change notifications (no thread); status streams read the tables on a timer");
}

void pg_notify_stop(struct pgs *st)
{
	if (st->notify_started) {
		atomic_store(&st->notify_stop, true);
		kick(st);
		pthread_join(st->notify_thread, NULL);
		st->notify_started = false;
	}
	if (st->notify_fd >= 0)
		close(st->notify_fd);
	st->notify_fd = -1;
}

int pg_changes_notify(struct store *b, void (*wake)(void *arg, bool live), void *arg)
{
	struct pgs *st = pg_of(b);

	if (!st->notify_started)
		return -1;
	pthread_mutex_lock(&st->wake_mu);
	st->wake = wake;
	st->wake_arg = arg;
	pthread_mutex_unlock(&st->wake_mu);
	if (wake) {
		/* the thread says whether notifications flow now */
		atomic_store(&st->retell, true);
		kick(st);
	}
	return 0;
}
