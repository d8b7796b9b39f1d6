package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// BenchmarkFeedPoll is head office's load from tills in steady trade:
// TILLAGENT_BENCH_STORES stores (default 100) of three tills each, on
// 200,000 cards of five lots each, a change log of a million older
// changes. A round is one poll interval: every
// till sells once (an accrual on a card its store holds, pushed as a batch
// of one), then every till pulls its delta since its cursor, with its
// watermark, as the sync loop does, 16 at a time over loopback HTTP. Run
// for both card scopes: "all" (a delta carries every card the whole chain
// sold to since the till's last poll) and "home" (2,000 home cards a
// store, so a delta carries its store's sales only). Reports polls/s,
// poll p50/p99, cards and KB per delta; the pushes are not timed. What
// one head office serves: polls/s × the tills' sync.interval.
//
//	go test -run '^$' -bench FeedPoll -benchtime 1x ./sync/headoffice/
func BenchmarkFeedPoll(b *testing.B) {
	stores := 100
	if v, err := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_STORES")); err == nil && v > 0 {
		stores = v
	}
	for _, scope := range []string{ScopeAll, ScopeHome} {
		b.Run(scope, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				benchFeedPoll(b, stores, scope)
				b.StartTimer()
			}
		})
	}
}

const (
	pollTillsPerStore = 3
	pollLotsPerCard   = 5
	pollRounds        = 6
	pollWorkers       = 16
	pollOldChanges    = 1000000
)

type pollTill struct {
	id, store, secret string
	cards             []string // the cards it sells to
	prev, cursor      string   // its chain's last entry; its feed cursor
	watermark         string   // head office's, as the last feed gave it
	seq               int
}

func benchFeedPoll(b *testing.B, stores int, scope string) {
	ctx := context.Background()
	s := openTest(b)
	seedPollChain(b, s, stores)
	rng := rand.New(rand.NewPCG(3, 4))
	var tills []*pollTill
	for si := 0; si < stores; si++ {
		st := fmt.Sprintf("Z%03d", si)
		var home []string
		if scope == ScopeHome {
			if err := s.SetCardScope(ctx, st, ScopeHome); err != nil {
				b.Fatal(err)
			}
			per := benchCards / stores
			for c := si * per; c < (si+1)*per; c++ {
				home = append(home, fmt.Sprintf("31%011d", c))
			}
			if _, err := s.AssignCards(ctx, st, home); err != nil {
				b.Fatal(err)
			}
		}
		for k := 1; k <= pollTillsPerStore; k++ {
			t := &pollTill{id: fmt.Sprintf("%s-T%02d", st, k), store: st, cards: home}
			secret, err := s.Enrol(ctx, t.id, st)
			if err != nil {
				b.Fatal(err)
			}
			t.secret = secret
			tills = append(tills, t)
		}
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	get := func(t *pollTill, q url.Values) ([]byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/till/feed?"+q.Encode(), nil)
		req.SetBasicAuth(t.id, t.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("feed of till %s: %s %s", t.id, resp.Status, body)
		}
		return body, err
	}
	// Each till's cursor as a first load would leave it: a snapshot page
	// of one card (the cursor is its snapshot's xmin).
	eachTill(b, tills, func(t *pollTill) error {
		body, err := get(t, url.Values{"snapshot": {"1"}, "limit": {"1"}})
		if err != nil {
			return err
		}
		var f struct{ Cursor string }
		if err := json.Unmarshal(body, &f); err != nil {
			return err
		}
		t.cursor = f.Cursor
		return nil
	})

	var lat []time.Duration
	var polled time.Duration
	var cards, bytes_ int
	for round := 0; round < pollRounds; round++ {
		at := demoNow.Add(time.Duration(round) * time.Minute)
		eachTill(b, tills, func(t *pollTill) error {
			t.seq++
			id := fmt.Sprintf("%s-%026d", t.id, t.seq)
			var card string
			if t.cards != nil {
				card = t.cards[rng.IntN(len(t.cards))]
			} else {
				card = fmt.Sprintf("31%011d", rng.IntN(benchCards))
			}
			e := wire.Entry{Prev: t.prev, Entry: store.Entry{ID: id, CheckID: id, CreatedAt: at, CardCode: card,
				Kind: store.KindAccrual, Points: decimal.NewFromInt(10), PurchaseKop: 10000,
				Lots: []store.LotChange{{LotID: id, Delta: decimal.NewFromInt(10), Create: true, ActiveFrom: at}}}}
			res, err := s.Ingest(ctx, &wire.Batch{TillID: t.id, Entries: []wire.Entry{e}})
			if err != nil {
				return err
			}
			if res.Results[0].Status != wire.Applied {
				return fmt.Errorf("push of till %s: %+v", t.id, res.Results[0])
			}
			t.prev = id
			return nil
		})
		var mu sync.Mutex
		t0 := time.Now()
		eachTill(b, tills, func(t *pollTill) error {
			p0 := time.Now()
			body, err := get(t, url.Values{"cursor": {t.cursor}, "folded": {t.watermark}})
			if err != nil {
				return err
			}
			d := time.Since(p0)
			f, err := wire.DecodeFeed(body)
			if err != nil {
				return err
			}
			// The till's own sale must be in its delta, at its watermark.
			if f.Replica.FoldedThrough[t.id] != t.prev || !slices.ContainsFunc(f.Replica.Lots, func(l store.ReplicaLot) bool { return l.ID == t.prev }) {
				return fmt.Errorf("delta of till %s: watermark %q, want %q with its lot", t.id, f.Replica.FoldedThrough[t.id], t.prev)
			}
			t.cursor, t.watermark = f.Cursor, t.prev
			mu.Lock()
			lat, cards, bytes_ = append(lat, d), cards+len(f.Replica.Cards), bytes_+len(body)
			mu.Unlock()
			return nil
		})
		polled += time.Since(t0)
	}
	n := len(lat)
	slices.Sort(lat)
	b.ReportMetric(float64(n)/polled.Seconds(), "polls/s")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "poll-p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "poll-p99-ms")
	b.ReportMetric(float64(cards)/float64(n), "cards/delta")
	b.ReportMetric(float64(bytes_)/float64(n)/1024, "KB/delta")
	b.ReportMetric(float64(len(tills)), "tills")
}

// seedPollChain imports the demo, the bench's stores and benchCards cards
// with pollLotsPerCard lots each (copied in, as a first ERP load), then
// writes pollOldChanges change rows before any till's cursor.
func seedPollChain(b testing.TB, s *Server, stores int) {
	ctx := context.Background()
	r := demoReplica(b)
	for si := 0; si < stores; si++ {
		r.Stores = append(r.Stores, store.ReplicaStore{ID: fmt.Sprintf("Z%03d", si), Name: fmt.Sprintf("Магазин %d", si), TimeZone: "Europe/Moscow"})
	}
	if _, err := s.Import(ctx, r); err != nil {
		b.Fatal(err)
	}
	cards := make([][]any, benchCards)
	lots := make([][]any, 0, benchCards*pollLotsPerCard)
	t := demoNow.Add(-30 * 24 * time.Hour)
	ten := decimal.NewFromInt(10)
	for i := range cards {
		code := fmt.Sprintf("31%011d", i)
		cards[i] = []any{code, "bonus", "active"}
		for k := 0; k < pollLotsPerCard; k++ {
			id := fmt.Sprintf("L%d-%d", i, k)
			lots = append(lots, []any{code, id, ten, ten, t, t, id})
		}
	}
	if _, err := s.db.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"code", "kind", "state"}, pgx.CopyFromRows(cards)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.db.CopyFrom(ctx, pgx.Identifier{"lots"}, []string{"card", "lot_id", "points", "remaining", "accrued_at", "active_from", "check_id"},
		pgx.CopyFromRows(lots)); err != nil {
		b.Fatal(err)
	}
	// Months of trade before: the change log is long, and a poll must not
	// cost more for it.
	if _, err := s.db.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', '31' || lpad((g % $1)::text, 11, '0')
		FROM generate_series(1, $2::int) g`, benchCards, pollOldChanges); err != nil {
		b.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// eachTill calls do for every till, pollWorkers at a time, and fails the
// benchmark on the first error.
func eachTill(b *testing.B, tills []*pollTill, do func(*pollTill) error) {
	work := make(chan *pollTill)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < pollWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if err := do(t); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for _, t := range tills {
		work <- t
	}
	close(work)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
