package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

const (
	benchTills   = 100
	benchCards   = 200000
	benchEntries = 1000 // per till
)

// benchSpentLots (TILLAGENT_BENCH_SPENT_LOTS, else 0) is how many used-up
// lots each card already has: what a year or more of a regular's shopping
// leaves behind.
var benchSpentLots, _ = strconv.Atoi(os.Getenv("TILLAGENT_BENCH_SPENT_LOTS"))

// benchBatch is the entries per batch (TILLAGENT_BENCH_BATCH, else 100;
// a till pushes up to sync.batch_size, 500 by default, after an outage)
// and benchBatches how many each till pushes.
var benchBatch, benchBatches = func() (int, int) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_BATCH")); err == nil && v > 0 {
		n = v
	}
	return n, benchEntries / n
}()

// BenchmarkIngest: 100 tills push 1,000 entries each at once, in batches
// of 100 (TILLAGENT_BENCH_BATCH)
// over loopback HTTP (80 % accruals creating a lot, 20 % redemptions from
// one of the till's earlier lots, on 200,000 cards), then the same entries
// are written by a raw batched INSERT into a bare copy of the journal
// table, 100 writers at once, in the same run. Reports entries/s, batch
// p50/p99 and the ratio; then one more till pushes its batches alone,
// one after another (solo-batch-p50-ms: a batch's latency without a queue).
// Last, rawRows writes the rows ingestion writes for the same entries
// with nothing computed (rows-entries/s, x-rows): not a goal of the
// issue, the floor that shows what ingestion's own work costs.
//
// go-us/entry and pg-us/entry are the CPU time this process (head office
// and the tills' clients) and the PostgreSQL cluster (when it runs on this
// host) spent per entry while the tills pushed: on 2 cores, entries/s is
// about 2 s / their sum, whatever else the machine is doing at the time.
//
// With TILLAGENT_BENCH_SPENT_LOTS=N every card first has N used-up lots.
//
//	go test -run '^$' -bench Ingest -benchtime 1x ./sync/headoffice/
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openTest(b)
		// A run writes about 500 MB of WAL: started after a checkpoint, it
		// is not cut by one (.ci/pg's max_wal_size) unless the timed one
		// comes, and none of its pages is logged whole but the history's.
		if _, err := s.db.Exec(ctx, `CHECKPOINT`); err != nil {
			b.Logf("no checkpoint before the run: %v", err)
		}
		seedBenchCards(b, s)
		all := benchWorkload(b, s, benchTills+1)
		batches, solo := all[:benchTills], all[benchTills]
		hs := httptest.NewServer(s.Handler())
		push := func(t *benchTill, body []byte) (time.Duration, error) {
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/till/journal", bytes.NewReader(body))
			req.SetBasicAuth(t.till, t.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err
			}
			var res wire.BatchResult
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(res.Results) != benchBatch {
				return 0, fmt.Errorf("push: %s %v", resp.Status, err)
			}
			for _, r := range res.Results {
				if r.Status != wire.Applied {
					return 0, fmt.Errorf("push: entry %s %s %s", r.ID, r.Status, r.Error)
				}
			}
			return time.Since(t0), nil
		}
		clk := newCPUClock(b, s)
		b.StartTimer()
		var mu sync.Mutex
		var lat []time.Duration
		go0, pg0 := clk.now()
		el := concurrently(b, batches, func(t *benchTill, i int) error {
			d, err := push(t, t.bodies[i])
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			return err
		})
		b.StopTimer()
		go1, pg1 := clk.now()
		n := benchTills * benchBatches * benchBatch
		if go0 >= 0 {
			b.ReportMetric(float64((go1-go0).Microseconds())/float64(n), "go-us/entry")
		}
		if pg0 >= 0 {
			b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(n), "pg-us/entry")
		}
		var soloLat []time.Duration
		for _, body := range solo.bodies {
			d, err := push(&solo, body)
			if err != nil {
				b.Fatal(err)
			}
			soloLat = append(soloLat, d)
		}
		hs.Close()
		var unfolded int
		s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE NOT folded`).Scan(&unfolded)
		if unfolded != 0 {
			b.Fatalf("%d entries unfolded", unfolded)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		sort.Slice(soloLat, func(i, j int) bool { return soloLat[i] < soloLat[j] })
		raw := rawInsert(b, s, batches)
		rows := rawRows(b, s, batches)
		rate := float64(n) / el.Seconds()
		rawRate := float64(n) / raw.Seconds()
		b.ReportMetric(float64(n)/rows.Seconds(), "rows-entries/s")
		b.ReportMetric(rate/(float64(n)/rows.Seconds()), "x-rows")
		b.ReportMetric(rate, "entries/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "batch-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "batch-p99-ms")
		b.ReportMetric(float64(soloLat[len(soloLat)/2].Microseconds())/1000, "solo-batch-p50-ms")
		b.ReportMetric(rawRate, "raw-entries/s")
		b.ReportMetric(rate/rawRate, "x-raw")
		b.ReportMetric(float64(s.Retries()), "retries")
		b.ReportMetric(float64(s.LotRereads()), "lot-rereads")
		b.StartTimer()
	}
}

type benchTill struct {
	till, secret string
	bodies       [][]byte
	entries      [][]wire.Entry
}

func seedBenchCards(b testing.TB, s *Server) {
	b.Helper()
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(b)); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, benchCards)
	for i := range rows {
		rows[i] = []any{fmt.Sprintf("31%011d", i), "bonus", "active"}
	}
	if _, err := s.db.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"code", "kind", "state"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if benchSpentLots > 0 {
		if _, err := s.db.Exec(ctx, `INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from, check_id)
			SELECT c.code, 'old-' || g, 10, 0, '2025-11-01', '2025-11-01', 'old-' || g
			FROM cards c, generate_series(1, $1::int) g WHERE c.code LIKE '31%'`, benchSpentLots); err != nil {
			b.Fatal(err)
		}
		// Settled as a real history is (hint bits, visibility map) and out
		// of the write-ahead log before the clock starts.
		for _, q := range []string{`VACUUM ANALYZE lots`, `CHECKPOINT`} {
			if _, err := s.db.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchWorkload(b testing.TB, s *Server, tills int) []benchTill {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	out := make([]benchTill, tills)
	for ti := range out {
		till := fmt.Sprintf("B%03d-T01", ti)
		secret, err := s.Enrol(ctx, till, "S001")
		if err != nil {
			b.Fatal(err)
		}
		out[ti] = benchTill{till: till, secret: secret}
		prev := ""
		type lot struct{ card, id string }
		var lots []lot
		seq := 0
		for bi := 0; bi < benchBatches; bi++ {
			batch := wire.Batch{TillID: till}
			for k := 0; k < benchBatch; k++ {
				seq++
				id := fmt.Sprintf("%s-%026d", till, seq)
				e := wire.Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: id, CreatedAt: at}}
				if len(lots) > 0 && rng.IntN(5) == 0 {
					l := lots[rng.IntN(len(lots))]
					e.CardCode, e.Kind, e.Points = l.card, store.KindRedemption, decimal.NewFromInt(-1)
					e.Lots = []store.LotChange{{LotID: l.id, Delta: e.Points}}
				} else {
					e.CardCode, e.Kind, e.Points = fmt.Sprintf("31%011d", rng.IntN(benchCards)), store.KindAccrual, decimal.NewFromInt(10)
					e.PurchaseKop = 10000
					e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: at}}
					lots = append(lots, lot{e.CardCode, id})
				}
				batch.Entries = append(batch.Entries, e)
				prev = id
			}
			body, _ := json.Marshal(batch)
			out[ti].bodies = append(out[ti].bodies, body)
			out[ti].entries = append(out[ti].entries, batch.Entries)
		}
	}
	return out
}

// rawInsert writes the same entries with a plain batched INSERT (no
// idempotency check, no folding), 100 writers at once: the floor.
func rawInsert(b *testing.B, s *Server, tills []benchTill) time.Duration {
	b.Helper()
	ctx := context.Background()
	if _, err := s.db.Exec(ctx, `CREATE TABLE raw_journal (LIKE journal INCLUDING DEFAULTS INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}
	return concurrently(b, tills, func(t *benchTill, i int) error {
		var pb pgx.Batch
		for _, e := range t.entries[i] {
			body, _ := json.Marshal(e)
			pb.Queue(`INSERT INTO raw_journal (id, till_id, prev_id, card_code, kind, points, body, digest)
				VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8)`, e.ID, t.till, e.Prev, e.CardCode,
				string(e.Kind), e.Points.String(), string(body), []byte{1})
		}
		return s.db.SendBatch(ctx, &pb).Close()
	})
}

// concurrently calls do for each batch of each till, one goroutine a till
// (its batches in order), and returns the time they all took; a till
// stops at its first error.
func concurrently(b *testing.B, tills []benchTill, do func(t *benchTill, batch int) error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for ti := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tills[ti].entries {
				if err := do(&tills[ti], i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// rawRows writes, for the same entries, the rows ingestion writes — the
// journal row, the lot inserted (accrual) or updated (redemption), the
// card's debt and history updated and a change row per card, in one
// transaction per till batch, 100 writers at once — into copies of the
// journal, lots and changes tables (the lots' foreign key kept) and the
// real cards: plain batched statements, nothing read, locked, checked or
// folded. The cards' history is a fixed document of the size ingestion
// writes.
func rawRows(b *testing.B, s *Server, tills []benchTill) time.Duration {
	b.Helper()
	ctx := context.Background()
	if _, err := s.db.Exec(ctx, `CREATE TABLE rows_journal (LIKE journal INCLUDING DEFAULTS INCLUDING INDEXES);
		CREATE TABLE rows_lots (LIKE lots INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS);
		ALTER TABLE rows_lots ADD FOREIGN KEY (card) REFERENCES cards(code);
		CREATE TABLE rows_changes (LIKE changes INCLUDING DEFAULTS INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}
	hist := `{"month":"2026-11","purchases_all_time":"100.00","purchases_month":"100.00","accrued_month":"10"}`
	return concurrently(b, tills, func(t *benchTill, bi int) error {
		var j struct{ id, prev, card, kind, points, body []string }
		var ins struct{ card, id, points []string }
		var upd struct{ card, id []string }
		var cards []string
		for _, e := range t.entries[bi] {
			body, _ := json.Marshal(e)
			j.id, j.prev, j.card = append(j.id, e.ID), append(j.prev, e.Prev), append(j.card, e.CardCode)
			j.kind, j.points, j.body = append(j.kind, string(e.Kind)), append(j.points, e.Points.String()), append(j.body, string(body))
			if l := e.Lots[0]; l.Create {
				ins.card, ins.id, ins.points = append(ins.card, e.CardCode), append(ins.id, l.LotID), append(ins.points, l.Delta.String())
			} else {
				upd.card, upd.id = append(upd.card, e.CardCode), append(upd.id, l.LotID)
			}
			cards = append(cards, e.CardCode)
		}
		sort.Strings(cards)
		cards = slices.Compact(cards)
		var pb pgx.Batch
		pb.Queue("begin")
		pb.Queue("set local enable_seqscan = off") // as ingestion: the new tables have no statistics
		pb.Queue(`INSERT INTO rows_journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded)
			SELECT u.id, $1, u.prev, u.card, u.kind, u.points::numeric, u.body::json, '\x01', true
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(id, prev, card, kind, points, body)`,
			t.till, j.id, j.prev, j.card, j.kind, j.points, j.body)
		pb.Queue(`INSERT INTO rows_lots (card, lot_id, points, remaining, accrued_at, active_from, check_id)
			SELECT u.card, u.id, u.points::numeric, u.points::numeric, now(), now(), u.id
			FROM unnest($1::text[], $2::text[], $3::text[]) AS u(card, id, points)`, ins.card, ins.id, ins.points)
		if len(upd.card) > 0 {
			pb.Queue(`UPDATE rows_lots l SET remaining = greatest(l.remaining - 1, 0)
			FROM unnest($1::text[], $2::text[]) AS u(card, id) WHERE l.card = u.card AND l.lot_id = u.id`, upd.card, upd.id)
		}
		pb.Queue(`UPDATE cards c SET debt = 0, history = $2::json FROM unnest($1::text[]) AS u(code) WHERE c.code = u.code`, cards, hist)
		pb.Queue(`INSERT INTO rows_changes (section, key) SELECT 'cards', unnest($1::text[])`, cards)
		pb.Queue("commit")
		return s.db.SendBatch(ctx, &pb).Close()
	})
}
