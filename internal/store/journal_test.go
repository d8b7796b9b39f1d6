package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// sale13 is a sale on the demo card 2900000000018 at demoNow: 150 points
// spent from the two active lots (soonest-expiring first), 40 earned on a
// new lot active in 14 days, 2 000.00 roubles of purchases.
func sale13(check string) []Entry {
	return []Entry{
		{CheckID: check, CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-150"), AmountKop: 15000,
			Lots: []LotChange{{LotID: "L-13-1", Delta: dec("-100")}, {LotID: "L-13-2", Delta: dec("-50")}}},
		{CheckID: check, CardCode: "2900000000018", Kind: KindAccrual, Points: dec("40"), PurchaseKop: 200000,
			Lots: []LotChange{{Create: true, Delta: dec("40"), ActiveFrom: demoNow.AddDate(0, 0, 14), ExpiresAt: demoNow.AddDate(0, 0, 194)}}},
	}
}

func TestAppendAndRead(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || !strings.HasPrefix(ids[0], "S001-T01-") || len(ids[0]) != len("S001-T01-")+26 || ids[0] >= ids[1] {
		t.Fatalf("ids = %v: want two increasing S001-T01-<26> ids", ids)
	}
	got, err := s.EntriesOfCheck(ctx, "C1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != ids[0] || got[1].Kind != KindAccrual || !got[0].Points.Equal(dec("-150")) ||
		got[0].AmountKop != 15000 || got[1].PurchaseKop != 200000 || len(got[0].Lots) != 2 || got[0].Acked {
		t.Fatalf("entries = %+v", got)
	}
	// The created lot took its entry's id.
	if l := got[1].Lots[0]; l.LotID != ids[1] || !l.Create || !l.ActiveFrom.Equal(demoNow.AddDate(0, 0, 14)) {
		t.Fatalf("created lot = %+v", l)
	}
	pend, err := s.Pending(ctx, 10)
	if err != nil || len(pend) != 2 {
		t.Fatalf("Pending = %d entries, %v", len(pend), err)
	}
}

func TestAppendValidates(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		e    Entry
		want string
	}{
		{"no check", Entry{CardCode: "x", Kind: KindAccrual}, "empty check id"},
		{"kind", Entry{CheckID: "c", CardCode: "x", Kind: "gift"}, `unknown kind "gift"`},
		{"sum", Entry{CheckID: "c", CardCode: "x", Kind: KindRedemption, Points: dec("-10"),
			Lots: []LotChange{{LotID: "a", Delta: dec("-9")}}}, "differ from the sum of lot deltas"},
		{"created lot", Entry{CheckID: "c", CardCode: "x", Kind: KindAccrual, Points: dec("5"),
			Lots: []LotChange{{Create: true, Delta: dec("5")}}}, "needs a positive delta and active_from"},
	} {
		if _, err := s.Append(ctx, []Entry{c.e}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := s.Append(ctx, nil); err != ErrEmptySale {
		t.Errorf("empty sale: %v", err)
	}
}

// TestAppendAllOrNothing forces the second entry of a sale to collide with an
// existing id: the first entry must not survive the failed transaction.
func TestAppendAllOrNothing(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	ms, hi, lo, err := decodeULID(strings.TrimPrefix(ids[0], "S001-T01-"))
	if err != nil {
		t.Fatal(err)
	}
	// Rewind the generator so the next two ids are ids[0]-1 (new) and ids[0] (taken).
	s.ids.mu.Lock()
	s.ids.ms, s.ids.hi, s.ids.lo = ms, hi, lo-2
	s.ids.now = func() time.Time { return time.UnixMilli(int64(ms)) }
	s.ids.mu.Unlock()
	_, err = s.Append(ctx, sale13("C2"))
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("append with a colliding id: err = %v, want a UNIQUE violation", err)
	}
	got, err := s.EntriesOfCheck(ctx, "C2")
	if err != nil || len(got) != 0 {
		t.Fatalf("check C2 has %d entries after a failed append (%v), want none", len(got), err)
	}
	var n int
	s.r.QueryRowContext(ctx, `SELECT count(*) FROM journal_lots`).Scan(&n)
	if n != 3 {
		t.Fatalf("%d journal_lots rows, want 3 (only C1's)", n)
	}
}

func TestJournalIsAppendOnly(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE journal SET points = '999' WHERE id = '` + ids[0] + `'`,
		`DELETE FROM journal WHERE id = '` + ids[0] + `'`,
		`UPDATE journal_lots SET delta = '1'`,
		`DELETE FROM journal_lots`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
	if err := s.MarkAcked(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE journal SET acked = 0`); err == nil {
		t.Error("un-acknowledging an entry was allowed")
	}
}

func TestMarkAcked(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAcked(ctx, []string{ids[0], "S001-T01-nope"}); err == nil || !strings.Contains(err.Error(), "S001-T01-nope") {
		t.Fatalf("MarkAcked with an unknown id: %v", err)
	}
	// The failed call changed nothing.
	if p, _ := s.Pending(ctx, 10); len(p) != 2 {
		t.Fatalf("pending after failed MarkAcked = %d, want 2", len(p))
	}
	if err := s.MarkAcked(ctx, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAcked(ctx, ids[:1]); err != nil { // repeated ack is fine
		t.Fatal(err)
	}
	p, _ := s.Pending(ctx, 10)
	if len(p) != 1 || p[0].ID != ids[1] {
		t.Fatalf("pending = %+v, want only %s", p, ids[1])
	}
}

// TestSpendableArithmetic works the balance of the demo card 2900000000018
// at 2026-11-23 12:00 MSK through a sale, a return and acknowledgement.
func TestSpendableArithmetic(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	bal := func(step string, spend, total, debt string) {
		t.Helper()
		b, err := s.Spendable(ctx, "2900000000018", demoNow)
		if err != nil {
			t.Fatal(err)
		}
		if b.Spendable.String() != spend || b.Total.String() != total || b.Debt.String() != debt {
			t.Fatalf("%s: balance %+v, want spendable %s total %s debt %s", step, b, spend, total, debt)
		}
	}
	// Replica: L-13-1 100 + L-13-2 200 active, L-13-3 200 from 4 Dec,
	// L-13-0 expired in September.
	bal("replica", "300", "500", "0")
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	// −100 −50 from active lots; +40 not active for 14 days.
	bal("after sale", "150", "390", "0")
	// A return takes back 40 (the new lot) and 250 more from L-13-2, which
	// has 150: that lot goes to −100, i.e. 100 debt.
	ret, err := s.Append(ctx, []Entry{{CheckID: "C1", CardCode: "2900000000018", Kind: KindReversal, Points: dec("-290"),
		PurchaseKop: -200000, Lots: []LotChange{{LotID: ids[1], Delta: dec("-40")}, {LotID: "L-13-2", Delta: dec("-250")}}}})
	if err != nil {
		t.Fatal(err)
	}
	bal("after return", "0", "100", "100") // 200 (L-13-3) − 100 debt; nothing active left
	// Head office acknowledges everything: nothing changes, the lots we
	// hold do not include the entries yet.
	p, _ := s.Pending(ctx, 100)
	var all []string
	for _, e := range p {
		all = append(all, e.ID)
	}
	if err := s.MarkAcked(ctx, all); err != nil {
		t.Fatal(err)
	}
	bal("acked", "0", "100", "100")
	// Its feed folds all three entries: L-13-1 and L-13-2 at 0, the new
	// lot 40 − 40 = 0, the 100 below zero as card debt; watermark = the
	// return. The replica alone now gives the same balance.
	act, exp := demoNow.AddDate(0, 0, 14), demoNow.AddDate(0, 0, 194)
	zero := mustPoints(t, "0")
	r := &Replica{Version: ReplicaFormatVersion,
		Cards: []ReplicaCard{{Code: "2900000000018", Kind: "bonus", State: checkout.StateActive, Debt: mustPoints(t, "100")}},
		Lots: []ReplicaLot{demoLot(t, "L-13-1", "0"), demoLot(t, "L-13-2", "0"),
			{ID: ids[1], Card: "2900000000018", Points: mustPoints(t, "40"), Remaining: &zero, AccruedAt: demoNow, ActiveFrom: &act, ExpiresAt: &exp}},
		FoldedThrough: map[string]string{s.TillID(): ret[0]}}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	bal("folded", "0", "100", "100")
	if _, err := s.Spendable(ctx, "0000", demoNow); err == nil {
		t.Fatal("Spendable of an unknown card: no error")
	}
}

func TestQuoteInputFillsEverything(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	check := checkout.Check{ID: "Q1", StoreID: "S001", Lines: []checkout.Line{
		{No: 1, ProductID: "1001", Qty: checkout.MustQty("2"), Price: checkout.MustMoney("89.90")},
		{No: 2, ProductID: "3001", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("210.00")},
		{No: 3, ProductID: "1303", Qty: checkout.MustQty("0.5"), Price: checkout.MustMoney("140.00")},
	}}
	if _, err := s.Append(ctx, sale13("C1")); err != nil {
		t.Fatal(err)
	}
	in, err := s.QuoteInput(ctx, check, []string{"2900000000018", "2700000000014", "2900000000018"}, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	if in.Location.String() != "Europe/Moscow" || !in.Now.Equal(demoNow) {
		t.Fatalf("location %v now %v", in.Location, in.Now)
	}
	l1, l2, l3 := in.Check.Lines[0], in.Check.Lines[1], in.Check.Lines[2]
	if l1.Name != "Молоко 3,2% 1 л" || strings.Join(l1.Groups, ",") != "dairy,food" || l1.Segment != "regular" ||
		l1.VAT != "vat10" || l1.Tobacco || l1.LastPurchasePrice == nil || l1.LastPurchasePrice.String() != "62.00" {
		t.Fatalf("line 1 = %+v", l1)
	}
	if !l2.Tobacco || l2.Segment != "tobacco" {
		t.Fatalf("line 2 = %+v", l2)
	}
	if l3.LastPurchasePrice != nil || l3.Segment != "fresh" {
		t.Fatalf("line 3 = %+v", l3)
	}
	if check.Lines[0].Name != "" {
		t.Fatal("QuoteInput modified the caller's lines")
	}
	if len(in.Cards) != 2 || len(in.Programs) != 2 {
		t.Fatalf("%d cards %d programs, want 2 and 2 (duplicate scan dropped)", len(in.Cards), len(in.Programs))
	}
	c := in.Cards[0]
	var lots []string
	for _, l := range c.Lots {
		lots = append(lots, l.ID+"="+l.Remaining.String())
	}
	// L-13-1 consumed to 0 (dropped), L-13-0 expired (dropped); the
	// journal's new lot (expiring last) comes at the end.
	if c.Kind != checkout.KindBonus || c.State != checkout.StateActive || c.ProgramID != "BONUS" ||
		len(lots) != 3 || lots[0] != "L-13-2=150" || lots[1] != "L-13-3=200" || !strings.HasSuffix(lots[2], "=40") {
		t.Fatalf("card 13 = %+v lots %v", c, lots)
	}
	if c.PurchasesAllTime.String() != "86500.00" || c.PurchasesPrevMonth.String() != "12000.00" ||
		c.AccruedThisMonth.String() != "200" || c.RedeemedThisMonth.String() != "150" {
		t.Fatalf("card 13 history: all %s prev %s accrued %s redeemed %s", c.PurchasesAllTime, c.PurchasesPrevMonth,
			c.AccruedThisMonth, c.RedeemedThisMonth)
	}
	f := in.Cards[1]
	// Family card counters are for October = the previous month.
	if f.Kind != checkout.KindCombined || f.PurchasesPrevMonth.String() != "2100.00" || !f.AccruedThisMonth.IsZero() {
		t.Fatalf("family card = %+v", f)
	}
	// Stale counters (September) count for neither month.
	in, err = s.QuoteInput(ctx, check, []string{"2900000000056"}, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	if c := in.Cards[0]; !c.PurchasesPrevMonth.IsZero() || c.PurchasesAllTime.String() != "5000.00" {
		t.Fatalf("stale card = %+v", c)
	}
	// Errors name the line and the card.
	bad := check
	bad.Lines = append([]checkout.Line{}, check.Lines...)
	bad.Lines[1].ProductID = "9999"
	if _, err := s.QuoteInput(ctx, bad, nil, demoNow); err == nil || !strings.Contains(err.Error(), `line 2: product "9999"`) {
		t.Fatalf("unknown product: %v", err)
	}
	if _, err := s.QuoteInput(ctx, check, []string{"123"}, demoNow); err == nil || !strings.Contains(err.Error(), "card 123: unknown card") {
		t.Fatalf("unknown card: %v", err)
	}
	bad.StoreID = "S999"
	if _, err := s.QuoteInput(ctx, bad, nil, demoNow); err == nil || !strings.Contains(err.Error(), `unknown store "S999"`) {
		t.Fatalf("unknown store: %v", err)
	}
}

func TestIDsMonotonicAcrossReopenAndClockBack(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, []Entry{{CheckID: "c", CardCode: "x", Kind: KindCorrection, Points: dec("1")}})
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	s2, err := Open(ctx, Options{Path: path, TillID: "S001-T01"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// The clock is set back a day: ids still grow.
	s2.ids.now = func() time.Time { return time.Now().AddDate(0, 0, -1) }
	ids2, err := s2.Append(ctx, []Entry{{CheckID: "c", CardCode: "x", Kind: KindCorrection, Points: dec("1")}})
	if err != nil {
		t.Fatal(err)
	}
	if ids2[0] <= ids[0] {
		t.Fatalf("id after reopen with clock set back %s <= %s", ids2[0], ids[0])
	}
}

func TestULIDRoundTrip(t *testing.T) {
	for _, v := range []struct {
		ms uint64
		hi uint16
		lo uint64
	}{{0, 0, 0}, {1<<48 - 1, 0xffff, 1<<64 - 1}, {1763900000000, 0x1234, 0xdeadbeefcafebabe}} {
		s := encodeULID(v.ms, v.hi, v.lo)
		ms, hi, lo, err := decodeULID(s)
		if err != nil || ms != v.ms || hi != v.hi || lo != v.lo {
			t.Fatalf("round trip %+v → %s → %d %d %d %v", v, s, ms, hi, lo, err)
		}
	}
	if a, b := encodeULID(5, 0, 1<<64-1), encodeULID(5, 1, 0); a >= b {
		t.Fatalf("encoding does not sort: %s >= %s", a, b)
	}
}
