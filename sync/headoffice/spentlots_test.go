package headoffice

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// usedUpLots gives card n lots used up long ago: the history a regular's
// card carries, one lot a purchase.
func usedUpLots(t *testing.T, s *Server, card string, n int) {
	t.Helper()
	if _, err := s.db.Exec(context.Background(), `INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from, check_id)
		SELECT $1, 'old-' || lpad(g::text, 5, '0'), 10, 0, '2025-11-01', '2025-11-01', 'old-' || g
		FROM generate_series(1, $2::int) g`, card, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(context.Background(), `ANALYZE lots`); err != nil {
		t.Fatal(err)
	}
}

// TestFoldReadsOnlyTheLotsItMayTouch: a card with 2,000 used-up lots and
// one live lot. Folding a batch on it reads the live lot, and the used-up
// ones the chain names (loadNamedLots: a return gives points back to
// them) by key, not the card's whole history, in the custom and the
// generic plan. Before, every sale read every lot its card was ever
// accrued: with 20 used-up lots a card, ingestion fell from about 22,000
// to 10,500–11,800 entries/s (TILLAGENT_BENCH_SPENT_LOTS=20,
// BenchmarkIngest; 22,200–22,600 now).
func TestFoldReadsOnlyTheLotsItMayTouch(t *testing.T) {
	now := demoNow
	const card = "3400000000041"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	usedUpLots(t, s, card, 2000)
	var lt lateTill
	wantStatuses(t, "a sale spending 30 of A", lt.push(t, s, spendFrom(card, "A", "c1", "30")), wire.Applied)
	if b := balanceOf(t, s, card); b != "70" {
		t.Fatalf("balance %s, want 70", b)
	}

	ctx := context.Background()
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The used-up lot is read by key; a name that is no lot reads nothing.
	rows, err := conn.Query(ctx, sqlNamedLots, []string{card, card}, []string{"S001-T01-x", "old-00007"})
	if err != nil {
		t.Fatal(err)
	}
	cards := map[string]*cardState{card: {Code: card, Lots: map[string]*lotState{}}}
	if err := scanLots(rows, cards); err != nil || strings.Join(cards[card].order, ",") != "old-00007" {
		t.Fatalf("named lots read: %v, %v; want old-00007", cards[card].order, err)
	}
	rows.Close()
	readsAtMost(t, conn, "ingest_lots", sqlIngestLots, fmt.Sprintf("ARRAY['%s']::text[], 'S001-T01'", card), "lots", 1)
	readsAtMost(t, conn, "named_lots", sqlNamedLots, fmt.Sprintf("ARRAY['%s', '%s']::text[], ARRAY['S001-T01-x', 'old-00007']::text[]", card, card), "lots", 1)
	if _, err := conn.Exec(ctx, `RESET plan_cache_mode`); err != nil {
		t.Fatal(err)
	}
}

// TestUsedUpLotsStillFold: the used-up lots the fold reads only when named
// are found when an entry names them — given back by a return that waited
// behind a gap, created again by an accrual without lots under the id of
// one (kept as rejected) — and the feed carries a card's live lots only: a till holding a lot
// since used up sets it to 0, and its balance agrees with head office's
// throughout.
func TestUsedUpLotsStillFold(t *testing.T) {
	now := demoNow
	const card = "3400000000042"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil), lot(card, "B", "50", demoNow.Add(-48*time.Hour), nil))
	usedUpLots(t, s, card, 50)
	ctx := context.Background()
	if _, err := s.Enrol(ctx, "S001-T02", "S001"); err != nil {
		t.Fatal(err)
	}
	feed := takeFeed(t, s, "S001-T02")
	lotsAtTill := func(want, balance string) {
		t.Helper()
		if got := feed.lots(t, card); strings.Join(got, " ") != want {
			t.Fatalf("lots at the till: %s, want %s", strings.Join(got, " "), want)
		}
		if b := balanceOf(t, s, card); b != balance {
			t.Fatalf("head office's balance %s, want %s", b, balance)
		}
		if b, err := feed.st.Spendable(ctx, card, now); err != nil || b.Total.String() != balance {
			t.Fatalf("the till's balance %v, %v; want %s", b.Total, err, balance)
		}
	}
	lotsAtTill("A 100/100 B 50/50", "150")

	var lt lateTill
	wantStatuses(t, "a sale spending all of A", lt.push(t, s, spendFrom(card, "A", "c1", "100")), wire.Applied)
	feed.pull(t)
	lotsAtTill("A 100/0 B 50/50", "50")

	// Its return reaches head office before the batch before it: the
	// used-up lot it gives back to is read by key (no full read of the
	// card's lots).
	gap := lt.batch(spendFrom(card, "B", "c2", "5"))
	later := lt.batch(giveBack(card, "A", "c1", "100"))
	res, err := s.Ingest(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the return after the gap", res, wire.Applied)
	if res, err = s.Ingest(ctx, gap); err != nil {
		t.Fatalf("the gap's batch, folding the return waiting behind it: %v", err)
	}
	wantStatuses(t, "the gap's batch", res, wire.Applied)
	var unfolded int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE NOT folded`).Scan(&unfolded); err != nil || unfolded != 0 {
		t.Fatalf("%d entries unfolded (%v), want none", unfolded, err)
	}
	if n := s.LotRereads(); n != 0 {
		t.Fatalf("%d ingests read every lot of their cards, want none", n)
	}
	feed.pull(t)
	lotsAtTill("A 100/100 B 50/45", "145")

	// An accrual without lots under the id of a used-up lot (ERP named one
	// so): found once the insert fails on it, every lot read, and kept as
	// rejected (TestEntryCreatingAHeldLotIsRejected); and a correction
	// whose lot ERP named so is refused.
	next := lt.batch(store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("3"), PurchaseKop: 300, CreatedAt: demoNow})
	accrual := next.Entries[0].ID
	if _, err := s.db.Exec(ctx, `INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from)
		VALUES ($1, $2, 10, 0, '2025-11-01', '2025-11-01'), ($1, 'ERP-fix1', 10, 0, '2025-11-01', '2025-11-01')`, card, accrual); err != nil {
		t.Fatal(err)
	}
	if res, err = s.Ingest(ctx, next); err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "an accrual without lots", res, wire.Rejected)
	if n := s.LotRereads(); n != 1 {
		t.Fatalf("%d ingests read every lot of their cards, want 1", n)
	}
	if _, err := s.Correct(ctx, Correction{ID: "fix1", Card: card, Points: dec("5"), Reason: "goodwill"}); err == nil || !strings.Contains(err.Error(), "already has a lot ERP-fix1") {
		t.Fatalf("correction under a used-up lot's id: %v, want refused naming the lot", err)
	}
	feed.pull(t)
	lotsAtTill("A 100/100 B 50/45", "145")
}
