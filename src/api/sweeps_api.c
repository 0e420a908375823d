/* The sweeps, for operators: GET /sweeps (each one's settings, last run
 * and next run) and POST /sweeps/NAME/run (run it now and say what it
 * enqueued; the connection waits, suspended, while the sweeper runs it). */
#include "../http/http_int.h"

#include <string.h>

#include "lqs-hookd/util.h"

enum MHD_Result api_sweeps_list(struct http *h, struct MHD_Connection *c, struct req *r)
{
	(void)r;
	if (!h->sw)
		return reply_detail(c, 503, "sweeps are not running", NULL, NULL);
	return reply_json(c, 200, sweeper_status(h->sw), NULL, NULL);
}

/* On the sweeper's thread: the run is over. */
static void on_swept(struct sweep_request *s)
{
	struct req *r = s->ctx;

	r->sweep_done = true;
	MHD_resume_connection(r->conn);   /* r may be answered and freed from here on */
}

enum MHD_Result api_sweep_run(struct http *h, struct MHD_Connection *c, struct req *r)
{
	if (r->sweep_done) {
		json_t *report = r->sweep.report;
		r->sweep.report = NULL;
		return reply_json(c, r->sweep.status, report, NULL, NULL);
	}
	if (r->sweep_asked)
		return MHD_YES;   /* resumed early: wait for the run */
	if (!h->sw)
		return reply_detail(c, 503, "sweeps are not running", NULL, NULL);
	if (str_copy(r->sweep.name, r->id, sizeof(r->sweep.name)) >= sizeof(r->sweep.name))
		return reply_detail(c, 404, "no sweep of that name", NULL, NULL);
	r->sweep.done = on_swept;
	r->sweep.ctx = r;
	r->conn = c;
	r->sweep_asked = true;
	/* suspend first, so that the sweeper's resume cannot come before it */
	MHD_suspend_connection(c);
	if (!sweeper_request(h->sw, &r->sweep)) {
		r->sweep.status = 503;
		r->sweep.report = json_pack("{s:s}", "detail", "stopping; run the sweep again once the daemon is back");
		r->sweep_done = true;
		MHD_resume_connection(c);   /* answered at the next call */
	}
	return MHD_YES;
}
