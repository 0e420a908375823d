/* GET {events}/stream: the store's change feed as server-sent events.
 *
 * One thread (lqs-stream) reads the feed while anyone listens and appends
 * each change, rendered once, to the buffer of every subscriber whose
 * filters take it. A subscriber's connection is suspended while its buffer
 * is empty and resumed when something is added. Nothing here waits on a
 * subscriber: a buffer past stream_buffer cuts that subscriber, so a slow
 * or stalled reader costs the daemon nothing but its own buffer.
 *
 * The SSE id is the change's place in the feed ("R-S-B": past received
 * events, history steps, opened batches); a client reconnecting with
 * Last-Event-ID gets what it missed, read back from the store. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http_int.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* Changes read per store call. While anyone listens the feed is read
 * every STREAM_POLL_MS; with a store that tells of changes (PostgreSQL),
 * at once when told (but STREAM_GAP_MS apart at least, however many
 * daemons tell), once more STREAM_POLL_MS after (a change can be told
 * before an older transaction lets it be read), and every
 * STREAM_IDLE_POLL_MS otherwise (what no notification covers: a
 * transaction outside the daemons that held the feed back). */
#define STREAM_PAGE 256
#define STREAM_POLL_MS 100
#define STREAM_GAP_MS 50
#define STREAM_IDLE_POLL_MS 1000
#define STREAM_ROUND_PAGES 8
/* Sent first: how long a client waits before reconnecting (ms). */
#define STREAM_RETRY_MS 2000
/* The kernel's send buffer of a stream connection: without a cap it grows
 * to megabytes, held for a subscriber that does not read. */
#define STREAM_SNDBUF (64 * 1024)

struct sub {
	struct sub *prev, *next;
	struct MHD_Connection *conn;
	int fd;                    /* its socket (libmicrohttpd's) */
	struct stream_hub *hub;
	struct buf out;            /* rendered, not yet sent */
	size_t sent;               /* of out */
	bool suspended, cut;
	struct store_cursor cur;   /* the feed read for it so far */
	int64_t last_write_ms;     /* mono: the heartbeat's clock */
	/* filters ("" : any) */
	char state[128], handler[64], resource_id[1024], process_type[16], event_id[37];
};

struct stream_hub {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, stopping;
	bool told;       /* the store tells of changes now */
	bool changed;    /* told of one since the last read */
	bool notified;   /* the store was asked to tell */
	struct sub *subs;
	int n;
	struct store_change *page;
	struct ratelog cuts;
};

/* ---- what a change says ---- */

/* The SSE event name and the state a change leaves its event in. */
static const char *change_kind(const struct store_change *c, const char **state)
{
	const char *w = c->what;

	*state = c->event_state;
	if (strcmp(w, "received") == 0) {
		if (c->handler[0])
			*state = "queued";   /* an unrouted one is finished as it arrives */
		return strcmp(c->process_type, "batch") == 0 ? "batch_closed" : "received";
	}
	if (strcmp(w, "started") == 0) {
		*state = "running";
		return "started";
	}
	if (strcmp(w, "outcome") == 0) {
		*state = c->step_state[0] ? c->step_state : c->event_state;
		return strcmp(*state, "retrying") == 0 ? "retry_scheduled" : *state;
	}
	if (strcmp(w, "replay") == 0 || strcmp(w, "requeued") == 0 || strcmp(w, "recovered") == 0) {
		*state = "queued";
		return strcmp(w, "replay") == 0 ? "replayed" : w;
	}
	if (strcmp(w, "batch_opened") == 0) {
		*state = "open";
		return w;
	}
	return NULL;   /* attempt (its outcome follows), lqs_call: not status changes */
}

/* state: one value or a comma-separated list. */
static bool in_list(const char *list, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = list; *p;) {
		size_t k = strcspn(p, ",");
		if (k == n && strncmp(p, v, n) == 0)
			return true;
		p += k + (p[k] == ',');
	}
	return false;
}

static bool sub_takes(const struct sub *s, const struct store_change *c, const char *state)
{
	bool batch_row = strcmp(c->what, "batch_opened") == 0;

	return (!s->state[0] || in_list(s->state, state)) && (!s->handler[0] || strcmp(s->handler, c->handler) == 0) &&
	       (!s->resource_id[0] || strcmp(s->resource_id, c->resource_id) == 0) &&
	       (!s->process_type[0] || strcmp(s->process_type, c->process_type) == 0) &&
	       (!s->event_id[0] || (!batch_row && strcmp(s->event_id, c->event_id) == 0));
}

/* "R-S-B"; a server database's feed also names each source's transaction:
 * "RTX.R-STX.S-BTX.B". */
static void cursor_text(const struct store_cursor *c, char *out, size_t n)
{
	if (c->received_tx || c->steps_tx || c->batches_tx)
		snprintf(out, n, "%" PRId64 ".%" PRId64 "-%" PRId64 ".%" PRId64 "-%" PRId64 ".%" PRId64, c->received_tx,
			 c->received, c->steps_tx, c->steps, c->batches_tx, c->batches);
	else
		snprintf(out, n, "%" PRId64 "-%" PRId64 "-%" PRId64, c->received, c->steps, c->batches);
}

/* "R-S-B" (or "R-S", before batches were streamed), or the form with
 * transactions. */
static bool cursor_parse(const char *s, struct store_cursor *c)
{
	long long r = 0, st = 0, b = 0, rt = 0, stt = 0, bt = 0;
	int used = 0;

	memset(c, 0, sizeof(*c));
	if (!s)
		return false;
	if (sscanf(s, "%lld.%lld-%lld.%lld-%lld.%lld%n", &rt, &r, &stt, &st, &bt, &b, &used) != 6 &&
	    (rt = stt = bt = 0, sscanf(s, "%lld-%lld-%lld%n", &r, &st, &b, &used) != 3) &&
	    sscanf(s, "%lld-%lld%n", &r, &st, &used) != 2)
		return false;
	if (s[used] || r < 0 || st < 0 || b < 0 || rt < 0 || stt < 0 || bt < 0)
		return false;
	*c = (struct store_cursor){ r, st, b, rt, stt, bt };
	return true;
}

/* One SSE message for a change; NULL when it is not a status change. */
static char *render(const struct store_change *c, const char **state, size_t *len)
{
	const char *kind = change_kind(c, state);
	char at[32], id[96];
	json_t *d;
	char *data, *msg = NULL;
	struct buf b;

	if (!kind)
		return NULL;
	iso8601_ms(c->at_ms, at);
	if (strcmp(c->what, "batch_opened") == 0)
		d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "batch_id", c->event_id, "watch", c->handler, "bucket",
			      c->step_state, "prefix", c->resource_id, "at", at);
	else
		d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "event_id", c->event_id, "change", kind,
			      "state", *state, "at", at, "process_type", c->process_type, "resource_id",
			      c->resource_id[0] ? c->resource_id : NULL, "handler", c->handler[0] ? c->handler : NULL);
	if (d && c->attempt > 0)
		json_object_set_new(d, "attempt", json_integer(c->attempt));
	if (d && c->error[0])
		json_object_set_new(d, "error", json_string(c->error));
	data = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	if (!data)
		return NULL;
	cursor_text(&c->cursor, id, sizeof(id));
	buf_init(&b, 0);
	if (buf_printf(&b, "id: %s\nevent: %s\ndata: %s\n\n", id, kind, data) == 0) {
		*len = b.len;
		msg = buf_steal(&b);
	}
	free(data);
	return msg;
}

/* ---- subscribers ---- */

/* Under hub->mu: the connection may write again. */
static void sub_wake(struct sub *s)
{
	if (s->suspended) {
		s->suspended = false;
		MHD_resume_connection(s->conn);
	}
}

static void sub_cut(struct stream_hub *hub, struct sub *s, const char *why)
{
	if (s->cut)
		return;
	s->cut = true;
	metrics_stream_cut();
	if (ratelog_allow(&hub->cuts, mono_ms(), 60000, 5, 0))
		log_warn("stream: a subscriber was cut: %s", why);
	/* its socket is full, so libmicrohttpd would not ask for more and see
	 * the cut until connection_timeout: end it now */
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	sub_wake(s);
}

/* Under hub->mu. */
static void sub_append(struct stream_hub *hub, struct sub *s, const char *msg, size_t len)
{
	if (s->cut)
		return;
	/* what was sent goes once it is half the buffer, so a reader that is
	 * never quite done does not make it grow */
	if (s->sent && (s->sent == s->out.len || s->sent >= s->out.len / 2)) {
		buf_consume(&s->out, s->sent);
		s->sent = 0;
	}
	if (buf_append(&s->out, msg, len) != 0) {
		sub_cut(hub, s, "out of memory");
		return;
	}
	s->last_write_ms = mono_ms();
	sub_wake(s);
}

/* Under hub->mu, as a round starts: a subscriber still more than limit
 * behind after a whole round to read is not keeping up. */
static void cut_laggards(struct stream_hub *hub, int64_t limit)
{
	for (struct sub *s = hub->subs; s; s = s->next)
		if (!s->cut && (int64_t)(s->out.len - s->sent) > limit) {
			char why[160];
			snprintf(why, sizeof(why), "%zu bytes waiting (stream_buffer is %" PRId64 "); it reads too slowly",
				 s->out.len - s->sent, limit);
			sub_cut(hub, s, why);
		}
}

/* MHD asks for more of the answer. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sub *s = cls;
	struct stream_hub *hub = s->hub;
	ssize_t n = 0;

	(void)pos;
	pthread_mutex_lock(&hub->mu);
	if (s->cut) {
		/* at shutdown the stream ends cleanly; a slow reader is dropped */
		n = hub->stopping ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (s->sent < s->out.len) {
		size_t k = s->out.len - s->sent < max ? s->out.len - s->sent : max;
		memcpy(buf, s->out.data + s->sent, k);
		s->sent += k;
		n = (ssize_t)k;
	} else {
		/* nothing to send: sleep until the feed has something */
		s->suspended = true;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&hub->mu);
	return n;
}

static void sse_free(void *cls)
{
	struct sub *s = cls;
	struct stream_hub *hub = s->hub;

	pthread_mutex_lock(&hub->mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		hub->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	hub->n--;
	metrics_stream_subscribers(hub->n);
	pthread_mutex_unlock(&hub->mu);
	buf_free(&s->out);
	free(s);
}

/* ---- the feed ---- */

/* Read the feed for every subscriber: one read per distinct cursor (all
 * subscribers that are caught up share one), each change rendered once;
 * at most STREAM_ROUND_PAGES pages a round, so a subscriber holds at most
 * stream_buffer plus one round's worth. */
static void feed_round(struct stream_hub *hub, int64_t limit)
{
	struct store_cursor head;
	bool more = true;

	pthread_mutex_lock(&hub->mu);
	cut_laggards(hub, limit);
	pthread_mutex_unlock(&hub->mu);
	if (store_changes_head(hub->st, &head) != STORE_OK)
		return;
	for (int guard = 0; more && guard < STREAM_ROUND_PAGES; guard++) {
		struct sub *lead = NULL;
		struct store_cursor from;
		size_t n = 0;
		more = false;
		pthread_mutex_lock(&hub->mu);
		/* a subscriber behind the head (cut ones are skipped) */
		for (struct sub *s = hub->subs; s && !lead; s = s->next)
			if (!s->cut && store_cursor_behind(&s->cur, &head))
				lead = s;
		if (lead)
			from = lead->cur;
		pthread_mutex_unlock(&hub->mu);
		if (!lead)
			break;
		if (store_changes(hub->st, &from, hub->page, STREAM_PAGE, &n) != STORE_OK)
			break;
		struct store_cursor to = n ? hub->page[n - 1].cursor : from;
		if (n < STREAM_PAGE) {
			/* everything up to the head (read before) has been seen */
			store_cursor_catch_up(&to, &head);
		}
		pthread_mutex_lock(&hub->mu);
		for (size_t i = 0; i < n; i++) {
			const char *state;
			size_t len = 0;
			char *msg = render(&hub->page[i], &state, &len);
			for (struct sub *s = hub->subs; msg && s; s = s->next)
				if (memcmp(&s->cur, &from, sizeof(from)) == 0 && sub_takes(s, &hub->page[i], state))
					sub_append(hub, s, msg, len);
			free(msg);
		}
		for (struct sub *s = hub->subs; s; s = s->next)
			if (memcmp(&s->cur, &from, sizeof(from)) == 0) {
				s->cur = to;
				more = true;
			}
		pthread_mutex_unlock(&hub->mu);
	}
}

/* Under hub->mu: a subscriber that went away while its connection was
 * suspended (libmicrohttpd does not watch those sockets) is let go now
 * rather than at its next write. A client sends nothing after its
 * request, so a readable end of stream is a closed connection. Returns
 * how many subscribers are on their way out (cut, not yet freed). */
static int let_go_closed(struct stream_hub *hub)
{
	int leaving = 0;
	char b;

	for (struct sub *s = hub->subs; s; s = s->next) {
		if (s->suspended && !s->cut && s->fd >= 0 && recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
			s->cut = true;   /* not counted: it left by itself */
			sub_wake(s);
		}
		leaving += s->cut;
	}
	return leaving;
}

static void heartbeat(struct stream_hub *hub, int64_t every_ms)
{
	static const char beat[] = ": heartbeat\n\n";
	int64_t now = mono_ms();

	pthread_mutex_lock(&hub->mu);
	let_go_closed(hub);
	for (struct sub *s = hub->subs; s; s = s->next)
		if (!s->cut && now - s->last_write_ms >= every_ms)
			sub_append(hub, s, beat, sizeof(beat) - 1);
	pthread_mutex_unlock(&hub->mu);
}

static void *hub_main(void *arg)
{
	struct stream_hub *hub = arg;

	pthread_setname_np(pthread_self(), "lqs-stream");
	pthread_mutex_lock(&hub->mu);
	while (!hub->stopping) {
		if (!hub->n) {
			pthread_cond_wait(&hub->cv, &hub->mu);
			continue;
		}
		bool told_of_one = hub->changed;
		hub->changed = false;
		pthread_mutex_unlock(&hub->mu);
		struct config_ref *ref = config_current();
		int64_t limit = ref->cfg.stream_buffer, every = (int64_t)(ref->cfg.stream_heartbeat * 1000);
		config_put(ref);
		feed_round(hub, limit);
		heartbeat(hub, every);
		pthread_mutex_lock(&hub->mu);
		struct timespec until = deadline_in_us(STREAM_GAP_MS * 1000);
		while (!hub->stopping && pthread_cond_timedwait(&hub->cv, &hub->mu, &until) != ETIMEDOUT)
			;
		int64_t rest = (hub->told && !told_of_one ? STREAM_IDLE_POLL_MS : STREAM_POLL_MS) - STREAM_GAP_MS;
		until = deadline_in_us(rest * 1000);
		while (!hub->stopping && !hub->changed &&
		       pthread_cond_timedwait(&hub->cv, &hub->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&hub->mu);
	return NULL;
}

/* From the store's thread: something may have changed (live), or the
 * store cannot tell for now (read on the timer). */
static void hub_told(void *arg, bool live)
{
	struct stream_hub *hub = arg;

	pthread_mutex_lock(&hub->mu);
	hub->told = live;
	if (live) {
		hub->changed = true;
		pthread_cond_broadcast(&hub->cv);
	}
	pthread_mutex_unlock(&hub->mu);
}

struct stream_hub *stream_hub_start(struct store *st)
{
	struct stream_hub *hub = calloc(1, sizeof(*hub));

	if (!hub)
		return NULL;
	hub->st = st;
	hub->page = calloc(STREAM_PAGE, sizeof(*hub->page));
	pthread_mutex_init(&hub->mu, NULL);
	pthread_cond_init(&hub->cv, NULL);
	ratelog_init(&hub->cuts, "stream subscribers cut");
	hub->started = hub->page && pthread_create(&hub->thread, NULL, hub_main, hub) == 0;
	if (!hub->started) {
		stream_hub_stop(hub);
		return NULL;
	}
	hub->notified = store_changes_notify(st, hub_told, hub) == 0;
	return hub;
}

void stream_hub_close_all(struct stream_hub *hub)
{
	if (!hub)
		return;
	if (hub->notified)
		store_changes_notify(hub->st, NULL, NULL);   /* no call after this */
	hub->notified = false;
	pthread_mutex_lock(&hub->mu);
	hub->stopping = true;
	for (struct sub *s = hub->subs; s; s = s->next) {
		s->cut = true;
		sub_wake(s);
	}
	pthread_cond_broadcast(&hub->cv);
	pthread_mutex_unlock(&hub->mu);
	if (hub->started)
		pthread_join(hub->thread, NULL);
	hub->started = false;
}

void stream_hub_stop(struct stream_hub *hub)
{
	if (!hub)
		return;
	stream_hub_close_all(hub);
	pthread_mutex_destroy(&hub->mu);
	pthread_cond_destroy(&hub->cv);
	ratelog_destroy(&hub->cuts);
	free(hub->page);
	free(hub);
}

/* ---- the endpoint ---- */

static bool filter_copy(struct MHD_Connection *c, const char *name, char *out, size_t n, char *bad, size_t badlen)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	if (!v)
		return true;
	if (strlen(v) >= n) {
		snprintf(bad, badlen, "%s: longer than %zu characters", name, n - 1);
		return false;
	}
	str_copy(out, v, n);
	return true;
}

enum MHD_Result api_events_stream(struct http *h, struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	struct stream_hub *hub = h->hub;
	struct MHD_Response *resp;
	struct sub *s;
	char bad[160], retry[32];
	enum MHD_Result ret;

	if (!hub)
		return reply_detail(c, 503, "the stream is not running", NULL, NULL);
	s = calloc(1, sizeof(*s));
	if (!s)
		return reply_detail(c, 503, "out of memory", NULL, NULL);
	s->hub = hub;
	s->conn = c;
	buf_init(&s->out, 0);
	if (!filter_copy(c, "state", s->state, sizeof(s->state), bad, sizeof(bad)) ||
	    !filter_copy(c, "handler", s->handler, sizeof(s->handler), bad, sizeof(bad)) ||
	    !filter_copy(c, "resource_id", s->resource_id, sizeof(s->resource_id), bad, sizeof(bad)) ||
	    !filter_copy(c, "process_type", s->process_type, sizeof(s->process_type), bad, sizeof(bad)) ||
	    !filter_copy(c, "event_id", s->event_id, sizeof(s->event_id), bad, sizeof(bad))) {
		free(s);
		return reply_detail(c, 400, bad, NULL, NULL);
	}
	if (last && !cursor_parse(last, &s->cur)) {
		free(s);
		return reply_detail(c, 400, "Last-Event-ID: not an id this stream sent (R-S-B)", NULL, NULL);
	}
	if (!last && store_changes_head(h->st, &s->cur) != STORE_OK) {
		free(s);
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		int sndbuf = STREAM_SNDBUF;
		s->fd = ci ? ci->connect_fd : -1;
		if (ci)
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	snprintf(retry, sizeof(retry), "retry: %d\n\n", STREAM_RETRY_MS);
	pthread_mutex_lock(&hub->mu);
	/* a client that just left (a reconnect) does not hold its place */
	if (hub->stopping || hub->n - let_go_closed(hub) >= cfg->stream_max_subscribers) {
		bool stopping = hub->stopping;
		pthread_mutex_unlock(&hub->mu);
		free(s);
		metrics_stream_refused();
		if (stopping)
			return reply_detail(c, 503, "shutting down", NULL, NULL);
		snprintf(bad, sizeof(bad), "too many stream subscribers (stream_max_subscribers is %" PRId64 "); retry later",
			 cfg->stream_max_subscribers);
		return reply_detail(c, 503, bad, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	}
	buf_append_str(&s->out, retry);
	s->last_write_ms = mono_ms();
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	if (!resp) {
		pthread_mutex_unlock(&hub->mu);
		buf_free(&s->out);
		free(s);
		return reply_detail(c, 503, "out of memory", NULL, NULL);
	}
	s->next = hub->subs;
	if (hub->subs)
		hub->subs->prev = s;
	hub->subs = s;
	hub->n++;
	metrics_stream_subscribers(hub->n);
	pthread_cond_broadcast(&hub->cv);
	pthread_mutex_unlock(&hub->mu);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	reply_set_reason("stream");
	reply_set_status(200);
	ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
