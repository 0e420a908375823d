/* The HTTP front's server: libmicrohttpd started and stopped, each
 * request taken through the endpoint table (access, body, handlers), every
 * answer counted and, when it refuses, logged. Never waits on LogQS. */
#include "lqs-hookd/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_int.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/tls.h"
#include "lqs-hookd/util.h"

/* Connections libmicrohttpd admits beyond max_connections, so that the
 * excess can be refused with a 503 instead of waiting unanswered. */
#define REFUSAL_SLACK 16
/* Descriptors kept for everything but client connections: the store, the
 * event loops, logs; each worker adds its LogQS connections on top. */
#define FD_RESERVE_BASE 32

/* First callback: the endpoint, the framing, who may call it, and what
 * its headers decide. */
static enum MHD_Result begin(struct http *h, struct MHD_Connection *c, struct req *r, const char *url,
			     const char *method)
{
	const char *allow = "GET", *ferr;
	unsigned status = 404;
	bool answered, allowed;
	enum MHD_Result ret;

	r->ep = endpoint_find(url, method, &(struct http_paths){ r->cfg->cfg.events_path, r->cfg->cfg.objects_path },
			      r->id, sizeof(r->id), &status, &allow);
	ferr = framing_error(c);
	if (ferr)
		return reply_detail(c, 400, ferr, MHD_HTTP_HEADER_CONNECTION, "close");
	if (!r->ep && status == 405)
		return reply_detail(c, 405, "Method Not Allowed", MHD_HTTP_HEADER_ALLOW, allow);
	if (!r->ep)
		return reply_detail(c, 404, "Not Found", NULL, NULL);
	if (r->ep->access == ACCESS_ADMIN) {
		ret = admin_gate(c, &r->cfg->cfg, &allowed);
		if (!allowed)
			return ret;
	}
	if (r->ep->body) {
		/* the committer waits for this one while it may come */
		intake_expect(h->in);
		r->expected = true;
	}
	if (r->ep->headers) {
		ret = r->ep->headers(h, c, r, &answered);
		if (answered)
			return ret;
	}
	/* the rest once the request is in (a body an endpoint does not read
	 * is dropped) */
	return MHD_YES;
}

/* A piece of the body. */
static enum MHD_Result upload(struct req *r, const char *data, size_t *size)
{
	if (!r->ep || !r->ep->body) {
		*size = 0;   /* ignored body */
		return MHD_YES;
	}
	if (!r->overflow && buf_append(&r->body, data, *size) != 0)
		r->overflow = true;   /* the buffer freed itself */
	if (r->overflow) {
		r->discarded += *size;
		/* libmicrohttpd cannot answer mid-upload: read and drop up to
		 * max_discard to send a 413, then give up on the client. */
		if (r->discarded > (size_t)r->cfg->cfg.max_discard)
			return MHD_NO;
	}
	*size = 0;
	return MHD_YES;
}

static enum MHD_Result dispatch(struct http *h, struct MHD_Connection *c, const char *url, const char *method,
				const char *data, size_t *size, void **con_cls)
{
	struct req *r = *con_cls;

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
		return begin(h, c, r, url, method);
	}
	if (*size)
		return upload(r, data, size);
	return r->ep ? r->ep->complete(h, c, r) : MHD_NO;
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
			 status, reply_reason()[0] ? reply_reason() : "(no reason given)");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct http *h = cls;
	enum MHD_Result ret;
	struct req *r;
	unsigned status;

	(void)version;
	reply_reset();
	ret = dispatch(h, c, url, method, data, size, con_cls);
	r = *con_cls;
	status = reply_status();
	if (status) {
		track_phase(h, c, PH_ANSWER, false);
		metrics_http_request(r && r->ep ? r->ep->metric : "other", status);
		if (r && r->ep && r->ep->answered)
			r->ep->answered(r, status);
		if (r)
			log_rejection(h, c, &r->cfg->cfg, status, method, url);
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
	json_decref(r->sweep.report);
	object_events_free(r);
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
	/* a client leaving (a stream follower going away, an aborted upload)
	 * or failing its TLS handshake is everyday life, not a warning */
	static const char *const clients[] = { "Failed to send the chunked response body",
					       "Connection was closed by remote side",
					       "Connection socket is closed when reading request",
					       "Error: received handshake message out of context",
					       "Error: An unexpected TLS packet was received" };
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		if (strstr(msg, clients[i])) {
			log_debug("http: %s", msg);
			return;
		}
	log_warn("http: %s", msg);
}

/* Never let accept() hit the descriptor limit: libmicrohttpd's pool
 * threads busy-wait there. Fit the limits under it instead: h->max_conns
 * are served, the rest (up to the returned limit) refused with a 503. */
static unsigned fit_connection_limits(struct http *h, const struct config *cfg)
{
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
	if (h->max_conns < cfg->max_connections)
		log_warn("the open-file limit (%llu) allows %d client connections, not max_connections = %lld; "
			 "beyond %d they are refused with 503, beyond %u they wait to be accepted",
			 (unsigned long long)rl.rlim_cur, h->max_conns, (long long)cfg->max_connections, h->max_conns,
			 (unsigned)limit);
	return (unsigned)limit;
}

/* The listen address as a socket address; *flags gets MHD_USE_IPv6 for
 * one. 0, or -1 with err. */
static int resolve_listen(const char *listen, struct sockaddr_storage *ss, unsigned *port, unsigned *flags,
			  char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	char host[256], portstr[8];
	int rc;

	if (config_split_listen(listen, host, sizeof(host), port)) {
		snprintf(err, errlen, "listen: '%s' is not HOST:PORT", listen);
		return -1;
	}
	snprintf(portstr, sizeof(portstr), "%u", *port);
	rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
	if (rc || !ai) {
		snprintf(err, errlen, "listen: cannot resolve '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	if (ai->ai_family == AF_INET6)
		*flags |= MHD_USE_IPv6;
	freeaddrinfo(ai);
	return 0;
}

struct http *http_start(struct store *st, struct workers *w, struct intake *in, struct sweeper *sw, int listen_fd,
			char *err, size_t errlen)
{
	struct config_ref *ref = config_current();
	const struct config *cfg = &ref->cfg;
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	unsigned port = 0, mhd_limit;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	const union MHD_DaemonInfo *di;

	if (!h) {
		config_put(ref);
		return NULL;
	}
	h->st = st;
	h->w = w;
	h->in = in;
	h->sw = sw;
	ratelog_init(&h->rejections, "rejected requests");
	ratelog_init(&h->not_http, "connections that did not speak HTTP");
	pthread_mutex_init(&h->conns_mu, NULL);
	mhd_limit = fit_connection_limits(h, cfg);
	http_set_timeouts(h, cfg->header_timeout, cfg->read_timeout);
	memset(&ss, 0, sizeof(ss));
	if (listen_fd < 0 && resolve_listen(cfg->listen, &ss, &port, &flags, err, errlen))
		goto fail;
	if (tls_configured(cfg)) {
		struct tls_pair *p;
		char warn[512];
		if (tls_load_configured(cfg, &p, err, errlen, warn, sizeof(warn)) != 0)
			goto fail;
		if (warn[0])
			log_warn("%s", warn);
		tls_install(p);
		h->tls = true;
		flags |= MHD_USE_TLS;
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
			/* TLS: the pair comes from a callback, so a reload can swap it */
			{ MHD_OPTION_END, 0, NULL },
			{ MHD_OPTION_END, 0, NULL },
			{ MHD_OPTION_END, 0, NULL },
		};
		if (h->tls) {
			size_t k = sizeof(opts) / sizeof(opts[0]) - 3;
			opts[k] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0, tls_cert_callback() };
			opts[k + 1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, cfg->tls_priorities };
		}
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
	if (!h->tls) {
		/* accepted once bytes arrive, so the first ones can be looked at
		 * before libmicrohttpd reads them (conns.c); a silent client is
		 * accepted after header_timeout anyway */
		const union MHD_DaemonInfo *lf = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
		int defer = (int)(cfg->header_timeout + 0.5);
		if (lf)
			setsockopt(lf->listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : port;
	h->watchdog_started = pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0;
	h->hub = stream_hub_start(st);
	if (!h->hub)
		log_warn("the status stream could not start: GET %s/stream answers 503", cfg->events_path);
	config_put(ref);
	return h;
fail:
	config_put(ref);
	pthread_mutex_destroy(&h->conns_mu);
	ratelog_destroy(&h->rejections);
	ratelog_destroy(&h->not_http);
	free(h);
	return NULL;
}

unsigned http_port(struct http *h)
{
	return h->port;
}

void http_tls_reload(struct http *h)
{
	struct config_ref *ref = config_current();

	tls_reload(&ref->cfg, h->tls);
	config_put(ref);
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
	/* streams never end on their own: cut them first (their clients
	 * reconnect, to another daemon if there is one) */
	stream_hub_close_all(h->hub);
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
	stream_hub_stop(h->hub);
	if (h->tls)
		tls_clear();
	pthread_mutex_destroy(&h->conns_mu);
	ratelog_destroy(&h->rejections);
	ratelog_destroy(&h->not_http);
	free(h);
}
