/* SNS signatures and subscription confirmation (see sns.h). */
#include "lqs-hookd/sns.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/util.h"

/* Certificates kept, how long, and the most a fetch may read or take. */
#define SNS_CACHE_SIZE 16
#define SNS_CACHE_TTL_MS (24LL * 3600 * 1000)
#define SNS_MAX_CERT (64 * 1024)
#define SNS_FETCH_TIMEOUT_MS 5000L

static struct {
	pthread_mutex_t mu;
	struct { char *url; EVP_PKEY *key; int64_t at; } e[SNS_CACHE_SIZE];
	int next;
} C = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *str(json_t *env, const char *k)
{
	return json_string_value(json_object_get(env, k));
}

char *sns_string_to_sign(json_t *env)
{
	static const char *const notification[] = { "Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type",
						    NULL };
	static const char *const subscription[] = { "Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
						    "TopicArn", "Type", NULL };
	const char *type = str(env, "Type");
	const char *const *keys = type && strcmp(type, "Notification") == 0 ? notification : subscription;
	struct buf b;

	buf_init(&b, 0);
	for (int i = 0; keys[i]; i++) {
		const char *v = str(env, keys[i]);
		if (!v) {
			if (strcmp(keys[i], "Subject") == 0)
				continue;   /* signed only when present */
			buf_free(&b);
			return NULL;
		}
		buf_printf(&b, "%s\n", keys[i]);
		buf_append(&b, v, strlen(v));
		buf_append(&b, "\n", 1);
	}
	return buf_steal(&b);
}

/* https://HOST[:port]/... with HOST matching the pattern. */
static int url_trusted(const struct config *cfg, const char *url, char *why, size_t whylen, const char *what)
{
	char host[256];
	size_t n;

	if (!url || strncmp(url, "https://", 8) != 0) {
		snprintf(why, whylen, "%s is not an https:// URL", what);
		return -1;
	}
	n = strcspn(url + 8, ":/?#");
	if (n == 0 || n >= sizeof(host)) {
		snprintf(why, whylen, "%s has no host", what);
		return -1;
	}
	memcpy(host, url + 8, n);
	host[n] = '\0';
	if (fnmatch(cfg->sns_cert_host ? cfg->sns_cert_host : "", host, FNM_CASEFOLD) != 0) {
		snprintf(why, whylen, "%s names host %s, not one matching sns_cert_host (%s)", what, host,
			 cfg->sns_cert_host ? cfg->sns_cert_host : "");
		return -1;
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	return buf_append(ud, p, size * n) ? 0 : size * n;
}

/* GET an https URL (the CA from sns_ca_file, or the system's). */
static long https_get(const struct config *cfg, const char *url, struct buf *body, char *why, size_t whylen)
{
	CURL *e = curl_easy_init();
	long status = 0;
	CURLcode cc;

	if (!e) {
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, SNS_FETCH_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	if (cfg->sns_ca_file && *cfg->sns_ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->sns_ca_file);
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK)
		snprintf(why, whylen, "GET %s: %s", url, curl_easy_strerror(cc));
	else
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && (status < 200 || status >= 300))
		snprintf(why, whylen, "GET %s: HTTP %ld", url, status);
	curl_easy_cleanup(e);
	return cc == CURLE_OK ? status : 0;
}

/* The public key of the certificate at url: cached, else fetched. A new
 * reference, or NULL with why. */
static EVP_PKEY *signing_key(const struct config *cfg, const char *url, char *why, size_t whylen)
{
	EVP_PKEY *key = NULL;
	struct buf body;
	int64_t now = now_ms();

	pthread_mutex_lock(&C.mu);
	for (int i = 0; i < SNS_CACHE_SIZE && !key; i++)
		if (C.e[i].url && strcmp(C.e[i].url, url) == 0 && now - C.e[i].at < SNS_CACHE_TTL_MS &&
		    EVP_PKEY_up_ref(C.e[i].key) == 1)
			key = C.e[i].key;
	pthread_mutex_unlock(&C.mu);
	if (key)
		return key;
	buf_init(&body, SNS_MAX_CERT);
	if (https_get(cfg, url, &body, why, whylen) / 100 == 2) {
		BIO *bio = BIO_new_mem_buf(body.data ? body.data : "", (int)body.len);
		X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		key = x ? X509_get_pubkey(x) : NULL;
		if (!key)
			snprintf(why, whylen, "the signing certificate at %s is not a PEM certificate", url);
		X509_free(x);
		BIO_free(bio);
	}
	buf_free(&body);
	if (key) {
		pthread_mutex_lock(&C.mu);
		free(C.e[C.next].url);
		EVP_PKEY_free(C.e[C.next].key);
		C.e[C.next].url = strdup(url);
		C.e[C.next].key = EVP_PKEY_up_ref(key) == 1 ? key : NULL;
		C.e[C.next].at = now;
		C.next = (C.next + 1) % SNS_CACHE_SIZE;
		pthread_mutex_unlock(&C.mu);
	}
	return key;
}

static bool topic_allowed(const struct config *cfg, const char *arn)
{
	const char *p = cfg->sns_topics;

	while (p && *p && arn) {
		size_t n = strcspn(p, ",");
		const char *a = p, *e = p + n;
		while (a < e && (*a == ' ' || *a == '\t'))
			a++;
		while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - a) == strlen(arn) && strncmp(a, arn, strlen(arn)) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

int sns_verify(const struct config *cfg, json_t *env, char *why, size_t whylen)
{
	const char *arn = str(env, "TopicArn"), *ver = str(env, "SignatureVersion"), *sig = str(env, "Signature");
	unsigned char raw[1024];
	char *text;
	long n;
	EVP_PKEY *key;
	EVP_MD_CTX *md;
	int ok = 0;

	if (!topic_allowed(cfg, arn)) {
		snprintf(why, whylen, "SNS topic %s is not in sns_topics", arn ? arn : "(none)");
		return -1;
	}
	if (!ver || (strcmp(ver, "1") != 0 && strcmp(ver, "2") != 0)) {
		snprintf(why, whylen, "SNS SignatureVersion must be 1 or 2");
		return -1;
	}
	if (url_trusted(cfg, str(env, "SigningCertURL"), why, whylen, "SigningCertURL") != 0)
		return -1;
	n = sig ? base64_decode(sig, strlen(sig), raw, sizeof(raw)) : -1;
	text = sns_string_to_sign(env);
	if (n <= 0 || !text) {
		snprintf(why, whylen, "SNS message without a %s", n <= 0 ? "valid Signature" : "field it must sign");
		free(text);
		return -1;
	}
	key = signing_key(cfg, str(env, "SigningCertURL"), why, whylen);
	md = key ? EVP_MD_CTX_new() : NULL;
	if (md && EVP_DigestVerifyInit(md, NULL, strcmp(ver, "1") == 0 ? EVP_sha1() : EVP_sha256(), NULL, key) == 1)
		ok = EVP_DigestVerify(md, raw, (size_t)n, (const unsigned char *)text, strlen(text)) == 1;
	if (key && !ok)
		snprintf(why, whylen, "SNS signature does not verify");
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	free(text);
	return ok ? 0 : -1;
}

int sns_confirm(const struct config *cfg, json_t *env, char *why, size_t whylen)
{
	const char *url = str(env, "SubscribeURL");
	struct buf body;
	long status;

	if (url_trusted(cfg, url, why, whylen, "SubscribeURL") != 0)
		return -1;
	buf_init(&body, SNS_MAX_CERT);
	status = https_get(cfg, url, &body, why, whylen);
	buf_free(&body);
	return status / 100 == 2 ? 0 : -1;
}

void sns_cache_clear(void)
{
	pthread_mutex_lock(&C.mu);
	for (int i = 0; i < SNS_CACHE_SIZE; i++) {
		free(C.e[i].url);
		EVP_PKEY_free(C.e[i].key);
		C.e[i].url = NULL;
		C.e[i].key = NULL;
	}
	pthread_mutex_unlock(&C.mu);
}
