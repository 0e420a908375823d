#include "lqs-hookd/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <math.h>
#include <stdint.h>
#include <sys/uio.h>

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef LQS_HAVE_SYSTEMD
#include <syslog.h>
#include <systemd/sd-journal.h>
#endif

#include "lqs-hookd/util.h"

static atomic_int log_threshold = LOG_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_format = LOG_FMT_JSON;

/* systemd sets JOURNAL_STREAM=<dev>:<ino> when stderr goes to the journal. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int log_set_format(const char *name)
{
	if (strcmp(name, "json") == 0) {
		atomic_store(&log_format, LOG_FMT_JSON);
		return 0;
	}
#ifdef LQS_HAVE_SYSTEMD
	if (strcmp(name, "journal") == 0 || (strcmp(name, "auto") == 0 && stderr_is_journal())) {
		/* libsystemd drops a line silently when journald's socket is not
		 * there: then JSON on stderr, and the caller says so */
		if (access("/run/systemd/journal/socket", F_OK) != 0) {
			atomic_store(&log_format, LOG_FMT_JSON);
			return 1;
		}
		atomic_store(&log_format, LOG_FMT_JOURNAL);
		return 0;
	}
#else
	if (strcmp(name, "journal") == 0) {
		atomic_store(&log_format, LOG_FMT_JSON);
		return 1;
	}
#endif
	if (strcmp(name, "auto") == 0) {
		atomic_store(&log_format, LOG_FMT_JSON);
		return 0;
	}
	return -1;
}
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level lvl)
{
	atomic_store(&log_threshold, (int)lvl);
}

const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < 4 ? level_names[lvl] : "info";
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Append s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, anything that is not valid UTF-8 replaced by U+FFFD,
 * so that no text, however hostile, can end the string or forge a line.
 * Stops before a character that would not fit (leaving room for the rest of
 * the line). */
static size_t json_escape(char *out, size_t cap, size_t at, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		char esc[8];
		const char *add = esc;
		size_t n = 0, adv = 1;
		unsigned char c = *p;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20) {
			const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
			if (named) {
				add = named;
				n = 2;
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				n = 6;
			}
		} else if (c < 0x80) {
			esc[0] = (char)c;
			n = 1;
		} else {
			size_t len = utf8_seq_len(p);
			if (len) {
				add = (const char *)p;
				n = len;
				adv = len;
			} else {
				add = "\xEF\xBF\xBD";   /* U+FFFD; skip one byte and resync */
				n = 3;
			}
		}
		if (at + n >= cap)
			break;
		memcpy(out + at, add, n);
		at += n;
		p += adv;
	}
	return at;
}

/* Append s whole, or nothing when it does not fit. */
static size_t put(char *out, size_t cap, size_t at, const char *s)
{
	size_t n = strlen(s);

	if (at + n >= cap)
		return at;
	memcpy(out + at, s, n);
	return at + n;
}

size_t log_format_line(char *out, size_t cap, const char *ts, const char *level, const char *msg,
		       const char *event_id, const char *resource_id, const struct log_field *fields,
		       size_t n_fields)
{
	char tail[640];
	size_t at = 0, t = 0, body;

	/* The fields after the message first, each whole or not at all, so
	 * that a long message is what gets cut, never the closing of the
	 * object. */
	if (event_id) {
		t = put(tail, sizeof(tail) - 2, t, ",\"event_id\":\"");
		t = json_escape(tail, sizeof(tail) - 2, t, event_id);
		t = put(tail, sizeof(tail) - 1, t, "\"");
	}
	if (resource_id) {
		t = put(tail, sizeof(tail) - 2, t, ",\"resource_id\":\"");
		t = json_escape(tail, sizeof(tail) - 2, t, resource_id);
		t = put(tail, sizeof(tail) - 1, t, "\"");
	}
	for (size_t i = 0; i < n_fields; i++) {
		char num[96];
		if (isfinite(fields[i].value))
			snprintf(num, sizeof(num), ",\"%s\":%.15g", fields[i].key, fields[i].value);
		else
			snprintf(num, sizeof(num), ",\"%s\":null", fields[i].key);
		t = put(tail, sizeof(tail), t, num);
	}
	tail[t] = '\0';
	/* room kept for the tail, the closing '"}', the newline and the NUL */
	body = cap > t + 64 ? cap - t - 4 : 60;
	at = put(out, body, at, "{\"ts\":\"");
	at = json_escape(out, body, at, ts);
	at = put(out, body, at, "\",\"level\":\"");
	at = json_escape(out, body, at, level);
	at = put(out, body, at, "\",\"msg\":\"");
	at = json_escape(out, body, at, msg);
	out[at++] = '"';
	if (cap > t + 64) {
		memcpy(out + at, tail, t);
		at += t;
	}
	memcpy(out + at, "}\n", 2);
	at += 2;
	out[at] = '\0';
	return at;
}

/* One write per line (stderr is unbuffered: stdio would make several). */
static void write_line(const char *line, size_t len)
{
	pthread_mutex_lock(&log_lock);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(STDERR_FILENO, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;   /* nowhere to report a failing log */
		off += (size_t)n;
	}
	pthread_mutex_unlock(&log_lock);
}

static void log_vemit(enum log_level lvl, const char *event_id, const char *resource_id,
		      const struct log_field *fields, size_t n_fields, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

static void log_vemit(enum log_level lvl, const char *event_id, const char *resource_id,
		      const struct log_field *fields, size_t n_fields, const char *fmt, va_list ap)
{
	char msg[2048], ts[64], line[LOG_LINE_MAX];
	struct timespec now;
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
#ifdef LQS_HAVE_SYSTEMD
	if (atomic_load(&log_format) == LOG_FMT_JOURNAL) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		struct iovec iov[8];
		char f[8][96];
		size_t n = 0;
		int rc;

		/* Native fields: journalctl EVENT_ID=... finds every line of an event. */
		snprintf(f[0], sizeof(f[0]), "PRIORITY=%d", prio[(unsigned)lvl < 4 ? lvl : 2]);
		snprintf(f[1], sizeof(f[1]), "EVENT_ID=%s", event_id ? event_id : "");
		snprintf(f[2], sizeof(f[2]), "RESOURCE_ID=%s", resource_id ? resource_id : "");
		for (size_t i = 0; i < 3; i++)
			iov[n++] = (struct iovec){ f[i], strlen(f[i]) };
		for (size_t i = 0; i < n_fields && n < 6; i++) {
			size_t k = 0;
			for (const char *p = fields[i].key; *p && k < 40; p++)
				f[n][k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
			snprintf(f[n] + k, sizeof(f[n]) - k, "=%.15g", fields[i].value);
			iov[n] = (struct iovec){ f[n], strlen(f[n]) };
			n++;
		}
		char mline[sizeof(msg) + 16];
		snprintf(mline, sizeof(mline), "MESSAGE=%s", msg);
		iov[n++] = (struct iovec){ mline, strlen(mline) };
		iov[n++] = (struct iovec){ (char *)(uintptr_t)"SYSLOG_IDENTIFIER=lqs-hookd", 27 };
		rc = sd_journal_sendv(iov, (int)n);
		if (rc >= 0)
			return;
		/* no journald to take it: the line goes to stderr rather than nowhere */
	}
#endif
	clock_gettime(CLOCK_REALTIME, &now);
	iso8601_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);
	len = log_format_line(line, sizeof(line), ts, log_level_name(lvl), msg, event_id, resource_id, fields,
			      n_fields);
	write_line(line, len);
}

void log_event_fields(enum log_level lvl, const char *event_id, const char *resource_id,
		      const struct log_field *fields, size_t n_fields, const char *fmt, ...)
{
	va_list ap;

	if ((int)lvl > atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	log_vemit(lvl, event_id, resource_id, fields, n_fields, fmt, ap);
	va_end(ap);
}

void log_event(enum log_level lvl, const char *event_id, const char *resource_id,
	       const char *fmt, ...)
{
	va_list ap;

	if ((int)lvl > atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	log_vemit(lvl, event_id, resource_id, NULL, 0, fmt, ap);
	va_end(ap);
}
