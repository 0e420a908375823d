/* The configuration as text: --print-config (secrets hidden, durations
 * and sizes as written) and the reference table of the docs. */
#include "lqs-hookd/config.h"
#include "lqs-hookd/store.h"

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

#include <jansson.h>

#include "config_int.h"
#include "lqs-hookd/buf.h"
#include "lqs-hookd/names.h"
#include "lqs-hookd/util.h"

static void value_text(const struct config *cfg, const struct setting *s, char *out, size_t n)
{
	const void *f = (const char *)cfg + s->offset;

	/* durations and sizes as they were written (14d, 64K), not as numbers */
	if ((s->type == T_DURATION || s->type == T_SIZE) && cfg->text && cfg->text[setting_index(s)]) {
		str_copy(out, cfg->text[setting_index(s)], n);
		return;
	}

	switch (s->type) {
	case T_STRING:
	case T_ENUM: {
		const char *v = *(char *const *)f;
		/* a database address may hold its password */
		if (v && f == (const void *)&cfg->store)
			store_redact(v, out, n);
		else
			str_copy(out, v ? v : "", n);
		break;
	}
	case T_SECRET:
		str_copy(out, *(char *const *)f ? "(set, hidden)" : "(unset)", n);
		break;
	case T_SECRETS:
		if (((const struct secret_list *)f)->n)
			snprintf(out, n, "(%d set, hidden)", ((const struct secret_list *)f)->n);
		else
			str_copy(out, "(unset)", n);
		break;
	case T_INT:
	case T_SIZE:
		snprintf(out, n, "%lld", (long long)*(const int64_t *)f);
		break;
	case T_DURATION:
	case T_DOUBLE:
		snprintf(out, n, "%g", *(const double *)f);
		break;
	case T_BOOL:
		str_copy(out, *(const bool *)f ? "true" : "false", n);
		break;
	}
}

static void print_list(FILE *out, const char *key, char *const *v, int n)
{
	if (!n)
		return;
	fprintf(out, "%s = ", key);
	for (int i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", v[i]);
	fputc('\n', out);
}

static void print_watch(const struct watch_cfg *w, FILE *out)
{
	char quiet[32], age[32];
	const char *k;
	json_t *v;

	duration_text(w->quiet, quiet, sizeof(quiet));
	duration_text(w->max_age, age, sizeof(age));
	fprintf(out, "\n[watch %s]\nbucket = %s\n", w->name, w->bucket);
	print_list(out, "prefix", w->prefixes, w->n_prefixes);
	print_list(out, "suffix", w->suffixes, w->n_suffixes);
	print_list(out, "ignore", w->ignore, w->n_ignore);
	fprintf(out, "events = %s%s%s\nprefix_depth = %lld\ncount = %lld\nquiet = %s\nmax_age = %s\nmarker = %s\n",
		w->on_created ? "created" : "", w->on_created && w->on_removed ? ", " : "",
		w->on_removed ? "removed" : "", (long long)w->prefix_depth, (long long)w->count, quiet, age, w->marker);
	if (w->trigger[0])
		fprintf(out, "trigger = %s\n", w->trigger);
	json_object_foreach(w->settings, k, v)
		fprintf(out, "%s = %s\n", k, json_string_value(v));
}

void config_print(const struct config *cfg, FILE *out)
{
	const char *section = "";
	char v[1024];

	fprintf(out, "# effective configuration (secrets are never shown)\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (strcmp(section, s->section) != 0) {
			section = s->section;
			fprintf(out, "\n[%s]\n", section);
		}
		value_text(cfg, s, v, sizeof(v));
		if (s->type == T_SECRET || s->type == T_SECRETS)
			fprintf(out, "# %s = %s\n", s->name, v);
		else
			fprintf(out, "%s = %s\n", s->name, v);
	}
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		fprintf(out, "\n[route %s]\nprocess_type = %s\nstate = %s\nhandler = %s\n", r->name,
			r->process_type, r->state, r->handler);
	}
	for (int i = 0; i < cfg->n_watches; i++)
		print_watch(&cfg->watches[i], out);
	for (int i = 0; i < cfg->n_sweeps; i++) {
		const struct sweep_cfg *w = &cfg->sweeps[i];
		char every[32], age[32];
		duration_text(w->every, every, sizeof(every));
		duration_text(w->min_age, age, sizeof(age));
		fprintf(out, "\n[sweep %s]\nenabled = %s\nevery = %s\nprocess_type = %s\nstate = %s\nmin_age = %s\n",
			w->name, w->enabled ? "true" : "false", every, w->process_type, w->state, age);
		fprintf(out, "%shandler = %s\nmax_per_run = %lld\n%sdatastore = %s\n", w->handler[0] ? "" : "# ",
			w->handler[0] ? w->handler : "(the route's)", (long long)w->max_per_run,
			w->datastore[0] ? "" : "# ", w->datastore[0] ? w->datastore : "(datastore_id)");
	}
}

void config_print_reference(FILE *out)
{
	char env[96], envf[96], key[160], envs[320], def[96], bounds[96];

	fprintf(out, "| section | key | default | bounds | environment | meaning |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		bool secretish = s->type == T_SECRET || s->type == T_SECRETS;

		env_name(s, env, sizeof(env), false);
		env_name(s, envf, sizeof(envf), true);
		if (secretish) {
			snprintf(key, sizeof(key), "`%s`, `%s_file`", s->name, s->name);
			snprintf(envs, sizeof(envs), "`%s`, `%s`", env, envf);
		} else {
			snprintf(key, sizeof(key), "`%s`", s->name);
			snprintf(envs, sizeof(envs), "`%s`", env);
		}
		if (s->env_alias) {
			size_t n = strlen(envs);
			snprintf(envs + n, sizeof(envs) - n, ", `%s`", s->env_alias);
		}
		if (s->def)
			snprintf(def, sizeof(def), "`%s`", s->def);
		else
			str_copy(def, "—", sizeof(def));
		bounds[0] = '\0';
		if (s->type == T_ENUM) {
			/* '|' would split a Markdown cell */
			size_t o = 0;
			for (const char *p = s->choices; *p && o + 3 < sizeof(bounds); p++) {
				if (*p == '|') {
					bounds[o++] = ',';
					bounds[o++] = ' ';
				} else {
					bounds[o++] = *p;
				}
			}
			bounds[o] = '\0';
		} else if (s->min <= s->max && s->type == T_DURATION) {
			snprintf(bounds, sizeof(bounds), "%.10g–%.10g s", s->min, s->max);
		} else if (s->min <= s->max) {
			snprintf(bounds, sizeof(bounds), "%.0f–%.0f", s->min, s->max);
		}
		fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", s->section, key, def, bounds, envs,
			s->help);
	}
}

