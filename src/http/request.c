/* Checks of a request that need no state: media type, framing, who the
 * client is, administration access. */
#include "http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/util.h"

bool content_type_ok(const char *ct)
{
	return media_type_is(ct, "application/json");
}

bool media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	if (!ct)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

bool client_is_loopback(struct MHD_Connection *c)
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

void client_text(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	str_copy(out, "unknown", n);
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
}

/* Administration endpoints: the admin token when one is configured,
 * otherwise loopback clients only. Returns MHD_YES after answering a refusal,
 * or MHD_NO-as-"go on" through *allowed. */
enum MHD_Result admin_gate(struct MHD_Connection *c, const struct config *cfg, bool *allowed)
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
const char *framing_error(struct MHD_Connection *c)
{
	struct framing f = { 0, 0, false };

	MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
	return framing_check(f.n_cl, f.n_te, f.te_chunked_only);
}

const char *framing_check(int n_content_length, int n_transfer_encoding, bool te_chunked_only)
{
	if (n_content_length > 1)
		return "Bad Request: more than one Content-Length header";
	if (n_content_length && n_transfer_encoding)
		return "Bad Request: both Content-Length and Transfer-Encoding";
	if (n_transfer_encoding > 1 || (n_transfer_encoding && !te_chunked_only))
		return "Bad Request: only Transfer-Encoding: chunked is supported";
	return NULL;
}

enum MHD_Result source_admission(struct http *h, struct MHD_Connection *c, const struct config *cfg, bool *answered)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t n;

	*answered = true;
	if (cl && parse_i64(cl, &n) == 0 && n > cfg->max_body) {
		char msg[128];
		snprintf(msg, sizeof(msg), "Request body larger than max_body (%lld bytes)", (long long)cfg->max_body);
		return reply_detail(c, 413, msg, NULL, NULL);
	}
	/* admission control before reading a byte of body */
	if (store_unfinished(h->st) >= cfg->max_queued) {
		char msg[160];
		snprintf(msg, sizeof(msg), "queue full: %lld unfinished events (max_queued); retry later",
			 (long long)cfg->max_queued);
		return reply_detail(c, 503, msg, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_RETRY_AFTER_S);
	}
	*answered = false;
	return MHD_YES;
}

/* The jobs have their results (durable, duplicates, or refused): the
 * connection may answer. On the syncer's thread. */
static void on_durable(struct intake_ticket *t)
{
	struct req *r = t->ctx;

	r->committed = true;
	MHD_resume_connection(r->conn);   /* r may be answered and freed from here on */
}

enum MHD_Result source_submit(struct http *h, struct MHD_Connection *c, struct req *r, struct store_item *jobs,
			      size_t n)
{
	/* suspend before queueing, so the syncer's resume cannot come first */
	r->conn = c;
	r->submitted = true;
	r->ticket = (struct intake_ticket){ .jobs = jobs, .n = n, .done = on_durable, .ctx = r };
	MHD_suspend_connection(c);
	if (!intake_submit(h->in, &r->ticket)) {
		for (size_t i = 0; i < n; i++)
			jobs[i].result = STORE_ERROR;
		r->committed = true;
		MHD_resume_connection(c);   /* answered (503) at the next call */
	}
	return MHD_YES;
}
