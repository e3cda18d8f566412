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
#include <stddef.h>
#include <stdint.h>

struct config;
struct exchange;

/* Does the dashboard keep ex's record: an API request, and the admin
 * listener (and so the dashboard) is configured? Any thread. */
int stats_keeps(const struct exchange *ex);
/* The exchange's last unref, any thread: keep its record (observe_record's
 * JSON; taken over) in the ring. Borrows ex. */
void stats_request(const struct exchange *ex, char *record, size_t len);

/* The /admin/stats answer for cfg (owned by the caller): {"time",
 * "uptime_s", "version", "metrics", "recent", "breakers", "routes",
 * "otel", "capture_content"}; uptime_s counts from started_us
 * (now_us()'s clock: the server's start). */
json_t *stats_json(const struct config *cfg, uint64_t started_us);

/* Drop the ring's records (at exit). */
void stats_free(void);

#endif
