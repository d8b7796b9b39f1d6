package api

import "tillagent/internal/metrics"

// Metrics is the agent's registry (internal/metrics), served at /metrics.
type Metrics = metrics.Registry

// NewMetrics returns an empty registry with the agent's metric help texts.
func NewMetrics() *Metrics {
	return metrics.New(map[string]string{
		"tillagent_sales_total":          "Sales by outcome (done, refused, unknown).",
		"tillagent_returns_total":        "Returns by outcome (done, refused, unknown).",
		"tillagent_printer_errors_total": "Printer refusals by health code.",
		"tillagent_receipts_total":       "Fiscal receipts printed and journaled, by kind (sale, return).",
		"tillagent_scans_total":          "Scans by device and classification.",
		"tillagent_scanner_health_total": "Scanner health transitions by device and code.",
		"tillagent_http_requests_total":  "API requests by route and status.",
		"tillagent_http_refused_total":   "API requests refused by the guard, by code.",
		"tillagent_api_refused_total":    "Sales, returns and other requests refused for their content or the devices' state, by code (payment.change_over, printer.paper_out, ...).",
		"tillagent_event_resumes_total":  "Event streams resumed after an id (resumed), caught up after falling behind (behind), or given a gap (restarted, too_old, unknown).",
	})
}
