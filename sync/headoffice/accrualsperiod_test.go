package headoffice

import (
	"context"
	"strings"
	"testing"
	"time"

	"tillagent/sync/wire"
)

// TestAccrualsReadOnlyThePeriod: with 20,000 entries of a year before and
// a day's seven, the accruals report for that day reads only its entries,
// in the custom and the generic plan. The journal is kept forever; a
// month's report must not read every year's.
func TestAccrualsReadOnlyThePeriod(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	old := demoNow.AddDate(-1, 0, 0)
	if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded, created_at)
		SELECT 'OLD-' || n, 'OLD', '3300000000001', 'accrual', 1, '{}', '\x00', true, $1 FROM generate_series(1, 20000) n`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `ANALYZE journal`); err != nil {
		t.Fatal(err)
	}
	from, to := demoNow.Add(-24*time.Hour), demoNow.Add(24*time.Hour)
	a, err := s.Accruals(ctx, from, to)
	if err != nil || a.CustomerAccrued.String() != "60" || a.Redeemed.String() != "3" {
		t.Fatalf("the day's accruals: %+v, %v; want 60 accrued, 3 redeemed (the year-old entries outside)", a, err)
	}
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	readsAtMost(t, conn, "accruals", sqlAccruals, "'"+from.Format(time.RFC3339Nano)+"', '"+to.Format(time.RFC3339Nano)+"'", "journal", 20)
}

// TestMigration0009FillsCreatedAt: entries stored before migration 0009
// (created_at empty) get their bodies' times, a body with \u0000 too, and
// the accruals report then counts them as it did from the bodies.
func TestMigration0009FillsCreatedAt(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "m9", Card: "3300000000002", Points: dec("4"), Reason: "migration test"}); err != nil {
		t.Fatal(err)
	}
	nul := `{"id":"ERP-nul","check_id":"ERP-nul","card_code":"3300000000003","kind":"correction","points":"5","note":"typo\u0000",` +
		`"created_at":"` + demoNow.Add(-time.Hour).Format(time.RFC3339) + `","amount_kop":0,"purchase_kop":0}`
	if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded)
		VALUES ('ERP-nul', 'ERP', '3300000000003', 'correction', 5, $1, '\x00', true)`, nul); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE journal SET created_at = NULL`); err != nil {
		t.Fatal(err)
	}
	sql, err := migrationFS.ReadFile("migrations/0009_journal_created_at.sql")
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(sql), "UPDATE journal SET created_at"), strings.Index(string(sql), "CREATE INDEX")
	if i < 0 || j < i {
		t.Fatal("migration 0009 has no created_at backfill before its index")
	}
	if _, err := s.db.Exec(ctx, string(sql[i:j])); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE created_at IS NULL`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d entries without created_at after the backfill (%v)", n, err)
	}
	var at time.Time
	if err := s.db.QueryRow(ctx, `SELECT created_at FROM journal WHERE id = $1`, entries[0].ID).Scan(&at); err != nil || !at.Equal(entries[0].CreatedAt) {
		t.Fatalf("created_at of %s: %v, %v; want %v", entries[0].ID, at, err, entries[0].CreatedAt)
	}
	a, err := s.Accruals(ctx, demoNow.Add(-24*time.Hour), demoNow.Add(24*time.Hour))
	if err != nil || a.CustomerAccrued.String() != "60" || a.Redeemed.String() != "3" || a.Corrections.String() != "9" {
		t.Fatalf("accruals after the backfill: %+v, %v; want 60 accrued, 3 redeemed, corrections 4 + 5", a, err)
	}
}
