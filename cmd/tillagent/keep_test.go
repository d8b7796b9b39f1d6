package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/internal/config"
	"tillagent/sync/headoffice"
)

// docCounts reads the documents the agent's status counts.
func (h *harness) docCounts() (docs map[string]int, backlog int) {
	h.t.Helper()
	var st struct {
		Journal struct {
			Backlog   int            `json:"backlog"`
			Documents map[string]int `json:"documents"`
		} `json:"journal"`
	}
	h.must(200, "GET", "/v1/status", nil, &st)
	return st.Journal.Documents, st.Journal.Backlog
}

// A till keeps a sale whole for sale.keep_days: an agent started past
// that age, by its clock and the printer's, prunes its sales and their
// returns in the background, keeps their journal entries, refuses a
// return or a retried request of them with 410 sale.not_kept (printing
// nothing), and sells as before; a sale younger than the age stays whole
// and returnable, and a till clock ahead of the printer's prunes nothing.
func TestOldSalesArePruned(t *testing.T) {
	var printerAhead atomic.Int64
	h := newHarnessWith(t, nil, func() time.Time { return time.Now().Add(time.Duration(printerAhead.Load())) }) // sale.keep_days: 1095 by default
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	var old, cash saleAnswer
	withCard := saleBody("keep-1", []string{card}, "40", "200.00", line(1, "1001", "2", "89.90"))
	h.must(201, "POST", "/v1/sales", withCard, &old)
	h.must(201, "POST", "/v1/sales", saleBody("keep-2", nil, "", "100.00", line(1, "1001", "1", "89.90")), &cash)
	h.must(201, "POST", "/v1/sales/"+old.SaleID+"/returns", map[string]any{"idempotency_key": "keep-r1", "lines": []any{map[string]any{"no": 1, "qty": "1"}}}, nil)
	_, backlog := h.docCounts()
	clock := h.clock
	restart := func(till, printer time.Duration) {
		h.stop()
		h.clock = func() time.Time { return clock().Add(till) }
		printerAhead.Store(int64(printer))
		h.start()
		time.Sleep(200 * time.Millisecond) // the start's prune run, had it anything to do
	}
	const day = 24 * time.Hour

	// A year later: nothing is old enough.
	restart(365*day, 365*day)
	var young saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("keep-3", nil, "", "100.00", line(1, "1001", "1", "89.90")), &young)
	// The till's clock three years on, the printer's not: nothing either.
	restart((1095+2)*day, 365*day)
	if docs, _ := h.docCounts(); docs["sale_pruned"] != 0 || docs["return_pruned"] != 0 {
		t.Fatalf("documents pruned before their age: %v", docs)
	}

	// Three years and two days after the first sales by both clocks: those
	// go, the year-younger one stays.
	restart((1095+2)*day, (1095+2)*day)
	deadline := time.Now().Add(10 * time.Second)
	docs, nowBacklog := h.docCounts()
	for docs["sale_pruned"] < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		docs, nowBacklog = h.docCounts()
	}
	if docs["sale_pruned"] != 2 || docs["return_pruned"] != 1 || docs["sale_done"] != 3 || docs["return_done"] != 1 {
		t.Fatalf("documents after the keeping age: %v, want 2 sales and their return pruned of 3 sales, 1 return", docs)
	}
	if nowBacklog != backlog || backlog == 0 {
		t.Errorf("journal backlog %d before the prune, %d after: the journal must stay whole", backlog, nowBacklog)
	}

	printed := len(h.receipts())
	e := h.refusal(410, "sale.not_kept", "POST", "/v1/sales/"+old.SaleID+"/returns", map[string]any{"idempotency_key": "keep-r2"})
	if !strings.Contains(e.Error.Message, "срока хранения") || !strings.Contains(e.Error.Message, "1095") || !strings.Contains(e.Error.Detail, old.SaleID) || e.Error.Hint == "" {
		t.Errorf("refusal %+v should say the sale is past the till's keeping age", e.Error)
	}
	h.refusal(410, "sale.not_kept", "POST", "/v1/sales", withCard)
	h.refusal(410, "sale.not_kept", "POST", "/v1/sales/"+old.SaleID+"/returns", map[string]any{"idempotency_key": "keep-r1", "lines": []any{map[string]any{"no": 1, "qty": "1"}}})
	// Another body under an old key is still a conflict, not a pruned sale.
	h.refusal(409, "idempotency.conflict", "POST", "/v1/sales", saleBody("keep-2", nil, "", "500.00", line(1, "1001", "1", "89.90")))
	if n := len(h.receipts()); n != printed {
		t.Fatalf("refused requests printed %d receipts", n-printed)
	}

	h.must(201, "POST", "/v1/sales/"+young.SaleID+"/returns", map[string]any{"idempotency_key": "keep-r3"}, nil)
	var next saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("keep-4", nil, "", "100.00", line(1, "1001", "1", "89.90")), &next)
	if next.Fiscal.FD == 0 {
		t.Fatalf("a sale after the prune: %+v", next)
	}
}

// The agent drops journal entries only as head office allows: synced with
// a head office holding the journal 72 h, restarted three years on (by
// its clock and the printer's), it prunes the old sales and the entries
// before the watermark head office marked 72 h before its last feed —
// not the last of them — and its balances still agree with head office's
// after a sale that follows.
func TestAgentDropsTheJournalHeadOfficeHolds(t *testing.T) {
	ctx := context.Background()
	var hoAhead, printerAhead atomic.Int64
	hoClock := testClock()
	srv, secretFile := syncHOWith(t, headoffice.Options{JournalHold: 72 * time.Hour,
		Clock: func() time.Time { return hoClock().Add(time.Duration(hoAhead.Load())) }})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h := newHarnessWith(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, hs.URL, secretFile
		c.Sync.Interval = time.Hour // only `sync now` below
	}, func() time.Time { return time.Now().Add(time.Duration(printerAhead.Load())) })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(200, "POST", "/v1/sync/now", nil, nil)
	var a, b saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("hold-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")), &a)
	h.must(201, "POST", "/v1/sales", saleBody("hold-2", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), &b)
	if len(a.Journal) != 2 || len(b.Journal) != 1 {
		t.Fatalf("journal entries of the sales %v, %v: want a redemption and an accrual, then an accrual", a.Journal, b.Journal)
	}
	h.must(200, "POST", "/v1/sync/now", nil, nil)
	if _, err := srv.Maintain(ctx); err != nil { // marks the watermark: b's accrual
		t.Fatal(err)
	}
	hoAhead.Store(int64(73 * time.Hour))
	if _, err := srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	kept := func() (held string, pruned int64) {
		var st struct {
			Journal struct {
				Kept struct {
					HeldBefore string `json:"held_before"`
					Pruned     int64  `json:"pruned_entries"`
				}
			}
		}
		h.must(200, "GET", "/v1/status", nil, &st)
		return st.Journal.Kept.HeldBefore, st.Journal.Kept.Pruned
	}
	// The export, like the feed, waits for the cluster's older
	// transactions (other tests): sync until the delta says it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		h.must(200, "POST", "/v1/sync/now", nil, nil)
		if held, _ := kept(); held == b.Journal[0] {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("journal held %q, want head office's watermark of 72 h ago, %s", held, b.Journal[0])
		}
	}

	clock := h.clock
	h.stop()
	const ahead = (1095 + 2) * 24 * time.Hour
	h.clock = func() time.Time { return clock().Add(ahead) }
	printerAhead.Store(int64(ahead))
	hoAhead.Store(int64(ahead)) // head office's clock too: lots lapse by the same days
	h.start()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, pruned := kept(); pruned == 2 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d journal entries pruned, want sale hold-1's two (hold-2's accrual is head office's mark)", pruned)
		}
	}
	if docs, backlog := h.docCounts(); docs["sale_pruned"] != 2 || backlog != 0 {
		t.Fatalf("documents %v, backlog %d: want both sales pruned, nothing to push", docs, backlog)
	}
	var c saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("hold-3", []string{card}, "", "300.00", line(1, "1001", "1", "89.90")), &c)
	var till cardAnswer
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := srv.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		h.must(200, "POST", "/v1/sync/now", nil, nil)
		h.must(200, "GET", "/v1/cards/"+card, nil, &till)
		bs, err := srv.Balances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var at string
		for _, x := range bs {
			if x.Card == card {
				at = x.Balance.String()
			}
		}
		if at == c.Cards[0].Balance && till.Balance == at {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("card %s: head office %s, the till %s, the sale said %s", card, at, till.Balance, c.Cards[0].Balance)
		}
	}
}
