package api

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Metrics is a small Prometheus text-format registry: counters keyed by
// name and labels, and gauges read when scraped.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]map[string]float64 // name → rendered labels → value
	help     map[string]string
	gauges   []gauge
}

type gauge struct {
	name, help string
	read       func(context.Context) (float64, error)
}

// NewMetrics returns an empty registry with the agent's metric help texts.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]map[string]float64{}, help: map[string]string{
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
	}}
}

// Add increases a counter; labels are name, value pairs.
func (m *Metrics) Add(name string, v float64, labels ...string) {
	var sb strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=%q", labels[i], labels[i+1])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = map[string]float64{}
		m.counters[name] = c
	}
	c[sb.String()] += v
}

// Gauge registers a value read at every scrape.
func (m *Metrics) Gauge(name, help string, read func(context.Context) (float64, error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gauges = append(m.gauges, gauge{name, help, read})
}

// Write renders every metric in the text exposition format. Its gauges
// are read with a ctx of this scrape alone, so gauges backed by one
// reading can share it (and read again at the next scrape).
func (m *Metrics) Write(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	names := make([]string, 0, len(m.counters))
	for n := range m.counters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if h := m.help[n]; h != "" {
			fmt.Fprintf(w, "# HELP %s %s\n", n, h)
		}
		fmt.Fprintf(w, "# TYPE %s counter\n", n)
		keys := make([]string, 0, len(m.counters[n]))
		for k := range m.counters[n] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" {
				fmt.Fprintf(w, "%s %g\n", n, m.counters[n][k])
			} else {
				fmt.Fprintf(w, "%s{%s} %g\n", n, k, m.counters[n][k])
			}
		}
	}
	gauges := append([]gauge(nil), m.gauges...)
	m.mu.Unlock()
	for _, g := range gauges {
		v, err := g.read(ctx)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", g.name, g.help, g.name, g.name, v)
	}
}
