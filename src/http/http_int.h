/* Inside the HTTP front: what its files share. Not for other layers. */
#ifndef LQS_HTTP_INT_H
#define LQS_HTTP_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/event.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/objects.h"
#include "lqs-hookd/ratelog.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/sweep.h"

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
	/* GET {events}/stream's subscribers and their feed; may be NULL */
	struct stream_hub *hub;
	/* runs sweeps (GET /sweeps, POST /sweeps/NAME/run); may be NULL */
	struct sweeper *sw;
	atomic_bool stopping;
	bool tls;              /* serving HTTPS (tls_cert, tls_key) */
	atomic_llong header_timeout_ms, read_timeout_ms;
	/* rejected requests: logged, but no more than max_rejection_logs
	 * lines per rejection_log_interval */
	struct ratelog rejections;
	/* connections closed for not speaking HTTP (a TLS handshake on the
	 * plain port): a few lines a minute */
	struct ratelog not_http;
};

struct req;

/* One row of the endpoint table (endpoints.c). */
enum endpoint_access {
	ACCESS_OPEN,    /* anyone (health checks) */
	ACCESS_HOOK,    /* the endpoint checks its own secret (before the body) */
	ACCESS_ADMIN,   /* admin_token, or loopback clients when none is set */
};

struct endpoint {
	const char *pattern;   /* "/healthz", "{events}", "{events}/{id}/history" */
	const char *method;    /* "GET" (HEAD too) or "POST" */
	enum endpoint_access access;
	bool body;             /* reads a body, up to max_body; others drop theirs */
	const char *metric;    /* the route label of the request metrics */
	/* First callback, headers only: may answer (*answered) before the
	 * body is read. NULL: nothing to check. */
	enum MHD_Result (*headers)(struct http *h, struct MHD_Connection *c, struct req *r, bool *answered);
	/* The whole request is in. */
	enum MHD_Result (*complete)(struct http *h, struct MHD_Connection *c, struct req *r);
	/* An answer was queued (metrics of the endpoint's own). NULL: none. */
	void (*answered)(struct req *r, unsigned status);
};

/* Per-request state, created on the first callback and freed only in the
 * completion callback, so an aborted upload leaks nothing. */
struct req {
	const struct endpoint *ep;   /* NULL: no such path, or not that method */
	char id[64];
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
	/* POST /objects once parsed: its records, one job each */
	struct objects_msg objs;
	struct store_item *ojobs;
	struct store_object *oobjs;
	char **opaths;
	/* POST /sweeps/NAME/run: asked, then answered by the sweeper */
	struct sweep_request sweep;
	bool sweep_asked, sweep_done;
	double started;          /* mono_s() at the first callback */
};

/* The configured paths the endpoint patterns name: {events}, {objects}. */
struct http_paths {
	const char *events;
	const char *objects;
};

/* endpoints.c: the endpoint for a path and method; NULL with *status 404
 * (no such path) or 405 (*allow: the methods the path takes). id receives
 * the {id} segment. */
const struct endpoint *endpoint_find(const char *url, const char *method, const struct http_paths *paths, char *id,
				     size_t idlen, unsigned *status, const char **allow);
/* Whether url matches pattern ("{events}" is events_path, "{objects}"
 * objects_path, "{id}" one
 * segment, copied to id; one too long for id still matches, cut). */
bool http_path_match(const char *pattern, const char *url, const struct http_paths *paths, char *id, size_t idlen);

/* reply.c: every answer leaves through these. The status and a reason
 * (never a body or a secret) are kept for metrics and the log. */
enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text, const char *h1,
			   const char *v1);
/* Takes ownership of body. */
enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body, const char *h1,
			   const char *v1);
enum MHD_Result reply_detail(struct MHD_Connection *c, unsigned status, const char *detail, const char *h1,
			     const char *v1);
void reply_reset(void);
unsigned reply_status(void);
const char *reply_reason(void);
void reply_set_reason(const char *reason);
/* For an answer queued without reply_* (a stream). */
void reply_set_status(unsigned status);

/* request.c: checks of a request that need no state. */
bool content_type_ok(const char *ct);
/* What the headers of a source's POST decide after its credentials and
 * media type: a declared body over max_body (413), a full queue (503). */
enum MHD_Result source_admission(struct http *h, struct MHD_Connection *c, const struct config *cfg, bool *answered);
/* Hand a request's jobs to the intake and suspend the connection until
 * every one has its result (r->committed); when the intake is stopping,
 * every job is refused and the connection resumed at once. */
enum MHD_Result source_submit(struct http *h, struct MHD_Connection *c, struct req *r, struct store_item *jobs,
			      size_t n);
/* Whether a Content-Type is that media type (parameters allowed). */
bool media_type_is(const char *ct, const char *type);
/* NULL when the message framing is sound, else the 400 message:
 * ambiguous framing is how requests are smuggled past proxies (RFC 9112,
 * section 6.3). framing_check decides from the header counts. */
const char *framing_error(struct MHD_Connection *c);
const char *framing_check(int n_content_length, int n_transfer_encoding, bool te_chunked_only);
bool client_is_loopback(struct MHD_Connection *c);
void client_text(struct MHD_Connection *c, char *out, size_t n);
/* Administration access; *allowed, or the refusal already answered. */
enum MHD_Result admin_gate(struct MHD_Connection *c, const struct config *cfg, bool *allowed);

/* stream.c: the change feed's reader and its subscribers. close_all cuts
 * every subscriber, refuses new ones and ends the feed's thread; stop
 * frees what is left (after libmicrohttpd is stopped). */
struct stream_hub;
struct stream_hub *stream_hub_start(struct store *st);
void stream_hub_close_all(struct stream_hub *hub);
void stream_hub_stop(struct stream_hub *hub);

/* conns.c: connection tracking and deadlines. */
struct conn_track *track_of(struct MHD_Connection *c);
void track_phase(struct http *h, struct MHD_Connection *c, enum conn_phase ph, bool restart);
void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
		   enum MHD_ConnectionNotificationCode toe);
void *watchdog_main(void *arg);

/* The endpoints' own files: sources/hook_events.c, api/events_api.c,
 * api/health.c, api/sweeps_api.c. */
enum MHD_Result hook_events_headers(struct http *h, struct MHD_Connection *c, struct req *r, bool *answered);
enum MHD_Result hook_events_receive(struct http *h, struct MHD_Connection *c, struct req *r);
void hook_events_answered(struct req *r, unsigned status);
enum MHD_Result object_events_headers(struct http *h, struct MHD_Connection *c, struct req *r, bool *answered);
enum MHD_Result object_events_receive(struct http *h, struct MHD_Connection *c, struct req *r);
void object_events_answered(struct req *r, unsigned status);
void object_events_free(struct req *r);
enum MHD_Result api_batches_list(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_batch_get(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_events_list(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_event_get(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_event_history(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_event_replay(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_events_replay_many(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_healthz(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_readyz(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_metrics(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_events_stream(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_sweeps_list(struct http *h, struct MHD_Connection *c, struct req *r);
enum MHD_Result api_sweep_run(struct http *h, struct MHD_Connection *c, struct req *r);

#endif
