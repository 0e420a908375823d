/* Native TLS (GnuTLS, through libmicrohttpd): the certificate and key are
 * loaded here and handed to each handshake by a callback, so a reload
 * (SIGHUP) swaps them without touching the listening socket or any open
 * connection. A pair is checked before it is used: the key must match the
 * certificate, and the certificate must be valid now. */
#include "lqs-hookd/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "lqs-hookd/auth.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/util.h"

/* Certificates in a chain, and the largest PEM file read. */
#define TLS_MAX_CHAIN 16
#define TLS_MAX_PEM (1024 * 1024)
/* A pair that expires within this is reported (days). */
#define TLS_EXPIRY_WARN_DAYS 14
/* A replaced pair is kept this long: handshakes that began with it finish. */
#define TLS_RETIRE_S 300

struct tls_pair {
	gnutls_pcert_st pcert[TLS_MAX_CHAIN];
	unsigned n;
	gnutls_privkey_t key;
	time_t not_after;
	char subject[256];
	struct tls_pair *retired_next;
	time_t retired_at;
};

static pthread_rwlock_t cur_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct tls_pair *cur;
static struct tls_pair *retired;

static void pair_free(struct tls_pair *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		gnutls_pcert_deinit(&p->pcert[i]);
	if (p->key)
		gnutls_privkey_deinit(p->key);
	free(p);
}

/* The public key's DER, to compare the key with the certificate. */
static int pubkey_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
	return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
}

static bool key_matches(struct tls_pair *p)
{
	gnutls_pubkey_t from_key = NULL;
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	bool same = false;

	if (gnutls_pubkey_init(&from_key) == 0 && gnutls_pubkey_import_privkey(from_key, p->key, 0, 0) == 0 &&
	    pubkey_der(from_key, &a) == 0 && pubkey_der(p->pcert[0].pubkey, &b) == 0)
		same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
	gnutls_free(a.data);
	gnutls_free(b.data);
	if (from_key)
		gnutls_pubkey_deinit(from_key);
	return same;
}

int tls_pair_load(const char *cert_path, const char *key_path, struct tls_pair **out, char *err, size_t errlen,
		  char *warn, size_t warnlen)
{
	struct tls_pair *p = calloc(1, sizeof(*p));
	size_t clen = 0, klen = 0;
	char *cpem = file_read_all(cert_path, TLS_MAX_PEM, &clen), *kpem = NULL;
	gnutls_datum_t cd, kd;
	gnutls_x509_crt_t crt = NULL;
	time_t now = time(NULL), nb;
	int rc;

	*out = NULL;
	if (warn && warnlen)
		warn[0] = '\0';
	if (!p) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!cpem) {
		snprintf(err, errlen, "tls_cert %s: cannot read: %s", cert_path, strerror(errno));
		goto fail;
	}
	kpem = file_read_all(key_path, TLS_MAX_PEM, &klen);
	if (!kpem) {
		snprintf(err, errlen, "tls_key %s: cannot read: %s", key_path, strerror(errno));
		goto fail;
	}
	cd = (gnutls_datum_t){ (unsigned char *)cpem, (unsigned)clen };
	kd = (gnutls_datum_t){ (unsigned char *)kpem, (unsigned)klen };
	p->n = TLS_MAX_CHAIN;
	rc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || p->n == 0) {
		p->n = 0;
		snprintf(err, errlen, "tls_cert %s: not a PEM certificate (chain): %s", cert_path, gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&p->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		snprintf(err, errlen, "tls_key %s: not a PEM private key (an encrypted key is not supported): %s",
			 key_path, gnutls_strerror(rc));
		goto fail;
	}
	if (!key_matches(p)) {
		snprintf(err, errlen, "tls_key %s does not match tls_cert %s (the key of another certificate?)", key_path,
			 cert_path);
		goto fail;
	}
	if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_import(crt, &p->pcert[0].cert, GNUTLS_X509_FMT_DER) < 0) {
		snprintf(err, errlen, "tls_cert %s: cannot read the certificate", cert_path);
		goto fail;
	}
	{
		size_t sl = sizeof(p->subject);
		if (gnutls_x509_crt_get_dn(crt, p->subject, &sl) < 0)
			str_copy(p->subject, "?", sizeof(p->subject));
	}
	p->not_after = gnutls_x509_crt_get_expiration_time(crt);
	nb = gnutls_x509_crt_get_activation_time(crt);
	gnutls_x509_crt_deinit(crt);
	crt = NULL;
	if (p->not_after <= now) {
		char t[32];
		iso8601_ms((int64_t)p->not_after * 1000, t);
		snprintf(err, errlen, "tls_cert %s expired at %s (%s)", cert_path, t, p->subject);
		goto fail;
	}
	if (nb > now) {
		char t[32];
		iso8601_ms((int64_t)nb * 1000, t);
		snprintf(err, errlen, "tls_cert %s is not valid before %s (%s)", cert_path, t, p->subject);
		goto fail;
	}
	if (warn && p->not_after - now < TLS_EXPIRY_WARN_DAYS * 86400) {
		char t[32];
		iso8601_ms((int64_t)p->not_after * 1000, t);
		snprintf(warn, warnlen, "tls_cert %s expires in %lld day(s), at %s: renew it (a SIGHUP loads the new one)",
			 cert_path, (long long)((p->not_after - now) / 86400), t);
	}
	secure_zero(kpem, klen);
	free(kpem);
	free(cpem);
	*out = p;
	return 0;
fail:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (kpem)
		secure_zero(kpem, klen);
	free(kpem);
	free(cpem);
	pair_free(p);
	return -1;
}

void tls_pair_free(struct tls_pair *p)
{
	pair_free(p);
}

int64_t tls_pair_expiry(const struct tls_pair *p)
{
	return (int64_t)p->not_after;
}

/* Every handshake: the pair in force now. */
static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
		   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
		   unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	int rc = -1;

	(void)s;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	pthread_rwlock_rdlock(&cur_lock);
	if (cur) {
		*pcert = cur->pcert;
		*pcert_length = cur->n;
		*pkey = cur->key;
		rc = 0;
	}
	pthread_rwlock_unlock(&cur_lock);
	return rc;
}

void *tls_cert_callback(void)
{
	return (void *)cert_cb;
}

void tls_install(struct tls_pair *p)
{
	time_t now = time(NULL);
	struct tls_pair **pp;

	pthread_rwlock_wrlock(&cur_lock);
	if (cur) {
		cur->retired_at = now;
		cur->retired_next = retired;
		retired = cur;
	}
	cur = p;
	/* pairs replaced long ago: no handshake uses them any more */
	for (pp = &retired; *pp;) {
		if (now - (*pp)->retired_at > TLS_RETIRE_S) {
			struct tls_pair *old = *pp;
			*pp = old->retired_next;
			pair_free(old);
		} else {
			pp = &(*pp)->retired_next;
		}
	}
	pthread_rwlock_unlock(&cur_lock);
	metrics_tls_expiry(p ? (int64_t)p->not_after : 0);
}

void tls_clear(void)
{
	pthread_rwlock_wrlock(&cur_lock);
	pair_free(cur);
	cur = NULL;
	while (retired) {
		struct tls_pair *old = retired;
		retired = old->retired_next;
		pair_free(old);
	}
	pthread_rwlock_unlock(&cur_lock);
}

const char *tls_file(const char *configured, const char *name, char *buf, size_t n)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (configured && *configured)
		return configured;
	/* systemd credentials: LoadCredential=lqs-hookd.tls_cert (or tls_cert) */
	for (int prefixed = 1; dir && *dir && prefixed >= 0; prefixed--) {
		if ((size_t)snprintf(buf, n, "%s/%s%s", dir, prefixed ? "lqs-hookd." : "", name) < n &&
		    access(buf, R_OK) == 0)
			return buf;
	}
	return NULL;
}

bool tls_configured(const struct config *cfg)
{
	char b[4096];

	return tls_file(cfg->tls_cert, "tls_cert", b, sizeof(b)) || tls_file(cfg->tls_key, "tls_key", b, sizeof(b));
}

int tls_load_configured(const struct config *cfg, struct tls_pair **out, char *err, size_t errlen, char *warn,
			size_t warnlen)
{
	char cb[4096], kb[4096];
	const char *c = tls_file(cfg->tls_cert, "tls_cert", cb, sizeof(cb));
	const char *k = tls_file(cfg->tls_key, "tls_key", kb, sizeof(kb));

	*out = NULL;
	if (!c || !k) {
		snprintf(err, errlen, "%s is set but not %s: both are needed for TLS", c ? "tls_cert" : "tls_key",
			 c ? "tls_key" : "tls_cert");
		return -1;
	}
	return tls_pair_load(c, k, out, err, errlen, warn, warnlen);
}

void tls_reload(const struct config *cfg, bool serving_tls)
{
	struct tls_pair *p;
	char err[1024], warn[512];

	if (!serving_tls) {
		if (tls_configured(cfg))
			log_warn("tls_cert and tls_key are set now, but the server started without TLS: restart it to serve "
				 "HTTPS");
		return;
	}
	if (tls_load_configured(cfg, &p, err, sizeof(err), warn, sizeof(warn)) != 0) {
		log_error("reload: %s; the certificate in use is kept", err);
		return;
	}
	if (warn[0])
		log_warn("%s", warn);
	log_info("reload: TLS certificate loaded (expires %lld); new handshakes use it, open connections go on",
		 (long long)tls_pair_expiry(p));
	tls_install(p);
}

int tls_pin(const char *cert_path, char *out, size_t n)
{
	size_t len = 0;
	char *pem = file_read_all(cert_path, TLS_MAX_PEM, &len);
	gnutls_pcert_st pc[TLS_MAX_CHAIN];
	unsigned k = TLS_MAX_CHAIN;
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)len }, der = { NULL, 0 };
	unsigned char sum[32];
	char b64[64];
	int rc = -1;

	if (!pem)
		return -1;
	if (gnutls_pcert_list_import_x509_raw(pc, &k, &d, GNUTLS_X509_FMT_PEM, 0) >= 0 && k > 0) {
		if (pubkey_der(pc[0].pubkey, &der) == 0 &&
		    gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, sum) == 0 &&
		    base64_encode(sum, sizeof(sum), b64, sizeof(b64)) > 0 &&
		    (size_t)snprintf(out, n, "sha256//%s", b64) < n)
			rc = 0;
		gnutls_free(der.data);
		for (unsigned i = 0; i < k; i++)
			gnutls_pcert_deinit(&pc[i]);
	}
	free(pem);
	return rc;
}
