package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
	"tillagent/sync/client"
)

// BenchmarkFirstLoad: head office holds the demo plus N cards with 5 lots
// each (N = TILLAGENT_BENCH_CARDS, default 100,000); a fresh till loads it
// all through the paged feed over loopback HTTP (5,000 cards a page), then
// head office changes one lot of 10,000 cards and the till pulls that delta.
//
//	go test -run '^$' -bench FirstLoad -benchtime 1x ./sync/e2e/
//	TILLAGENT_BENCH_CARDS=1000000 go test -run '^$' -bench FirstLoad -benchtime 1x -timeout 30m ./sync/e2e/
//
// TILLAGENT_BENCH_DELTA_PROFILE=FILE writes a CPU profile of the delta
// alone (head office and till, one process).
func BenchmarkFirstLoad(b *testing.B) {
	ctx := context.Background()
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_CARDS")); err == nil && v >= 10000 {
		n = v
	}
	h := startHO(b, pgDSN(b))
	importDemo(b, h)
	seed := time.Now()
	db := h.srv.DB()
	cards := make([][]any, n)
	for i := range cards {
		cards[i] = []any{fmt.Sprintf("32%011d", i), "bonus", "active"}
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"code", "kind", "state"}, pgx.CopyFromRows(cards)); err != nil {
		b.Fatal(err)
	}
	acc := time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)
	exp := acc.AddDate(1, 0, 0)
	lots := pgx.CopyFromFunc(func() func() ([]any, error) {
		i := 0
		return func() ([]any, error) {
			if i == n*5 {
				return nil, nil
			}
			c, k := i/5, i%5
			i++
			return []any{fmt.Sprintf("32%011d", c), fmt.Sprintf("L%d", k), "100", "60", acc, acc, exp, ""}, nil
		}
	}())
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"lots"}, []string{"card", "lot_id", "points", "remaining", "accrued_at", "active_from", "expires_at", "check_id"}, lots); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d cards, %d lots at head office in %v", n, n*5, time.Since(seed).Round(time.Millisecond))
	p := newProxy(b, h.hs.URL)
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("S001-B%02d", i)
		secret, err := h.srv.Enrol(ctx, id, "S001")
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(ctx, store.Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: id})
		if err != nil {
			b.Fatal(err)
		}
		c, err := client.New(client.Options{URL: p.URL(), TillID: id, StoreID: "S001", Secret: secret, Store: st, RequestTimeout: 10 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		t0 := time.Now()
		if err := c.SyncNow(ctx); err != nil {
			b.Fatal(err)
		}
		load := time.Since(t0)
		b.StopTimer()
		if got := c.Status().LoadedCards; got != int64(n+8) {
			b.Fatalf("loaded %d cards, want %d", got, n+8)
		}
		if _, err := db.Exec(ctx, `WITH u AS (UPDATE lots SET remaining = remaining - 1
			WHERE lot_id = 'L0' AND card IN (SELECT code FROM cards WHERE code LIKE '32%' ORDER BY code LIMIT 10000) RETURNING card)
			INSERT INTO changes (section, key) SELECT 'cards', card FROM u`); err != nil {
			b.Fatal(err)
		}
		stopProfile := profileTo(b, os.Getenv("TILLAGENT_BENCH_DELTA_PROFILE"))
		t0 = time.Now()
		if err := c.SyncNow(ctx); err != nil {
			b.Fatal(err)
		}
		delta := time.Since(t0)
		stopProfile()
		if bal, err := st.Spendable(ctx, "3200000000000", time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)); err != nil || bal.Total.String() != "299" {
			b.Fatalf("card after the delta: %+v %v, want 299", bal, err)
		}
		b.ReportMetric(load.Seconds(), "first-load-s")
		b.ReportMetric(float64(n)/load.Seconds(), "cards/s")
		b.ReportMetric(float64(delta.Milliseconds()), "delta-10k-ms")
		st.Close()
		b.StartTimer()
	}
}

// profileTo starts a CPU profile into path (none if empty) and returns
// what stops it: for one part of a benchmark, as -cpuprofile takes all.
func profileTo(b *testing.B, path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// BenchmarkFetchCard: a till of a `home` store (S002, no home cards) asks
// head office, over loopback HTTP, for cards it lacks one at a time, as the
// cashier scans customers of other stores: head office holds the demo plus
// 100,000 cards of 5 lots each. Each fetch makes the card home to the store
// and imports it; reported: p50 and p99 of a fetch.
//
//	go test -run '^$' -bench FetchCard -benchtime 500x ./sync/e2e/
func BenchmarkFetchCard(b *testing.B) {
	ctx := context.Background()
	const n = 100000
	h := startHO(b, pgDSN(b))
	importDemo(b, h)
	if err := h.srv.SetCardScope(ctx, "S002", "home"); err != nil {
		b.Fatal(err)
	}
	db := h.srv.DB()
	cards := make([][]any, n)
	for i := range cards {
		cards[i] = []any{fmt.Sprintf("33%011d", i), "bonus", "active"}
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"code", "kind", "state"}, pgx.CopyFromRows(cards)); err != nil {
		b.Fatal(err)
	}
	acc := time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)
	lots := make([][]any, 0, 5*n)
	for i := range n * 5 {
		lots = append(lots, []any{fmt.Sprintf("33%011d", i/5), fmt.Sprintf("L%d", i%5), "100", "60", acc, acc, acc.AddDate(1, 0, 0), ""})
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"lots"}, []string{"card", "lot_id", "points", "remaining", "accrued_at", "active_from", "expires_at", "check_id"}, pgx.CopyFromRows(lots)); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(ctx, `ANALYZE cards; ANALYZE lots; ANALYZE card_stores`); err != nil {
		b.Fatal(err)
	}
	p := newProxy(b, h.hs.URL)
	tl := newTillWith(b, h, p, "S002-B01", "S002", 0, func(o *client.Options) { o.SnapshotPage = 5000 })
	if err := tl.c.SyncNow(ctx); err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code := fmt.Sprintf("33%011d", (i*7919)%n)
		t0 := time.Now()
		if err := tl.c.FetchCard(ctx, code); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	b.StopTimer()
	if bal, err := tl.st.Spendable(ctx, "3300000000000", demoNow); err != nil || bal.Total.String() != "300" {
		b.Fatalf("a fetched card at the till: %+v %v, want its 5 lots of 60", bal, err)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
