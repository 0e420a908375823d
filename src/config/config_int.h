/* Inside the configuration: what its files share. */
#ifndef LQS_CONFIG_INT_H
#define LQS_CONFIG_INT_H
#include <stdbool.h>
#include <stddef.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"

enum setting_type {
	T_STRING,   /* char * */
	T_SECRET,   /* char *, never printed; NAME_file reads it from a file */
	T_SECRETS,  /* repeatable secret list; NAME_file holds one per line */
	T_INT,      /* int64_t */
	T_SIZE,     /* int64_t bytes, accepts K/M/G suffixes */
	T_DURATION, /* double seconds, accepts ms/s/m/h/d suffixes */
	T_DOUBLE,
	T_BOOL,
	T_ENUM,     /* char *, one of choices */
};

struct setting {
	const char *section;
	const char *name;
	enum setting_type type;
	size_t offset;
	const char *def;
	double min, max;         /* bounds for numbers; ignored when min > max */
	const char *env_alias;   /* the LogQS client's own variable, if any */
	const char *choices;     /* '|'-separated, for T_ENUM */
	const char *help;
};

/* settings.c: the one table, and how a value is set from text. */
extern const struct setting settings[];
extern const size_t n_settings;
#define N_SETTINGS n_settings
const struct setting *setting_find(const char *section, const char *name);
size_t setting_index(const struct setting *s);
void *field(struct config *cfg, const struct setting *s);
/* Set one value; is_file_variant: v names a secret file; replace_list: a
 * secret list source that replaces rather than appends. 0, or -1 with why. */
int setting_apply(struct config *cfg, const struct setting *s, const char *v, bool is_file_variant,
		  bool replace_list, char *why, size_t whylen);
void secrets_clear(struct secret_list *l);
bool enum_ok(const char *choices, const char *v);
/* LQS_HOOKD_<NAME>, or with _FILE. */
void env_name(const struct setting *s, char *out, size_t n, bool file_variant);
void set_defaults(struct config *cfg);
/* "90", "90s", "5m", "1.5h", "14d", "250ms": seconds, or -1. */
int parse_duration(const char *s, double *out);

/* sections.c: [route NAME] and [sweep NAME]. */
bool section_is_named(const char *section);
/* One key of such a section: 0, or -1 with why. */
int section_apply(struct config *cfg, const char *section, const char *name, const char *value, int lineno,
		  char *why, size_t whylen);
void watches_free(struct config *cfg);
int sqs_section(struct config *cfg, const char *qname, const char *name, const char *value, int lineno, char *why,
		size_t whylen);
int sqs_finish(struct config *cfg, struct buf *err, const char *where);
/* After loading: the built-in route and sweep, and each section's checks.
 * Returns how many errors it added to err (warnings go to warn). */
int sections_finish(struct config *cfg, struct buf *err, struct buf *warn, const char *where);

/* load.c */
void add_error(struct buf *err, const char *where, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
