/* lqs-hookd: receive LogQS workflow hook events, store them durably and run
 * compiled-in handlers against the LogQS REST API.
 *
 * Threads, what each owns, and the locks it takes (see also README, "How it
 * works"):
 *   main        start, stop, reload (SIGHUP), pruning, sd_notify; owns the
 *               configuration's installation (config lock), waits on a
 *               signalfd until a signal or the next periodic task.
 *   MHD-worker  (http_threads) HTTP requests: validate, hand to intake, answer;
 *               conns_mu (connection table), store lock for reads.
 *   http watchdog  header/read deadlines; conns_mu.
 *   lqs-commit  intake: writes batches of received events; intake mu, store lock.
 *   lqs-sync    intake: syncs them, runs the tickets (the answers); intake mu.
 *   lqs-worker  (workers) claim, run a handler, record the outcome; pool mu,
 *               store lock (shared commits of outcomes: store fq_mu), the
 *               per-log lock while writing a log's context.
 *   lqs-scan    a second reader of a large digestion's parts; its queue's mu.
 *   lqs-lease   renews this daemon's leases, recovers expired ones; pool mu,
 *               store lock.
 *   lqs-check   the LogQS settings check; its own mu.
 *   lqs-batch   closes batches of objects whose quiet or max_age time has
 *               come (with their trigger events); the store lock.
 *   lqs-sqs     (pollers per [sqs]) receive from SQS, store through the
 *               intake, delete what is durable; their own mu.
 *   lqs-sweep   runs the sweeps when due and when asked (POST /sweeps/NAME/run):
 *               its own mu, the store's advisory lock "sweep:NAME", and
 *               the intake, like any source.
 *   lqs-stream  reads the store's change feed while anyone follows
 *               GET /events/stream and fills each subscriber's buffer; the hub
 *               mu (MHD-workers take it to send), the store lock for reads.
 *   lqs-archive appends finished events to archive_dir, syncs, marks them
 *               archived; the store lock. TLS pairs swap under their rwlock
 *               (main writes on reload, each handshake reads).
 *   lqs-pgnotify (PostgreSQL store) sends a NOTIFY after commits, hears
 *               every daemon's and wakes lqs-stream; the store's wake_mu,
 *               then the hub mu.
 * Signals are blocked in every thread and read by main from a signalfd; once
 * stopping, main takes a second SIGTERM/SIGINT as "exit now". */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#ifdef LQS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "lqs-hookd/archive.h"
#include "lqs-hookd/tls.h"
#include "lqs-hookd/batcher.h"
#include "lqs-hookd/cli.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/gauges.h"
#include "lqs-hookd/http.h"
#include "lqs-hookd/intake.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/router.h"
#include "lqs-hookd/sns.h"
#include "lqs-hookd/sqs.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/sweep.h"
#include "lqs-hookd/util.h"
#include "lqs-hookd/worker.h"

/* How often finished events are pruned, and STATUS= refreshed. */
#define PRUNE_INTERVAL_MS (60LL * 60 * 1000)
#define STATUS_INTERVAL_MS 5000LL
/* How long shutdown waits for HTTP requests in flight. */
#define HTTP_DRAIN_S 5.0

/* Once stopping, a second stop signal exits at once: every acknowledged
 * event is already committed, so nothing is lost. */
static void on_second_stop(int sig)
{
	(void)sig;
	_exit(1);
}

/* SIGTERM, SIGINT and SIGHUP blocked in this thread and every thread
 * started after it; read from the returned signalfd. SIGPIPE ignored. */
static int signals_to_fd(void)
{
	sigset_t set;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/* After the first stop signal: the main thread alone takes the next one. */
static void second_stop_exits(int sfd)
{
	sigset_t set;
	struct sigaction sa;

	close(sfd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_second_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lqs-hookd [--config FILE] [--listen HOST:PORT] [--store PATH]\n"
		"                 [--check-config] [--print-config] [--version] [--help]\n"
		"       lqs-hookd [--config FILE] COMMAND [options]   (see lqs-hookd(8))\n"
		"       lqs-hookd status <event_id> [--history] [--format table|json]\n"
		"       lqs-hookd list [--state STATE] [--handler NAME] [--limit N] [--format table|json]\n"
		"       lqs-hookd replay <event_id>\n"
		"       lqs-hookd replay --state failed|completed [--since T] [--handler NAME] [--dry-run]\n"
		"       lqs-hookd check-lqs\n"
		"       lqs-hookd sweeps\n"
		"       lqs-hookd sweep NAME [--now]\n"
		"       lqs-hookd batches [--state open|closed]\n"
		"\n"
		"Receives LogQS workflow hook events on POST /events, stores them durably\n"
		"and runs the configured handlers against the LogQS REST API.\n"
		"\n"
		"  -c, --config FILE   INI configuration file (also $LQS_HOOKD_CONFIG; default:\n"
		"                      " LQS_DEFAULT_CONFIG " when it exists)\n"
		"  -l, --listen H:P    listen address (overrides config and environment)\n"
		"  -s, --store PATH    event store: a SQLite file, or a postgresql:// database\n"
		"                      several daemons share (overrides config and environment)\n"
		"      --check-config  validate the configuration and exit (0: valid)\n"
		"      --print-config  print the effective configuration (secrets hidden)\n"
		"  -V, --version       print the version\n"
		"  -h, --help          this text\n"
		"\n"
		"The commands talk to the running daemon's administration endpoints\n"
		"(address from the configuration, or --listen HOST:PORT); check-lqs calls\n"
		"LogQS's users/me with the configured API key.\n"
		"\n"
		"Precedence: command line > environment > config file > built-in default.\n"
		"See lqs-hookd(8) and lqs-hookd.conf(5).\n");
}

/* Prune a quarter of the shorter retention apart, at most hourly, so a
 * short retention is honoured closely and a long one costs nothing. */
static int64_t prune_interval_ms(void)
{
	struct config_ref *r = config_current();
	double shorter = r->cfg.retention < r->cfg.failed_retention ? r->cfg.retention : r->cfg.failed_retention;
	int64_t ms = (int64_t)(shorter * 1000.0 / 4);

	config_put(r);
	if (ms > PRUNE_INTERVAL_MS)
		ms = PRUNE_INTERVAL_MS;
	return ms < 250 ? 250 : ms;
}

static void notify(const char *state)
{
#ifdef LQS_HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* Settings that libmicrohttpd or the store took at start. */
static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void log_restart_only(const struct config *old, const struct config *nw)
{
	if (strcmp(old->listen, nw->listen) != 0)
		log_warn("reload: listen changed to %s; takes effect after a restart", nw->listen);
	if (strcmp(old->store, nw->store) != 0)
		log_warn("reload: store changed to %s; takes effect after a restart", nw->store);
	if (old->http_threads != nw->http_threads || old->max_connections != nw->max_connections ||
	    old->max_connections_per_ip != nw->max_connections_per_ip ||
	    old->connection_timeout != nw->connection_timeout ||
	    old->connection_memory_limit != nw->connection_memory_limit)
		log_warn("reload: http_threads/max_connections/max_connections_per_ip/"
			 "connection_timeout/connection_memory_limit take effect after a restart");
	if (!same_str(old->tls_priorities, nw->tls_priorities))
		log_warn("reload: tls_priorities takes effect after a restart");
	if (!same_str(old->archive_dir, nw->archive_dir))
		log_warn("reload: archive_dir takes effect after a restart");
}

/* Settings that are valid but probably not what was meant. */
static void log_config_warnings(const struct config *cfg)
{
	char *copy = cfg->warnings ? strdup(cfg->warnings) : NULL, *save = NULL;

	for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
		log_warn("configuration: %s", line);
	free(copy);
}

static void reload(const char *path, const struct config_overrides *ov, struct workers *w,
		   struct store *st, struct http *h, struct sweeper *sw)
{
	struct config nw;
	char err[4096];
	struct config_ref *old;
	enum log_level lvl;

	if (config_load(&nw, path, ov, err, sizeof(err)) || router_check(&nw, err, sizeof(err))) {
		log_error("reload failed; keeping the running configuration: %s", err);
		config_free(&nw);
		metrics_config_reload(false);
		return;
	}
	log_config_warnings(&nw);
	old = config_current();
	log_restart_only(&old->cfg, &nw);
	config_put(old);
	if (log_level_parse(nw.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (log_set_format(nw.log_format) == 1)
		log_warn("log_format = journal, but journald is not running here: lines go to stderr as JSON");
	{
		int n = (int)nw.workers;
		store_set_max_size(st, nw.max_store_size);
		store_set_lease(st, (int64_t)(nw.lease * 1000.0));
		http_set_timeouts(h, nw.header_timeout, nw.read_timeout);
		config_install(&nw);
		workers_resize(w, n);
	}
	http_tls_reload(h);
	metrics_config_reload(true);
	lqs_check_kick();
	sweeper_kick(sw);
	log_info("configuration reloaded%s%s", path ? " from " : "", path ? path : "");
}

/* Every connection costs a descriptor: raise the soft limit toward what
 * max_connections needs, as far as the hard limit allows. */
static void fit_open_files(int64_t max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);   /* if still short, http_start fits under it */
}

/* New events can run: wake up to n idle workers. */
static void kick_workers(void *ctx, int n)
{
	workers_kick_n(ctx, n);
}

static int listen_fd_from_systemd(void)
{
#ifdef LQS_HAVE_SYSTEMD
	int n = sd_listen_fds(1);
	if (n >= 1)
		return SD_LISTEN_FDS_START;
#endif
	return -1;
}

/* What the daemon runs; NULL members were not started. */
struct daemon {
	const char *path;
	struct config_overrides ov;
	struct store *st;
	struct workers *w;
	struct intake *in;
	struct sweeper *sw;
	struct batcher *bt;
	struct sqs_pollers *sq;
	struct archiver *ar;
	bool archiving;        /* archive_dir set at start: retention prunes archived events only */
	struct http *h;
	int sfd;
};

static void announce(struct daemon *d, int listen_fd)
{
	struct config_ref *ref = config_current();
	char host[256], where[1024];
	unsigned port;

	store_redact(ref->cfg.store, where, sizeof(where));
	if (listen_fd >= 0)
		log_info("listening on the socket passed by systemd (port %u)", http_port(d->h));
	else if (config_split_listen(ref->cfg.listen, host, sizeof(host), &port) == 0)
		log_info("listening on %s:%u%s (events at %s, store %s, %lld workers, %lld unfinished events)", host,
			 http_port(d->h), tls_configured(&ref->cfg) ? " over TLS" : "", ref->cfg.events_path, where, (long long)ref->cfg.workers,
			 (long long)store_unfinished(d->st));
	config_put(ref);
}

/* Store, workers, checker, intake, batch timers, sweeper, HTTP, in that order. */
static int start(struct daemon *d)
{
	struct config_ref *ref = config_current();
	char err[4096];
	int recovered, listen_fd, rc = -1;

	fit_open_files(ref->cfg.max_connections);
	struct store_conf sc = { ref->cfg.store_password, (int)ref->cfg.store_connections };
	if (store_open_conf(&d->st, ref->cfg.store, &sc, err, sizeof(err))) {
		log_error("%s", err);
		goto out;
	}
	store_set_max_size(d->st, ref->cfg.max_store_size);
	store_set_lease(d->st, (int64_t)(ref->cfg.lease * 1000.0));
	if (ref->cfg.archive_dir) {
		d->archiving = true;
		d->ar = archiver_start(d->st, ref->cfg.archive_dir, ref->cfg.archive_gzip, err, sizeof(err));
		if (!d->ar) {
			log_error("%s", err);
			goto out;
		}
	}
	recovered = store_recover(d->st);
	if (recovered > 0)
		log_warn("recovered %d event(s) whose attempt was interrupted by the last stop", recovered);
	d->w = workers_start(d->st, (int)ref->cfg.workers);
	if (!d->w) {
		log_error("cannot start workers");
		goto out;
	}
	metrics_config_reload(true);
	gauges_register(d->st, d->w);
	if (lqs_check_start() != 0)
		log_warn("cannot start the LogQS settings check; events are not affected");
	d->in = intake_start(d->st, kick_workers, d->w, err, sizeof(err));
	if (!d->in) {
		log_error("%s", err);
		goto out;
	}
	d->bt = batcher_start(d->st, kick_workers, d->w);
	if (!d->bt) {
		log_error("cannot start the batch timers");
		goto out;
	}
	d->sw = sweeper_start(d->st, d->in);
	if (!d->sw) {
		log_error("cannot start the sweeper");
		goto out;
	}
	d->sq = sqs_start(d->in);
	listen_fd = listen_fd_from_systemd();
	d->h = http_start(d->st, d->w, d->in, d->sw, listen_fd, err, sizeof(err));
	if (!d->h) {
		log_error("%s", err);
		goto out;
	}
	announce(d, listen_fd);
	rc = 0;
out:
	config_put(ref);
	return rc;
}

/* The reverse of start; drain_s bounds how long running attempts may take. */
static void stop(struct daemon *d, double http_drain_s, double drain_s)
{
	/* first: they answer the runs asked for, stop receiving from SQS and
	 * finish what they received; both use the intake */
	sweeper_stop(d->sw);
	sqs_stop(d->sq);
	d->sq = NULL;
	http_stop(d->h, http_drain_s);
	sweeper_free(d->sw);   /* no request can reach it any more */
	batcher_stop(d->bt);
	intake_free(d->in);
	workers_stop(d->w, drain_s);
	archiver_stop(d->ar);   /* after the workers: what they finished is archived */
	d->ar = NULL;
	lqs_check_stop();
	metrics_clear_collectors();
	store_close(d->st);
}

static void prune(struct store *st, bool archived_only)
{
	struct config_ref *r = config_current();
	int64_t now = now_ms();
	int n = store_prune(st, now - (int64_t)(r->cfg.retention * 1000.0),
			    now - (int64_t)(r->cfg.failed_retention * 1000.0), archived_only);

	if (n > 0)
		log_info("pruned %d finished event(s) past retention%s", n, archived_only ? " (all archived)" : "");
	config_put(r);
}

/* Until a stop signal: reload on SIGHUP, STATUS= and watchdog pings, prune
 * when due; asleep on the signalfd in between. */
static void run(struct daemon *d)
{
	int64_t next_status = 0, last_prune = mono_ms();

	for (;;) {
		struct pollfd p = { .fd = d->sfd, .events = POLLIN };
		/* read each time: a reload may shorten the retention */
		int64_t now = mono_ms(), next_prune = last_prune + prune_interval_ms();
		int64_t due = next_status < next_prune ? next_status : next_prune;

		if (poll(&p, 1, due > now ? (int)(due - now) : 0) > 0) {
			struct signalfd_siginfo si;
			if (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo != SIGHUP)
					return;
				notify("RELOADING=1");
				reload(d->path, &d->ov, d->w, d->st, d->h, d->sw);
				notify("READY=1");
			}
		}
		now = mono_ms();
		if (now >= next_status) {
			char status[128];
			snprintf(status, sizeof(status), "STATUS=%lld unfinished events",
				 (long long)store_unfinished(d->st));
			notify(status);
			notify("WATCHDOG=1");
			next_status = now + STATUS_INTERVAL_MS;
		}
		if (now >= next_prune) {
			prune(d->st, d->archiving);
			last_prune = mono_ms();
		}
	}
}

/* --check-config / --print-config: say, and exit. */
static int check_or_print(struct config *cfg, const char *path, bool check, bool print)
{
	bool warned = cfg->warnings != NULL;

	if (cfg->warnings)
		fprintf(stderr, "%s", cfg->warnings);
	if (check && tls_configured(cfg)) {
		/* the pair the server would load: it must match and be valid now */
		struct tls_pair *p;
		char err[1024], warn[512];
		if (tls_load_configured(cfg, &p, err, sizeof(err), warn, sizeof(warn)) != 0) {
			fprintf(stderr, "%s\n", err);
			config_free(cfg);
			return 1;
		}
		if (warn[0]) {
			fprintf(stderr, "warning: %s\n", warn);
			warned = true;
		}
		tls_pair_free(p);
	}
	if (print)
		config_print(cfg, stdout);
	if (check)
		printf("%s: configuration is valid%s\n", path ? path : "(defaults and environment)",
		       warned ? " (with the warnings above)" : "");
	config_free(cfg);
	return 0;
}

/* Logging as configured, and what the configuration itself warns about. */
static void setup_logging(const struct config *cfg)
{
	enum log_level lvl;
	bool journal_missing;

	if (log_level_parse(cfg->log_level, &lvl) == 0)
		log_set_level(lvl);
	journal_missing = log_set_format(cfg->log_format) == 1;
	if (strcmp(cfg->auth, "none") == 0)
		log_warn("auth = none: events are accepted WITHOUT authentication");
	log_config_warnings(cfg);
	if (journal_missing)
		log_warn("log_format = journal, but journald is not running here (or this build lacks it): "
			 "lines go to stderr as JSON");
}

static int run_daemon(struct daemon *d, struct config *cfg)
{
	struct config_ref *ref;
	double drain;

	setup_logging(cfg);
	config_install(cfg);
	/* before any thread starts, so that every thread inherits the mask */
	d->sfd = signals_to_fd();
	if (d->sfd < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		config_uninstall();
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		config_uninstall();
		return 1;
	}
	if (start(d) != 0) {
		stop(d, 0, 0);
		config_uninstall();
		curl_global_cleanup();
		return 1;
	}
	notify("READY=1");
	run(d);

	notify("STOPPING=1");
	second_stop_exits(d->sfd);
	log_info("stopping: no new connections; draining");
	ref = config_current();
	drain = ref->cfg.drain_timeout;
	config_put(ref);
	http_quiesce(d->h);
	stop(d, HTTP_DRAIN_S, drain);
	sns_cache_clear();
	config_uninstall();
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "store", required_argument, NULL, 's' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "print-reference", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .sfd = -1 };
	bool check = false, print = false;
	struct config cfg;
	char err[4096];
	int opt;

	/* The variable names the file; set but empty, it says "no file" */
	d.path = getenv("LQS_HOOKD_CONFIG") ? getenv("LQS_HOOKD_CONFIG") : config_default_path();
	if (d.path && !*d.path)
		d.path = NULL;
	/* "+": stop at a command, so that its own options follow it and
	 * options before it (lqs-hookd -c FILE list) still count */
	while ((opt = getopt_long(argc, argv, "+c:l:s:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': d.path = optarg; break;
		case 'l': d.ov.listen = optarg; break;
		case 's': d.ov.store = optarg; break;
		case 'C': check = true; break;
		case 'P': print = true; break;
		case 'R': config_print_reference(stdout); return 0;
		case 'V': printf("lqs-hookd %s (commit %s)\n", LQS_VERSION, lqs_build_commit); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc && cli_is_command(argv[optind])) {
		if (check || print) {
			fprintf(stderr, "lqs-hookd: --check-config and --print-config do not go with a command\n");
			return 2;
		}
		return cli_main(argc - optind, argv + optind, d.path, d.ov.listen);
	}
	if (optind < argc) {
		fprintf(stderr, "lqs-hookd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_load(&cfg, d.path, &d.ov, err, sizeof(err)) || router_check(&cfg, err, sizeof(err))) {
		fputs(err, stderr);
		config_free(&cfg);
		return 1;
	}
	if (check || print)
		return check_or_print(&cfg, d.path, check, print);
	return run_daemon(&d, &cfg);
}
