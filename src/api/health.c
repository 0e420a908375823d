/* Health, readiness and the metrics endpoint. */
#include "../http/http_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "lqs-hookd/lqs_check.h"
#include "lqs-hookd/metrics.h"
#include "lqs-hookd/sqs.h"
#include "lqs-hookd/worker.h"

enum MHD_Result api_healthz(struct http *h, struct MHD_Connection *c, struct req *r)
{
	(void)h;
	(void)r;
	return reply_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
}

enum MHD_Result api_readyz(struct http *h, struct MHD_Connection *c, struct req *r)
{
	char why[2048], msg[2200];

	if (workers_alive(h->w) <= 0)
		return reply_detail(c, 503, "workers are not running", NULL, NULL);
	if (!store_writable(h->st))
		return reply_detail(c, 503, "event store is not writable", NULL, NULL);
	if (!sqs_running_ok(why, sizeof(why)))
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ready", "warning", why), NULL, NULL);
	if (lqs_check_state(why, sizeof(why)) == LQS_CHECK_FAILING) {
		snprintf(msg, sizeof(msg), "LogQS check failed: %s", why);
		if (r->cfg->cfg.readyz_requires_lqs)
			return reply_detail(c, 503, msg, NULL, NULL);
		return reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ready", "warning", msg), NULL, NULL);
	}
	return reply_json(c, 200, json_pack("{s:s}", "status", "ready"), NULL, NULL);
}

enum MHD_Result api_metrics(struct http *h, struct MHD_Connection *c, struct req *r)
{
	char *text = metrics_render();
	enum MHD_Result ret = reply_text(c, 200, text ? text : "", MHD_HTTP_HEADER_CONTENT_TYPE,
					 "text/plain; version=0.0.4; charset=utf-8");

	(void)h;
	(void)r;
	free(text);
	return ret;
}
