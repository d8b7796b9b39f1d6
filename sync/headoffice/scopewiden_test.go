package headoffice

import (
	"context"
	"slices"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// TestWideningSeesACardImportedMeanwhile: store S002 (scope home, a till
// enrolled) is widened to all while an ERP import creating a card is in
// flight. The import began first (the lower xid) and commits while the
// widening runs; a till's feed comes between that commit and the
// widening's. The feed still reads the store as home and leaves the card
// out, its cursor past the import's xid; the card must then come with the
// widening's own changes. Before, the widening's change rows were written
// from what its statement saw, without the card, and the store's tills
// never received it (found by the QA pass). Now the widening waits for
// imports that create cards (an advisory lock they hold shared).
func TestWideningSeesACardImportedMeanwhile(t *testing.T) {
	s, _, _ := twoScopes(t)
	ctx := context.Background()
	f, err := s.Feed(ctx, "S002-T01", "")
	if err != nil {
		t.Fatal(err)
	}
	cursor := f.Cursor

	imp, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Rollback(ctx)
	const code = "2900000099991"
	if _, err := importTx(ctx, imp, &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: code, Kind: "bonus", State: checkout.StateActive}}}); err != nil {
		t.Fatal(err)
	}
	// The store's scope row held, so that the widening is still open when
	// the import commits and the feed is read.
	hold, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, `SELECT 1 FROM store_card_scope WHERE store_id = 'S002' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	widened := make(chan error, 1)
	go func() { widened <- s.SetCardScope(ctx, "S002", ScopeAll) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND datname = current_database() AND (query LIKE 'SELECT pg_advisory_xact_lock($1%' OR query LIKE 'INSERT INTO store_card_scope%'))`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the widening did not reach a lock")
		}
	}
	if err := imp.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	feed := func() {
		t.Helper()
		f, err := s.Feed(ctx, "S002-T01", cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range f.Replica.Cards {
			got = append(got, c.Code)
		}
		cursor = f.Cursor
	}
	feed() // between the import's commit and the widening's
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-widened; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		feed()
	}
	if !slices.Contains(got, code) {
		t.Fatalf("store S002 widened to all: card %s, imported while it was widened, never reached its till (%d cards in its feeds)", code, len(got))
	}
}
