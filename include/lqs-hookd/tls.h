/* Native TLS: a certificate and key pair, checked, and swapped in place on
 * reload (src/http/tls.c). */
#ifndef LQS_TLS_H
#define LQS_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct tls_pair;

/* Load and check a pair: the key matches the certificate (the first of
 * the chain), which is valid now. 0, or -1 with err. warn (may be NULL)
 * gets a note when the certificate expires within 14 days. */
int tls_pair_load(const char *cert_path, const char *key_path, struct tls_pair **out, char *err, size_t errlen,
		  char *warn, size_t warnlen);
void tls_pair_free(struct tls_pair *p);
/* When the certificate expires (seconds since the epoch). */
int64_t tls_pair_expiry(const struct tls_pair *p);
/* The pair handshakes get from now on (takes p); the one it replaces is
 * freed once no handshake can still be using it. */
void tls_install(struct tls_pair *p);
/* Free every pair (after the server is stopped). */
void tls_clear(void);
/* The gnutls_certificate_retrieve_function2 to give libmicrohttpd. */
void *tls_cert_callback(void);
/* The file of tls_cert or tls_key: as configured, else a systemd
 * credential (lqs-hookd.NAME or NAME); NULL when neither. */
const char *tls_file(const char *configured, const char *name, char *buf, size_t n);

/* Whether the configuration asks for TLS (tls_cert or tls_key, or their
 * credentials). */
bool tls_configured(const struct config *cfg);
/* tls_pair_load with the configured (or credential) files; both needed. */
int tls_load_configured(const struct config *cfg, struct tls_pair **out, char *err, size_t errlen, char *warn,
			size_t warnlen);
/* The curl pin (CURLOPT_PINNEDPUBLICKEY, "sha256//...") of the public key
 * of the certificate in cert_path; 0, or -1 when it cannot be read. */
int tls_pin(const char *cert_path, char *out, size_t n);
/* SIGHUP: load the configured pair and install it, or keep the one in use
 * (logged). serving_tls: the server was started with TLS. */
void tls_reload(const struct config *cfg, bool serving_tls);

#endif
