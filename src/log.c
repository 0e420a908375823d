#include "lqs-hookd/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <errno.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>
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
		atomic_store(&log_format, LOG_FMT_JOURNAL);
		return 0;
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

void log_event(enum log_level lvl, const char *event_id, const char *resource_id,
	       const char *fmt, ...)
{
	char msg[2048], ts[64];
	struct timespec now;
	va_list ap;
	json_t *o;
	char *line;

	if ((int)lvl > atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
#ifdef LQS_HAVE_SYSTEMD
	if (atomic_load(&log_format) == LOG_FMT_JOURNAL) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		/* Native fields: journalctl EVENT_ID=... finds every line of an event. */
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio[(unsigned)lvl < 4 ? lvl : 2],
				"SYSLOG_IDENTIFIER=lqs-hookd", "EVENT_ID=%s", event_id ? event_id : "",
				"RESOURCE_ID=%s", resource_id ? resource_id : "", NULL);
		return;
	}
#endif
	clock_gettime(CLOCK_REALTIME, &now);
	iso8601_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);

	/* jansson escapes the message, so untrusted text cannot forge lines. */
	o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", log_level_name(lvl), "msg", msg);
	if (!o)
		return;
	if (event_id)
		json_object_set_new(o, "event_id", json_string(event_id));
	if (resource_id)
		json_object_set_new(o, "resource_id", json_string(resource_id));
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!line)
		return;
	/* One write per line (stderr is unbuffered: stdio would make two). */
	struct iovec iov[2] = { { line, strlen(line) }, { (void *)"\n", 1 } };
	int iovcnt = 2;
	struct iovec *v = iov;
	pthread_mutex_lock(&log_lock);
	while (iovcnt > 0) {
		ssize_t n = writev(STDERR_FILENO, v, iovcnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;   /* nowhere to report a failing log */
		}
		while (iovcnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	pthread_mutex_unlock(&log_lock);
	free(line);
}
