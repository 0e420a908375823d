/* Configuration: one table of settings serving the INI file, the environment,
 * the command line, --print-config and the documentation. */
#ifndef LQS_CONFIG_H
#define LQS_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define CONFIG_MAX_SECRETS 8
#define CONFIG_MAX_ROUTES 32
#define CONFIG_MAX_SWEEPS 16
#define CONFIG_MAX_WATCHES 64
#define WATCH_MAX_PATTERNS 16
#define CONFIG_MAX_SQS 8
/* The built-in sweep (off until enabled). */
#define SWEEP_BUILTIN "digestion-finalizing"

/* Secrets accepted at once (rotation: the old and the new). */
struct secret_list {
	char *v[CONFIG_MAX_SECRETS];
	int n;
};

struct route {
	char name[64];
	char process_type[32];
	char state[32];
	char handler[64];
	int line;              /* where the file began it (0: built in) */
	int handler_line;      /* where the file named the handler (0: built in) */
	json_t *settings;      /* the handler's own keys (strings; owned), or NULL */
};

/* [sweep NAME]: a scheduled look at LogQS for resources left in a state
 * (a hook delivery that never came). */
struct sweep_cfg {
	char name[64];         /* letters, digits, '-', '_', '.' */
	bool enabled;
	double every;          /* seconds between runs */
	char process_type[32];
	char state[32];
	double min_age;        /* seconds in that state before it counts */
	char handler[64];      /* "" : the route of (process_type, state) */
	int64_t max_per_run;
	char datastore[37];    /* "" : the configured datastore_id */
	int line;              /* where the file began it (0: built in) */
	int handler_line;
};

/* [watch NAME]: which object events form batches, and what runs when a
 * batch closes. */
struct watch_cfg {
	char name[64];
	char bucket[64];
	char *prefixes[WATCH_MAX_PATTERNS];   /* any of them ("" none: every key) */
	int n_prefixes;
	char *suffixes[WATCH_MAX_PATTERNS];
	int n_suffixes;
	char *ignore[WATCH_MAX_PATTERNS];     /* globs (fnmatch, '*' crosses '/') */
	int n_ignore;
	bool on_created, on_removed;          /* events = created, removed */
	int64_t prefix_depth;                 /* folders that make a batch's path */
	int64_t count;                        /* close at this many objects (0: never) */
	double quiet;                         /* close after so long without one (0: never) */
	double max_age;                       /* close so long after the first (0: never) */
	char marker[128];                     /* a key ending /marker closes at once ("" : none) */
	char trigger[64];                     /* handler of the closed batch ("" : none) */
	json_t *settings;                     /* the trigger's own keys (strings; owned) */
	int line, trigger_line;
};

/* [sqs NAME]: a queue of S3 object events to pull. */
struct sqs_cfg {
	char name[64];
	char queue_url[512];
	char region[32];
	char watch[64];            /* "" : route by the watches, as POST /objects */
	int64_t pollers;
	int64_t wait;              /* long-poll seconds, 0-20 */
	int64_t max_messages;      /* 1-10 */
	int64_t visibility_timeout;   /* seconds; 0: the queue's own */
	char endpoint[512];        /* "" : the queue URL's scheme and host */
	int line;
};

struct config {
	/* [http] */
	char *listen;
	char *events_path;
	int64_t max_body;
	double connection_timeout;
	double header_timeout;
	double read_timeout;
	int64_t max_connections;
	int64_t max_connections_per_ip;
	int64_t connection_memory_limit;
	int64_t http_threads;
	int64_t max_discard;
	int64_t stream_max_subscribers;
	char *tls_cert;
	char *tls_key;
	char *tls_priorities;
	int64_t stream_buffer;
	double stream_heartbeat;
	/* [auth] */
	char *auth;                 /* "secret" or "none" */
	struct secret_list secrets;
	char *admin_token;
	/* [store] */
	char *store;
	char *store_password;
	int64_t store_connections;
	int64_t max_queued;
	double dedupe_window;
	int64_t max_store_size;
	char *archive_dir;
	double archive_interval;
	bool archive_gzip;
	double retention;
	double failed_retention;
	/* [worker] */
	int64_t workers;
	int64_t worker_nice;
	int64_t max_attempts;
	double retry_base;
	double retry_max_delay;
	double drain_timeout;
	double lease;
	char *on_failure;           /* "patch" or "leave" */
	/* [lqs] */
	char *api_url;
	char *api_endpoint_prefix;
	char *datastore_id;
	char *api_key_id;
	char *api_key_secret;
	int64_t retry_count;
	double retry_delay;
	bool retry_aggressive;
	double request_timeout;
	char *additional_headers;
	int64_t max_parallel_requests;
	int64_t page_limit;
	int64_t max_response;
	bool readyz_requires_lqs;
	double lqs_check_interval;
	/* [objects] */
	char *objects_path;
	struct secret_list objects_secrets;
	char *objects_basic_user;
	char *objects_basic_password;
	int64_t max_records;
	char *sns_topics;
	char *sns_cert_host;
	char *sns_ca_file;
	/* [log] */
	char *log_level;
	char *log_format;
	int64_t max_rejection_logs;
	double rejection_log_interval;
	/* [route NAME] */
	struct route routes[CONFIG_MAX_ROUTES];
	int n_routes;
	/* [sweep NAME] (the built-in one always present) */
	struct sweep_cfg sweeps[CONFIG_MAX_SWEEPS];
	int n_sweeps;
	/* [aws] */
	char *aws_access_key_id;
	char *aws_secret_access_key;
	char *aws_session_token;
	bool aws_imds;
	char *aws_imds_endpoint;
	/* [sqs NAME] */
	struct sqs_cfg sqs[CONFIG_MAX_SQS];
	int n_sqs;
	/* [watch NAME] (allocated) */
	struct watch_cfg *watches;
	int n_watches;
	/* where the file came from, for messages */
	char *path;
	/* each setting's text as written (or its default), by table index:
	 * --print-config shows durations and sizes as people wrote them */
	char **text;
	/* things that are valid but probably not meant ("file:line: ..."
	 * lines, NULL when none): printed by --check-config, logged at start */
	char *warnings;
};

/* Secrets an operator command needs (bits of config_overrides.needs). */
#define CONFIG_NEEDS_ADMIN_TOKEN 1u
#define CONFIG_NEEDS_LQS_KEY 2u
#define CONFIG_NEEDS_AWS 4u

struct config_overrides {
	const char *listen;
	const char *store;
	/* loading for an operator command: no hook secret needed, and a
	 * secret file it does not need (see needs) is not read at all */
	bool client;
	unsigned needs;
};

/* The configuration file used when none is named: the packaged one, when
 * it exists. */
const char *config_default_path(void);

/* Load defaults, then the file (NULL: none), then the environment, then the
 * overrides. On error returns -1 and writes "file:line: message" lines to err. */
int config_load(struct config *cfg, const char *path, const struct config_overrides *ov,
		char *err, size_t errlen);
/* The same from a buffer holding the file's text (name is used in messages). */
int config_load_buffer(struct config *cfg, const char *name, const char *text, size_t len,
		       const struct config_overrides *ov, char *errout, size_t errlen);
void config_free(struct config *cfg);
/* INI text of the effective configuration; secrets are never printed. */
void config_print(const struct config *cfg, FILE *out);
/* Markdown table of every setting (for the README). */
void config_print_reference(FILE *out);
/* The watch of that name, or NULL. */
const struct watch_cfg *config_watch(const struct config *cfg, const char *name);
/* The sweep of that name, or NULL. */
const struct sweep_cfg *config_sweep(const struct config *cfg, const char *name);
/* Split "host:port" ("[v6]:port" too). Returns 0 or -1. */
int config_split_listen(const char *listen, char *host, size_t hostlen, unsigned *port);



/* The running configuration, shared by threads and swapped on reload.
 * config_current() returns a reference the caller must config_put(). */
struct config_ref {
	struct config cfg;
	int refs;
	unsigned generation;
};
/* Takes ownership of *cfg's contents (cfg is zeroed). */
void config_install(struct config *cfg);
struct config_ref *config_current(void);
void config_put(struct config_ref *r);
/* Drop the installed configuration (at exit). */
void config_uninstall(void);
/* A duration as the configuration writes it ("30s", "10m", "1.5h", "250ms",
 * a bare number of seconds); 0 on success. */
int config_parse_duration(const char *s, double *out);

#endif
