/* Loading: the file (its one comment rule), systemd credentials, the
 * environment and the command line, in that order of precedence; then the
 * checks that need every value, each error with where its value came from. */
#include "lqs-hookd/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <jansson.h>

#include "config_int.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

/* Where each setting got its value, for messages: "file:line", an
 * environment variable, an option, or "" for the default. */
typedef char origin_t[160];

struct load_ctx {
	struct config *cfg;
	const struct config_overrides *ov;
	const char *path;
	int lineno;
	struct buf *err;
	struct buf *warn;
	int errors;
	origin_t *origin;         /* N_SETTINGS of them */
};

void add_error(struct buf *err, const char *where, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		buf_printf(err, "%s:%d: %s\n", where, line, msg);
	else
		buf_printf(err, "%s: %s\n", where, msg);
}

/* Whether an operator command skips reading this secret's file: it never
 * needs the hook secret, and the others only when it says so. */
static bool client_skips(const struct config_overrides *ov, const struct setting *s)
{
	if (!ov || !ov->client)
		return false;
	if (strcmp(s->name, "admin_token") == 0)
		return !(ov->needs & CONFIG_NEEDS_ADMIN_TOKEN);
	if (strcmp(s->name, "api_key_secret") == 0)
		return !(ov->needs & CONFIG_NEEDS_LQS_KEY);
	if (strcmp(s->section, "aws") == 0)
		return !(ov->needs & CONFIG_NEEDS_AWS);
	return s->type == T_SECRET || s->type == T_SECRETS;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	char why[512] = "";
	const struct setting *s;
	bool file_variant = false;
	char base[64];

	if (section_is_named(section)) {
		if (section_apply(ctx->cfg, section, name, value, ctx->lineno, why, sizeof(why))) {
			add_error(ctx->err, ctx->path, ctx->lineno, "%s", why);
			ctx->errors++;
		}
		return 1;
	}
	s = setting_find(section, name);
	if (!s) {
		size_t n = strlen(name);
		if (n > 5 && strcmp(name + n - 5, "_file") == 0 && n - 5 < sizeof(base)) {
			memcpy(base, name, n - 5);
			base[n - 5] = '\0';
			s = setting_find(section, base);
			if (s && (s->type == T_SECRET || s->type == T_SECRETS))
				file_variant = true;
			else
				s = NULL;
		}
	}
	if (!s) {
		if (setting_find(NULL, name))
			add_error(ctx->err, ctx->path, ctx->lineno, "key '%s' belongs in section [%s], not [%s]",
				  name, setting_find(NULL, name)->section, section);
		else
			add_error(ctx->err, ctx->path, ctx->lineno, "unknown key '%s' in section [%s]", name,
				  section);
		ctx->errors++;
		return 1;
	}
	if (file_variant && client_skips(ctx->ov, s))
		return 1;   /* an operator command that does not need it */
	/* Inline comments were cut by the reader (whitespace, then # or ;); a
	 * # or ; left in a value was probably meant as one too. */
	if (strpbrk(value, "#;"))
		add_error(ctx->warn, ctx->path, ctx->lineno,
			  "the value of '%s' contains '%c'; it is kept as part of the value (a comment starts "
			  "with a space or tab before the # or ;)", name, *strpbrk(value, "#;"));
	/* The first secret in the file replaces nothing (defaults have none),
	 * later ones add to the list: several secrets accepted for rotation. */
	if (setting_apply(ctx->cfg, s, value, file_variant, false, why, sizeof(why))) {
		add_error(ctx->err, ctx->path, ctx->lineno, "%s", why[0] ? why : "invalid value");
		ctx->errors++;
	} else {
		snprintf(ctx->origin[setting_index(s)], sizeof(origin_t), "%s:%d", ctx->path, ctx->lineno);
	}
	return 1;
}

/* The one comment rule: a line whose first non-blank character is # or ;
 * is a comment, and so is the rest of a "key = value" line from a # or ;
 * that follows a space or tab. A value that must hold " #" or " ;" goes
 * in a file (NAME_file) or the environment. */
static void strip_inline_comment(char *line)
{
	char *p = line, *eq;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '#' || *p == ';' || *p == '[' || !(eq = strchr(p, '=')))
		return;
	for (p = eq + 1; *p; p++) {
		if ((*p == '#' || *p == ';') && (p[-1] == ' ' || p[-1] == '\t')) {
			p[0] = '\n';
			p[1] = '\0';
			return;
		}
	}
}

static char *counting_reader(char *str, int num, void *stream)
{
	struct { FILE *f; struct load_ctx *ctx; } *rd = stream;
	char *r = fgets(str, num, rd->f);

	if (r) {
		rd->ctx->lineno++;
		strip_inline_comment(str);
	}
	return r;
}

static void load_env(struct load_ctx *ctx)
{
	char name[96], why[512];
	const char *v;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		bool secretish = s->type == T_SECRET || s->type == T_SECRETS;

		for (int fv = 0; fv <= (secretish ? 1 : 0); fv++) {
			env_name(s, name, sizeof(name), fv);
			v = getenv(name);
			if (!v || (fv && client_skips(ctx->ov, s)))
				continue;
			if (setting_apply(ctx->cfg, s, v, fv, true, why, sizeof(why))) {
				add_error(ctx->err, name, 0, "%s", why);
				ctx->errors++;
			} else {
				str_copy(ctx->origin[i], name, sizeof(origin_t));
			}
		}
		if (s->env_alias && (v = getenv(s->env_alias)) != NULL) {
			if (setting_apply(ctx->cfg, s, v, false, true, why, sizeof(why))) {
				add_error(ctx->err, s->env_alias, 0, "%s", why);
				ctx->errors++;
			} else {
				str_copy(ctx->origin[i], s->env_alias, sizeof(origin_t));
			}
		}
	}
}

/* systemd credentials (LoadCredential=): files named after the setting,
 * bare ("secret") or with the daemon's prefix ("lqs-hookd.secret", the
 * name under /etc/credstore/ that the shipped unit loads). */
static void load_credentials(struct load_ctx *ctx)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX], why[512];

	if (!dir || !*dir)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if ((s->type != T_SECRET && s->type != T_SECRETS) || client_skips(ctx->ov, s))
			continue;
		for (int prefixed = 0; prefixed < 2; prefixed++) {
			if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir, prefixed ? "lqs-hookd." : "",
					     s->name) >= sizeof(path))
				continue;
			if (access(path, R_OK) != 0)
				continue;
			if (setting_apply(ctx->cfg, s, path, true, true, why, sizeof(why))) {
				add_error(ctx->err, path, 0, "%s", why);
				ctx->errors++;
			}
			break;
		}
	}
}

int config_split_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
	const char *colon;
	int64_t p;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return -1;
		if ((size_t)(close - listen - 1) >= hostlen)
			return -1;
		memcpy(host, listen + 1, (size_t)(close - listen - 1));
		host[close - listen - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= hostlen)
			return -1;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
	}
	if (parse_i64(colon + 1, &p) || p < 0 || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

/* "file:line" (or the variable or option) a setting came from; the file
 * itself for a default. */
static const char *where_of(const struct load_ctx *ctx, const char *name)
{
	const struct setting *st = setting_find(NULL, name);
	const char *o = st ? ctx->origin[setting_index(st)] : "";

	return o[0] ? o : ctx->cfg->path ? ctx->cfg->path : "config";
}

static bool http_url_ok(const char *u)
{
	size_t n = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;

	/* a host, then nothing that would end it early */
	return n && u[n] && u[n] != '/' && u[n] != ':' && !strpbrk(u, " \t\r\n?#");
}

static void validate(struct load_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct buf *err = ctx->err;
	char host[256], canon[37];
	unsigned port;
	const char *where = cfg->path ? cfg->path : "config";

#define BAD(name, ...) do { add_error(err, where_of(ctx, name), 0, __VA_ARGS__); ctx->errors++; } while (0)
	if (config_split_listen(cfg->listen, host, sizeof(host), &port))
		BAD("listen", "listen: '%s' is not HOST:PORT", cfg->listen);
	if (cfg->events_path[0] != '/' || strlen(cfg->events_path) > 128 ||
	    strchr(cfg->events_path, '?') || strcmp(cfg->events_path, "/") == 0)
		BAD("events_path", "events_path: '%s' must be an absolute path such as /events", cfg->events_path);
	if (!(ctx->ov && ctx->ov->client) && strcmp(cfg->auth, "secret") == 0 && cfg->secrets.n == 0) {
		add_error(err, where, 0,
			  "no hook secret configured: set LQS_EXPECTED_SECRET, secret or secret_file "
			  "(or auth = none to accept unauthenticated events)");
		ctx->errors++;
	}
	if (cfg->retry_max_delay < cfg->retry_base)
		BAD("retry_max_delay", "retry_max_delay (%g s) is smaller than retry_base (%g s)",
		    cfg->retry_max_delay, cfg->retry_base);
	if (cfg->datastore_id && *cfg->datastore_id && !uuid_canonical(cfg->datastore_id, canon))
		BAD("datastore_id", "datastore_id: '%s' is not a UUID", cfg->datastore_id);
	if (cfg->api_key_id && *cfg->api_key_id && !uuid_canonical(cfg->api_key_id, canon))
		BAD("api_key_id", "api_key_id: '%s' is not a UUID (LogQS API key ids are UUIDs)", cfg->api_key_id);
	if (!http_url_ok(cfg->api_url))
		BAD("api_url", "api_url: '%s' is not an http:// or https:// URL with a host", cfg->api_url);
	if (cfg->additional_headers) {
		json_error_t jerr;
		json_t *h = json_loads(cfg->additional_headers, 0, &jerr);
		const char *k;
		json_t *v;
		if (!h)
			BAD("additional_headers", "additional_headers: not valid JSON (%s, column %d)", jerr.text,
			    jerr.column);
		else if (!json_is_object(h))
			BAD("additional_headers", "additional_headers: must be a JSON object of header names to strings");
		else
			json_object_foreach(h, k, v) {
				if (!json_is_string(v) || !*k || strpbrk(k, ": \t\r\n") ||
				    strpbrk(json_string_value(v), "\r\n")) {
					BAD("additional_headers",
					    "additional_headers: '%s' must be a header name with a one-line string value", k);
					break;
				}
			}
		json_decref(h);
	}
#undef BAD
	if (!cfg->store) {
		const char *sd = getenv("STATE_DIRECTORY");
		char path[PATH_MAX];
		/* systemd may pass several directories separated by ':'; use the first. */
		if (sd && *sd) {
			size_t n = strcspn(sd, ":");
			snprintf(path, sizeof(path), "%.*s/lqs-hookd.db", (int)n, sd);
		} else {
			str_copy(path, "lqs-hookd.db", sizeof(path));
		}
		cfg->store = strdup(path);
	}
	ctx->errors += sections_finish(cfg, err, ctx->warn, where);
}

/* Parse an already opened file (or memory stream) named `path`. */
static void load_stream(struct load_ctx *ctx, FILE *f)
{
	struct { FILE *f; struct load_ctx *ctx; } rd = { f, ctx };
	int before = ctx->errors;
	int rc = ini_parse_stream(counting_reader, &rd, ini_cb, ctx);

	/* inih reports a syntax error by its line; our own errors were already
	 * recorded with theirs. */
	if (rc > 0 && ctx->errors == before) {
		add_error(ctx->err, ctx->path, rc, "syntax error (expected [section] or key = value)");
		ctx->errors++;
	} else if (rc < 0) {
		add_error(ctx->err, ctx->path, 0, "cannot read: %s", strerror(errno));
		ctx->errors++;
	}
}

/* f: the opened file, or NULL with open_errno saying why it is not. */
static int load_common(struct config *cfg, const char *path, FILE *f, int open_errno,
		       const struct config_overrides *ov, char *errout, size_t errlen)
{
	struct buf err, warn;
	char why[512];
	origin_t *origin = calloc(N_SETTINGS, sizeof(*origin));
	struct load_ctx ctx = { .cfg = cfg, .ov = ov, .path = path, .err = &err, .warn = &warn,
				.origin = origin };
	struct stat sb;

	buf_init(&err, 16384);
	buf_init(&warn, 16384);
	set_defaults(cfg);
	if (!origin || !cfg->text) {
		add_error(&err, path ? path : "config", 0, "out of memory");
		ctx.errors++;
	} else if (path) {
		cfg->path = strdup(path);
		if (!f) {
			add_error(&err, path, 0, "cannot open: %s", strerror(open_errno));
			ctx.errors++;
		} else if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
			add_error(&err, path, 0, "is a directory, not a configuration file");
			ctx.errors++;
		} else {
			load_stream(&ctx, f);
		}
	}
	if (!ctx.errors) {
		load_credentials(&ctx);
		load_env(&ctx);
	}
	if (!ctx.errors && ov && ov->listen) {
		if (setting_apply(cfg, setting_find("http", "listen"), ov->listen, false, false, why, sizeof(why))) {
			add_error(&err, "--listen", 0, "%s", why);
			ctx.errors++;
		} else {
			str_copy(origin[setting_index(setting_find("http", "listen"))], "--listen", sizeof(origin_t));
		}
	}
	if (!ctx.errors && ov && ov->store)
		setting_apply(cfg, setting_find("store", "store"), ov->store, false, false, why, sizeof(why));
	if (!ctx.errors)
		validate(&ctx);
	free(origin);
	cfg->warnings = warn.data ? buf_steal(&warn) : NULL;
	buf_free(&warn);
	if (ctx.errors) {
		if (errout && errlen)
			str_copy(errout, err.data ? err.data : "invalid configuration\n", errlen);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	return 0;
}

int config_load(struct config *cfg, const char *path, const struct config_overrides *ov,
		char *errout, size_t errlen)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	int rc = load_common(cfg, path, f, errno, ov, errout, errlen);

	if (f)
		fclose(f);
	return rc;
}

int config_load_buffer(struct config *cfg, const char *name, const char *text, size_t len,
		       const struct config_overrides *ov, char *errout, size_t errlen)
{
	/* fmemopen cannot open an empty buffer on every libc: parse "\n" then */
	FILE *f = len ? fmemopen((void *)(uintptr_t)text, len, "r") : fmemopen((char[]){ "\n" }, 1, "r");
	int rc = load_common(cfg, name, f, errno, ov, errout, errlen);

	if (f)
		fclose(f);
	return rc;
}

const char *config_default_path(void)
{
	return access(LQS_DEFAULT_CONFIG, F_OK) == 0 ? LQS_DEFAULT_CONFIG : NULL;
}
