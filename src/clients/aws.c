/* AWS credentials and signed SQS calls (aws.h). */
#include "lqs-hookd/aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/util.h"

#define IMDS_TIMEOUT_MS 2000L
#define IMDS_TOKEN_TTL_S "21600"
/* Instance credentials are taken again this long before they expire. */
#define IMDS_REFRESH_BEFORE_MS (5LL * 60 * 1000)
#define SQS_MAX_ANSWER (4 * 1024 * 1024)

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	return buf_append(ud, p, size * n) ? 0 : size * n;
}

/* A small HTTP call to the metadata service; the body, or NULL. */
static char *imds_call(const char *url, const char *method, const char *header)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
	struct buf body;
	long status = 0;
	char *out = NULL;

	buf_init(&body, 65536);
	if (e) {
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, IMDS_TIMEOUT_MS);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
		if (curl_easy_perform(e) == CURLE_OK && curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
		    status == 200 && body.data)
			out = buf_steal(&body);
	}
	buf_free(&body);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return out;
}

/* IMDSv2: a session token first, then the role's credentials. */
static int from_imds(const struct config *cfg, struct aws_creds *out, char *why, size_t whylen)
{
	const char *base = cfg->aws_imds_endpoint ? cfg->aws_imds_endpoint : "http://169.254.169.254";
	char url[600], hdr[600], *token, *role, *doc;
	json_t *j;
	int rc = -1;

	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	token = imds_call(url, "PUT", "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL_S);
	if (!token) {
		snprintf(why, whylen, "no AWS credentials: none configured, none in the environment, and no instance "
			 "metadata service at %s", base);
		return -1;
	}
	snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %.500s", token);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
	role = imds_call(url, "GET", hdr);
	if (role) {
		role[strcspn(role, "\r\n")] = '\0';
		snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%.200s", base, role);
		doc = imds_call(url, "GET", hdr);
		j = doc ? json_loads(doc, 0, NULL) : NULL;
		if (json_is_string(json_object_get(j, "AccessKeyId")) && json_is_string(json_object_get(j, "SecretAccessKey"))) {
			int64_t exp = 0;
			str_copy(out->key_id, json_string_value(json_object_get(j, "AccessKeyId")), sizeof(out->key_id));
			str_copy(out->secret, json_string_value(json_object_get(j, "SecretAccessKey")), sizeof(out->secret));
			str_copy(out->token, json_string_value(json_object_get(j, "Token")) ?: "", sizeof(out->token));
			if (json_is_string(json_object_get(j, "Expiration")))
				iso8601_parse(json_string_value(json_object_get(j, "Expiration")), &exp);
			out->expires_ms = exp;
			str_copy(out->source, "imds", sizeof(out->source));
			rc = 0;
		} else {
			snprintf(why, whylen, "the instance metadata service gave no credentials for role %.200s", role);
		}
		json_decref(j);
		if (doc)
			secure_zero(doc, strlen(doc));
		free(doc);
		free(role);
	} else {
		snprintf(why, whylen, "the instance has no IAM role (instance metadata at %s)", base);
	}
	secure_zero(token, strlen(token));
	free(token);
	return rc;
}

int aws_creds_get(const struct config *cfg, struct aws_creds *out, char *why, size_t whylen)
{
	const char *id = cfg->aws_access_key_id, *secret = cfg->aws_secret_access_key, *token = cfg->aws_session_token;

	/* still good: nothing to do (instance credentials are renewed early) */
	if (out->key_id[0] && (!out->expires_ms || out->expires_ms - now_ms() > IMDS_REFRESH_BEFORE_MS))
		return 0;
	aws_creds_clear(out);
	if (id && *id && secret && *secret) {
		str_copy(out->source, "configuration", sizeof(out->source));
	} else if (getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
		id = getenv("AWS_ACCESS_KEY_ID");
		secret = getenv("AWS_SECRET_ACCESS_KEY");
		token = getenv("AWS_SESSION_TOKEN");
		str_copy(out->source, "environment", sizeof(out->source));
	} else if (cfg->aws_imds) {
		return from_imds(cfg, out, why, whylen);
	} else {
		snprintf(why, whylen, "no AWS credentials: set access_key_id and secret_access_key, or "
			 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
		return -1;
	}
	str_copy(out->key_id, id, sizeof(out->key_id));
	str_copy(out->secret, secret, sizeof(out->secret));
	str_copy(out->token, token ? token : "", sizeof(out->token));
	return 0;
}

void aws_creds_clear(struct aws_creds *c)
{
	secure_zero(c, sizeof(*c));
}

const char *sqs_fail_name(enum sqs_fail f)
{
	static const char *const names[] = { "ok", "auth", "throttled", "server", "network", "client" };

	return names[f];
}

/* What an error answer means: its __type (or x-amzn-query-error). */
static enum sqs_fail classify(long status, json_t *doc)
{
	const char *type = json_string_value(json_object_get(doc, "__type"));
	static const char *const auth[] = { "InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied",
					    "ExpiredToken", "UnrecognizedClient", "InvalidSecurity",
					    "MissingAuthenticationToken", NULL };

	for (int i = 0; type && auth[i]; i++)
		if (strstr(type, auth[i]))
			return SQS_AUTH;
	if (status == 401 || status == 403)
		return SQS_AUTH;
	if (status == 429 || (type && (strstr(type, "Throttl") || strstr(type, "RequestThrottled"))))
		return SQS_THROTTLED;
	return status >= 500 ? SQS_SERVER : SQS_CLIENT;
}

/* The endpoint to POST to: the override, or the queue URL's origin. */
static void endpoint_of(const struct sqs_cfg *q, char *out, size_t n)
{
	const char *u = q->endpoint[0] ? q->endpoint : q->queue_url;
	const char *host = strstr(u, "://");
	size_t len = host ? (size_t)(host + 3 - u) + strcspn(host + 3, "/") : strlen(u);

	snprintf(out, n, "%.*s/", (int)len, u);
}

void sqs_call(const struct sqs_cfg *q, const struct aws_creds *cr, const char *target, json_t *body, long timeout_ms,
	      struct sqs_result *out)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf ans;
	char url[600], line[2200], sig[96], *text;
	CURLcode cc;

	memset(out, 0, sizeof(*out));
	json_object_set_new(body, "QueueUrl", json_string(q->queue_url));
	text = json_dumps(body, JSON_COMPACT);
	buf_init(&ans, SQS_MAX_ANSWER);
	endpoint_of(q, url, sizeof(url));
	snprintf(sig, sizeof(sig), "aws:amz:%s:sqs", q->region);
	h = curl_slist_append(h, "Content-Type: application/x-amz-json-1.0");
	snprintf(line, sizeof(line), "X-Amz-Target: AmazonSQS.%s", target);
	h = curl_slist_append(h, line);
	if (cr->token[0]) {
		snprintf(line, sizeof(line), "X-Amz-Security-Token: %s", cr->token);
		h = curl_slist_append(h, line);
		secure_zero(line, sizeof(line));
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, text ? text : "{}");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sig);
	curl_easy_setopt(e, CURLOPT_USERNAME, cr->key_id);
	curl_easy_setopt(e, CURLOPT_PASSWORD, cr->secret);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &ans);
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		out->fail = SQS_NETWORK;
		snprintf(out->error, sizeof(out->error), "SQS %s: %s", target, curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
		out->doc = json_loadb(ans.data ? ans.data : "{}", ans.len ? ans.len : 2, 0, NULL);
		if (out->status < 200 || out->status >= 300) {
			const char *type = json_string_value(json_object_get(out->doc, "__type"));
			const char *msg = json_string_value(json_object_get(out->doc, "message"));
			char raw[200] = "";
			/* an answer that is not JSON (a proxy, an XML error): its start */
			if (!out->doc && ans.data)
				snprintf(raw, sizeof(raw), "%.180s", ans.data);
			for (char *c = raw; *c; c++)
				if (*c == '\n' || *c == '\r')
					*c = ' ';
			out->fail = classify(out->status, out->doc);
			snprintf(out->error, sizeof(out->error), "SQS %s: HTTP %ld%s%s%s%.300s%s", target, out->status,
				 type || raw[0] ? " " : "", type ? type : raw, msg ? ": " : "", msg ? msg : "", "");
		}
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	buf_free(&ans);
	free(text);
	json_decref(body);
}

void sqs_result_clear(struct sqs_result *r)
{
	json_decref(r->doc);
	r->doc = NULL;
}
