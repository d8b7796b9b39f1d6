package headoffice

import (
	"context"
	"slices"
	"testing"
)

// TestTillMovedToAnotherStoreLoadsAfresh: till S002-T01 is enrolled in S002
// (scope home, no card home to it) and loads its feed, no card in it;
// it is enrolled again, in S001 (scope all). Its next feed, from its old
// cursor, is a reset, and the load after brings every card: the cursor
// was past the changes of S001's scope it never got, so cards that had
// not changed since would never have reached it (found by the QA pass).
// Enrolled again in the same store, its feed goes on.
func TestTillMovedToAnotherStoreLoadsAfresh(t *testing.T) {
	s, _, _ := twoScopes(t)
	ctx := context.Background()
	const till = "S002-T01"
	f, err := s.Feed(ctx, till, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Replica.Cards) != 0 {
		t.Fatalf("a till of home store S002 with no home cards got %d cards", len(f.Replica.Cards))
	}
	if _, err := s.Enrol(ctx, till, "S002"); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Feed(ctx, till, f.Cursor); err != nil || again.Reset {
		t.Fatalf("enrolled again in its own store: feed reset %v (%v), want it to go on", again.Reset, err)
	}
	if _, err := s.Enrol(ctx, till, "S001"); err != nil {
		t.Fatal(err)
	}
	moved, err := s.Feed(ctx, till, f.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if !moved.Reset {
		t.Fatalf("enrolled in store S001 from S002: its feed from the old cursor is not reset (%d cards), the cards of S001 never come", len(moved.Replica.Cards))
	}
	load, err := s.Feed(ctx, till, "")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, c := range load.Replica.Cards {
		codes = append(codes, c.Code)
	}
	if !slices.Contains(codes, "2900000000018") || len(codes) < 8 {
		t.Fatalf("the load after the move: cards %v, want every card of the demo (S001 is all)", codes)
	}
}
