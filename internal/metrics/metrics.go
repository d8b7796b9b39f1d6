// Package metrics is a small Prometheus text-format registry: counters
// and histograms keyed by name and labels, and gauges and counters read
// when scraped. The agent and head office both serve it at /metrics.
package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry holds the metrics of one process.
type Registry struct {
	mu       sync.Mutex
	counters map[string]map[string]float64 // name → rendered labels → value
	hists    map[string]map[string]*hist   // name → rendered labels → buckets
	buckets  map[string][]float64          // histogram name → upper bounds
	help     map[string]string
	reads    []read
}

type read struct {
	name, help, kind string // kind: gauge or counter
	fn               func(context.Context) (float64, error)
}

type hist struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

// New returns an empty registry; help holds the help texts of the
// counters and histograms by name.
func New(help map[string]string) *Registry {
	return &Registry{counters: map[string]map[string]float64{}, hists: map[string]map[string]*hist{},
		buckets: map[string][]float64{}, help: help}
}

// labels renders name, value pairs as Prometheus labels.
func labels(kv []string) string {
	var sb strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(kv[i])
		sb.WriteString(`="`)
		sb.WriteString(labelEscaper.Replace(strings.ToValidUTF8(kv[i+1], "\uFFFD")))
		sb.WriteByte('"')
	}
	return sb.String()
}

// labelEscaper escapes a label value as the text format reads it: only
// backslash, double quote and line feed (Go's %q escapes, \t and \xff,
// it does not know).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Add increases a counter; labels are name, value pairs.
func (m *Registry) Add(name string, v float64, kv ...string) {
	l := labels(kv)
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = map[string]float64{}
		m.counters[name] = c
	}
	c[l] += v
}

// Buckets sets a histogram's upper bounds (ascending), before its first
// Observe; one without them gets DefaultBuckets. Once a histogram has
// counts its bounds stay.
func (m *Registry) Buckets(name string, upper []float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.hists[name]) == 0 {
		m.buckets[name] = upper
	}
}

// DefaultBuckets are request durations in seconds, 5 ms to 10 s.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Observe counts v into a histogram; labels are name, value pairs.
func (m *Registry) Observe(name string, v float64, kv ...string) {
	l := labels(kv)
	m.mu.Lock()
	defer m.mu.Unlock()
	up, ok := m.buckets[name]
	if !ok {
		up = DefaultBuckets
		m.buckets[name] = up
	}
	hs := m.hists[name]
	if hs == nil {
		hs = map[string]*hist{}
		m.hists[name] = hs
	}
	h := hs[l]
	if h == nil {
		h = &hist{counts: make([]uint64, len(up)+1)}
		hs[l] = h
	}
	i := sort.SearchFloat64s(up, v) // the first bound ≥ v; len(up): +Inf
	h.counts[i]++
	h.sum += v
	h.n++
}

// Gauge registers a value read at every scrape.
func (m *Registry) Gauge(name, help string, fn func(context.Context) (float64, error)) {
	m.addRead(read{name, help, "gauge", fn})
}

// CounterFunc registers a counter kept elsewhere (an atomic the code
// already has), read at every scrape.
func (m *Registry) CounterFunc(name, help string, fn func(context.Context) (float64, error)) {
	m.addRead(read{name, help, "counter", fn})
}

func (m *Registry) addRead(r read) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, r)
}

// Write renders every metric in the text exposition format. The read
// metrics are read with a ctx of this scrape alone, so those backed by
// one reading can share it (and read again at the next scrape); one whose
// read fails is left out of this scrape.
func (m *Registry) Write(ctx context.Context, out io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Rendered into a buffer under the lock, written after it: a scraper
	// that stops reading must not hold up every Add and Observe.
	var buf bytes.Buffer
	w := &buf
	defer func() { out.Write(buf.Bytes()) }()
	m.mu.Lock()
	for _, n := range sortedKeys(m.counters) {
		m.header(w, n, "counter")
		for _, k := range sortedKeys(m.counters[n]) {
			fmt.Fprintf(w, "%s%s %g\n", n, braced(k), m.counters[n][k])
		}
	}
	for _, n := range sortedKeys(m.hists) {
		m.header(w, n, "histogram")
		up := m.buckets[n]
		for _, k := range sortedKeys(m.hists[n]) {
			h := m.hists[n][k]
			var cum uint64
			for i, c := range h.counts {
				cum += c
				le := "+Inf"
				if i < len(up) {
					le = strconv.FormatFloat(up[i], 'g', -1, 64)
				}
				fmt.Fprintf(w, "%s_bucket%s %d\n", n, braced(joinLabels(k, fmt.Sprintf("le=%q", le))), cum)
			}
			fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", n, braced(k), h.sum, n, braced(k), h.n)
		}
	}
	reads := append([]read(nil), m.reads...)
	m.mu.Unlock()
	for _, r := range reads {
		v, err := r.fn(ctx)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", r.name, r.help, r.name, r.kind, r.name, v)
	}
}

func (m *Registry) header(w io.Writer, name, kind string) {
	if h := m.help[name]; h != "" {
		fmt.Fprintf(w, "# HELP %s %s\n", name, h)
	}
	fmt.Fprintf(w, "# TYPE %s %s\n", name, kind)
}

func braced(l string) string {
	if l == "" {
		return ""
	}
	return "{" + l + "}"
}

func joinLabels(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
