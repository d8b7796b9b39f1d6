package headoffice

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

var demoNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))

func demoReplica(t testing.TB) *store.Replica {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "demo", "replica.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.ParseReplicaFile(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openTest(t testing.TB) *Server {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func productNames(r *store.Replica) []string {
	var out []string
	for _, p := range r.Products {
		out = append(out, p.ID+"="+p.Name)
	}
	return out
}

// TestFeedNeverSkipsALateCommit: transaction L starts first and writes
// product 1001 (lower xid, lower change seq), transaction X writes product
// 1002 and commits; a feed taken now carries 1002 only. L then commits. The
// next feed from the first feed's cursor must carry 1001 — a cursor of "the
// highest change seq seen" would have skipped it, as the test shows.
func TestFeedNeverSkipsALateCommit(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	f0, err := s.Feed(ctx, "S001-T01", "")
	if err != nil {
		t.Fatal(err)
	}
	if !f0.Full || len(f0.Replica.Products) != 31 || len(f0.Replica.Cards) != 8 {
		t.Fatalf("full feed: full=%v, %d products, %d cards; want 31 products, 8 cards", f0.Full, len(f0.Replica.Products), len(f0.Replica.Cards))
	}
	demo := demoReplica(t)
	prod := func(id, name string) *store.Replica {
		for _, p := range demo.Products {
			if p.ID == id {
				p.Name = name
				return &store.Replica{Version: 1, Products: []store.ReplicaProduct{p}}
			}
		}
		t.Fatalf("no product %s", id)
		return nil
	}

	long, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := importTx(ctx, long, prod("1001", "Молоко (late)")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, prod("1002", "Кефир (early)")); err != nil {
		t.Fatal(err)
	}
	f1, err := s.Feed(ctx, "S001-T01", f0.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	// (Delivery is at least once: if another test's transaction held the
	// cluster's xmin back, f1 repeats older changes too.)
	if got := productNames(f1.Replica); !slices.Contains(got, "1002=Кефир (early)") || slices.Contains(got, "1001=Молоко (late)") {
		t.Fatalf("feed while the long transaction runs = %v, want 1002 changed and 1001 not yet", got)
	}
	var lateSeq, earlySeq, maxSeen int64
	s.db.QueryRow(ctx, `SELECT max(seq) FROM changes WHERE key = '1002'`).Scan(&earlySeq)
	maxSeen = earlySeq
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.db.QueryRow(ctx, `SELECT max(seq) FROM changes WHERE key = '1001'`).Scan(&lateSeq)
	if lateSeq >= maxSeen {
		t.Fatalf("test setup: the late change has seq %d, not below the seq %d already seen; the case is not exercised", lateSeq, maxSeen)
	}
	f2, err := s.Feed(ctx, "S001-T01", f1.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if got := productNames(f2.Replica); !slices.Contains(got, "1001=Молоко (late)") {
		t.Fatalf("feed after the late commit = %v, want 1001 (a seq cursor would resume after %d and skip seq %d)", got, maxSeen, lateSeq)
	}
	// Once no older transaction runs (xids are cluster-wide: other tests'
	// transactions count too), the cursor moves past both and the feed is empty.
	cur := f2.Cursor
	for deadline := time.Now().Add(10 * time.Second); ; {
		f, err := s.Feed(ctx, "S001-T01", cur)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Replica.Products) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed still repeats %v after 10 s", productNames(f.Replica))
		}
		cur = f.Cursor
		time.Sleep(20 * time.Millisecond)
	}
}

// TestImportIdempotentAndValidated: the same import twice logs no change;
// a bad record is refused whole, naming it; an existing lot is not
// overwritten by a re-import.
func TestImportIdempotentAndValidated(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st, err := s.Import(ctx, demoReplica(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Cards != 8 || st.Lots != 9 {
		t.Fatalf("first import %+v, want 8 cards and 9 lots", st)
	}
	var changes int
	s.db.QueryRow(ctx, `SELECT count(*) FROM changes`).Scan(&changes)
	again, err := s.Import(ctx, demoReplica(t))
	if err != nil || !reflect.DeepEqual(again, ImportStats{}) {
		t.Fatalf("second import = %+v, %v; want nothing changed", again, err)
	}
	var changes2 int
	s.db.QueryRow(ctx, `SELECT count(*) FROM changes`).Scan(&changes2)
	if changes2 != changes {
		t.Fatalf("a repeated import logged %d changes", changes2-changes)
	}
	bad := &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: "2900000000099", Kind: "nosuch", State: "active"}},
		Products: []store.ReplicaProduct{{ID: "9", Name: "x", Group: "food", VAT: "vat99"}}}
	_, err = s.Import(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), `cards[0] code "2900000000099": unknown card kind "nosuch"`) ||
		!strings.Contains(err.Error(), `products[0] id "9": vat "vat99"`) {
		t.Fatalf("bad import: %v; want both records named", err)
	}
	var n int
	s.db.QueryRow(ctx, `SELECT count(*) FROM cards WHERE code = '2900000000099'`).Scan(&n)
	if n != 0 {
		t.Fatal("a refused import wrote a card")
	}
	// A correction changes a lot; re-importing the demo must not undo it.
	if _, err := s.Correct(ctx, Correction{ID: "c1", Card: "2900000000018", Points: dec("-30"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, s, "2900000000018"); b != "470" {
		t.Fatalf("card 13 after −30 and a re-import: %s, want 470", b)
	}
	// The same correction again applies once; another payload under its id is refused.
	if r, err := s.Correct(ctx, Correction{ID: "c1", Card: "2900000000018", Points: dec("-30"), Reason: "test"}); err != nil || !r.Duplicate {
		t.Fatalf("repeated correction = %+v, %v", r, err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "c1", Card: "2900000000018", Points: dec("-31"), Reason: "test"}); err == nil {
		t.Fatal("a correction id reused with other points was accepted")
	}
	if _, err := s.Correct(ctx, Correction{ID: "c2", Card: "2900000000018", Points: dec("1000"), Reason: ""}); err == nil {
		t.Fatal("a correction without a reason was accepted")
	}
	if b := balanceOf(t, s, "2900000000018"); b != "470" {
		t.Fatalf("card 13 after the refused corrections: %s, want 470", b)
	}
}

func balanceOf(t testing.TB, s *Server, card string) string {
	t.Helper()
	bs, err := s.Balances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Card == card {
			return b.Balance.String()
		}
	}
	t.Fatalf("no balance for %s", card)
	return ""
}

// TestMaintainExpiresAndSettles: a deduction larger than the active points
// leaves debt; once the next lot is active, Maintain settles the debt from
// it without changing the balance; once a lot expires, Maintain writes it off.
func TestMaintainExpiresAndSettles(t *testing.T) {
	now := demoNow
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	// Card 13: L-13-1 100 + L-13-2 200 active, L-13-3 200 from 4 Dec.
	if _, err := s.Correct(ctx, Correction{ID: "big", Card: "2900000000018", Points: dec("-600"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	debt := func() string {
		var d string
		s.db.QueryRow(ctx, `SELECT debt::text FROM cards WHERE code = '2900000000018'`).Scan(&d)
		return d
	}
	if b, d := balanceOf(t, s, "2900000000018"), debt(); b != "-100" || d != "300" {
		t.Fatalf("after −600: balance %s debt %s, want −100 and 300", b, d)
	}
	// Nothing active to settle from; the demo's lapsed L-13-0 (80) is written off.
	if st, err := s.Maintain(ctx); err != nil || st != (MaintainStats{Expired: 1}) {
		t.Fatalf("maintain with nothing active to settle from: %+v, %v; want L-13-0 expired, nothing settled", st, err)
	}
	now = time.Date(2026, 12, 5, 12, 0, 0, 0, demoNow.Location())
	if st, err := s.Maintain(ctx); err != nil || st.Settled != 1 {
		t.Fatalf("maintain on 5 Dec: %+v, %v; want card 13 settled", st, err)
	}
	if b, d := balanceOf(t, s, "2900000000018"), debt(); b != "-100" || d != "100" {
		t.Fatalf("after settling: balance %s debt %s, want −100 (unchanged) and 100", b, d)
	}
	// 2900000000049's L-44-1 (1200) expires 14 Mar 2027.
	now = time.Date(2027, 3, 15, 0, 0, 0, 0, demoNow.Location())
	st, err := s.Maintain(ctx)
	if err != nil || st.Expired == 0 {
		t.Fatalf("maintain in March 2027: %+v, %v; want expired lots", st, err)
	}
	var rem string
	s.db.QueryRow(ctx, `SELECT remaining::text FROM lots WHERE lot_id = 'L-44-1'`).Scan(&rem)
	if rem != "0" {
		t.Fatalf("expired L-44-1 keeps %s points", rem)
	}
}

// TestReports: points expiring within 20 days of 23 Nov (L-13-1's 100 on
// 12 Dec), and accruals split into customer and agent cards.
func TestReports(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	ex, err := s.ExpiringWithin(ctx, 20)
	if err != nil || len(ex) != 1 || ex[0].Card != "2900000000018" || ex[0].Points.String() != "100" {
		t.Fatalf("expiring within 20 days: %+v, %v; want card 13 with 100", ex, err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	id := func(n int) string { return fmt.Sprintf("S001-T01-%026d", n) }
	at := demoNow
	b := &wire.Batch{TillID: "S001-T01", Entries: []wire.Entry{
		{Prev: "", Entry: store.Entry{ID: id(1), CheckID: "c1", CardCode: "2900000000018", Kind: store.KindRedemption, Points: dec("-66"),
			AmountKop: 6600, Lots: []store.LotChange{{LotID: "L-13-1", Delta: dec("-66")}}, CreatedAt: at}},
		{Prev: id(1), Entry: store.Entry{ID: id(2), CheckID: "c1", CardCode: "2900000000018", Kind: store.KindAccrual, Points: dec("15"),
			PurchaseKop: 118780, Lots: []store.LotChange{{LotID: id(2), Delta: dec("15"), Create: true, ActiveFrom: at.AddDate(0, 0, 14)}}, CreatedAt: at}},
		{Prev: id(2), Entry: store.Entry{ID: id(3), CheckID: "c1", CardCode: "2600000000017", Kind: store.KindAccrual, Points: dec("100"),
			Lots: []store.LotChange{{LotID: id(3), Delta: dec("100"), Create: true, ActiveFrom: at.AddDate(0, 0, 14)}}, CreatedAt: at}},
	}}
	res, err := s.Ingest(ctx, b)
	if err != nil || res.FoldedThrough != id(3) {
		t.Fatalf("ingest: %+v, %v", res, err)
	}
	a, err := s.Accruals(ctx, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil || a.CustomerAccrued.String() != "15" || a.AgentAccrued.String() != "100" || a.Redeemed.String() != "66" {
		t.Fatalf("accruals: %+v, %v; want 15 customer, 100 agent, 66 redeemed", a, err)
	}
	if ex, _ := s.ExpiringWithin(ctx, 20); len(ex) != 1 || ex[0].Points.String() != "34" {
		t.Fatalf("expiring after spending 66 of L-13-1: %+v, want 34", ex)
	}
	// Card 13's history took the sale: all-time 84500 + 1187.80.
	var hist string
	s.db.QueryRow(ctx, `SELECT history::text FROM cards WHERE code = '2900000000018'`).Scan(&hist)
	if !strings.Contains(hist, `"purchases_all_time":"85687.80"`) || !strings.Contains(hist, `"redeemed_month":"66"`) {
		t.Fatalf("card 13 history after the sale: %s", hist)
	}
}

// TestPoolSizeFromTheDSN: the pool holds 16 connections unless the
// options or the DSN's pool_max_conns say otherwise; the DSN's was
// overwritten with 16, so an operator sizing the pool there got 16.
func TestPoolSizeFromTheDSN(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, c := range []struct {
		what, dsn string
		opt       int32
		want      int32
	}{
		{"neither", dsn, 0, 16},
		{"the DSN", dsn + "&pool_max_conns=3", 0, 3},
		{"both: the options win", dsn + "&pool_max_conns=3", 5, 5},
	} {
		s, err := Open(context.Background(), Options{DSN: c.dsn, ERPToken: "erp-secret", MaxConns: c.opt})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got := s.DB().Config().MaxConns; got != c.want {
			t.Errorf("pool size set by %s: %d, want %d", c.what, got, c.want)
		}
		s.Close()
	}
	for dsn, want := range map[string]bool{
		"host=db pool_max_conns=40":               true,
		"host=db pool_max_conns = 40":             true,
		"host=db application_name=pool_max_conns": false,
		"postgres://u@db/ho?pool_max_conns=40":    true,
		"postgres://u@db/ho?sslmode=disable":      false,
	} {
		if got := dsnSets(dsn, "pool_max_conns"); got != want {
			t.Errorf("dsnSets(%q) = %v, want %v", dsn, got, want)
		}
	}
}

// TestJITOffUnlessTheDSNAsks: head office's connections run without JIT
// (a delta's look-up of a not yet analyzed table compiled and ran 8×
// slower), and an operator's jit in the DSN stands.
func TestJITOffUnlessTheDSNAsks(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, c := range []struct{ dsn, want string }{{dsn, "off"}, {dsn + "&jit=on", "on"}} {
		s, err := Open(context.Background(), Options{DSN: c.dsn, ERPToken: "erp-secret"})
		if err != nil {
			t.Fatal(err)
		}
		var jit string
		if err := s.DB().QueryRow(context.Background(), `SHOW jit`).Scan(&jit); err != nil || jit != c.want {
			t.Errorf("jit with the DSN's params %q: %q %v, want %s", c.dsn[strings.Index(c.dsn, "?"):], jit, err, c.want)
		}
		s.Close()
	}
}
