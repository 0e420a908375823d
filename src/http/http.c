#include "lqs-hookd/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/event.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/ratelog.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

/* Seconds a client is asked to wait when the queue is full or the disk is. */
#define HTTP_RETRY_AFTER_S "30"

/* Every open client connection, so that the watchdog can enforce the
 * header and read deadlines libmicrohttpd lacks (it only has an idle
 * timeout, which a client trickling a byte a second never reaches). */
enum conn_phase { PH_HEADERS, PH_BODY, PH_ANSWER, PH_CUT };

struct conn_track {
	struct conn_track *prev, *next;
	int fd;
	bool refused;          /* over max_connections: answered 503, never served */
	int64_t phase_start;   /* mono ms: accepted, or the previous answer done */
	enum conn_phase phase;
};

struct http {
	struct MHD_Daemon *d;
	struct store *st;
	struct workers *w;
	atomic_int in_flight;
	unsigned port;
	pthread_mutex_t conns_mu;
	struct conn_track *conns;
	int n_conns;
	int max_conns;         /* served at once; the rest get a 503 */
	pthread_t watchdog;
	bool watchdog_started;
	/* where validated events go; it answers through each request's ticket */
	struct intake *in;
	atomic_bool stopping;
	atomic_llong header_timeout_ms, read_timeout_ms;
	/* rejected requests: logged, but no more than max_rejection_logs
	 * lines per rejection_log_interval */
	struct ratelog rejections;
};

/* How often deadlines are checked. */
#define WATCHDOG_INTERVAL_MS 200
/* How long a refused client may keep its connection before it is cut. */
#define REFUSED_GRACE_MS 1000
/* Connections libmicrohttpd admits beyond max_connections, so that the
 * excess can be refused with a 503 instead of waiting unanswered. */
#define REFUSAL_SLACK 16
/* Descriptors kept for everything but client connections: the store, the
 * event loops, logs; each worker adds its LogQS connections on top. */
#define FD_RESERVE_BASE 32

enum route_kind {
	R_NONE, R_EVENTS, R_EVENT, R_HISTORY, R_REPLAY, R_HEALTHZ, R_READYZ, R_METRICS, R_REPLAY_MANY,
};

static const char *const route_names[] = {
	"other", "events", "event", "history", "replay", "healthz", "readyz", "metrics", "replay_many",
};

/* History steps in one page: the default, and the most a client may ask. */
#define HISTORY_PAGE_DEFAULT 500
#define HISTORY_PAGE_MAX 5000
/* Events one bulk replay call takes at most (a client pages on). */
#define REPLAY_PAGE_DEFAULT 500
#define REPLAY_PAGE_MAX 5000

/* Per-request state, created on the first callback and freed only in the
 * completion callback, so an aborted upload leaks nothing. */
struct req {
	enum route_kind route;
	char id[64];
	bool id_ok;
	struct buf body;
	bool overflow;
	size_t discarded;
	struct config_ref *cfg;
	/* POST /events once validated: waiting for, then holding, its commit */
	struct MHD_Connection *conn;
	struct event ev;
	struct store_item item;
	struct intake_ticket ticket;
	bool expected, submitted, committed;
	double started;          /* mono_s() at the first callback */
};

/* The status of the answer queued by the current callback, for metrics
 * (every answer goes through reply_text, on the callback's own thread),
 * and why, for the log of rejected requests (never the body or a secret). */
static _Thread_local unsigned tl_status;
static _Thread_local char tl_reason[200];

static struct conn_track *track_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void track_phase(struct http *h, struct MHD_Connection *c, enum conn_phase ph, bool restart)
{
	struct conn_track *t = track_of(c);

	if (!t)
		return;
	pthread_mutex_lock(&h->conns_mu);
	if (t->phase != PH_CUT) {
		t->phase = ph;
		if (restart)
			t->phase_start = mono_ms();
	}
	pthread_mutex_unlock(&h->conns_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	struct conn_track *t;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		t = calloc(1, sizeof(*t));
		if (!t || !ci) {
			free(t);
			return;
		}
		t->fd = ci->connect_fd;
		t->phase_start = mono_ms();
		t->phase = PH_HEADERS;
		pthread_mutex_lock(&h->conns_mu);
		t->next = h->conns;
		if (h->conns)
			h->conns->prev = t;
		h->conns = t;
		if (++h->n_conns > h->max_conns) {
			/* A clean refusal rather than a silent wait in the kernel's
			 * backlog: answer 503 before reading anything, stop sending,
			 * and let the watchdog cut the connection shortly. */
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				"Retry-After: 5\r\nConnection: close\r\nContent-Length: 66\r\n\r\n"
				"{\"detail\":\"too many connections (max_connections); retry later\"}";
			t->refused = true;
			(void)!send(t->fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			shutdown(t->fd, SHUT_WR);
			t->phase_start = mono_ms() - atomic_load(&h->header_timeout_ms) + REFUSED_GRACE_MS;
		}
		pthread_mutex_unlock(&h->conns_mu);
		if (t->refused)
			metrics_connection_refused("max_connections");
		*socket_context = t;
		return;
	}
	/* CLOSED comes before libmicrohttpd closes the socket: once the entry
	 * is gone under the mutex, the watchdog can no longer touch the fd. */
	t = *socket_context;
	if (!t)
		return;
	pthread_mutex_lock(&h->conns_mu);
	if (t->prev)
		t->prev->next = t->next;
	else
		h->conns = t->next;
	if (t->next)
		t->next->prev = t->prev;
	h->n_conns--;
	pthread_mutex_unlock(&h->conns_mu);
	free(t);
	*socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
	struct http *h = arg;

	while (!atomic_load(&h->stopping)) {
		struct timespec ts = { 0, WATCHDOG_INTERVAL_MS * 1000000L };
		int64_t now, hdr = atomic_load(&h->header_timeout_ms), rd = atomic_load(&h->read_timeout_ms);
		int cut_headers = 0, cut_read = 0;

		nanosleep(&ts, NULL);
		now = mono_ms();
		pthread_mutex_lock(&h->conns_mu);
		for (struct conn_track *t = h->conns; t; t = t->next) {
			bool late_headers = t->phase == PH_HEADERS && now - t->phase_start > hdr;
			bool late_body = t->phase == PH_BODY && now - t->phase_start > rd;
			if (!late_headers && !late_body)
				continue;
			/* shutdown, not close: the fd stays libmicrohttpd's to close */
			shutdown(t->fd, SHUT_RDWR);
			t->phase = PH_CUT;
			if (late_headers)
				cut_headers++;
			else
				cut_read++;
		}
		pthread_mutex_unlock(&h->conns_mu);
		if (cut_headers)
			log_info("cut %d connection(s) that did not send their headers within header_timeout",
				 cut_headers);
		if (cut_read)
			log_info("cut %d connection(s) that did not send their request within read_timeout", cut_read);
		for (int i = 0; i < cut_headers; i++)
			metrics_connection_cut("header_timeout");
		for (int i = 0; i < cut_read; i++)
			metrics_connection_cut("read_timeout");
		{
			struct config_ref *ref = config_current();
			ratelog_tick(&h->rejections, mono_ms(), (int64_t)(ref->cfg.rejection_log_interval * 1000.0));
			config_put(ref);
		}
	}
	return NULL;
}

void http_set_timeouts(struct http *h, double header_s, double read_s)
{
	atomic_store(&h->header_timeout_ms, (long long)(header_s * 1000.0));
	atomic_store(&h->read_timeout_ms, (long long)(read_s * 1000.0));
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text,
				  const char *h1, const char *v1)
{
	/* MUST_COPY: libmicrohttpd copies and never writes through the pointer;
	 * its prototype is just not const-correct. */
	union { const char *c; void *v; } cast = { .c = text };
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), cast.v, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				h1 && strcmp(h1, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 ? v1 : "application/json");
	if (h1 && strcmp(h1, MHD_HTTP_HEADER_CONTENT_TYPE) != 0)
		MHD_add_response_header(r, h1, v1);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	tl_status = status;
	return ret;
}

/* Takes ownership of body. */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body,
				  const char *h1, const char *v1)
{
	/* ?pretty indents the answer for people reading it with curl; the
	 * integers stay exact (unlike piping through a double-based tool). */
	size_t fmt = MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "pretty", 6, NULL, NULL) == MHD_YES
			     ? JSON_INDENT(2) : JSON_COMPACT;
	char *text = body ? json_dumps(body, fmt | JSON_PRESERVE_ORDER) : NULL;
	enum MHD_Result ret;

	json_decref(body);
	if (!text)
		return reply_text(c, 500, "{\"detail\":\"Internal Server Error\"}", NULL, NULL);
	ret = reply_text(c, status, text, h1, v1);
	free(text);
	return ret;
}

static enum MHD_Result reply_detail(struct MHD_Connection *c, unsigned status, const char *detail,
				    const char *h1, const char *v1)
{
	str_copy(tl_reason, detail, sizeof(tl_reason));
	return reply_json(c, status, json_pack("{s:s}", "detail", detail), h1, v1);
}

/* Route by path only; methods are checked by the caller. */
static enum route_kind route_of(const char *url, const char *events_path, char *id, size_t idlen)
{
	size_t n = strlen(events_path);

	if (strcmp(url, "/healthz") == 0)
		return R_HEALTHZ;
	if (strcmp(url, "/readyz") == 0)
		return R_READYZ;
	if (strcmp(url, "/metrics") == 0)
		return R_METRICS;
	if (strncmp(url, events_path, n) != 0)
		return R_NONE;
	url += n;
	if (*url == '\0')
		return R_EVENTS;
	if (*url != '/' || url[1] == '\0')
		return R_NONE;
	url++;
	const char *slash = strchr(url, '/');
	size_t idn = slash ? (size_t)(slash - url) : strlen(url);
	if (idn == 0 || idn >= idlen)
		return idn == 0 ? R_NONE : R_EVENT;   /* too long: a malformed id */
	memcpy(id, url, idn);
	id[idn] = '\0';
	if (!slash && strcmp(id, "replay") == 0)
		return R_REPLAY_MANY;   /* ids are UUIDs: no event is called "replay" */
	if (!slash)
		return R_EVENT;
	if (strcmp(slash, "/history") == 0)
		return R_HISTORY;
	if (strcmp(slash, "/replay") == 0)
		return R_REPLAY;
	return R_NONE;
}

static const char *allowed_methods(enum route_kind r)
{
	switch (r) {
	case R_EVENTS: return "GET, POST";
	case R_REPLAY:
	case R_REPLAY_MANY: return "POST";
	default: return "GET";
	}
}

static bool method_ok(enum route_kind r, const char *method)
{
	if (r == R_EVENTS)
		return strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0;
	if (r == R_REPLAY || r == R_REPLAY_MANY)
		return strcmp(method, "POST") == 0;
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static bool content_type_ok(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static bool client_is_loopback(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return memcmp(in6->sin6_addr.s6_addr, v4mapped, 12) == 0 && in6->sin6_addr.s6_addr[12] == 127;
	}
	return sa->sa_family == AF_UNIX;
}

/* Administration endpoints: the admin token when one is configured,
 * otherwise loopback clients only. Returns MHD_YES after answering a refusal,
 * or MHD_NO-as-"go on" through *allowed. */
static enum MHD_Result admin_gate(struct MHD_Connection *c, const struct config *cfg, bool *allowed)
{
	*allowed = false;
	if (cfg->admin_token) {
		const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		enum auth_result a = auth_check_token(h, cfg->admin_token);
		if (a == AUTH_OK) {
			*allowed = true;
			return MHD_YES;
		}
		return reply_detail(c, 401, a == AUTH_MISSING ? "Authorization header is missing"
							      : "Invalid authorization token",
				    "WWW-Authenticate", "Bearer");
	}
	if (client_is_loopback(c)) {
		*allowed = true;
		return MHD_YES;
	}
	return reply_detail(c, 403, "administration endpoints answer loopback clients only "
				    "(configure admin_token to allow others)", NULL, NULL);
}

struct framing {
	int n_cl, n_te;
	bool te_chunked_only;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->n_cl++;
	if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->n_te++;
		f->te_chunked_only = value && strcasecmp(value, "chunked") == 0;
	}
	return MHD_YES;
}

/* Ambiguous message framing is how requests are smuggled past proxies:
 * refuse it outright (RFC 9112, section 6.3). NULL when the framing is sound. */
static const char *framing_error(struct MHD_Connection *c)
{
	struct framing f = { 0, 0, false };

	MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
	if (f.n_cl > 1)
		return "Bad Request: more than one Content-Length header";
	if (f.n_cl && f.n_te)
		return "Bad Request: both Content-Length and Transfer-Encoding";
	if (f.n_te > 1 || (f.n_te && !f.te_chunked_only))
		return "Bad Request: only Transfer-Encoding: chunked is supported";
	return NULL;
}

/* First callback of POST /events: everything the headers can decide. */
static enum MHD_Result events_headers(struct http *h, struct MHD_Connection *c, struct req *r,
				      bool *answered)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *auth, *ct, *cl;

	*answered = true;
	if (strcmp(cfg->auth, "none") != 0) {
		auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		switch (auth_check_bearer(auth, cfg->secrets, cfg->n_secrets)) {
		case AUTH_MISSING:
			return reply_detail(c, 401, "Authorization header is missing", "WWW-Authenticate", "Bearer");
		case AUTH_INVALID:
			return reply_detail(c, 401, "Invalid authorization token", "WWW-Authenticate", "Bearer");
		case AUTH_OK:
			break;
		}
	}
	ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!content_type_ok(ct))
		return reply_detail(c, 415, "Content-Type must be application/json", NULL, NULL);
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		int64_t n;
		if (parse_i64(cl, &n) == 0 && n > cfg->max_body) {
			char msg[128];
			snprintf(msg, sizeof(msg), "Request body larger than max_body (%lld bytes)",
				 (long long)cfg->max_body);
			return reply_detail(c, 413, msg, NULL, NULL);
		}
	}
	/* Admission control before reading a byte of body. */
	if (store_unfinished(h->st) >= cfg->max_queued) {
		char msg[160];
		snprintf(msg, sizeof(msg), "queue full: %lld unfinished events (max_queued); retry later",
			 (long long)cfg->max_queued);
		return reply_detail(c, 503, msg, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	}
	*answered = false;
	return MHD_YES;
}

/* The answer once the committer has stored (or refused) the event. */
static enum MHD_Result events_answer(struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	const char *id = r->item.id, *rid = r->ev.resource_id;
	char loc[200];

	switch (r->item.result) {
	case STORE_OK:
		log_event(LOG_LVL_INFO, id, rid, "event accepted (%s/%s -> %s)", r->ev.process_type,
			  r->ev.current_state, r->item.handler ? r->item.handler : "unrouted: finished at once");
		if (!r->item.handler)
			metrics_unrouted_finished();
		snprintf(loc, sizeof(loc), "%s/%s", cfg->events_path, id);
		return reply_json(c, 202, json_pack("{s:s, s:s}", "status", "accepted", "event_id", id),
				  MHD_HTTP_HEADER_LOCATION, loc);
	case STORE_DUPLICATE:
		log_event(LOG_LVL_INFO, id, rid, "duplicate delivery answered with the first event");
		snprintf(loc, sizeof(loc), "%s/%s", cfg->events_path, id);
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "duplicate", "event_id", id),
				  MHD_HTTP_HEADER_LOCATION, loc);
	case STORE_FULL:
		return reply_detail(c, 503, "queue full (max_queued unfinished events); retry later",
				    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	case STORE_NOSPACE:
		log_event(LOG_LVL_ERROR, NULL, rid, "event refused: the store is full (disk space or max_store_size)");
		return reply_detail(c, 503, "event store is full (disk space or max_store_size); retry later",
				    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	default:
		log_event(LOG_LVL_ERROR, NULL, rid, "event refused: the store failed");
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
}

/* "invalid event: process_type: Input should be ... (and 2 more)" from
 * FastAPI-style errors: field names and messages, never the values sent. */
static void invalid_reason(json_t *errs)
{
	json_t *first = json_array_get(errs, 0), *loc = json_object_get(first, "loc");
	const char *field = json_string_value(json_array_get(loc, json_array_size(loc) - 1));
	const char *msg = json_string_value(json_object_get(first, "msg"));
	size_t more = json_array_size(errs) > 0 ? json_array_size(errs) - 1 : 0;

	snprintf(tl_reason, sizeof(tl_reason), "invalid event: %s: %s%s", field ? field : "body",
		 msg ? msg : "invalid", more ? " (and more)" : "");
}

/* The event has its result (durable, duplicate, or refused): the
 * connection may answer. */
static void on_durable(struct intake_ticket *t)
{
	struct req *r = t->ctx;

	r->committed = true;
	MHD_resume_connection(r->conn);   /* r may be answered and freed from here on */
}

static enum MHD_Result events_receive(struct http *h, struct MHD_Connection *c, struct req *r)
{
	const struct config *cfg = &r->cfg->cfg;
	json_t *detail = NULL;
	char msg[128];

	if (r->committed)
		return events_answer(c, r);
	if (r->submitted)
		return MHD_YES;   /* resumed early: wait for the commit */
	if (r->overflow) {
		snprintf(msg, sizeof(msg), "Request body larger than max_body (%lld bytes)", (long long)cfg->max_body);
		return reply_detail(c, 413, msg, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	switch (event_parse(r->body.data ? r->body.data : "", r->body.len, &r->ev, &detail)) {
	case EVENT_SYNTAX:
		/* the parser's text quotes the body: not for the log */
		str_copy(tl_reason, "the body is not valid JSON", sizeof(tl_reason));
		return reply_json(c, 400, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case EVENT_INVALID:
		invalid_reason(detail);
		return reply_json(c, 422, json_pack("{s:o}", "detail", detail), NULL, NULL);
	case EVENT_NOMEM:
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	case EVENT_OK:
		break;
	}
	r->item.ev = &r->ev;
	r->item.handler = router_route(cfg, r->ev.process_type, r->ev.current_state);
	r->item.body = store_event_body(&r->ev);
	if (!r->item.body)
		return reply_detail(c, 500, "Internal Server Error", NULL, NULL);
	/* Suspend before queueing, so the syncer's resume cannot come first. */
	r->conn = c;
	r->submitted = true;
	r->ticket = (struct intake_ticket){ .jobs = &r->item, .n = 1, .done = on_durable, .ctx = r };
	MHD_suspend_connection(c);
	if (!intake_submit(h->in, &r->ticket)) {
		MHD_resume_connection(c);
		r->item.result = STORE_ERROR;
		r->committed = true;
	}
	return MHD_YES;
}

/* What became of a POST /events, by the status it got. */
static void received_metric(unsigned status)
{
	switch (status) {
	case 202: metrics_event_received("accepted", NULL); break;
	case 200: metrics_event_received("duplicate", NULL); break;
	case 400: metrics_event_received("rejected", "bad_json"); break;
	case 401: metrics_event_received("rejected", "unauthorized"); break;
	case 413: metrics_event_received("rejected", "too_large"); break;
	case 415: metrics_event_received("rejected", "unsupported_media_type"); break;
	case 422: metrics_event_received("rejected", "invalid_event"); break;
	case 503: metrics_event_received("rejected", "unavailable"); break;
	default: metrics_event_received("rejected", "other"); break;
	}
}

static int64_t parse_since(const char *s)
{
	struct tm tm;
	int64_t v;
	const char *end;

	if (parse_i64(s, &v) == 0)
		return v * 1000;   /* seconds since the epoch */
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}

/* The filters GET /events and POST /events/replay share. Returns NULL, or
 * the 400 message. rid holds the canonical resource id. */
static const char *query_filters(struct MHD_Connection *c, struct store_query *q, char rid[37], int def_limit,
				 int max_limit)
{
	static _Thread_local char msg[160];
	const char *v;
	int64_t n;

	q->state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	if (q->state && !name_in(event_states, q->state)) {
		char all[96];
		names_join(event_states, ", ", all, sizeof(all));
		snprintf(msg, sizeof(msg), "state must be one of %s", all);
		return msg;
	}
	q->process_type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "process_type");
	if (q->process_type && !event_type_valid(q->process_type))
		return "process_type must be a LogQS ProcessType";
	q->handler = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "handler");
	if (q->handler && !router_handler_find(q->handler))
		return "handler must be the name of a compiled-in handler";
	q->resource_id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resource_id");
	if (q->resource_id) {
		if (!uuid_canonical(q->resource_id, rid))
			return "resource_id must be a UUID";
		q->resource_id = rid;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"))) {
		q->since_ms = parse_since(v);
		if (q->since_ms < 0)
			return "since must be epoch seconds or YYYY-MM-DDTHH:MM:SS (UTC)";
	}
	q->limit = def_limit;
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
		if (parse_i64(v, &n) || n < 1 || n > max_limit) {
			snprintf(msg, sizeof(msg), "limit must be an integer from 1 to %d", max_limit);
			return msg;
		}
		q->limit = (int)n;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor"))) {
		if (parse_i64(v, &n) || n < 0)
			return "cursor must be a next_cursor value from an earlier page";
		q->after_seq = n;
	}
	return NULL;
}

static json_t *cursor_json(int64_t next)
{
	char cur[32];

	if (!next)
		return json_null();
	snprintf(cur, sizeof(cur), "%lld", (long long)next);
	return json_string(cur);
}

static enum MHD_Result events_list(struct http *h, struct MHD_Connection *c)
{
	struct store_query q = { 0 };
	char rid[37];
	const char *bad = query_filters(c, &q, rid, 100, 1000);

	if (bad)
		return reply_detail(c, 400, bad, NULL, NULL);
	return reply_json(c, 200, store_list(h->st, &q), NULL, NULL);
}

/* POST /events/replay?state=failed[&since=…][&handler=…][&dry_run=true]:
 * one bad API key turns every event into a dead letter, and this brings
 * them back at once, a page at a time (next_cursor). */
static enum MHD_Result events_replay_many(struct http *h, struct MHD_Connection *c)
{
	struct store_query q = { 0 };
	char rid[37];
	const char *bad = query_filters(c, &q, rid, REPLAY_PAGE_DEFAULT, REPLAY_PAGE_MAX);
	const char *dry = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dry_run");
	bool dry_run = false;
	int64_t next = 0;
	json_t *ids;

	if (bad)
		return reply_detail(c, 400, bad, NULL, NULL);
	if (!q.state || (strcmp(q.state, ST_FAILED) != 0 && strcmp(q.state, ST_COMPLETED) != 0))
		return reply_detail(c, 400, "state must be failed or completed (only finished events can be replayed)",
				    NULL, NULL);
	if (dry && parse_bool(dry, &dry_run))
		return reply_detail(c, 400, "dry_run must be true or false", NULL, NULL);
	ids = json_array();
	if (!ids || store_replay_matching(h->st, &q, dry_run, ids, &next) != STORE_OK) {
		json_decref(ids);
		return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
				    HTTP_RETRY_AFTER_S);
	}
	if (!dry_run && json_array_size(ids)) {
		log_info("%zu %s event(s) replayed by an operator", json_array_size(ids), q.state);
		workers_kick_n(h->w, (int)json_array_size(ids));
	}
	return reply_json(c, dry_run ? 200 : 202,
			  json_pack("{s:s, s:I, s:o, s:o}", "status", dry_run ? "dry_run" : "replayed", "count",
				    (json_int_t)json_array_size(ids), "event_ids", ids, "next_cursor", cursor_json(next)),
			  NULL, NULL);
}

static enum MHD_Result handle_admin(struct http *h, struct MHD_Connection *c, struct req *r,
				    const char *method)
{
	char id[37];
	json_t *doc;

	if (r->route == R_EVENTS)
		return events_list(h, c);
	if (r->route == R_REPLAY_MANY)
		return events_replay_many(h, c);
	if (r->route == R_METRICS) {
		char *text = metrics_render();
		enum MHD_Result ret = reply_text(c, 200, text ? text : "", MHD_HTTP_HEADER_CONTENT_TYPE,
						 "text/plain; version=0.0.4; charset=utf-8");
		free(text);
		return ret;
	}
	if (!uuid_canonical(r->id, id))
		return reply_detail(c, 400, "event id must be a UUID", NULL, NULL);
	switch (r->route) {
	case R_EVENT:
		doc = store_get(h->st, id);
		return doc ? reply_json(c, 200, doc, NULL, NULL) : reply_detail(c, 404, "event not found", NULL, NULL);
	case R_HISTORY: {
		const char *v;
		int64_t n, cursor = 0, next = 0;
		int limit = HISTORY_PAGE_DEFAULT;
		if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
			if (parse_i64(v, &n) || n < 1 || n > HISTORY_PAGE_MAX)
				return reply_detail(c, 400, "limit must be an integer from 1 to 5000", NULL, NULL);
			limit = (int)n;
		}
		if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor"))) {
			if (parse_i64(v, &n) || n < 0)
				return reply_detail(c, 400, "cursor must be a next_cursor value from an earlier page",
						    NULL, NULL);
			cursor = n;
		}
		switch (store_history_page(h->st, id, cursor, limit, &doc, &next)) {
		case STORE_OK:
			return reply_json(c, 200, json_pack("{s:s, s:o, s:o}", "event_id", id, "history", doc,
							     "next_cursor", cursor_json(next)), NULL, NULL);
		case STORE_NOTFOUND:
			return reply_detail(c, 404, "event not found", NULL, NULL);
		default:
			return reply_detail(c, 503, "event store unavailable; retry later", MHD_HTTP_HEADER_RETRY_AFTER,
					    HTTP_RETRY_AFTER_S);
		}
	}
	case R_REPLAY:
		(void)method;
		switch (store_replay(h->st, id)) {
		case STORE_OK:
			log_event(LOG_LVL_INFO, id, NULL, "event replayed by an operator");
			workers_kick(h->w);
			return reply_json(c, 202, json_pack("{s:s, s:s}", "status", "replayed", "event_id", id),
					  NULL, NULL);
		case STORE_NOTFOUND:
			return reply_detail(c, 404, "event not found", NULL, NULL);
		case STORE_CONFLICT:
			return reply_detail(c, 409, "event is not finished; only completed or failed events can be replayed",
					    NULL, NULL);
		default:
			return reply_detail(c, 503, "event store unavailable; retry later",
					    MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
		}
	default:
		return reply_detail(c, 404, "Not Found", NULL, NULL);
	}
}

static enum MHD_Result dispatch(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct req *r = *con_cls;
	bool answered, allowed;
	enum MHD_Result ret;

	(void)version;
	if (!r) {
		struct conn_track *t = track_of(c);
		if (t && t->refused)
			return MHD_NO;   /* already answered 503 */
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->cfg = config_current();
		r->started = mono_s();
		*con_cls = r;
		atomic_fetch_add(&h->in_flight, 1);
		track_phase(h, c, PH_BODY, false);
		buf_init(&r->body, (size_t)r->cfg->cfg.max_body);
		r->route = route_of(url, r->cfg->cfg.events_path, r->id, sizeof(r->id));
		const char *ferr = framing_error(c);
		if (ferr)
			return reply_detail(c, 400, ferr, MHD_HTTP_HEADER_CONNECTION, "close");
		if (r->route == R_NONE)
			return reply_detail(c, 404, "Not Found", NULL, NULL);
		if (!method_ok(r->route, method))
			return reply_detail(c, 405, "Method Not Allowed", MHD_HTTP_HEADER_ALLOW,
					    allowed_methods(r->route));
		if (r->route == R_EVENTS && strcmp(method, "POST") == 0) {
			/* the committer waits for this one while it may come */
			intake_expect(h->in);
			r->expected = true;
			ret = events_headers(h, c, r, &answered);
			return answered ? ret : MHD_YES;
		}
		if (r->route == R_HEALTHZ)
			return reply_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
		if (r->route == R_READYZ) {
			if (workers_alive(h->w) <= 0)
				return reply_detail(c, 503, "workers are not running", NULL, NULL);
			if (!store_writable(h->st))
				return reply_detail(c, 503, "event store is not writable", NULL, NULL);
			char why[2048], msg[2200];
			if (lqs_check_state(why, sizeof(why)) == LQS_CHECK_FAILING) {
				snprintf(msg, sizeof(msg), "LogQS check failed: %s", why);
				if (r->cfg->cfg.readyz_requires_lqs)
					return reply_detail(c, 503, msg, NULL, NULL);
				return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ready", "warning", msg),
						  NULL, NULL);
			}
			return reply_json(c, 200, json_pack("{s:s}", "status", "ready"), NULL, NULL);
		}
		ret = admin_gate(c, &r->cfg->cfg, &allowed);
		if (!allowed)
			return ret;
		/* Administration requests carry no body worth reading: answer
		 * once it is in (a body, if any, is discarded). */
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->route != R_EVENTS || strcmp(method, "POST") != 0) {
			*upload_size = 0;   /* ignored body of an admin request */
			return MHD_YES;
		}
		if (!r->overflow && buf_append(&r->body, upload, *upload_size) != 0)
			r->overflow = true;   /* the buffer freed itself */
		if (r->overflow) {
			r->discarded += *upload_size;
			/* libmicrohttpd cannot answer mid-upload: read and drop up
			 * to max_discard to send a 413, then give up on the client. */
			if (r->discarded > (size_t)r->cfg->cfg.max_discard)
				return MHD_NO;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->route == R_EVENTS && strcmp(method, "POST") == 0)
		return events_receive(h, c, r);
	return handle_admin(h, c, r, method);
}

static void client_text(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	str_copy(out, "unknown", n);
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
}

/* A refused request leaves a line in the log (a wrong hook secret in LogQS
 * would otherwise show only in a metric), rate-limited. */
static void log_rejection(struct http *h, struct MHD_Connection *c, const struct config *cfg, unsigned status,
			  const char *method, const char *url)
{
	char client[INET6_ADDRSTRLEN + 1];
	struct log_field f = { "status", status };

	switch (status) {
	case 400: case 401: case 403: case 413: case 415: case 422:
		break;
	default:
		return;
	}
	if (!ratelog_allow(&h->rejections, mono_ms(), (int64_t)(cfg->rejection_log_interval * 1000.0),
			   cfg->max_rejection_logs, status))
		return;
	client_text(c, client, sizeof(client));
	log_event_fields(LOG_LVL_WARN, NULL, NULL, &f, 1, "rejected %s %.200s from %s: %u %s", method, url, client,
			 status, tl_reason[0] ? tl_reason : "(no reason given)");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	enum MHD_Result ret;
	struct req *r;

	tl_status = 0;
	tl_reason[0] = '\0';
	ret = dispatch(cls, c, url, method, version, upload, upload_size, con_cls);
	r = *con_cls;
	if (tl_status) {
		track_phase(cls, c, PH_ANSWER, false);
		const char *route = route_names[r ? r->route : R_NONE];
		metrics_http_request(route, tl_status);
		if (r && r->route == R_EVENTS && strcmp(method, "POST") == 0) {
			received_metric(tl_status);
			metrics_receive_duration(mono_s() - r->started);
		}
		if (r)
			log_rejection(h, c, &r->cfg->cfg, tl_status, method, url);
	}
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct req *r = *con_cls;

	(void)toe;
	/* the next request on this connection gets fresh deadlines */
	track_phase(h, c, PH_HEADERS, true);
	if (!r)
		return;
	if (r->expected)
		intake_release(h->in, r->submitted);
	atomic_fetch_sub(&h->in_flight, 1);
	buf_free(&r->body);
	event_free(&r->ev);
	free(r->item.body);
	config_put(r->cfg);
	free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("http: %s", msg);
}

struct http *http_start(struct store *st, struct workers *w, struct intake *in, int listen_fd, char *err,
			size_t errlen)
{
	struct config_ref *ref = config_current();
	const struct config *cfg = &ref->cfg;
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	char host[256];
	unsigned port = 0;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	unsigned mhd_limit;
	const union MHD_DaemonInfo *di;

	if (!h) {
		config_put(ref);
		return NULL;
	}
	h->st = st;
	h->w = w;
	h->in = in;
	ratelog_init(&h->rejections, "rejected requests");
	pthread_mutex_init(&h->conns_mu, NULL);
	{
		/* Never let accept() hit the descriptor limit: libmicrohttpd's pool
		 * threads busy-wait there. Fit the limits under it instead. */
		struct rlimit rl;
		int64_t reserve = FD_RESERVE_BASE + cfg->workers * (cfg->max_parallel_requests + 2);
		int64_t limit = cfg->max_connections + REFUSAL_SLACK;
		bool short_of_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
				    (int64_t)rl.rlim_cur - reserve < limit;

		if (short_of_fds) {
			/* keep a quarter of what fits for answering refusals */
			limit = (int64_t)rl.rlim_cur - reserve < 2 ? 2 : (int64_t)rl.rlim_cur - reserve;
			h->max_conns = (int)(limit * 3 / 4 > 0 ? limit * 3 / 4 : 1);
		} else {
			h->max_conns = (int)cfg->max_connections;
		}
		mhd_limit = (unsigned)limit;
		if (h->max_conns < cfg->max_connections)
			log_warn("the open-file limit (%llu) allows %d client connections, not max_connections = %lld; "
				 "beyond %d they are refused with 503, beyond %u they wait to be accepted",
				 (unsigned long long)rl.rlim_cur, h->max_conns, (long long)cfg->max_connections,
				 h->max_conns, mhd_limit);
	}
	http_set_timeouts(h, cfg->header_timeout, cfg->read_timeout);
	memset(&ss, 0, sizeof(ss));
	if (listen_fd < 0) {
		struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai = NULL;
		char portstr[8];
		int rc;

		if (config_split_listen(cfg->listen, host, sizeof(host), &port)) {
			snprintf(err, errlen, "listen: '%s' is not HOST:PORT", cfg->listen);
			goto fail;
		}
		snprintf(portstr, sizeof(portstr), "%u", port);
		rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
		if (rc || !ai) {
			snprintf(err, errlen, "listen: cannot resolve '%s': %s", host, gai_strerror(rc));
			goto fail;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ai->ai_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		freeaddrinfo(ai);
	}
	{
		struct MHD_OptionItem opts[] = {
			{ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->http_threads, NULL },
			{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)mhd_limit, NULL },
			{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)cfg->max_connections_per_ip, NULL },
			{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)(cfg->connection_timeout + 0.5), NULL },
			{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->connection_memory_limit, NULL },
			{ MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
			{ listen_fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
			  listen_fd >= 0 ? listen_fd : 0, listen_fd >= 0 ? NULL : &ss },
			{ MHD_OPTION_END, 0, NULL },
		};
		errno = 0;
		h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
					MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	}
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_fd >= 0 ? "the passed socket" : cfg->listen,
			 errno ? strerror(errno) : "libmicrohttpd refused to start");
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : port;
	h->watchdog_started = pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0;
	config_put(ref);
	return h;
fail:
	config_put(ref);
	pthread_mutex_destroy(&h->conns_mu);
	ratelog_destroy(&h->rejections);
	free(h);
	return NULL;
}

unsigned http_port(struct http *h)
{
	return h->port;
}

void http_quiesce(struct http *h)
{
	if (h && h->d) {
		MHD_socket fd = MHD_quiesce_daemon(h->d);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

void http_stop(struct http *h, double wait_s)
{
	if (!h)
		return;
	drain_wait(&h->in_flight, wait_s);
	atomic_store(&h->stopping, true);
	if (h->watchdog_started)
		pthread_join(h->watchdog, NULL);
	/* Before the HTTP threads go: every queued event is committed and its
	 * connection resumed, so none refers to a closed connection (later
	 * submissions are refused with a 503; the intake is freed by its owner
	 * once no request can reach it). */
	intake_stop(h->in);
	MHD_stop_daemon(h->d);
	pthread_mutex_destroy(&h->conns_mu);
	ratelog_destroy(&h->rejections);
	free(h);
}
