package headoffice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// massCards is a replica of n new bonus cards (codes prefix+index, given
// last first so the import has to sort them), each with lots lots.
func massCards(prefix string, n, lots int) *store.Replica {
	r := &store.Replica{Version: 1}
	for i := n - 1; i >= 0; i-- {
		code := massCode(prefix, i)
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for k := range lots {
			r.Lots = append(r.Lots, store.ReplicaLot{ID: fmt.Sprintf("L%d", k), Card: code,
				Points: checkout.PointsOf(decimal.NewFromInt(int64(1 + k))), AccruedAt: demoNow.Add(-time.Hour)})
		}
	}
	return r
}

// massCode is card i of massCards(prefix, ...): 13 digits.
func massCode(prefix string, i int) string { return fmt.Sprintf("%s%09d", prefix, i) }

// cardChanges returns the keys of the 'cards' change rows for codes with
// prefix, in seq order.
func cardChanges(t *testing.T, s *Server, prefix string) []string {
	t.Helper()
	rows, err := s.db.Query(context.Background(), `SELECT key FROM changes WHERE section = 'cards' AND key LIKE $1 || '%' ORDER BY seq`, prefix)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestImportInChunksLogsEachCardOnce: an import larger than a few chunks
// (importChunk rows a round trip), given out of order and with two lots a
// card (so a card's lots may fall in another chunk than its record),
// writes one change row per card, in code order after all of them, and
// counts every card and lot; the same import again changes and logs
// nothing; a card whose record and lots change in one import gets one row;
// two imports in one transaction each log their own cards.
func TestImportInChunksLogsEachCardOnce(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	n := 2*importChunk + 7
	mass := massCards("2940", n, 2)
	st, err := s.Import(ctx, mass)
	if err != nil || st.Cards != n || st.Lots != 2*n {
		t.Fatalf("import: %+v, %v; want %d cards and %d lots", st, err, n, 2*n)
	}
	keys := cardChanges(t, s, "2940")
	if len(keys) != n || !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != n {
		t.Fatalf("%d change rows for %d cards (sorted %v): want one a card, in code order", len(keys), n, slices.IsSorted(keys))
	}
	if st, err := s.Import(ctx, mass); err != nil || st.Cards != 0 || st.Lots != 0 {
		t.Fatalf("the same import again: %+v, %v; want nothing changed", st, err)
	}
	if k := cardChanges(t, s, "2940"); len(k) != n {
		t.Fatalf("the same import again logged %d changes", len(k)-n)
	}

	// Card 0 changes its holder and gains a lot, card 1 gains a lot only,
	// the rest are as stored.
	again := massCards("2940", n, 3)
	for i := range again.Cards {
		if again.Cards[i].Code == massCode("2940", 0) {
			again.Cards[i].Holder = "Иванова"
		}
	}
	again.Lots = slices.DeleteFunc(again.Lots, func(l store.ReplicaLot) bool {
		return l.ID == "L2" && l.Card != massCode("2940", 0) && l.Card != massCode("2940", 1)
	})
	if st, err := s.Import(ctx, again); err != nil || st.Cards != 1 || st.Lots != 2 {
		t.Fatalf("holder and lots: %+v, %v; want 1 card and 2 lots", st, err)
	}
	if k := cardChanges(t, s, "2940")[n:]; !slices.Equal(k, []string{massCode("2940", 0), massCode("2940", 1)}) {
		t.Fatalf("holder and lots logged %v, want each of the two cards once", k)
	}

	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, prefix := range []string{"2941", "2942"} {
		if st, err := importTx(ctx, tx, massCards(prefix, 3, 1)); err != nil || st.Cards != 3 || st.Lots != 3 {
			t.Fatalf("import %s in a shared transaction: %+v, %v", prefix, st, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"2941", "2942"} {
		if k := cardChanges(t, s, prefix); len(k) != 3 {
			t.Fatalf("cards %s…: %d change rows, want 3", prefix, len(k))
		}
	}
}

// TestImportErrorNamesTheRecordInItsChunk: a value PostgreSQL refuses for
// one card of a later chunk (a trigger stands in for it) is reported for
// that card, as a request's fault, and nothing of the import is written.
func TestImportErrorNamesTheRecordInItsChunk(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	bad := massCode("2950", importChunk+3)
	if _, err := s.db.Exec(ctx, `CREATE FUNCTION refuse_card() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'injected refusal' USING ERRCODE = 'check_violation'; END $$;
		CREATE TRIGGER refuse_card BEFORE INSERT ON cards FOR EACH ROW WHEN (NEW.code = '`+bad+`') EXECUTE FUNCTION refuse_card()`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Import(ctx, massCards("2950", importChunk+10, 1))
	if err == nil || !strings.Contains(err.Error(), `cards code "`+bad+`"`) || !strings.Contains(err.Error(), "injected refusal") || !requestsFault(err) {
		t.Fatalf("import: %v; want the refusal naming card %s, the request's fault", err, bad)
	}
	var cards, changes int
	if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM cards WHERE code LIKE '2950%'),
		(SELECT count(*) FROM changes WHERE key LIKE '2950%')`).Scan(&cards, &changes); err != nil || cards != 0 || changes != 0 {
		t.Fatalf("after the refused import: %d cards, %d changes (%v); want none", cards, changes, err)
	}
	var ref *RefusedImport
	if errors.As(err, &ref) {
		t.Fatalf("a database refusal reported as a validation error: %v", err)
	}
}

// TestImportCountsLotsThatDiffer: lots an import gives again are left
// alone; those whose points, activation or expiry differ from head
// office's are counted (not those whose remaining moved with the tills'
// entries), and nothing of them is written.
func TestImportCountsLotsThatDiffer(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	first := massCards("77", 3, 2)
	if _, err := s.Import(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := massCards("77", 3, 2)
	rem := checkout.PointsOf(decimal.NewFromInt(0))
	exp := demoNow.AddDate(1, 0, 0)
	again.Lots[0].Points = checkout.PointsOf(decimal.NewFromInt(555)) // differs
	again.Lots[1].ExpiresAt = &exp                                    // differs
	again.Lots[2].Remaining = &rem                                    // remaining only: not counted
	st, err := s.Import(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{again.Lots[0].Card + "/" + again.Lots[0].ID, again.Lots[1].Card + "/" + again.Lots[1].ID}
	slices.Sort(want)
	if st.Lots != 0 || st.LotsDiffer != 2 || !slices.Equal(st.DifferingLots, want) {
		t.Fatalf("re-import: %+v, want no lot changed and 2 differing, named %v", st, want)
	}
	var pts string
	if err := s.db.QueryRow(ctx, `SELECT points::text FROM lots WHERE card = $1 AND lot_id = $2`, again.Lots[0].Card, again.Lots[0].ID).Scan(&pts); err != nil || pts != first.Lots[0].Points.String() {
		t.Fatalf("lot after the re-import: %s %v, want it left at %s", pts, err, first.Lots[0].Points)
	}
}
