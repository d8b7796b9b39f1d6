package headoffice

import (
	"context"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestDeltaReadsCardsByKey: a delta of 6,000 of 20,000 cards reads them
// by key, never the whole table, on a head office fresh from a restart
// (no plan cached). Planned for that many codes, the cards were read by a
// sequential scan: a million cards, half a second a delta (seen in
// BenchmarkFirstLoad once the first load no longer read its pages code by
// code, which had left a generic plan behind). Counted by PostgreSQL's
// own statistics of the cards table, flushed by closing head office's
// connections.
func TestDeltaReadsCardsByKey(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, massCards("36", 20000, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `ANALYZE cards; ANALYZE lots`); err != nil {
		t.Fatal(err)
	}
	full, err := s.FeedPage(ctx, "S001-T01", FeedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', code FROM cards WHERE code LIKE '36%' ORDER BY code LIMIT 6000`); err != nil {
		t.Fatal(err)
	}
	// scans of cards as PostgreSQL has them, once every connection of
	// head office's has ended (a backend's counts are flushed as it exits).
	scans := func(prev int64) (seq, all int64) {
		t.Helper()
		s.db.Reset()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var idx int64
			if err := s.db.QueryRow(ctx, `SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'cards'::regclass`).Scan(&seq, &idx); err != nil {
				t.Fatal(err)
			}
			if seq+idx > prev || time.Now().After(deadline) {
				return seq, seq + idx
			}
		}
	}
	seq0, all0 := scans(-1)
	f, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: full.Cursor, Limit: 6000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Replica.Cards); n != 6000 {
		t.Fatalf("delta of %d cards, want 6000", n)
	}
	seq1, all1 := scans(all0)
	if all1 <= all0 {
		t.Fatal("no scan of cards counted after the delta: PostgreSQL's statistics not flushed")
	}
	if seq1 != seq0 {
		t.Errorf("the delta read the cards table whole %d times, want by key only", seq1-seq0)
	}
}
