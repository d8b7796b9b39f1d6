package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// TestSpendableMatchesModel drives the demo card 2900000000018 through a
// random sequence of redemptions, returns giving points back (also to lots
// a feed emptied, which the quote reads by key), accruals,
// acknowledgements and replica feeds that fold a prefix of the journal
// (lots below zero become card debt, as head office books them), and after
// every step compares Spendable with a plain in-memory model of the
// documented arithmetic, 20 seeds. Invariants: spendable is never negative
// and never above the active remaining points; balance = remaining of
// unexpired lots − debt.
func TestSpendableMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { spendableModel(t, seed) })
	}
}

type modelLot struct {
	remaining      decimal.Decimal
	active, expiry time.Time // zero expiry: never
}

type modelEntry struct {
	id     string
	deltas map[string]decimal.Decimal
	newLot map[string]modelLot
	acked  bool
}

func spendableModel(t *testing.T, seed uint64) {
	s := mustDemo(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 42))
	const card = "2900000000018"
	mt := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	replica := map[string]modelLot{
		"L-13-1": {decimal.NewFromInt(100), mt("2026-06-15T10:00:00+03:00"), mt("2026-12-12T10:00:00+03:00")},
		"L-13-2": {decimal.NewFromInt(200), mt("2026-10-15T10:00:00+03:00"), mt("2027-04-13T10:00:00+03:00")},
		"L-13-3": {decimal.NewFromInt(200), mt("2026-12-04T10:00:00+03:00"), mt("2027-06-02T10:00:00+03:00")},
		"L-13-0": {decimal.NewFromInt(80), mt("2026-03-15T10:00:00+03:00"), mt("2026-09-11T10:00:00+03:00")},
	}
	var entries []*modelEntry
	feeds, folded := 0, 0         // entries[:folded] are in the replica
	replicaDebt := decimal.Zero   // card debt the feeds carried
	points := map[string]string{} // credited points of the lots this test created
	lotIDs := []string{"L-13-1", "L-13-2", "L-13-3", "L-13-0"}
	// The lots as the till must see them: the replica's, then the
	// entries after the watermark.
	modelLots := func() map[string]modelLot {
		lots := map[string]modelLot{}
		for id, l := range replica {
			lots[id] = l
		}
		for _, e := range entries[folded:] { // acknowledged or not
			for id, l := range e.newLot {
				lots[id] = l
			}
			for id, d := range e.deltas {
				l := lots[id]
				l.remaining = l.remaining.Add(d)
				lots[id] = l
			}
		}
		return lots
	}
	issued := func(id string) decimal.Decimal { // a lot's credited points
		if p, ok := points[id]; ok {
			return decimal.RequireFromString(p)
		}
		return map[string]decimal.Decimal{"L-13-1": decimal.NewFromInt(150), "L-13-2": decimal.NewFromInt(200),
			"L-13-3": decimal.NewFromInt(200), "L-13-0": decimal.NewFromInt(80)}[id]
	}
	model := func(now time.Time) (spend, total, debt decimal.Decimal) {
		lots := modelLots()
		debt = replicaDebt
		active := decimal.Zero
		for _, l := range lots {
			if l.remaining.IsNegative() {
				debt = debt.Sub(l.remaining)
				continue
			}
			if !l.expiry.IsZero() && !now.Before(l.expiry) {
				continue
			}
			total = total.Add(l.remaining)
			if !now.Before(l.active) {
				active = active.Add(l.remaining)
			}
		}
		spend = decimal.Max(decimal.Zero, active.Sub(debt))
		return spend, total.Sub(debt), debt
	}
	for step := 0; step < 60; step++ {
		now := demoNow.Add(time.Duration(rng.IntN(30*24)) * time.Hour)
		var e Entry
		me := &modelEntry{deltas: map[string]decimal.Decimal{}, newLot: map[string]modelLot{}}
		check := fmt.Sprintf("P%d", step)
		switch op := rng.IntN(4); op {
		case 0, 1: // redeem from one or two lots, possibly below zero; or a
			// return giving points back, also to a lot the feed emptied
			e = Entry{CheckID: check, CardCode: card, Kind: KindRedemption}
			sign := int64(-1)
			if op == 1 {
				e.Kind, sign = KindReversal, 1
			}
			for _, id := range []string{lotIDs[rng.IntN(len(lotIDs))], lotIDs[rng.IntN(len(lotIDs))]} {
				if _, dup := me.deltas[id]; dup {
					continue
				}
				d := decimal.NewFromInt(sign * int64(1+rng.IntN(120)))
				if sign > 0 {
					// Never above what the lot was issued (the feed refuses
					// it), nor to a lot below zero (head office would pay
					// its debt first; this model's feed only empties it).
					rem := modelLots()[id].remaining
					if d = decimal.Min(d, issued(id).Sub(rem)); rem.IsNegative() || !d.IsPositive() {
						continue
					}
				}
				me.deltas[id] = d
				e.Lots = append(e.Lots, LotChange{LotID: id, Delta: d})
				e.Points = e.Points.Add(d)
			}
		case 2: // accrue a new lot, active now or later
			p := decimal.NewFromInt(int64(1 + rng.IntN(90)))
			act := demoNow.Add(time.Duration(rng.IntN(40*24)-20*24) * time.Hour).Truncate(time.Second)
			exp := act.AddDate(0, 0, 5+rng.IntN(30))
			e = Entry{CheckID: check, CardCode: card, Kind: KindAccrual, Points: p, PurchaseKop: 1000,
				Lots: []LotChange{{Create: true, Delta: p, ActiveFrom: act, ExpiresAt: exp}}}
			me.newLot["?"] = modelLot{p, act, exp}
		case 3: // acknowledge a random half of the pending entries
			var ids []string
			for _, x := range entries {
				if !x.acked && rng.IntN(2) == 0 {
					x.acked = true
					ids = append(ids, x.id)
				}
			}
			if err := s.MarkAcked(ctx, ids); err != nil {
				t.Fatal(err)
			}
			if folded < len(entries) && rng.IntN(2) == 0 {
				// Head office folds a prefix of the journal, acknowledged
				// or not (its feed and its acks travel separately).
				k := folded + 1 + rng.IntN(len(entries)-folded)
				touched := map[string]bool{}
				for _, x := range entries[folded:k] {
					for id, l := range x.newLot {
						replica[id] = l
						touched[id] = true
					}
					for id, d := range x.deltas {
						l := replica[id]
						l.remaining = l.remaining.Add(d)
						replica[id] = l
						touched[id] = true
					}
				}
				r := &Replica{Version: ReplicaFormatVersion, FoldedThrough: map[string]string{s.TillID(): entries[k-1].id}}
				for id := range touched {
					l := replica[id]
					if l.remaining.IsNegative() { // below zero: the lot is empty, the rest is debt
						replicaDebt = replicaDebt.Sub(l.remaining)
						l.remaining = decimal.Zero
						replica[id] = l
					}
					rem := checkout.PointsOf(l.remaining)
					if pts, ok := points[id]; ok {
						act, exp := l.active, l.expiry
						r.Lots = append(r.Lots, ReplicaLot{ID: id, Card: card, Points: mustPoints(t, pts), Remaining: &rem,
							AccruedAt: act, ActiveFrom: &act, ExpiresAt: &exp})
					} else {
						r.Lots = append(r.Lots, demoLot(t, id, l.remaining.String()))
					}
				}
				r.Cards = []ReplicaCard{{Code: card, Kind: "bonus", State: checkout.StateActive, Debt: checkout.PointsOf(replicaDebt)}}
				if _, err := s.Import(ctx, r); err != nil {
					t.Fatalf("step %d: feed: %v", step, err)
				}
				folded = k
				feeds++
			}
		}
		if e.Kind != "" {
			ids, err := s.Append(ctx, []Entry{e})
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			me.id = ids[0]
			if l, ok := me.newLot["?"]; ok {
				delete(me.newLot, "?")
				me.newLot[ids[0]] = l
				points[ids[0]] = l.remaining.String()
				lotIDs = append(lotIDs, ids[0])
			}
			entries = append(entries, me)
		}
		got, err := s.Spendable(ctx, card, now)
		if err != nil {
			t.Fatal(err)
		}
		spend, total, debt := model(now)
		if !got.Spendable.Decimal().Equal(spend) || !got.Total.Decimal().Equal(total) || !got.Debt.Decimal().Equal(debt) {
			t.Fatalf("step %d at %s: store says spendable %s total %s debt %s; model %s %s %s",
				step, now.Format(time.RFC3339), got.Spendable, got.Total, got.Debt, spend, total, debt)
		}
		if got.Spendable.IsNegative() {
			t.Fatalf("step %d: negative spendable %s", step, got.Spendable)
		}
	}
	if feeds == 0 {
		t.Fatal("no feed folded anything: the sequence tested acks only")
	}
}
