package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"testing"
	"time"

	"tillagent/sync/wire"
)

// BenchmarkRetakeJournal: head office A takes BenchmarkIngest's workload
// (TILLAGENT_BENCH_TILLS tills, 100 by default, of 1,000 entries each) and
// ERP exports it in pages of 10,000; head office B, as restored from a
// backup older than all of it, with the same cards and tills, takes the
// export back (JournalCopy.ReadExport, then RetakeJournal). Reports
// entries/s of the retake (reading the export into the copy included), the
// seconds the reading took, the export's and the copy's MB, and
// heap-peak-MB and live-heap-MB over the heap before it (the export's
// bytes are not counted: a file is read as it streams).
//
//	go test -run '^$' -bench RetakeJournal -benchtime 1x ./sync/headoffice/
func BenchmarkRetakeJournal(b *testing.B) {
	ctx := context.Background()
	tills := envCount("TILLAGENT_BENCH_TILLS", benchTills)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := openTest(b)
		seedBenchCards(b, a)
		n := 0
		for _, t := range benchWorkload(b, a, tills) {
			for _, batch := range t.entries {
				if _, err := a.Ingest(ctx, &wire.Batch{TillID: t.till, Entries: batch}); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
			}
		}
		var export bytes.Buffer
		for cursor := ""; ; {
			p, err := a.ExportJournal(ctx, cursor, MaxExportLimit)
			if err != nil {
				b.Fatal(err)
			}
			if err := json.NewEncoder(&export).Encode(p); err != nil {
				b.Fatal(err)
			}
			if !p.More {
				break
			}
			cursor = p.Cursor
		}
		dst := openTest(b)
		seedBenchCards(b, dst)
		benchWorkload(b, dst, tills) // enrols the same tills
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		heap := sampleHeap()
		b.StartTimer()
		t0 := time.Now()
		c, err := NewJournalCopy(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if err := c.ReadExport(bytes.NewReader(export.Bytes())); err != nil {
			b.Fatal(err)
		}
		if c.Entries() != n {
			b.Fatalf("the export holds %d entries, want %d", c.Entries(), n)
		}
		read := time.Since(t0)
		rs, err := dst.RetakeJournal(ctx, c, nil)
		elapsed := time.Since(t0)
		b.StopTimer()
		peak, live := heap.Stop()
		if err != nil {
			b.Fatal(err)
		}
		applied := 0
		for _, r := range rs {
			if r.Err != "" || r.Waiting != 0 || r.Conflict+r.Rejected != 0 {
				b.Fatalf("till %s: %+v", r.TillID, r)
			}
			applied += r.Applied
		}
		if applied != n {
			b.Fatalf("%d entries applied, want %d", applied, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
		b.ReportMetric(read.Seconds(), "read-s")
		b.ReportMetric(float64(export.Len())/(1<<20), "export-MB")
		b.ReportMetric(float64(dirBytes(b, c.dir))/(1<<20), "copy-MB")
		b.ReportMetric(float64(peak-min(peak, before.HeapAlloc))/(1<<20), "heap-peak-MB")
		b.ReportMetric(float64(live-min(live, before.HeapAlloc))/(1<<20), "live-heap-MB")
	}
}

// dirBytes is the size of the files in dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	es, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range es {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
