package headoffice

import (
	"context"
	"fmt"
	"testing"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestRetakeOfAForkedJournal: head office A folds a till's seven entries;
// the till's store is then put back from an image that ended at the
// third, and its next two entries fork the chain there, A restarting it
// (relinkForks): nine folded. B, restored from a backup holding the first
// two, retakes A's export: both branches follow B's watermark in the
// copy. Each goes in a batch of its own, and of two successors of one
// entry the earlier stays on the chain, so B ends as A: nine folded,
// nothing waiting, the same balances. Before, the later branch displaced
// the earlier in one batch and four entries waited for ever, the retake
// answering them applied (found by the review of the fork change).
func TestRetakeOfAForkedJournal(t *testing.T) {
	ctx := context.Background()
	a, entries := ingestFixture(t)
	if _, err := a.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	var fork []wire.Entry
	prev := entries[2].ID
	for i := range 2 {
		id := fmt.Sprintf("S001-T09-%026d", 100+i)
		e := entries[i]
		e.ID, e.CheckID, e.Prev = id, id, prev
		e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: e.CreatedAt}}
		fork, prev = append(fork, e), id
	}
	if res, err := a.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: fork}); err != nil || res.FoldedThrough != fork[1].ID {
		t.Fatalf("the fork at A: %+v, %v", res, err)
	}
	want := readIngestState(t, a)
	if want.folded != 9 {
		t.Fatalf("A after the fork: %+v, want 9 entries folded", want)
	}
	export := exportPages(t, a, 100, 9)
	b, _ := ingestFixture(t)
	if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:2]}); err != nil {
		t.Fatal(err)
	}
	r := retake(t, b, journalCopy(t, export), "S001-T09")[0]
	if got := readIngestState(t, b); r.Waiting != 0 || got.folded != want.folded || got.remaining != want.remaining {
		t.Fatalf("B after retaking the forked journal: %+v (retake %+v), want A's %+v", got, r, want)
	}
	for _, c := range []string{"3300000000001", "3300000000002", "3300000000003"} {
		if ga, gb := balanceOf(t, a, c), balanceOf(t, b, c); ga != gb {
			t.Errorf("card %s: %s at B, %s at A", c, gb, ga)
		}
	}
}
