/* The PostgreSQL store's schema: its tables at the newest version, the
 * steps that bring an older database up to it, and the refusal of a newer
 * one. */
#include "pg_int.h"

#include <stdio.h>
#include <string.h>

/* The newest schema this build knows; a newer database is refused. */
#define PG_SCHEMA_VERSION 1

/* Version 1. Times are ms since the epoch; ids are text UUIDs. tx is the
 * writing transaction (the change feed's order). */
static const char schema_v1[] =
	"CREATE TABLE lqs_hookd_schema (version integer NOT NULL);"
	"CREATE TABLE events ("
	"  seq bigserial PRIMARY KEY,"
	"  tx xid8 NOT NULL DEFAULT pg_current_xact_id(),"
	"  id text NOT NULL UNIQUE,"
	"  received_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  process_type text NOT NULL,"
	"  current_state text NOT NULL,"
	"  resource_id text NOT NULL,"
	"  dedupe_key text NOT NULL,"
	"  body text NOT NULL,"
	"  handler text,"
	"  state text NOT NULL,"
	"  attempts integer NOT NULL DEFAULT 0,"
	"  next_run_at bigint NOT NULL DEFAULT 0,"
	"  result text,"
	"  error text,"
	"  finished_at bigint,"
	"  flags integer NOT NULL DEFAULT 0,"
	"  progress text,"
	"  owner text,"
	"  lease_until bigint,"
	"  source text,"
	"  archived_at bigint"
	");"
	"CREATE INDEX events_queued ON events(seq) WHERE state = 'queued';"
	"CREATE INDEX events_retrying ON events(next_run_at) WHERE state = 'retrying';"
	"CREATE INDEX events_running ON events(resource_id) WHERE state = 'running';"
	"CREATE INDEX events_failed ON events(seq) WHERE state = 'failed';"
	"CREATE INDEX events_resource ON events(resource_id);"
	"CREATE INDEX events_feed ON events(tx, seq);"
	"CREATE INDEX events_unarchived ON events(finished_at) WHERE finished_at IS NOT NULL AND archived_at IS NULL;"
	"CREATE TABLE history ("
	"  seq bigserial PRIMARY KEY,"
	"  tx xid8 NOT NULL DEFAULT pg_current_xact_id(),"
	"  event_id text NOT NULL,"
	"  step text NOT NULL,"
	"  started_at bigint NOT NULL,"
	"  ended_at bigint,"
	"  detail text,"
	"  error text"
	");"
	"CREATE INDEX history_event ON history(event_id, seq);"
	"CREATE INDEX history_feed ON history(tx, seq);"
	"CREATE TABLE sweeps ("
	"  name text PRIMARY KEY,"
	"  started_at bigint NOT NULL DEFAULT 0,"
	"  finished_at bigint NOT NULL DEFAULT 0,"
	"  found bigint NOT NULL DEFAULT 0,"
	"  enqueued bigint NOT NULL DEFAULT 0,"
	"  duplicates bigint NOT NULL DEFAULT 0,"
	"  runs bigint NOT NULL DEFAULT 0,"
	"  errors bigint NOT NULL DEFAULT 0,"
	"  error text,"
	"  owner text"
	");"
	"CREATE TABLE objects ("
	"  seq bigserial PRIMARY KEY,"
	"  id text NOT NULL UNIQUE,"
	"  received_at bigint NOT NULL,"
	"  dedupe_key text NOT NULL UNIQUE,"
	"  bucket text NOT NULL,"
	"  key text NOT NULL,"
	"  kind text NOT NULL,"
	"  size bigint,"
	"  etag text,"
	"  version_id text,"
	"  sequencer text,"
	"  event_name text,"
	"  event_at bigint,"
	"  format text,"
	"  watch text,"
	"  role text NOT NULL,"
	"  batch_id text"
	");"
	"CREATE INDEX objects_batch ON objects(batch_id, seq) WHERE batch_id IS NOT NULL;"
	"CREATE TABLE batches ("
	"  seq bigserial PRIMARY KEY,"
	"  tx xid8 NOT NULL DEFAULT pg_current_xact_id(),"
	"  id text NOT NULL UNIQUE,"
	"  watch text NOT NULL,"
	"  bucket text NOT NULL,"
	"  prefix text NOT NULL,"
	"  state text NOT NULL,"
	"  opened_at bigint NOT NULL,"
	"  last_object_at bigint NOT NULL,"
	"  closed_at bigint,"
	"  due_at bigint,"
	"  objects bigint NOT NULL DEFAULT 0,"
	"  trigger text,"
	"  count_limit bigint NOT NULL DEFAULT 0,"
	"  quiet_ms bigint NOT NULL DEFAULT 0,"
	"  max_age_ms bigint NOT NULL DEFAULT 0,"
	"  reason text,"
	"  trigger_event_id text"
	");"
	"CREATE UNIQUE INDEX batches_open ON batches(watch, bucket, prefix) WHERE state = 'open';"
	"CREATE INDEX batches_due ON batches(due_at) WHERE state = 'open' AND due_at IS NOT NULL;"
	"CREATE INDEX batches_feed ON batches(tx, seq);"
	"INSERT INTO lqs_hookd_schema VALUES (1);";

/* Upgrades: steps[v] brings version v to v + 1 (none yet). */
static const char *const upgrades[PG_SCHEMA_VERSION + 1] = { NULL, NULL };

/* Create the schema, or bring it up to date, one daemon at a time. */
int pg_prepare_schema(struct pgs *st, PGconn *c, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, "SELECT pg_advisory_lock(7461626c65)");
	int64_t v = 0;
	int rc = -1;

	PQclear(r);
	r = PQexec(c, "SELECT to_regclass('lqs_hookd_schema') IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "cannot read the schema of PostgreSQL store %s: %s", st->target, PQerrorMessage(c));
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		PQclear(r);
		r = PQexec(c, "SELECT max(version) FROM lqs_hookd_schema");
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(err, errlen, "cannot read the schema version of PostgreSQL store %s: %s", st->target,
				 PQerrorMessage(c));
			goto out;
		}
		v = pg_int(r, 0, 0);
	}
	PQclear(r);
	r = NULL;
	if (v < 0)
		v = 0;
	if (v > PG_SCHEMA_VERSION) {
		snprintf(err, errlen, "PostgreSQL store %s has schema version %lld, newer than this lqs-hookd knows (%d): "
			 "run the newer lqs-hookd on every host, or restore a backup taken before the upgrade",
			 st->target, (long long)v, PG_SCHEMA_VERSION);
		goto out;
	}
	for (; v < PG_SCHEMA_VERSION; v++) {
		char sql[256];
		const char *step = v <= 0 ? schema_v1 : upgrades[v];
		r = PQexec(c, "BEGIN");
		PQclear(r);
		r = PQexec(c, step);
		if (PQresultStatus(r) == PGRES_COMMAND_OK && v > 0) {
			PQclear(r);
			snprintf(sql, sizeof(sql), "UPDATE lqs_hookd_schema SET version = %lld", (long long)v + 1);
			r = PQexec(c, sql);
		}
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "cannot %s PostgreSQL store %s%s: %s", v ? "upgrade" : "create the schema of",
				 st->target, v ? " from its version" : "", PQerrorMessage(c));
			err[strcspn(err, "\n")] = '\0';
			PQclear(r);
			r = PQexec(c, "ROLLBACK");
			goto out;
		}
		PQclear(r);
		r = PQexec(c, "COMMIT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "cannot commit the schema of PostgreSQL store %s: %s", st->target,
				 PQerrorMessage(c));
			goto out;
		}
		PQclear(r);
		r = NULL;
	}
	rc = 0;
out:
	PQclear(r);
	r = PQexec(c, "SELECT pg_advisory_unlock(7461626c65)");
	PQclear(r);
	return rc;
}
