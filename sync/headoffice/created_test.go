package headoffice

import (
	"context"
	"strings"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestEntryCreatingAHeldLotIsRejected: an accrual creating a lot its card
// already holds (no till writes one: a lot is created once, under an id
// of the entry's) is kept as rejected, whole, and the entries after it
// fold — whether the lot is live (read before the fold), used up (found
// by the insert, then one re-read of every lot), created by an earlier
// entry of the same batch, or the entry waited behind a gap (answered
// applied when stored, rejected when folded). It was answered applied and
// counted nothing (or, without lots, overwrote the lot), while the
// accruals report counted its points as accrued.
func TestEntryCreatingAHeldLotIsRejected(t *testing.T) {
	now := demoNow
	const card = "3400000000043"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	usedUpLots(t, s, card, 3) // old-00001..old-00003, 10/0 each
	ctx := context.Background()
	var lt lateTill
	accrue := func(pts, lotID string) store.Entry {
		return store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec(pts), PurchaseKop: 1000,
			Lots: []store.LotChange{{Create: true, Delta: dec(pts), ActiveFrom: demoNow}}, CreatedAt: demoNow, Note: lotID}
	}
	// batch names the created lots as the entries' notes say ("" keeps
	// the entry's own id, as a till does).
	batch := func(es ...store.Entry) *wire.Batch {
		b := lt.batch(es...)
		for i := range b.Entries {
			if n := b.Entries[i].Note; n != "" {
				b.Entries[i].Lots[0].LotID = n
			}
		}
		return b
	}
	ingest := func(what string, b *wire.Batch, want ...string) {
		t.Helper()
		res, err := s.Ingest(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		wantStatuses(t, what, res, want...)
		for i, r := range res.Results {
			if r.Status == wire.Rejected && !strings.Contains(r.Error, "which card "+card+" already holds") {
				t.Errorf("%s: entry %d refused %q, want why (the lot held)", what, i, r.Error)
			}
		}
	}

	ingest("creating live lot A, then an accrual of its own", batch(accrue("7", "A"), accrue("5", "")), wire.Rejected, wire.Applied)
	if b := balanceOf(t, s, card); b != "105" {
		t.Fatalf("balance %s, want 105 (A untouched, the second accrual counted)", b)
	}
	if n := s.LotRereads(); n != 0 {
		t.Fatalf("%d re-reads for a live lot, want 0 (read before the fold)", n)
	}

	ingest("creating used-up lot old-00002", batch(accrue("9", "old-00002")), wire.Rejected)
	if n := s.LotRereads(); n != 1 {
		t.Fatalf("%d re-reads, want 1 (the insert found the used-up lot)", n)
	}
	var points, remaining string
	if err := s.db.QueryRow(ctx, `SELECT points::text, remaining::text FROM lots WHERE card = $1 AND lot_id = 'old-00002'`, card).Scan(&points, &remaining); err != nil {
		t.Fatal(err)
	}
	if points != "10" || remaining != "0" {
		t.Fatalf("used-up lot after the entry: %s/%s, want 10/0 untouched", points, remaining)
	}

	ingest("two entries creating the same new lot", batch(accrue("4", "N1"), accrue("6", "N1")), wire.Applied, wire.Rejected)
	if b := balanceOf(t, s, card); b != "109" {
		t.Fatalf("balance %s, want 109 (only the first N1 counted)", b)
	}

	// An accrual without lots creates a lot under its own id: ERP named a
	// used-up lot so. (Head office overwrote the lot with the accrual's.)
	gap := batch(accrue("1", ""))
	later := batch(store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("3"), PurchaseKop: 300, CreatedAt: demoNow})
	if _, err := s.db.Exec(ctx, `INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from)
		VALUES ($1, $2, 10, 0, '2025-11-01', '2025-11-01')`, card, later.Entries[0].ID); err != nil {
		t.Fatal(err)
	}
	// It waits behind a gap: stored and answered applied, then rejected
	// when the gap's batch folds it.
	ingest("the accrual behind a gap", later, wire.Applied)
	ingest("the gap's batch", gap, wire.Applied)
	if b := balanceOf(t, s, card); b != "110" {
		t.Fatalf("balance %s, want 110 (the gap's 1 counted, the lotless 3 not)", b)
	}
	var unfolded int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE NOT folded`).Scan(&unfolded); err != nil || unfolded != 0 {
		t.Fatalf("%d entries unfolded (%v), want none", unfolded, err)
	}
	if err := s.db.QueryRow(ctx, `SELECT points::text, remaining::text FROM lots WHERE card = $1 AND lot_id = $2`, card, later.Entries[0].ID).Scan(&points, &remaining); err != nil {
		t.Fatal(err)
	}
	if points != "10" || remaining != "0" {
		t.Fatalf("ERP's lot after the lotless accrual: %s/%s, want 10/0 untouched", points, remaining)
	}

	rej, err := s.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 4 {
		t.Fatalf("rejected list: %d entries, want 4: %+v", len(rej), rej)
	}
	acc, err := s.Accruals(ctx, demoNow.Add(-time.Hour), demoNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if acc.CustomerAccrued.String() != "10" || acc.Rejected.Entries != 4 || acc.Rejected.Points.String() != "25" {
		t.Fatalf("accruals report: accrued %s, rejected %d entries (%s points); want 10 accrued (5+4+1), 4 rejected (7+9+6+3 = 25)",
			acc.CustomerAccrued, acc.Rejected.Entries, acc.Rejected.Points)
	}
}
