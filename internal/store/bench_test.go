package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// The big benchmark replica: 1,000,000 cards and 5,000,000 lots, 5,000
// products, one bonus program with 20 promotions active at benchNow. It is
// generated once (10–20 s on the 2-core machine) into $TILLAGENT_BENCH_DB or
// $TMPDIR/tillagent-bench-v1.db and reused by later runs. Only benchmarks
// call benchStore, so the normal test run never builds it.
//
// With TILLAGENT_BENCH_SPENT_LOTS=N every card also has N used-up lots
// (remaining 0), as a till that held the card for years keeps them; that
// replica goes to tillagent-bench-v1-spentN.db (N=20: 45 s, 1 GB).
const (
	benchCards       = 1_000_000
	benchLotsPerCard = 5
	benchProducts    = 5_000
	benchGroups      = 100
	benchPromotions  = 20
)

var (
	benchSpentLots = func() int {
		n, _ := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_SPENT_LOTS"))
		return max(n, 0)
	}()
	benchMarker = func() string {
		if benchSpentLots > 0 {
			return fmt.Sprintf("v1:1000000x5+%d", benchSpentLots)
		}
		return "v1:1000000x5"
	}()
)

var benchNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))

func benchStore(b *testing.B) *Store {
	b.Helper()
	path := os.Getenv("TILLAGENT_BENCH_DB")
	if path == "" {
		path = filepath.Join(os.TempDir(), "tillagent-bench-v1.db")
		if benchSpentLots > 0 {
			path = filepath.Join(os.TempDir(), fmt.Sprintf("tillagent-bench-v1-spent%d.db", benchSpentLots))
		}
	}
	ctx := context.Background()
	if s, err := Open(ctx, Options{Path: path, TillID: "BENCH-T01"}); err == nil {
		var m string
		s.r.QueryRowContext(ctx, `SELECT value FROM replica_meta WHERE key = 'bench'`).Scan(&m)
		if m == benchMarker {
			b.Cleanup(func() { s.Close() })
			return s
		}
		s.Close()
	}
	// Missing or half-built (an interrupted generation): start over.
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suf)
	}
	start := time.Now()
	s, err := Open(ctx, Options{Path: path, TillID: "BENCH-T01"})
	if err != nil {
		b.Fatal(err)
	}
	if err := generateBench(ctx, s); err != nil {
		s.Close()
		b.Fatalf("generate bench replica %s: %v", path, err)
	}
	b.Logf("generated %s in %s", path, time.Since(start).Round(time.Second))
	b.Cleanup(func() { s.Close() })
	return s
}

func generateBench(ctx context.Context, s *Store) error {
	var r Replica
	r.Version = ReplicaFormatVersion
	r.Stores = []ReplicaStore{{ID: "S001", Name: "Bench", TimeZone: "Europe/Moscow"}}
	for g := 0; g < benchGroups; g++ {
		seg := "regular"
		if g%10 == 9 {
			seg = "alcohol"
		}
		r.Groups = append(r.Groups, ReplicaGroup{ID: fmt.Sprintf("g%03d", g), Name: "Group", Segment: seg})
	}
	for p := 0; p < benchProducts; p++ {
		lpp := checkout.Kopecks(int64(3000 + p*7%50000))
		r.Products = append(r.Products, ReplicaProduct{ID: fmt.Sprintf("p%05d", p), Name: "Product",
			Group: fmt.Sprintf("g%03d", p%benchGroups), VAT: "vat20", Tobacco: p%97 == 0, LastPurchasePrice: &lpp})
	}
	pct := checkout.MustPercent("50")
	markup := checkout.MustPercent("10")
	prog := checkout.Program{ID: "BONUS", Name: "Bonus", PointValue: checkout.MustMoney("1"),
		Accrual: []checkout.AccrualRule{
			{ID: "base", Kind: checkout.AccrualPercent, Tiers: &checkout.TierTable{Basis: checkout.BasisPrevMonth,
				Levels: []checkout.TierLevel{{From: checkout.MustMoney("0"), Percent: checkout.MustPercent("3")},
					{From: checkout.MustMoney("10000"), Percent: checkout.MustPercent("5")}}},
				ExcludeGroups: []string{"g009"}},
			{ID: "unit", Kind: checkout.AccrualPerUnit, Points: checkout.MustPoints("5"), IncludeGroups: []string{"g001", "g002"}},
		},
		Redemption:     checkout.RedemptionRules{MaxCheckPercent: &pct, Segments: []string{"regular"}, MinMarkupPercent: &markup, MinRedeem: checkout.MustPoints("10")},
		ActivationDays: 14, ExpiryDays: 180,
	}
	r.Programs = []checkout.Program{prog}
	for i := 0; i < benchPromotions; i++ {
		p := ReplicaPromotion{Program: "BONUS", Promotion: checkout.Promotion{ID: fmt.Sprintf("promo%02d", i),
			From: checkout.MustLocalTime("2026-11-01"), To: checkout.MustLocalTime("2026-12-01"),
			Multiplier: checkout.MustFactor(fmt.Sprintf("1.%d", i%9+1))}}
		switch i % 3 {
		case 0:
			p.Scope = checkout.ScopeAll
		case 1:
			p.Scope, p.Groups = checkout.ScopeGroups, []string{fmt.Sprintf("g%03d", i), fmt.Sprintf("g%03d", i+20)}
		default:
			p.Scope = checkout.ScopeProducts
			for k := 0; k < 50; k++ {
				p.Products = append(p.Products, fmt.Sprintf("p%05d", (i*50+k)%benchProducts))
			}
		}
		r.Promotions = append(r.Promotions, p)
	}
	r.CardKinds = []ReplicaCardKind{{ID: "bonus", Name: "Bonus", Kind: checkout.KindBonus, Program: "BONUS"}}
	if _, err := s.Import(ctx, &r); err != nil {
		return err
	}
	// Cards and lots straight into the tables: batched multi-row prepared
	// inserts, 100,000 cards (and their lots) per transaction.
	const rowsPerStmt = 100
	cardSQL := `INSERT INTO cards(id, code, kind_id, state, stats_month, purchases_all_time_kop, purchases_month_kop,
		purchases_prev_month_kop, accrued_month, redeemed_month) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, 'bonus', 'active', '2026-11', ?, ?, ?, ?, '0'),", rowsPerStmt), ",")
	lotSQL := `INSERT INTO lots(card_id, lot_id, points, remaining, accrued_at, active_from, expires_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?),", rowsPerStmt), ",")
	rng := rand.New(rand.NewPCG(1, 2))
	base := benchNow.Unix()
	const perTx = 100_000
	for start := 0; start < benchCards; start += perTx {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// Lots are flushed in batches that may run ahead of their cards'.
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			tx.Rollback()
			return err
		}
		cs, err := tx.PrepareContext(ctx, cardSQL)
		if err != nil {
			tx.Rollback()
			return err
		}
		ls, err := tx.PrepareContext(ctx, lotSQL)
		if err != nil {
			tx.Rollback()
			return err
		}
		cargs := make([]any, 0, rowsPerStmt*6)
		largs := make([]any, 0, rowsPerStmt*7)
		flush := func(st *sql.Stmt, args *[]any) error {
			_, err := st.ExecContext(ctx, *args...)
			*args = (*args)[:0]
			return err
		}
		for id := start + 1; id <= start+perTx; id++ {
			cargs = append(cargs, id, benchCode(id-1), rng.IntN(20_000_000), rng.IntN(1_000_000), rng.IntN(2_000_000), rng.IntN(300))
			if len(cargs) == cap(cargs) {
				if err := flush(cs, &cargs); err != nil {
					tx.Rollback()
					return err
				}
			}
			for l := 0; l < benchLotsPerCard+benchSpentLots; l++ {
				acc := base - int64(rng.IntN(200*86400))
				pts := 10 + rng.IntN(500)
				rem := pts - rng.IntN(pts/2+1)
				if l >= benchLotsPerCard {
					rem = 0
				}
				largs = append(largs, id, fmt.Sprintf("L%d", l), pts, rem, acc, acc+14*86400, acc+194*86400)
				if len(largs) == cap(largs) {
					if err := flush(ls, &largs); err != nil {
						tx.Rollback()
						return err
					}
				}
			}
		}
		cs.Close()
		ls.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO replica_meta(key, value) VALUES ('bench', ?), ('imported_at', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, benchMarker, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

func benchCode(i int) string { return fmt.Sprintf("29%011d", i) }

// benchCheck is a 50-line check of distinct products.
func benchCheck(rng *rand.Rand) checkout.Check {
	c := checkout.Check{ID: "B-1", StoreID: "S001"}
	for _, p := range rng.Perm(benchProducts)[:50] {
		c.Lines = append(c.Lines, checkout.Line{No: len(c.Lines) + 1, ProductID: fmt.Sprintf("p%05d", p),
			Qty:   checkout.MustQty(fmt.Sprint(1 + rng.IntN(3))),
			Price: checkout.Kopecks(int64(4000 + p*7%50000*13/10))})
	}
	return c
}

// reportLatency adds p50 and p99 (µs) of the per-operation durations.
func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkQuote is the whole path of a quote at the till: load the inputs
// for a random card of the big replica (QuoteInput), then price a 50-line
// check with 20 active promotions (checkout.Quote), asking to redeem.
//
//	go test -run '^$' -bench 'Quote$' -benchtime 2000x ./internal/store/
func BenchmarkQuote(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	check := benchCheck(rng)
	redeem := checkout.MustPoints("50")
	if _, err := s.QuoteInput(ctx, check, []string{benchCode(0)}, benchNow); err != nil { // warm the catalog
		b.Fatal(err)
	}
	d := make([]time.Duration, 0, b.N)
	cpu := make([]time.Duration, 0, b.N) // on-CPU time of each quote
	refused := 0
	defer lockThread()()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c0, cpuOK := threadCPU()
		in, err := s.QuoteInput(ctx, check, []string{benchCode(rng.IntN(benchCards))}, benchNow)
		if err != nil {
			b.Fatal(err)
		}
		in.Redeem = &redeem
		_, err = checkout.Quote(in)
		if c1, ok := threadCPU(); ok && cpuOK {
			cpu = append(cpu, time.Duration(c1-c0))
		}
		d = append(d, time.Since(t0))
		// A card whose limits allow less than the request is refused
		// before the accrual is worked out: a cheaper quote. Count them,
		// so the figures say how many of the quotes were whole.
		switch {
		case errors.Is(err, checkout.ErrRedeemNotAllowed):
			refused++
		case err != nil:
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportLatency(b, d)
	if len(cpu) > 0 {
		// The same percentiles of the time each quote ran on a core: when
		// the wall-clock p99 is far above this one, the quotes waited for a
		// core (other processes), they did not compute longer.
		slices.Sort(cpu)
		q := func(p float64) float64 { return float64(cpu[int(p*float64(len(cpu)-1))].Nanoseconds()) / 1e3 }
		b.ReportMetric(q(0.50), "cpu-p50-µs")
		b.ReportMetric(q(0.99), "cpu-p99-µs")
	}
	b.ReportMetric(100*float64(refused)/float64(len(d)), "refused-%")
}

// BenchmarkQuoteInput is the store's share of BenchmarkQuote.
func BenchmarkQuoteInput(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	check := benchCheck(rng)
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.QuoteInput(ctx, check, []string{benchCode(rng.IntN(benchCards))}, benchNow); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkAppendSale commits one sale's journal entries (a redemption over
// two lots and an accrual creating a lot) in one durable transaction
// (synchronous=FULL: the figure includes the fsync). It uses a small store
// of its own; the journal's size does not change the cost of an append.
func BenchmarkAppendSale(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: "S001-T01"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		check := fmt.Sprintf("C%d", i)
		es := []Entry{
			{CheckID: check, CardCode: "2900000000018", Kind: KindRedemption, Points: decimal.NewFromInt(-150), AmountKop: 15000,
				Lots: []LotChange{{LotID: "L1", Delta: decimal.NewFromInt(-100)}, {LotID: "L2", Delta: decimal.NewFromInt(-50)}}},
			{CheckID: check, CardCode: "2900000000018", Kind: KindAccrual, Points: decimal.NewFromInt(40), PurchaseKop: 200000,
				Lots: []LotChange{{Create: true, Delta: decimal.NewFromInt(40), ActiveFrom: benchNow}}},
		}
		t0 := time.Now()
		if _, err := s.Append(ctx, es); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkImportFeedPage imports first-load pages (5,000 new cards of 5
// lots each, as head office's feed pages) one after another into a store
// holding the demo replica: the till's share of a first load. Reported: µs
// a lot, the cards' share included.
//
//	go test -run '^$' -bench ImportFeedPage -benchtime 40x ./internal/store/
func BenchmarkImportFeedPage(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: "S001-T01"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	demo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "replica", "minimal.json"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := ParseReplica(demo, "json")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Import(ctx, r); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)
	exp := at.AddDate(1, 0, 0)
	rem := checkout.MustPoints("60")
	const cards, lotsPerCard = 5000, 5
	pages := make([]*Replica, b.N)
	for p := range pages {
		page := &Replica{Version: ReplicaFormatVersion}
		for i := range cards {
			code := fmt.Sprintf("32%011d", p*cards+i)
			page.Cards = append(page.Cards, ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
			for k := range lotsPerCard {
				page.Lots = append(page.Lots, ReplicaLot{ID: fmt.Sprintf("L%d", k), Card: code, Points: checkout.MustPoints("100"),
					Remaining: &rem, AccruedAt: at, ActiveFrom: &at, ExpiresAt: &exp})
			}
		}
		pages[p] = page
	}
	b.ResetTimer()
	for _, page := range pages {
		if _, _, err := s.ImportFeed(ctx, page, nil, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*cards*lotsPerCard), "µs/lot")
}

// BenchmarkPruneDocs prunes a till's backlog of old sales (a till
// upgraded with years of them, TILLAGENT_BENCH_DOCS, default 100,000 of
// three lines, a return for every tenth) in runs of 200, as the agent
// does: documents/s, and how long one run holds the writer (a sale waits
// at most that).
//
//	go test -run '^$' -bench PruneDocs -benchtime 1x ./internal/store/
func BenchmarkPruneDocs(b *testing.B) {
	ctx := context.Background()
	n := 100_000
	if v := os.Getenv("TILLAGENT_BENCH_DOCS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	result, receipt, answer := docJSON(3)
	pr, pc, pa := packDoc(result), packDoc(receipt), packDoc(answer)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: "S001-T01", Clock: func() time.Time { return benchNow }})
		if err != nil {
			b.Fatal(err)
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ins := `INSERT INTO sale_docs(id, kind, idem_key, request_sha, original_id, state, result, receipt, answer, fd, fp, created_ms, done_ms)
			VALUES (?, ?, ?, 'sha', ?, 'done', ?, ?, ?, ?, 1, ?, ?)`
		at := benchNow.Add(-4 * 365 * 24 * time.Hour).UnixMilli()
		docs := 0
		for j := 0; j < n; j++ {
			id, ms := fmt.Sprintf("S%07d", j), at+int64(j)*1000
			if _, err := tx.ExecContext(ctx, ins, id, DocSale, "k"+id, nil, pr, pc, pa, 2*j+1, ms, ms); err != nil {
				b.Fatal(err)
			}
			docs++
			if j%10 == 0 {
				if _, err := tx.ExecContext(ctx, ins, "R"+id, DocReturn, "kR"+id, id, pr, pc, pa, 2*j+2, ms+500, ms+500); err != nil {
					b.Fatal(err)
				}
				docs++
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		pruneRuns(b, "docs/s", docs, func() (int, error) { return s.PruneDocs(ctx, benchNow.Add(-365*24*time.Hour), 200) })
		s.Close()
	}
}

// BenchmarkPruneJournal drops a till's backlog of old acknowledged journal
// entries head office holds (TILLAGENT_BENCH_ENTRIES, default 200,000: a
// redemption and an accrual of 100,000 sales, with their lots) in runs of
// 500, as the agent does: entries/s, and how long one run holds the
// writer.
//
//	go test -run '^$' -bench PruneJournal -benchtime 1x ./internal/store/
func BenchmarkPruneJournal(b *testing.B) {
	ctx := context.Background()
	n := 200_000
	if v := os.Getenv("TILLAGENT_BENCH_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		now := benchNow.Add(-4 * 365 * 24 * time.Hour)
		s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: "S001-T01", Clock: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.ImportFile(ctx, demoPath(b)); err != nil {
			b.Fatal(err)
		}
		var last string
		var lots []ReplicaLot // the accruals' lots, as head office's feed brings them
		for j := 0; j < n; j += 1000 {
			es := make([]Entry, 0, 1000)
			for k := j; k < min(j+1000, n); k += 2 {
				check := fmt.Sprintf("C%07d", k/2)
				es = append(es,
					Entry{CheckID: check, CardCode: "2900000000018", Kind: KindRedemption, Points: decimal.NewFromInt(-10), AmountKop: 1000,
						Lots: []LotChange{{LotID: "L-1", Delta: decimal.NewFromInt(-10)}}},
					Entry{CheckID: check, CardCode: "2900000000018", Kind: KindAccrual, Points: decimal.NewFromInt(5), PurchaseKop: 50000,
						Lots: []LotChange{{Create: true, Delta: decimal.NewFromInt(5), ActiveFrom: now}}})
			}
			ids, err := s.Append(ctx, es)
			if err != nil {
				b.Fatal(err)
			}
			for k, e := range es {
				if e.Kind == KindAccrual {
					at := now
					lots = append(lots, ReplicaLot{ID: ids[k], Card: e.CardCode, Points: checkout.PointsOf(e.Points), AccruedAt: at, ActiveFrom: &at})
				}
			}
			if err := s.MarkAcked(ctx, ids); err != nil {
				b.Fatal(err)
			}
			last = ids[len(ids)-1]
			now = now.Add(time.Minute)
		}
		if _, err := s.Import(ctx, &Replica{Version: ReplicaFormatVersion, Lots: lots, FoldedThrough: map[string]string{"S001-T01": last}}); err != nil {
			b.Fatal(err)
		}
		if err := s.SetJournalHeld(ctx, last); err != nil {
			b.Fatal(err)
		}
		pruneRuns(b, "entries/s", n-1, func() (int, error) { return s.PruneJournal(ctx, benchNow.Add(-365*24*time.Hour), 500) })
		s.Close()
	}
}

// pruneRuns times run until it prunes nothing, as the agent calls it,
// wanting want pruned in all: the rate as unit, and each run's time.
func pruneRuns(b *testing.B, unit string, want int, run func() (int, error)) {
	var lat []time.Duration
	b.StartTimer()
	start, pruned := time.Now(), 0
	for {
		t0 := time.Now()
		k, err := run()
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
		lat = append(lat, time.Since(t0))
		pruned += k
	}
	b.StopTimer()
	if pruned != want {
		b.Fatalf("pruned %d, want %d", pruned, want)
	}
	b.ReportMetric(float64(pruned)/time.Since(start).Seconds(), unit)
	reportLatency(b, lat)
}
