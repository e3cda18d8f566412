/* stats.h - what the dashboard (GET /ui on the admin listener) shows:
 * the /admin/stats JSON and the ring of recent requests it lists.
 *
 * The numbers are the metrics registry's own (metrics_json), so the page
 * and /metrics can never disagree; the page computes rates, percentiles
 * (from the histograms' buckets, as Prometheus' histogram_quantile does),
 * acceptance rates and means from them. The ring keeps the last
 * STATS_RING_RECORDS requests' log records (log_request_json): the log
 * line's fields, never prompt text, unless otel.capture_content is on, when
 * a record also carries the start of the prompt.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <jansson.h>

struct config;
struct exchange;

/* The exchange's last unref, any thread: keep its record when the admin
 * listener (and so the dashboard) is configured. Borrows ex. */
void stats_request(const struct exchange *ex);

/* The /admin/stats answer for cfg (owned by the caller): {"time",
 * "uptime_s", "version", "metrics", "recent", "breakers", "routes",
 * "otel", "capture_content"}. */
json_t *stats_json(const struct config *cfg);

/* Drop the ring's records (at exit). */
void stats_free(void);

#endif
