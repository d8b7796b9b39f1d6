package metrics

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestWrite: counters and histograms by labels in name and label order,
// histogram buckets cumulative with +Inf, sum and count; read metrics at
// every scrape, one whose read fails left out.
func TestWrite(t *testing.T) {
	m := New(map[string]string{"req_total": "Requests.", "dur_seconds": "Durations."})
	m.Add("req_total", 1, "route", "b", "code", "200")
	m.Add("req_total", 2, "route", "a", "code", "200")
	m.Add("req_total", 1, "route", "a", "code", "200")
	m.Add("plain_total", 1)
	m.Buckets("dur_seconds", []float64{0.1, 1})
	for _, v := range []float64{0.05, 0.1, 0.5, 3} {
		m.Observe("dur_seconds", v, "route", "a")
	}
	n := 0
	m.Gauge("g", "A gauge.", func(context.Context) (float64, error) { n++; return float64(n), nil })
	m.CounterFunc("c_total", "A counter kept elsewhere.", func(context.Context) (float64, error) { return 7, nil })
	m.Gauge("broken", "Fails.", func(context.Context) (float64, error) { return 0, errors.New("no database") })
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	want := `# TYPE plain_total counter
plain_total 1
# HELP req_total Requests.
# TYPE req_total counter
req_total{route="a",code="200"} 3
req_total{route="b",code="200"} 1
# HELP dur_seconds Durations.
# TYPE dur_seconds histogram
dur_seconds_bucket{route="a",le="0.1"} 2
dur_seconds_bucket{route="a",le="1"} 3
dur_seconds_bucket{route="a",le="+Inf"} 4
dur_seconds_sum{route="a"} 3.65
dur_seconds_count{route="a"} 4
# HELP g A gauge.
# TYPE g gauge
g 1
# HELP c_total A counter kept elsewhere.
# TYPE c_total counter
c_total 7
`
	if b.String() != want {
		t.Fatalf("scrape:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	m.Write(context.Background(), &b)
	if !bytes.Contains(b.Bytes(), []byte("\ng 2\n")) {
		t.Errorf("second scrape did not read the gauge again:\n%s", b.String())
	}
}
