package metrics

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBucketBounds: a value exactly on an upper bound counts in that
// bucket (le is "less or equal"), one just above in the next; below the
// first bound, negative, and over the last bound land where they should;
// buckets are cumulative and _count is the +Inf bucket.
func TestBucketBounds(t *testing.T) {
	m := New(nil)
	m.Buckets("h", []float64{1, 2, 5})
	for _, v := range []float64{1, 2, 5, 1.0000001, 0, -3, 5.5, 1e300} {
		m.Observe("h", v)
	}
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	for _, want := range []string{
		"h_bucket{le=\"1\"} 3\n",    // 1, 0, -3
		"h_bucket{le=\"2\"} 5\n",    // + 2, 1.0000001
		"h_bucket{le=\"5\"} 6\n",    // + 5
		"h_bucket{le=\"+Inf\"} 8\n", // + 5.5, 1e300
		"h_count 8\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("scrape lacks %q:\n%s", want, b.String())
		}
	}
	// The default bounds: each one exactly.
	d := New(nil)
	for _, v := range DefaultBuckets {
		d.Observe("d", v, "route", "r")
	}
	b.Reset()
	d.Write(context.Background(), &b)
	for i, v := range DefaultBuckets {
		want := fmt.Sprintf("d_bucket{route=\"r\",le=\"%s\"} %d\n", fmtFloat(v), i+1)
		if !strings.Contains(b.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func fmtFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%g", v), ".0") }

// TestConcurrentUse: Add, Observe, Buckets of another histogram, a read
// metric registered, and Write from many goroutines (go test -race);
// the totals come out exact, and every scrape parses line by line.
func TestConcurrentUse(t *testing.T) {
	m := New(map[string]string{"c": "a counter"})
	var wg sync.WaitGroup
	const workers, n = 8, 500
	line := regexp.MustCompile(`^(# (HELP|TYPE) .+|[a-z_][a-z0-9_]*(\{[^}]*\})? [-+0-9.eInfNa]+)$`)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				m.Add("c", 1, "worker", fmt.Sprint(w%2))
				m.Observe("h", float64(i%20)/100, "route", "x")
			}
			m.Gauge(fmt.Sprintf("g%d", w), "a gauge", func(context.Context) (float64, error) { return float64(w), nil })
			m.Buckets(fmt.Sprintf("other%d", w), []float64{1})
		}(w)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var b bytes.Buffer
				m.Write(context.Background(), &b)
				for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
					if l != "" && !line.MatchString(l) {
						t.Errorf("scrape line %q", l)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	for _, want := range []string{
		fmt.Sprintf("c{worker=\"0\"} %d\n", workers/2*n),
		fmt.Sprintf("c{worker=\"1\"} %d\n", workers/2*n),
		fmt.Sprintf("h_count{route=\"x\"} %d\n", workers*n),
		"\ng7 7\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestLabelValues: label values are escaped as the text format reads
// them (\\, \", \n) and other text (Cyrillic device names) stays as it is.
func TestLabelValues(t *testing.T) {
	m := New(nil)
	m.Add("c", 1, "device", `Сканер "кассы" \1`+"\n")
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	if want := `c{device="Сканер \"кассы\" \\1\n"} 1` + "\n"; !strings.Contains(b.String(), want) {
		t.Errorf("scrape %q, want %q", b.String(), want)
	}
}

// TestLabelValueTab: a tab in a label value is written as it is: the
// Prometheus text format knows only the escapes \\, \" and \n, and a
// scraper refused a whole scrape holding Go's \t (strconv.Quote, as it
// was). The agent's "device" label is the operator's configuration.
func TestLabelValueTab(t *testing.T) {
	m := New(nil)
	m.Add("c", 1, "device", "a\tb")
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	if strings.Contains(b.String(), `\t`) {
		t.Errorf("scrape %q: \\t is not an escape of the text format (want the tab as it is)", b.String())
	}
}

// TestBucketsAfterObserve: Buckets called after a histogram has counts
// leaves its bounds alone; with more bounds, the next Observe indexed past
// the histogram's counts and panicked (from a request's middleware).
func TestBucketsAfterObserve(t *testing.T) {
	m := New(nil)
	m.Observe("h", 0.1)
	m.Buckets("h", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50})
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("Observe after Buckets panicked: %v", p)
		}
	}()
	m.Observe("h", 45)
}

// blockingWriter blocks its first Write until released.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started); <-w.release })
	return len(p), nil
}

// TestWriteHoldsLockOverIO: a scrape whose writer blocks (a scraper that
// stops reading) does not block Add and Observe, and with them every
// head-office request: Write renders under the lock and writes after it.
// It wrote while holding the lock.
func TestWriteHoldsLockOverIO(t *testing.T) {
	m := New(nil)
	m.Add("c", 1)
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	go m.Write(context.Background(), w)
	<-w.started
	added := make(chan struct{})
	go func() { m.Add("c", 1); close(added) }()
	select {
	case <-added:
	case <-time.After(500 * time.Millisecond):
		t.Errorf("Add blocked by a scrape whose writer is blocked")
	}
	close(w.release)
	<-added
}
