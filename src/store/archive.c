/* The archive writer (archive.h): finished events, each with its history
 * and result, appended as one JSON line to
 *   DIR/year=YYYY/month=MM/day=DD/hour=HH/lqs-hookd-HOST-YYYYMMDDTHHMMSSZ.ndjson
 * partitioned by finish time (UTC). Lines are synced (files, and the
 * directories of new files) before the store marks the events archived, so
 * retention never deletes an event the archive does not hold. A crash
 * before the mark archives the events again: a reader keeps one line per
 * (event_id, finished_at). A line cut by a crash is removed at start. */
#include "lqs-hookd/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lqs-hookd/buf.h"
#include "lqs-hookd/config.h"
#include "lqs-hookd/log.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/ratelog.h"
#include "lqs-hookd/store.h"
#include "lqs-hookd/util.h"

/* Events taken per pass, and files kept open (one per partition hour). */
#define ARCHIVE_BATCH 256
#define ARCHIVE_OPEN_FILES 8
#define ARCHIVE_HISTORY_PAGE 5000

struct afile {
	int64_t hour;        /* finished_ms / 3600000; -1: unused */
	int fd;
	off_t size;          /* what is synced or being written this pass */
	off_t pass_start;    /* its size when this pass began */
	bool touched, fresh; /* written this pass; created this pass */
	char path[4096];
};

struct archiver {
	struct store *st;
	char *dir;
	bool gzip;           /* archive_gzip: compress files once closed */
	char host[128];
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	struct afile files[ARCHIVE_OPEN_FILES];
	struct ratelog errors;
};

#define ARCHIVE_FILE_PREFIX "lqs-hookd-%s-"

/* ---- files ---- */

/* mkdir -p, each directory made synced into its parent. */
static int make_dirs(const char *path)
{
	char p[4096];
	size_t n = str_copy(p, path, sizeof(p));

	if (n >= sizeof(p))
		return -1;
	for (char *s = p + 1;; s++) {
		bool last = !*s;
		if (*s && *s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0750) == 0)
			fsync_parent_dir(p);
		else if (errno != EEXIST)
			return -1;
		if (last)
			return 0;
		*s = '/';
	}
}

static void file_close(struct afile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->hour = -1;
}

/* The open file of an hour's partition, made when first needed. */
static struct afile *file_for(struct archiver *a, int64_t finished_ms, char *err, size_t errlen)
{
	int64_t hour = finished_ms / 3600000;
	struct afile *f = NULL, *oldest = NULL;
	time_t t = (time_t)(finished_ms / 1000), now = time(NULL);
	struct tm tm, tn;
	char dir[4096];

	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++) {
		if (a->files[i].hour == hour)
			return &a->files[i];
		if (a->files[i].hour < 0 && !f)
			f = &a->files[i];
		if (!a->files[i].touched && (!oldest || a->files[i].hour < oldest->hour))
			oldest = &a->files[i];
	}
	if (!f) {
		if (!oldest)
			return NULL;   /* every file written this pass: the rest waits for the next (err empty) */
		file_close(oldest);   /* a partition no longer written to */
		f = oldest;
	}
	gmtime_r(&t, &tm);
	gmtime_r(&now, &tn);
	if (snprintf(dir, sizeof(dir), "%s/year=%04d/month=%02d/day=%02d/hour=%02d", a->dir, tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour) >= (int)sizeof(dir) ||
	    snprintf(f->path, sizeof(f->path), "%s/" ARCHIVE_FILE_PREFIX "%04d%02d%02dT%02d%02d%02dZ.ndjson", dir,
		     a->host, tn.tm_year + 1900, tn.tm_mon + 1, tn.tm_mday, tn.tm_hour, tn.tm_min,
		     tn.tm_sec) >= (int)sizeof(f->path)) {
		snprintf(err, errlen, "archive_dir is too long a path");
		return NULL;
	}
	if (make_dirs(dir) != 0) {
		snprintf(err, errlen, "cannot make %.400s: %s", dir, strerror(errno));
		return NULL;
	}
	f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (f->fd < 0) {
		snprintf(err, errlen, "cannot open %.400s: %s", f->path, strerror(errno));
		f->fd = -1;
		return NULL;
	}
	f->size = lseek(f->fd, 0, SEEK_END);
	f->pass_start = f->size;
	f->hour = hour;
	f->fresh = true;
	return f;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- compressing closed files ---- */

extern char **environ;

/* gzip(1) a closed file in place (FILE.gz; FILE goes), synced, as logrotate
 * does. 0 on success. */
static int gzip_file(const char *path)
{
	char a0[] = "gzip", a1[] = "-n", a2[] = "--synchronous", a3[] = "--", file[4096];
	char *argv[] = { a0, a1, a2, a3, file, NULL };
	pid_t pid;
	int status = 0;

	if (str_copy(file, path, sizeof(file)) >= sizeof(file) || posix_spawnp(&pid, "gzip", NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void compress_closed(struct archiver *a, const char *path)
{
	if (!a->gzip)
		return;
	if (gzip_file(path) != 0) {
		metrics_archive_error();
		if (ratelog_allow(&a->errors, mono_ms(), 60000, 3, 0))
			log_error("archive: cannot gzip %s (is gzip installed?); it stays uncompressed", path);
		return;
	}
	fsync_parent_dir(path);
}

/* Files of hours over for more than an hour are closed, and compressed. */
static void close_past_hours(struct archiver *a)
{
	int64_t hour_now = now_ms() / 3600000;

	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++) {
		struct afile *f = &a->files[i];
		char path[sizeof(f->path)];
		if (f->hour < 0 || f->hour >= hour_now - 1)
			continue;
		str_copy(path, f->path, sizeof(path));
		file_close(f);
		compress_closed(a, path);
	}
}

/* ---- one pass ---- */

/* An event's line: its status document and its whole history. */
static char *event_line(struct archiver *a, const struct store_event *e)
{
	json_t *doc = store_event_json(e), *hist = json_array();
	int64_t cursor = 0;
	char *line = NULL;

	do {
		struct store_step *steps = NULL;
		size_t n = 0;
		int64_t next = 0;
		if (store_history_page(a->st, e->id, cursor, ARCHIVE_HISTORY_PAGE, &steps, &n, &next) != STORE_OK) {
			json_decref(hist);
			json_decref(doc);
			return NULL;
		}
		for (size_t i = 0; i < n; i++)
			json_array_append_new(hist, store_step_json(&steps[i]));
		store_steps_free(steps, n);
		cursor = next;
	} while (cursor);
	json_object_set_new(doc, "history", hist);
	json_object_set_new(doc, "archived_by", json_string(a->host));
	line = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return line;
}

/* Undo this pass in every file it wrote (a write or sync failed). */
static void pass_undo(struct archiver *a)
{
	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++) {
		struct afile *f = &a->files[i];
		if (f->hour < 0 || !f->touched)
			continue;
		if (ftruncate(f->fd, f->pass_start) == 0 && fsync(f->fd) == 0) {
			f->size = f->pass_start;
			f->touched = f->fresh = false;
		} else {
			file_close(f);   /* a new file next time; the torn tail is cut at start */
		}
	}
}

static void pass_error(struct archiver *a, const char *what)
{
	metrics_archive_error();
	if (ratelog_allow(&a->errors, mono_ms(), 60000, 3, 0))
		log_error("archive: %s; the events stay in the store (retention keeps them) and are tried again", what);
}

/* Returns how many events it archived (ARCHIVE_BATCH: more are waiting),
 * or -1. */
static int pass_locked(struct archiver *a)
{
	struct store_event *rows = NULL;
	size_t n = 0, done = 0;
	char err[512] = "";
	char (*ids)[37] = NULL;
	int64_t *fin = NULL;
	bool ok = true, cut_short = false;

	if (store_archive_pending(a->st, ARCHIVE_BATCH, &rows, &n) != STORE_OK) {
		pass_error(a, "cannot read the finished events from the store");
		return -1;
	}
	if (!n) {
		close_past_hours(a);
		return 0;
	}
	ids = calloc(n, sizeof(*ids));
	fin = calloc(n, sizeof(*fin));
	ok = ids && fin;
	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++)
		if (a->files[i].hour >= 0) {
			a->files[i].pass_start = a->files[i].size;
			a->files[i].touched = a->files[i].fresh = false;
		}
	for (size_t i = 0; ok && i < n; i++) {
		char *line = event_line(a, &rows[i]);
		struct afile *f = line ? file_for(a, rows[i].finished_ms, err, sizeof(err)) : NULL;
		if (line && !f && !err[0]) {
			/* more partitions in this pass than files kept open: what is
			 * written is kept, the rest is the next pass's */
			free(line);
			cut_short = true;
			break;
		}
		if (!line && !err[0])
			snprintf(err, sizeof(err), "cannot read the history of event %s", rows[i].id);
		if (f && (write_all(f->fd, line, strlen(line)) != 0 || write_all(f->fd, "\n", 1) != 0)) {
			snprintf(err, sizeof(err), "cannot write %.400s: %s", f->path, strerror(errno));
			f->touched = true;
			f = NULL;
		}
		if (f) {
			f->size += (off_t)strlen(line) + 1;
			f->touched = true;
			str_copy(ids[done], rows[i].id, sizeof(ids[done]));
			fin[done++] = rows[i].finished_ms;
		}
		ok = f != NULL;
		free(line);
	}
	/* durable before the store hears of it */
	for (int i = 0; ok && i < ARCHIVE_OPEN_FILES; i++) {
		struct afile *f = &a->files[i];
		if (f->hour < 0 || !f->touched)
			continue;
		if (fsync(f->fd) != 0 || (f->fresh && fsync_parent_dir(f->path) != 0)) {
			snprintf(err, sizeof(err), "cannot sync %.400s: %s", f->path, strerror(errno));
			ok = false;
		}
	}
	if (!ok) {
		pass_undo(a);
		pass_error(a, err[0] ? err : "out of memory");
		done = 0;
	} else if (store_archive_mark(a->st, ids, fin, done, now_ms()) != STORE_OK) {
		/* the lines stay: the events are archived again next time */
		pass_error(a, "cannot mark archived events in the store");
		done = 0;
		ok = false;
	}
	if (done)
		metrics_archive_events((int)done);
	if (ok && n < ARCHIVE_BATCH)
		close_past_hours(a);   /* caught up: a backlog of an old hour keeps its file */
	store_events_free(rows, n);
	free(ids);
	free(fin);
	/* a pass cut short says "more": the next one follows at once */
	return ok ? (cut_short ? ARCHIVE_BATCH : (int)done) : -1;
}

/* One daemon at a time on a shared store: while another one writes its
 * pass, this one has nothing to do (what it would take is that one's). */
static int pass(struct archiver *a)
{
	int k;

	if (!store_trylock(a->st, "job:archive"))
		return 0;
	k = pass_locked(a);
	store_unlock(a->st, "job:archive");
	return k;
}

static void *archiver_main(void *arg)
{
	struct archiver *a = arg;

	pthread_setname_np(pthread_self(), "lqs-archive");
	for (;;) {
		int k = pass(a);
		struct config_ref *ref = config_current();
		int64_t wait_ms = (int64_t)(ref->cfg.archive_interval * 1000);
		config_put(ref);
		pthread_mutex_lock(&a->mu);
		if (a->stopping) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		if (k < ARCHIVE_BATCH) {
			struct timespec until = deadline_in_us(wait_ms * 1000);
			while (!a->stopping && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT)
				;
		}
		pthread_mutex_unlock(&a->mu);
	}
	/* what finished before the stop is archived before the store closes */
	while (pass(a) == ARCHIVE_BATCH)
		;
	return NULL;
}

/* ---- torn lines ---- */

static const char *repair_prefix;
static int repaired;
static struct archiver *compressing;   /* archive_gzip at start: the archiver */

static int repair_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	const char *base = path + ftw->base;
	size_t bl = strlen(base);
	char buf[65536];
	off_t end, cut = 0;
	int fd;

	if (type != FTW_F || strncmp(base, repair_prefix, strlen(repair_prefix)) != 0 || bl < 7 ||
	    strcmp(base + bl - 7, ".ndjson") != 0)
		return 0;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	end = lseek(fd, 0, SEEK_END);
	/* the last newline: the file ends right after it */
	for (off_t at = end; at > 0 && !cut;) {
		size_t k = at > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)at;
		at -= (off_t)k;
		if (pread(fd, buf, k, at) != (ssize_t)k)
			break;
		for (size_t i = k; i-- > 0;)
			if (buf[i] == '\n') {
				cut = at + (off_t)i + 1;   /* cut == end: ends in a newline, whole */
				break;
			}
	}
	if (compressing && cut == end) {
		/* a file of an earlier run, whole: compress it once its hour is
		 * well over; a .gz beside it is a compression cut short */
		char gz[4096];
		struct stat st;
		if ((size_t)snprintf(gz, sizeof(gz), "%s.gz", path) < sizeof(gz) && stat(gz, &st) == 0)
			unlink(gz);
		if (sb->st_mtime < time(NULL) - 2 * 3600) {
			close(fd);
			compress_closed(compressing, path);
			return 0;
		}
	}
	if (cut != end && end > 0) {
		if (ftruncate(fd, cut) == 0 && fsync(fd) == 0) {
			log_warn("archive: %s ended in a line cut short by a crash: %lld byte(s) removed (the event is "
				 "archived again)", path, (long long)(end - cut));
			repaired++;
		} else {
			log_error("archive: cannot repair %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	return 0;
}

int archive_repair(const char *dir, const char *host)
{
	char prefix[192];

	snprintf(prefix, sizeof(prefix), ARCHIVE_FILE_PREFIX, host);
	repair_prefix = prefix;
	repaired = 0;
	if (nftw(dir, repair_one, 16, FTW_PHYS) != 0 && errno != ENOENT)
		return -1;
	return repaired;
}

/* ---- start, stop ---- */

void archive_host_name(char *out, size_t n)
{
	char h[256] = "";

	if (gethostname(h, sizeof(h) - 1) != 0 || !h[0])
		str_copy(h, "localhost", sizeof(h));
	/* a file name part: letters, digits, dot, underscore (a dash would make
	 * the host ambiguous in lqs-hookd-HOST-TIMESTAMP) */
	for (char *p = h; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_'))
			*p = '_';
	str_copy(out, h, n);
}

struct archiver *archiver_start(struct store *st, const char *dir, bool gzip, char *err, size_t errlen)
{
	struct archiver *a = calloc(1, sizeof(*a));

	if (!a || !(a->dir = strdup(dir))) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->st = st;
	archive_host_name(a->host, sizeof(a->host));
	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++)
		file_close(&a->files[i]);
	if (make_dirs(dir) != 0 || access(dir, W_OK) != 0) {
		snprintf(err, errlen, "archive_dir %.3000s: %s", dir, strerror(errno));
		free(a->dir);
		free(a);
		return NULL;
	}
	compressing = a;
	a->gzip = gzip;
	archive_repair(dir, a->host);
	compressing = NULL;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	ratelog_init(&a->errors, "archive errors");
	a->started = pthread_create(&a->thread, NULL, archiver_main, a) == 0;
	if (!a->started) {
		snprintf(err, errlen, "cannot start the archive thread");
		archiver_stop(a);
		return NULL;
	}
	log_info("archive: finished events go to %s (partitioned by finish hour, UTC)", dir);
	return a;
}

void archiver_stop(struct archiver *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->started)
		pthread_join(a->thread, NULL);
	for (int i = 0; i < ARCHIVE_OPEN_FILES; i++)
		file_close(&a->files[i]);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	ratelog_destroy(&a->errors);
	free(a->dir);
	free(a);
}
