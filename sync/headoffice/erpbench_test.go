package headoffice

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchImportCards is the cards of BenchmarkERPImport:
// TILLAGENT_BENCH_CARDS, else 20,000.
func benchImportCards() int { return envCount("TILLAGENT_BENCH_CARDS", 20000) }

// envCount is the positive integer in the environment variable name, else
// def.
func envCount(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// heapPeak samples the heap (runtime/metrics, no stop-the-world) until
// stopped, keeping the highest values of the bytes in heap objects (live
// and garbage not yet swept: what the process holds) and of the live heap
// the last GC marked (what the work keeps reachable, GC pacing aside).
type heapPeak struct {
	stop       chan struct{}
	done       sync.WaitGroup
	peak, live uint64
}

func sampleHeap() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		read := func() {
			metrics.Read(s)
			h.peak, h.live = max(h.peak, s[0].Value.Uint64()), max(h.live, s[1].Value.Uint64())
		}
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-h.stop:
				read() // what the measured work left, garbage included
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// Stop ends the sampling and returns the peaks: heap objects, live heap.
func (h *heapPeak) Stop() (peak, live uint64) {
	close(h.stop)
	h.done.Wait()
	return h.peak, h.live
}

// BenchmarkERPImport: one ERP import (Server.Import, in one transaction) of
// N new cards with one lot each into a head office holding the demo.
// Reports cards/s; alloc-MB, what the import allocated (the replica is
// built before, not counted); heap-before-MB, the heap after a GC before
// it (mostly the replica itself); heap-peak-MB and heap-growth-MB (peak −
// before), the heap objects during the import, garbage not yet collected
// included (GC pacing lets it reach about twice the live heap);
// live-heap-growth-MB, the most the import kept reachable on top of its
// input at any GC during it; validate-heap-growth-MB, heap-growth of the
// replica's validation alone (store.Replica.Validate, which Import runs
// first: its sets of keys grow with the cards).
//
//	TILLAGENT_BENCH_CARDS=200000 go test -run '^$' -bench ERPImport -benchtime 1x ./sync/headoffice/
func BenchmarkERPImport(b *testing.B) {
	ctx := context.Background()
	n := benchImportCards()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openTest(b)
		if _, err := s.Import(ctx, demoReplica(b)); err != nil {
			b.Fatal(err)
		}
		r := massCards("2960", n, 1)
		// The replica's own validation alone (its sets of keys), for
		// comparison: Import runs it first.
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		peak := sampleHeap()
		if err := r.Validate(func(string, string) (bool, error) { return true, nil }); err != nil {
			b.Fatal(err)
		}
		vpeak, _ := peak.Stop()
		validateGrowth := max(vpeak, m0.HeapAlloc) - m0.HeapAlloc
		runtime.GC()
		runtime.ReadMemStats(&m0)
		peak = sampleHeap()
		b.StartTimer()
		t0 := time.Now()
		st, err := s.Import(ctx, r)
		elapsed := time.Since(t0)
		b.StopTimer()
		top, live := peak.Stop()
		runtime.ReadMemStats(&m1)
		if err != nil || st.Cards != n || st.Lots != n {
			b.Fatalf("import: %+v, %v; want %d cards and lots", st, err, n)
		}
		runtime.KeepAlive(r)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "cards/s")
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/1e6, "alloc-MB")
		b.ReportMetric(float64(m0.HeapAlloc)/1e6, "heap-before-MB")
		b.ReportMetric(float64(top)/1e6, "heap-peak-MB")
		b.ReportMetric(float64(top-min(top, m0.HeapAlloc))/1e6, "heap-growth-MB")
		b.ReportMetric(float64(max(live, m0.HeapAlloc)-m0.HeapAlloc)/1e6, "live-heap-growth-MB")
		b.ReportMetric(float64(validateGrowth)/1e6, "validate-heap-growth-MB")
	}
}
