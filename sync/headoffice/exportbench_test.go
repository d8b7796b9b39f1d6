package headoffice

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkExportJournal: ERP pages through the whole journal export (the
// default 1,000 entries a page) of a journal of TILLAGENT_BENCH_ENTRIES
// entries (300,000 by default), written by 50,000 a transaction. Reports
// entries/s and the pages' p50 and p99. Each page is an index range scan
// from its cursor; until the export ordered by the output column
// xid::text it was a scan and sort of the whole journal, every page.
//
//	go test -run '^$' -bench ExportJournal -benchtime 1x ./sync/headoffice/
func BenchmarkExportJournal(b *testing.B) {
	ctx := context.Background()
	n := envCount("TILLAGENT_BENCH_ENTRIES", 300000)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openTest(b)
		for from := 1; from <= n; from += 50000 {
			if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded)
				SELECT 'B001-T01-' || lpad(g::text, 26, '0'), 'B001-T01', '3100000000001', 'accrual', 10,
					json_build_object('id', 'B001-T01-' || lpad(g::text, 26, '0'), 'points', 10), '\x00', true
				FROM generate_series($1::int, least($1::int + 49999, $2::int)) g`, from, n); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.db.Exec(ctx, `ANALYZE journal`); err != nil {
			b.Fatal(err)
		}
		var pages []time.Duration
		got := 0
		b.StartTimer()
		t0 := time.Now()
		for cursor := ""; ; {
			p0 := time.Now()
			p, err := s.ExportJournal(ctx, cursor, 0)
			if err != nil {
				b.Fatal(err)
			}
			pages = append(pages, time.Since(p0))
			got += len(p.Entries)
			if !p.More {
				break
			}
			cursor = p.Cursor
		}
		elapsed := time.Since(t0)
		b.StopTimer()
		if got != n {
			b.Fatalf("exported %d entries, want %d", got, n)
		}
		slices.Sort(pages)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
		b.ReportMetric(float64(pages[len(pages)/2].Microseconds())/1000, "page-p50-ms")
		b.ReportMetric(float64(pages[len(pages)*99/100].Microseconds())/1000, "page-p99-ms")
	}
}
