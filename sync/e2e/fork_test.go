package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/client"
)

// TestTillPutBackFromAnOlderImage: a till sells and syncs, and its store
// file is imaged; it sells again (a redemption of 100) and syncs, head
// office folding those entries; its disk fails and the image is put back.
// Its next sale's first entry follows the image's last, folded long ago
// at head office: the chain forks there. Head office takes the till's
// journal on from the fork, as from a replaced store's first entry:
// nothing waits behind a gap, every sale counts once at head office (the
// lost redemption included: the customer had it), and the till shows head
// office's balance. Before, the fork's entries were answered applied and
// waited for ever, the till counting them and head office not: the
// balances parted for good, and the till showed nothing wrong (found by
// the QA pass).
func TestTillPutBackFromAnOlderImage(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T73", nil)
	before := hoBalances(t, h)[card13]
	tl.sell(t, card13, powder("1"), "")
	syncEach(t, tl)

	path := tl.st.Path()
	if err := tl.st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "image.db")
	if err := os.WriteFile(image, data, 0o600); err != nil {
		t.Fatal(err)
	}
	reopen := func(file string, later time.Duration) {
		t.Helper()
		tl.clock.Add(later)
		tl.now = tl.clock.Now()
		st, err := store.Open(ctx, store.Options{Path: file, TillID: tl.id, Clock: tl.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c, err := client.New(client.Options{URL: p.URL(), TillID: tl.id, StoreID: tl.storeID, Secret: tl.secret, Store: st,
			BatchSize: 3, SnapshotPage: 3, RequestTimeout: 5 * time.Second, Clock: tl.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		tl.st, tl.c = st, c
	}
	reopen(path, time.Minute)
	tl.sell(t, card13, powder("1"), "100")
	syncEach(t, tl)
	lost := len(tl.journal(t))

	if err := tl.st.Close(); err != nil {
		t.Fatal(err)
	}
	reopen(image, time.Hour) // the disk failed; last month's image put back
	if n := len(tl.journal(t)); n >= lost {
		t.Fatalf("the image holds %d entries, want fewer than the %d of the lost disk", n, lost)
	}
	tl.sell(t, card13, powder("1"), "50")
	syncEach(t, tl)
	syncEach(t, tl)

	rep, err := h.srv.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep {
		if r.TillID == tl.id && r.Waiting > 0 {
			t.Fatalf("till %s: %d entries wait at head office behind the fork (folded through %s)", tl.id, r.Waiting, r.FoldedThrough)
		}
	}
	hb := hoBalances(t, h)[card13]
	b, err := tl.st.Spendable(ctx, card13, tl.now)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total.String() != hb {
		t.Fatalf("card 13: the till shows %s, head office %s", b.Total, hb)
	}
	// Every entry head office holds of the till is folded, on card 13:
	// the balance moved by all of them, the lost disk's included.
	var sum string
	var unfolded int
	if err := h.srv.DB().QueryRow(ctx, `SELECT ($2::numeric + coalesce(sum(points), 0))::text, count(*) FILTER (WHERE NOT folded)
		FROM journal WHERE till_id = $1 AND card_code = $3`, tl.id, before, card13).Scan(&sum, &unfolded); err != nil {
		t.Fatal(err)
	}
	if unfolded != 0 || decimal.RequireFromString(sum).String() != hb {
		t.Fatalf("card 13 at head office %s, want %s: %s with every entry of the till (%d not folded)", hb, sum, before, unfolded)
	}
	if st := tl.c.Status(); st.Backlog != 0 || st.LastError != "" {
		t.Fatalf("the till: backlog %d, error %q; want everything acknowledged", st.Backlog, st.LastError)
	}
}
