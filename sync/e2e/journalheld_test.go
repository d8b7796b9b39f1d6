package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// TestTillDropsOnlyWhatEveryBackupHolds: head office holds the journal
// 72 h. A till sells and syncs, a maintenance run marks its watermark,
// and three hours later, after another sale, head office is backed up;
// the till sells once more. 72 h after the mark the till's delta says it
// may drop the entries before the marked watermark, and it does. Head
// office is then restored from the backup, which is younger than the
// hold: the till pushes again what the backup lacks, none of which it
// dropped, and both sides end with every entry and the same balances.
func TestTillDropsOnlyWhatEveryBackupHolds(t *testing.T) {
	ctx := context.Background()
	h := startHeldHO(t, nil)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	tl := newTill(t, h, p, "S001-T88", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	syncEach(t, tl)

	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	marked, err := tl.st.FoldedThrough(ctx)
	if err != nil || marked == "" {
		t.Fatalf("watermark at the mark %q, %v", marked, err)
	}
	h.clock.Add(3 * time.Hour)
	tl.sell(t, "2900000000056", basket(), "")
	syncEach(t, tl)
	bk := takeBackup(t, h)
	tl.sell(t, card13, powder("1"), "30")
	syncEach(t, tl)

	made := tl.journal(t)
	sum := map[string]decimal.Decimal{}
	for _, en := range made {
		sum[en.CardCode] = sum[en.CardCode].Add(en.Points)
	}
	dropAll := demoNow.Add(10 * 365 * 24 * time.Hour) // the age is the sale service's rule, not this test's
	if n, err := tl.st.PruneJournal(ctx, dropAll, 1000); err != nil || n != 0 {
		t.Fatalf("pruned %d, %v before head office's hold has passed; want none", n, err)
	}

	h.clock.Add(72 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if held, err := tl.st.SyncState(ctx, "journal_held"); err != nil || held != marked {
		t.Fatalf("journal held %q, %v; want the watermark marked 72 h ago, %s", held, err, marked)
	}
	var before int
	for _, en := range made {
		if en.ID < marked {
			before++
		}
	}
	if n, err := tl.st.PruneJournal(ctx, dropAll, 1000); err != nil || n != before || n == 0 {
		t.Fatalf("pruned %d, %v; want the %d entries before %s", n, err, before, marked)
	}

	bk.restore(t, h, p)
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync after the restore: %v", err)
	}
	if st := tl.c.Status(); st.Resets != 1 || st.Repushing || st.Backlog != 0 {
		t.Errorf("status after the restore: %+v", st)
	}
	kept := map[string]string{}
	for _, en := range tl.journal(t) {
		kept[en.ID] = canonical(t, en)
	}
	if len(kept) != len(made)-before {
		t.Errorf("the till keeps %d entries, want %d", len(kept), len(made)-before)
	}
	got := exportAll(t, e)
	for _, en := range made {
		g, ok := got[en.ID]
		switch {
		case !ok:
			t.Errorf("entry %s lost: not at head office after the restore", en.ID)
		case kept[en.ID] != "" && g != kept[en.ID]:
			t.Errorf("entry %s differs:\n head office %s\n till        %s", en.ID, g, kept[en.ID])
		}
	}
	if len(got) != len(made) {
		t.Errorf("head office holds %d entries, the till made %d", len(got), len(made))
	}
	for card, b := range hoBalances(t, h) {
		if want := decimal.RequireFromString(initial[card]).Add(sum[card]).String(); b != want {
			t.Errorf("card %s at head office: %s, want demo %s + the journal = %s", card, b, initial[card], want)
		}
	}
	sameBalances(t, h, tl, allCards(t, h))
}

// TestRestoreOlderThanTheHoldIsReported: head office restored from a
// backup older than its -journal-hold breaks its promise: the till had
// dropped entries after the restored watermark. They cannot be pushed
// again; the till says so (an error in its log, journal.kept lost with
// both ids) for as long as head office's watermark stays behind them, and
// pushes the entries it still has. Once head office has them back, all is
// well again.
func TestRestoreOlderThanTheHoldIsReported(t *testing.T) {
	ctx := context.Background()
	h := startHeldHO(t, nil)
	p := newProxy(t, h.hs.URL)
	e := &env{h: h, p: p}
	logs := &syncBuf{}
	tl := newTillWith(t, h, p, "S001-T87", "S001", 0, func(o *client.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	syncEach(t, tl)
	bk := takeBackup(t, h) // before any sale: older than every mark

	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(73 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	whole := tl.journal(t)
	if n, err := tl.st.PruneJournal(ctx, demoNow.Add(10*365*24*time.Hour), 1000); err != nil || n == 0 {
		t.Fatalf("pruned %d, %v; want the entries before the mark", n, err)
	}
	if k, err := tl.st.JournalKept(ctx); err != nil || k.Lost {
		t.Fatalf("journal kept %+v, %v before the restore; want nothing lost", k, err)
	}
	made := len(tl.journal(t))
	// ERP has taken the journal back, page by page, before the restore.
	erpCopy := erpExport(t, e)

	bk.restore(t, h, p)
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	if err := tl.c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "behind journal entries this till dropped") {
		t.Errorf("sync after the restore: %v; want it to say head office lacks entries the till dropped", err)
	}
	k, err := tl.st.JournalKept(ctx)
	if err != nil || !k.Lost || k.FoldedThrough != "" || k.PrunedThrough == "" {
		t.Fatalf("journal kept %+v, %v; want lost from the first entry through the last dropped", k, err)
	}
	if !strings.Contains(logs.String(), "restored from a backup older than its -journal-hold") {
		t.Errorf("no error logged at the restore:\n%s", logs.String())
	}
	if n := len(tl.journal(t)); n != made {
		t.Errorf("the till holds %d entries after the restore, had %d", n, made)
	}
	for _, en := range tl.journal(t) {
		if !en.Acked {
			t.Errorf("entry %s it still had not pushed again", en.ID)
		}
	}

	// The operator gives head office the lost entries back from ERP's copy
	// (headoffice retake-journal): it stores them, folds them and the ones
	// the till pushed again after them, the till's next pull takes its
	// watermark, and the loss is no longer reported.
	rs, err := h.srv.RetakeJournal(ctx, journalCopy(t, erpCopy), nil)
	if err != nil || len(rs) != 1 {
		t.Fatalf("retake: %+v, %v", rs, err)
	}
	retookAll(t, rs[0], whole, k.PrunedThrough)
	syncUntilFound(t, tl)
	sameBalances(t, h, tl, allCards(t, h))
}

// erpExport is head office's journal export as an ERP job keeps it: every
// page, one after another, once it can give every entry.
func erpExport(t *testing.T, e *env) []byte {
	t.Helper()
	exportCaughtUp(t, e.h)
	var out bytes.Buffer
	for cursor := ""; ; {
		code, page := erpCall(t, e.h, "GET", "/v1/erp/journal?limit=3&cursor="+cursor, nil)
		var p headoffice.Export
		if err := json.Unmarshal(page, &p); code != 200 || err != nil {
			t.Fatalf("export page after %q: %d %s (%v)", cursor, code, page, err)
		}
		out.Write(page)
		if !p.More {
			return out.Bytes()
		}
		cursor = p.Cursor
	}
}

// journalCopy is a JournalCopy of export (its pages), removed when t ends.
func journalCopy(t *testing.T, export []byte) *headoffice.JournalCopy {
	t.Helper()
	c, err := headoffice.NewJournalCopy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.ReadExport(bytes.NewReader(export)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRetakeForATillEnrolledSinceTheBackup: head office's backup is older
// than the till itself and than the hold. After the restore the retake
// keeps the till's entries (head office does not know the till yet); the
// till's next sync is admitted from its secret (an enrolment key), which
// takes them before its push: that sync finds head office holding what it
// dropped, with nothing lost and no second run of the retake.
func TestRetakeForATillEnrolledSinceTheBackup(t *testing.T) {
	ctx := context.Background()
	h := startHeldHO(t, []byte(strings.Repeat("0123456789abcdef", 2)))
	p := newProxy(t, h.hs.URL)
	bk := takeBackup(t, h) // before the till is enrolled
	tl := newTill(t, h, p, "S001-T86", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	syncEach(t, tl)
	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	syncEach(t, tl)
	for _, d := range []time.Duration{0, 73 * time.Hour} {
		h.clock.Add(d)
		if _, err := h.srv.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tl.sell(t, "2900000000025", basket(), "")
	syncEach(t, tl)
	whole := tl.journal(t)
	if n, err := tl.st.PruneJournal(ctx, demoNow.Add(10*365*24*time.Hour), 1000); err != nil || n == 0 {
		t.Fatalf("pruned %d, %v; want the entries before the mark", n, err)
	}
	if k, err := tl.st.JournalKept(ctx); err != nil || k.PrunedThrough == "" {
		t.Fatalf("journal kept %+v, %v; want entries dropped", k, err)
	}
	exported := journalCopy(t, erpExport(t, e))

	bk.restore(t, h, p)
	retake := func() headoffice.Retaken {
		t.Helper()
		rs, err := h.srv.RetakeJournal(ctx, exported, nil)
		if err != nil || len(rs) != 1 || rs[0].TillID != tl.id {
			t.Fatalf("retake: %+v, %v", rs, err)
		}
		return rs[0]
	}
	if r := retake(); r.Kept != len(whole) || r.Err != "" || r.Applied != 0 {
		t.Fatalf("retake before the till synced: %+v; want its %d entries kept, nothing taken", r, len(whole))
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("the till's first sync after the restore: %v; want it admitted, the kept entries taken", err)
	}
	if k, err := tl.st.JournalKept(ctx); err != nil || k.Lost {
		t.Fatalf("after the till's first sync: journal kept %+v, %v; want nothing lost", k, err)
	}
	if r := retake(); r.Held != len(whole) || r.Applied+r.Duplicate+r.Kept+r.PassedOver != 0 || r.Err != "" {
		t.Fatalf("the retake run again: %+v; want everything held", r)
	}
	got := exportAll(t, e)
	if len(got) != len(whole) {
		t.Errorf("head office holds %d entries, the till made %d", len(got), len(whole))
	}
	for _, en := range whole {
		if g := got[en.ID]; g != canonical(t, en) {
			t.Errorf("entry %s at head office %q, want the till's", en.ID, g)
		}
	}
	sameBalances(t, h, tl, allCards(t, h))
}

// retookAll checks a retake of a till that made whole and dropped the
// entries through dropped, all of which head office lacked: those applied,
// the ones it had pushed again duplicate, folded through its last entry.
func retookAll(t *testing.T, r headoffice.Retaken, whole []store.Entry, dropped string) {
	t.Helper()
	n := 0
	for _, en := range whole {
		if en.ID <= dropped {
			n++
		}
	}
	if r.Err != "" || r.Held != 0 || r.Applied != n || r.Duplicate != len(whole)-n || r.Conflict+r.Rejected != 0 ||
		r.FoldedThrough != whole[len(whole)-1].ID || r.Waiting != 0 {
		t.Fatalf("retake: %+v; want the %d dropped entries applied, the %d pushed again duplicate, folded through the last", r, n, len(whole)-n)
	}
}

// syncUntilFound syncs tl until head office holds again what it had
// dropped (its pull clears the loss).
func syncUntilFound(t *testing.T, tl *till) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := tl.c.SyncNow(context.Background())
		if k, _ := tl.st.JournalKept(context.Background()); err == nil && !k.Lost {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("after the entries came back: sync %v, journal kept %+v", err, k)
		}
	}
}

// startHeldHO starts head office with the demo, a -journal-hold of 72 h,
// its clock at demoNow and the enrolment key (nil: none).
func startHeldHO(t *testing.T, enrolKey []byte) *ho {
	t.Helper()
	h := &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), hold: 72 * time.Hour, enrolKey: enrolKey}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	return h
}
