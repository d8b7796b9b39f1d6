package headoffice

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestPolicyAppliesEntryByEntry: the negative-balance policy applies where
// a debt arises, entry by entry along the chain, so the same entries end
// the same whether they come in one batch or one batch each. On a card
// with one active 100-point lot: a redemption of 150 from that lot (50
// overdrawn), an accrual of 40 active at once, and a redemption of 10 more
// from the spent lot (taken from the new one where it has points). Till
// T01 pushes the three entries of its card in one batch, till T02 those
// of another card of the same program one a batch; under forbid, allow
// and limit 30 both cards end with the same balance, debt, write-offs and
// overdrafts, and those are what the policy says:
//
//	forbid: the 50 written off at once, the accrual kept: 30 left (40 − 10)
//	allow: debt 50, settled 40 by the accrual, 10 more overdrawn: −20
//	limit 30: 20 written off, the 30 kept settled by the accrual, 10 − 10: 0
func TestPolicyAppliesEntryByEntry(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	demo := demoReplica(t)
	if _, err := s.Import(ctx, demo); err != nil {
		t.Fatal(err)
	}
	type want struct{ balance, debt, written, overdrawn string }
	modes := []struct {
		policy checkout.NegativeBalancePolicy
		want   want
	}{
		{checkout.NegativeBalancePolicy{Mode: checkout.NegativeForbid}, want{"30", "0", "50", "50"}},
		{checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, want{"-20", "20", "0", "60"}},
		{checkout.NegativeBalancePolicy{Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("30")}, want{"0", "0", "20", "50"}},
	}
	extra := &store.Replica{Version: 1}
	card := func(mode, till int) string { return fmt.Sprintf("29800000000%d%d", mode, till) }
	for i, m := range modes {
		p := demo.Programs[0]
		p.ID, p.Promotions, p.NegativeBalance = fmt.Sprintf("PS-%s", m.policy.Mode), nil, m.policy
		extra.Programs = append(extra.Programs, p)
		extra.CardKinds = append(extra.CardKinds, store.ReplicaCardKind{ID: "k-" + p.ID, Name: p.ID, Kind: checkout.KindBonus, Program: p.ID})
		for till := 1; till <= 2; till++ {
			code := card(i, till)
			extra.Cards = append(extra.Cards, store.ReplicaCard{Code: code, Kind: "k-" + p.ID, State: checkout.StateActive})
			extra.Lots = append(extra.Lots, store.ReplicaLot{ID: "L", Card: code, Points: checkout.MustPoints("100"), AccruedAt: demoNow.Add(-48 * time.Hour)})
		}
	}
	if _, err := s.Import(ctx, extra); err != nil {
		t.Fatal(err)
	}
	tills := []string{"", "S001-T01", "S001-T02"}
	prev := map[string]string{}
	seq := 0
	entries := func(till int) []wire.Entry {
		var out []wire.Entry
		for i := range modes {
			code := card(i, till)
			for _, e := range []store.Entry{
				{CardCode: code, Kind: store.KindRedemption, Points: dec("-150"), AmountKop: 100,
					Lots: []store.LotChange{{LotID: "L", Delta: dec("-150")}}},
				{CardCode: code, Kind: store.KindAccrual, Points: dec("40"), PurchaseKop: 4000,
					Lots: []store.LotChange{{Delta: dec("40"), Create: true, ActiveFrom: demoNow}}},
				{CardCode: code, Kind: store.KindRedemption, Points: dec("-10"), AmountKop: 10,
					Lots: []store.LotChange{{LotID: "L", Delta: dec("-10")}}},
			} {
				seq++
				e.ID = fmt.Sprintf("%s-%026d", tills[till], seq)
				e.CheckID, e.CreatedAt = e.ID, demoNow
				for j := range e.Lots {
					if e.Lots[j].Create {
						e.Lots[j].LotID = e.ID
					}
				}
				out = append(out, wire.Entry{Entry: e, Prev: prev[tills[till]]})
				prev[tills[till]] = e.ID
			}
		}
		return out
	}
	push := func(till string, es []wire.Entry) {
		t.Helper()
		res, err := s.Ingest(ctx, &wire.Batch{TillID: till, Entries: es})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(res); res.FoldedThrough != es[len(es)-1].ID {
			t.Fatalf("push of %d entries by %s: %s, folded through %s; want all applied and folded", len(es), till, got, res.FoldedThrough)
		}
	}
	for _, till := range tills[1:] {
		if _, err := s.Enrol(ctx, till, "S001"); err != nil {
			t.Fatal(err)
		}
	}
	push(tills[1], entries(1)) // one batch
	for _, e := range entries(2) {
		push(tills[2], []wire.Entry{e}) // a batch each
	}

	sums := func(q string) map[string]string {
		rows, err := s.db.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var code, v string
			if err := rows.Scan(&code, &v); err != nil {
				t.Fatal(err)
			}
			out[code] = v
		}
		return out
	}
	debts := sums(`SELECT code, debt::text FROM cards`)
	written := sums(`SELECT card, sum(points)::text FROM debt_writeoffs GROUP BY card`)
	overdrawn := sums(`SELECT card, sum(points)::text FROM overdrafts GROUP BY card`)
	zero := func(v string) string {
		if v == "" {
			return "0"
		}
		return decimal.RequireFromString(v).String()
	}
	for i, m := range modes {
		for till := 1; till <= 2; till++ {
			code := card(i, till)
			got := want{balanceOf(t, s, code), zero(debts[code]), zero(written[code]), zero(overdrawn[code])}
			if got != m.want {
				t.Errorf("%s, card %s (%s): balance, debt, written off, overdrawn = %v; want %v",
					m.policy.Mode, code, map[int]string{1: "one batch", 2: "a batch each"}[till], got, m.want)
			}
		}
	}
}
