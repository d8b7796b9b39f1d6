package headoffice

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"tillagent/sync/wire"
)

// exportSince pages the journal export from cursor until it holds every id
// of want (the export lags while an older transaction anywhere in the
// cluster runs), and returns what it gave by entry id, with the cursor
// after it and the number of entries given. An entry given twice keeps its
// later copy, as ERP does.
func exportSince(t *testing.T, s *Server, cursor string, want ...string) (map[string]ExportedEntry, string, int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, c, n := map[string]ExportedEntry{}, cursor, 0
		for {
			p, err := s.ExportJournal(context.Background(), c, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range p.Entries {
				var e wire.Entry
				if err := json.Unmarshal(x.Entry, &e); err != nil {
					t.Fatal(err)
				}
				got[e.ID] = x
				n++
			}
			c = p.Cursor
			if !p.More {
				break
			}
		}
		all := true
		for _, id := range want {
			_, ok := got[id]
			all = all && ok
		}
		if all {
			return got, c, n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal export since %q gives %d entries, not all of %v", cursor, len(got), want)
		}
	}
}

// TestExportGivesALateFoldAgain: a till's second batch overtakes its
// first; ERP exports its entries unfolded. The first batch fills the gap:
// the export then gives the first batch's entry and the two stored ones
// again, the spend folded and the return over its check rejected, so ERP
// ends with what head office holds, not the unfolded copy.
func TestExportGivesALateFoldAgain(t *testing.T) {
	now := demoNow
	card := "3400000000011"
	s := lateFixture(t, &now, lot(card, "K1", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	first := lt.batch(spendFrom(card, "K1", "C1", "10"))
	second := lt.batch(giveBack(card, "K1", "C1", "30"), spendFrom(card, "K1", "C2", "5"))
	ret, spend := second.Entries[0].ID, second.Entries[1].ID
	ctx := context.Background()
	if _, err := s.Ingest(ctx, second); err != nil {
		t.Fatal(err)
	}
	before, cursor, _ := exportSince(t, s, "", ret, spend)
	for _, id := range []string{ret, spend} {
		if x := before[id]; x.Folded || x.Rejected != "" {
			t.Fatalf("entry %s behind the gap exported as %+v, want unfolded", id, x)
		}
	}
	if _, err := s.Ingest(ctx, first); err != nil {
		t.Fatal(err)
	}
	after, _, n := exportSince(t, s, cursor, first.Entries[0].ID, ret, spend)
	if n != 3 {
		t.Errorf("export after the gap filled gives %d entries, want 3 (the first batch's and both stored again)", n)
	}
	if x := after[first.Entries[0].ID]; !x.Folded || x.Rejected != "" {
		t.Errorf("the first batch's entry exported as %+v, want folded", x)
	}
	if x := after[spend]; !x.Folded || x.Rejected != "" {
		t.Errorf("the spend stored behind the gap exported again as %+v, want folded", x)
	}
	if x := after[ret]; x.Rejected == "" {
		t.Errorf("the return over its check exported again as %+v, want rejected", x)
	}
	if b := balanceOf(t, s, card); b != "85" {
		t.Errorf("balance %s, want 85 (100 − 10 − 5, the return refused)", b)
	}
	// The whole export from the start gives each entry once when nothing
	// changed between its pages, in its final state.
	whole, _, n := exportSince(t, s, "", first.Entries[0].ID, ret, spend)
	if x := whole[ret]; n != 3 || x.Rejected == "" {
		t.Errorf("the whole export: %d entries, the return %+v; want 3, the return rejected", n, x)
	}
}
