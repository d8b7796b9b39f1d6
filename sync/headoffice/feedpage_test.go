package headoffice

import (
	"context"
	"slices"
	"testing"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestPagedFeedNeverSkipsALateCommit is the paged variant of
// TestFeedNeverSkipsALateCommit: transaction L writes product 1001 first
// (lowest change seq) and stays open; then 12 products change and commit.
// The delta since L's xid is read in pages of 5 change records, L committing
// between the first and the second page. No page carries 1001 (its change
// row lies before the first page's start, which the pages never revisit),
// yet the delta from the first page's cursor — what the till saves once the
// last page is in — does.
func TestPagedFeedNeverSkipsALateCommit(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	demo := demoReplica(t)
	if _, err := s.Import(ctx, demo); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	f0, err := s.Feed(ctx, "S001-T01", "")
	if err != nil {
		t.Fatal(err)
	}
	renamed := func(ids []string, suffix string) *store.Replica {
		r := &store.Replica{Version: 1}
		for _, p := range demo.Products {
			if slices.Contains(ids, p.ID) {
				p.Name += suffix
				r.Products = append(r.Products, p)
			}
		}
		return r
	}
	long, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := importTx(ctx, long, renamed([]string{"1001"}, " (late)")); err != nil {
		t.Fatal(err)
	}
	// The delta since L's own xid holds only L's change and the mass
	// import's (a cursor read from the feed could sit further back while
	// another test's transaction anywhere in the cluster runs).
	var since string
	if err := long.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&since); err != nil {
		t.Fatal(err)
	}
	f0.Cursor = since
	var many []string
	for _, p := range demo.Products[1:13] {
		many = append(many, p.ID)
	}
	if _, err := s.Import(ctx, renamed(many, " (mass)")); err != nil {
		t.Fatal(err)
	}
	var pages []*wire.Feed
	after := ""
	for {
		f, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: f0.Cursor, After: after, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Replica.Products) > 5 || len(f.Replica.Cards) > 0 {
			t.Fatalf("page %d: %d products, %d cards; want at most 5 records", len(pages)+1, len(f.Replica.Products), len(f.Replica.Cards))
		}
		pages = append(pages, f)
		if len(pages) == 1 {
			if err := long.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if !f.More {
			break
		}
		after = f.Next
		if len(pages) > 10 {
			t.Fatal("the delta does not end")
		}
	}
	got := map[string]int{}
	for _, p := range pages {
		for _, n := range productNames(p.Replica) {
			got[n]++
		}
		if p.Replica.FoldedThrough != nil || p.Offline == nil {
			t.Errorf("page: watermark %v, offline %v", p.Replica.FoldedThrough, p.Offline)
		}
	}
	if len(pages) < 3 {
		t.Fatalf("%d pages for 12 changed products in pages of 5", len(pages))
	}
	for _, p := range demo.Products[1:13] {
		if got[p.ID+"="+p.Name+" (mass)"] == 0 {
			t.Errorf("product %s missing from the pages: %v", p.ID, got)
		}
	}
	if got["1001="+demo.Products[0].Name+" (late)"] != 0 {
		t.Fatalf("test setup: a page carried the late change (%v); the case is not exercised", got)
	}
	// The till saves the first page's cursor: the next delta has the late commit.
	next, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: pages[0].Cursor, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	all := productNames(next.Replica)
	for f := next; f.More; {
		if f, err = s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: pages[0].Cursor, After: f.Next, Limit: 5}); err != nil {
			t.Fatal(err)
		}
		all = append(all, productNames(f.Replica)...)
	}
	if !slices.Contains(all, "1001="+demo.Products[0].Name+" (late)") {
		t.Fatalf("delta from the first page's cursor = %v, want the late 1001", all)
	}
	// (From the last page's cursor it would normally be gone; not asserted:
	// another test's transaction anywhere in the cluster can hold xmin back.)
	last, _ := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: pages[len(pages)-1].Cursor})
	t.Logf("from the last page's cursor: %d products", len(last.Replica.Products))
	if _, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Limit: 5}); err == nil {
		t.Error("a paged delta without a cursor was accepted")
	}
	if _, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: f0.Cursor, After: "x", Limit: 5}); err == nil {
		t.Error("a bad page position was accepted")
	}
}
