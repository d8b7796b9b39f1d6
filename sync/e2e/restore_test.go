package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/sync/wire"
)

// hoBackup is a copy of head office's tables (and sequences) inside its
// schema, for restoring head office as a backup would.
type hoBackup struct {
	tables []string
	seqs   map[string][2]any // sequence → last_value, is_called
}

func takeBackup(t *testing.T, h *ho) *hoBackup {
	t.Helper()
	ctx := context.Background()
	db := h.srv.DB()
	rows, err := db.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'bk\_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 8 {
		t.Fatalf("head office tables %v, %v", tables, err)
	}
	b := &hoBackup{tables: tables, seqs: map[string][2]any{}}
	for _, tb := range tables {
		if _, err := db.Exec(ctx, `CREATE TABLE `+pgx.Identifier{"bk_" + tb}.Sanitize()+` AS SELECT * FROM `+pgx.Identifier{tb}.Sanitize()); err != nil {
			t.Fatalf("back up %s: %v", tb, err)
		}
	}
	rows, err = db.Query(ctx, `SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, sq := range seqs {
		var last int64
		var called bool
		if err := db.QueryRow(ctx, `SELECT last_value, is_called FROM `+pgx.Identifier{sq}.Sanitize()).Scan(&last, &called); err != nil {
			t.Fatal(err)
		}
		b.seqs[sq] = [2]any{last, called}
	}
	return b
}

// restore puts every table and sequence back as backed up, in one
// transaction, and restarts head office on it.
func (b *hoBackup) restore(t *testing.T, h *ho, p *proxy) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, h.srv.DB(), func(tx pgx.Tx) error {
		var names []string
		for _, tb := range b.tables {
			names = append(names, pgx.Identifier{tb}.Sanitize())
		}
		if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(names, ", ")); err != nil {
			return err
		}
		// Parents first: lots and card_stores name cards.
		order := append([]string{"cards"}, b.tables...)
		done := map[string]bool{}
		for _, tb := range order {
			if done[tb] {
				continue
			}
			done[tb] = true
			if _, err := tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{tb}.Sanitize()+` SELECT * FROM `+pgx.Identifier{"bk_" + tb}.Sanitize()); err != nil {
				return err
			}
		}
		for sq, v := range b.seqs {
			if _, err := tx.Exec(ctx, `SELECT setval($1::text::regclass, $2, $3)`, pgx.Identifier{sq}.Sanitize(), v[0], v[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("restore head office: %v", err)
	}
	h.restart(p)
}

// TestRestoreFromBackupRepushesTheJournal: a till sells and syncs, head
// office is backed up, the till sells and syncs more (head office
// acknowledges it all), head office is restored from the backup and has
// lost those entries, the till sells again, ERP resets the till's feed and
// the till syncs. The till pushes again everything after head office's
// watermark — acknowledged long ago or not — before it loads the replica
// afresh; head office then holds exactly the till's journal, and every
// balance, on both sides, is the demo balance plus the journal's points.
// Before every feed request (each page of the reload) the till must show
// every card at exactly that balance: an entry counted both in lots it
// imported and from its journal, or in neither, fails it.
//
// "sync-before-reset": the till syncs once between the restore and the
// reset; the feed's watermark is behind the till's, so the till re-pushes
// then, without waiting for ERP, and balances agree already.
func TestRestoreFromBackupRepushesTheJournal(t *testing.T) {
	for _, syncBefore := range []bool{false, true} {
		name := "reset"
		if syncBefore {
			name = "sync-before-reset"
		}
		t.Run(name, func(t *testing.T) { restoreScenario(t, syncBefore) })
	}
}

func restoreScenario(t *testing.T, syncBefore bool) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	tl := newTill(t, h, p, "S001-T90", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}

	// expected is every card's balance by the till's own journal.
	expected := func() map[string]string {
		sum := map[string]decimal.Decimal{}
		for _, en := range tl.journal(t) {
			sum[en.CardCode] = sum[en.CardCode].Add(en.Points)
		}
		out := map[string]string{}
		for card, b := range initial {
			out[card] = decimal.RequireFromString(b).Add(sum[card]).String()
		}
		return out
	}
	// Before every feed request: the till counts each entry exactly once.
	var mu sync.Mutex
	checked, checking := 0, false
	p.onFeed = func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !checking {
			return
		}
		checked++
		for card, want := range expected() {
			b, err := tl.st.Spendable(ctx, card, demoNow)
			if err != nil {
				t.Errorf("before feed request %s: card %s: %v", r.URL.RawQuery, card, err)
			} else if b.Total.String() != want {
				t.Errorf("before feed request %s: the till shows card %s at %s, want %s (demo + its journal)", r.URL.RawQuery, card, b.Total, want)
			}
		}
	}

	// Before the backup: a sale folded, then two sales of which head
	// office has only the second (a batch that overtook the one before
	// it: stored, not folded, and kept by the backup).
	tl.sell(t, card13, powder("1"), "100")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	atBackup := len(tl.journal(t)) // head office's watermark is the last of these
	tl.sell(t, "2900000000049", basket(), "")
	tl.sell(t, "2900000000056", basket(), "")
	pend, err := tl.st.PendingChain(ctx, 100)
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending %d entries, %v; want the two sales' accruals", len(pend), err)
	}
	if res := post(t, e, tl, wire.Batch{TillID: tl.id, Entries: []wire.Entry{{Entry: pend[1].Entry, Prev: pend[1].Prev}}}); res.Results[0].Status != wire.Applied {
		t.Fatalf("overtaking batch: %+v", res)
	}
	bk := takeBackup(t, h)

	// After the backup: acknowledged, folded, and in the till's replica.
	tl.sell(t, card13, powder("1"), "50")
	ret := tl.sell(t, "2700000000014", basket(), "100")
	tl.returnAll(t, "S001-T90-R1", ret) // gives the 100 points back: counted twice, the card would be over
	tl.sell(t, "2900000000025", basket(), "")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	es := tl.journal(t)
	for _, en := range es {
		if !en.Acked {
			t.Fatalf("entry %s not acknowledged before the restore", en.ID)
		}
	}
	if wm, _ := tl.st.FoldedThrough(ctx); wm != es[len(es)-1].ID {
		t.Fatalf("till watermark %q before the restore, want its last entry", wm)
	}
	sameBalances(t, h, tl, keys(initial))

	bk.restore(t, h, p)
	exportCaughtUp(t, h)
	if n := len(hoEntries(t, e)); n != atBackup+1 {
		t.Fatalf("test setup: head office holds %d entries after the restore, want the %d of the backup", n, atBackup+1)
	}
	mu.Lock()
	checking = true
	mu.Unlock()
	// The entries after head office's watermark are pushed again exactly
	// once (the one it kept unfolded answered duplicate), those before it
	// not at all: Pushed ends at every entry once plus those after the
	// watermark (as many as there were at the re-push).
	atRepush := 0
	if syncBefore {
		tl.sell(t, "2700000000014", basket(), "20")
		atRepush = len(tl.journal(t))
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatalf("sync after the restore: %v", err)
		}
		if st := tl.c.Status(); st.Repushes != 1 || st.Resets != 0 || st.Repushing {
			t.Errorf("status after the sync behind head office's watermark: %+v", st)
		}
		sameJournal(t, e)
		sameBalances(t, h, tl, keys(initial))
	}
	// A sale after the last pull: pushed (and folded at head office) just
	// before the reset is noticed.
	tl.sell(t, card13, powder("1"), "30")
	if !syncBefore {
		atRepush = len(tl.journal(t))
	}

	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync after the reset: %v", err)
	}
	st := tl.c.Status()
	wantRepushes := 1
	if syncBefore {
		wantRepushes = 2
	}
	if st.Resets != 1 || st.Repushes != wantRepushes || st.Repushing || st.Backlog != 0 || !strings.HasPrefix(st.Cursor, "e") || st.State != "ok" {
		t.Errorf("status after the reset: %+v; want 1 reset, %d re-pushes done, no backlog, a cursor of the new epoch", st, wantRepushes)
	}
	if n := len(tl.journal(t)); st.Pushed != int64(n+atRepush-atBackup) {
		t.Errorf("%d entries acknowledged in all, want each of the %d once and the %d after the backup's watermark once more", st.Pushed, n, atRepush-atBackup)
	}
	mu.Lock()
	if checked < 4 {
		t.Errorf("%d feed requests checked, want the reload's pages and deltas", checked)
	}
	mu.Unlock()

	sameJournal(t, e)
	hb := hoBalances(t, h)
	want := expected()
	for card, b := range hb {
		if b != want[card] {
			t.Errorf("card %s at head office: %s, want demo %s + the journal = %s", card, b, initial[card], want[card])
		}
	}
	sameBalances(t, h, tl, keys(initial))
	es = tl.journal(t)
	last := es[len(es)-1].ID
	var hoWM string
	var unfolded int
	if err := h.srv.DB().QueryRow(ctx, `SELECT folded_through, (SELECT count(*) FROM journal WHERE NOT folded) FROM tills WHERE till_id = $1`,
		tl.id).Scan(&hoWM, &unfolded); err != nil {
		t.Fatal(err)
	}
	if wm, _ := tl.st.FoldedThrough(ctx); wm != last || hoWM != last || unfolded != 0 {
		t.Errorf("watermarks: till %q, head office %q, %d unfolded; want both at the last entry %s", wm, hoWM, unfolded, last)
	}
	if after, active, err := tl.st.Repush(ctx); active || err != nil {
		t.Errorf("re-push still asked after %q (%v)", after, err)
	}
	for _, en := range es {
		if !en.Acked {
			t.Errorf("entry %s not acknowledged", en.ID)
		}
	}
}

// sameJournal checks that head office's journal (the ERP export) is the
// till's, entry for entry.
func sameJournal(t *testing.T, e *env) {
	t.Helper()
	till := map[string]string{}
	for _, en := range e.a.journal(t) {
		till[en.ID] = canonical(t, en)
	}
	got := exportAll(t, e)
	if len(got) != len(till) {
		t.Errorf("head office holds %d entries, the till %d", len(got), len(till))
		logExportBound(t, e.h)
	}
	for id, want := range till {
		if g, ok := got[id]; !ok {
			t.Errorf("entry %s missing at head office", id)
		} else if g != want {
			t.Errorf("entry %s differs:\n head office %s\n till        %s", id, g, want)
		}
	}
}

// exportCaughtUp waits until the journal export can give every entry head
// office holds (caughtUp).
func exportCaughtUp(t *testing.T, h *ho) { caughtUp(t, h, "journal") }

// caughtUp waits until no transaction older than the newest row of table
// (journal or changes) runs anywhere in the cluster. The export and the
// feed are exact and so hold such rows back until then (another package's
// tests may run an old transaction for a while); after it, an entry or a
// change missing from them is a bug, not a lag.
func caughtUp(t *testing.T, h *ho, table string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		if err := h.srv.DB().QueryRow(context.Background(),
			`SELECT coalesce(max(xid) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM `+table).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			logExportBound(t, h)
			t.Fatalf("a transaction older than head office's newest %s row has run for two minutes", table)
		}
	}
}

// logExportBound logs what bounds the export: head office's journal rows
// by (xid, seq), the current snapshot, and the cluster's sessions holding
// an xid or a snapshot.
func logExportBound(t *testing.T, h *ho) {
	t.Helper()
	ctx := context.Background()
	dump := func(what, q string) {
		rows, err := h.srv.DB().Query(ctx, q)
		if err != nil {
			t.Logf("%s: %v", what, err)
			return
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		t.Logf("%s (%v):\n%s", what, err, strings.Join(lines, "\n"))
	}
	dump("journal", `SELECT concat_ws(' ', id, xid, seq, folded) FROM journal ORDER BY xid, seq`)
	dump("snapshot", `SELECT pg_current_snapshot()::text`)
	dump("sessions", `SELECT concat_ws(' ', pid, application_name, state, backend_xid, backend_xmin, xact_start, left(query, 100))
		FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL`)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
