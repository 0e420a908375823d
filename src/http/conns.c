/* Connections: each one tracked from accept to close, so that the
 * watchdog can cut those that miss their header or read deadline, and the
 * ones over max_connections get a clean 503. */
#include "lqs-hookd/http.h"
#include "http_int.h"

#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <time.h>

#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* How often deadlines are checked. */
#define WATCHDOG_INTERVAL_MS 200
/* How long a refused client may keep its connection before it is cut. */
#define REFUSED_GRACE_MS 1000

struct conn_track *track_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

void track_phase(struct http *h, struct MHD_Connection *c, enum conn_phase ph, bool restart)
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

/* The first bytes of a plain-HTTP connection, looked at without taking
 * them, as it is accepted (the listening socket defers accepting until
 * bytes arrive): a TLS handshake (an https:// URI against a plain port) or
 * bytes that cannot begin a request would otherwise wait for
 * header_timeout. */
enum first_bytes { FB_HTTP, FB_TLS, FB_OTHER };

static enum first_bytes first_bytes(struct conn_track *t)
{
	unsigned char b[3];
	ssize_t n = recv(t->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);

	if (n <= 0)
		return FB_HTTP;   /* nothing yet (or gone: libmicrohttpd sees it) */
	if (b[0] == 0x16 && (n < 2 || b[1] == 0x03))
		return FB_TLS;
	/* a method's first letter, or the empty lines a request may follow */
	if ((b[0] >= 'A' && b[0] <= 'Z') || b[0] == '\r' || b[0] == '\n')
		return FB_HTTP;
	return FB_OTHER;
}

/* Answer a connection that does not speak HTTP with a 400 and close it
 * (as a refusal: cut shortly if the client does not close first), and say
 * so (a few lines a minute). A TLS client reads the plain answer as
 * "wrong version number", the usual sign of https:// against http. */
static void cut_not_http(struct http *h, struct conn_track *t, bool tls)
{
	static const char tls_answer[] =
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
		"Content-Length: 80\r\n\r\n{\"detail\":\"this port serves plain HTTP, not TLS: use http:// (or set tls_cert)\"}";
	static const char other_answer[] =
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
		"Content-Length: 32\r\n\r\n{\"detail\":\"not an HTTP request\"}";
	char client[64] = "?";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	(void)!send(t->fd, tls ? tls_answer : other_answer, tls ? sizeof(tls_answer) - 1 : sizeof(other_answer) - 1,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(t->fd, SHUT_WR);
	t->refused = true;
	t->phase_start = mono_ms() - atomic_load(&h->header_timeout_ms) + REFUSED_GRACE_MS;
	metrics_connection_cut(tls ? "tls_on_plain_port" : "not_http");
	if (getpeername(t->fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, client, sizeof(client), NULL, 0, NI_NUMERICHOST);
	if (ratelog_allow(&h->not_http, mono_ms(), 60000, 5, 400))
		log_warn("closed a connection from %s that began with %s", client,
			 tls ? "a TLS handshake: is the hook URI https:// while this port serves plain HTTP? Set tls_cert "
			       "and tls_key, or use http://"
			     : "bytes that are not HTTP");
}

void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
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
		bool over = t->refused;
		enum first_bytes fb = over || h->tls ? FB_HTTP : first_bytes(t);
		if (fb != FB_HTTP)
			cut_not_http(h, t, fb == FB_TLS);
		pthread_mutex_unlock(&h->conns_mu);
		if (over)
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

void *watchdog_main(void *arg)
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
