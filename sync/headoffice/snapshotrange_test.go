package headoffice

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
)

// TestSnapshotPageReadAsRanges: a page of every card read along the
// cards' key and the live lots' index (feedCardPage) holds what reading
// its cards code by code (feedCardCodes) does: the same cards, the live
// lots of those cards only — not of the card after the page's last, nor
// used-up ones — at the first page, in the middle and at the end.
func TestSnapshotPageReadAsRanges(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	r := demoReplica(t)
	for i := range 9 {
		code := fmt.Sprintf("35%011d", i)
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: "active"})
		for k := range 3 {
			r.Lots = append(r.Lots, lot(code, fmt.Sprintf("L%d-%d", i, k), fmt.Sprint(10+k), demoNow.AddDate(0, -1, 0), nil))
		}
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	// One lot of each card used up: head office keeps it, no page carries it.
	if _, err := s.db.Exec(ctx, `UPDATE lots SET remaining = 0 WHERE card LIKE '35%' AND lot_id LIKE '%-1'`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after string
		limit int
	}{{"", 4}, {"3500000000002", 3}, {"3500000000006", 5}, {"3500000000008", 5}} {
		err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var byRange, byCode store.Replica
			codes, err := s.feedCardPage(ctx, tx, &byRange, c.after, c.limit)
			if err != nil {
				return err
			}
			if err := s.feedCardCodes(ctx, tx, &byCode, codes); err != nil {
				return err
			}
			var want []string
			rows, _ := tx.Query(ctx, `SELECT code FROM cards WHERE code > $1 ORDER BY code LIMIT $2`, c.after, c.limit)
			want, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			if !slices.Equal(codes, want) {
				t.Errorf("after %q limit %d: codes %v, want %v", c.after, c.limit, codes, want)
			}
			same := func(a, b any) bool {
				return reflect.ValueOf(a).Len() == 0 && reflect.ValueOf(b).Len() == 0 || reflect.DeepEqual(a, b)
			}
			if !same(byRange.Cards, byCode.Cards) || !same(byRange.Lots, byCode.Lots) {
				t.Errorf("after %q limit %d: by range %d cards %d lots, by code %d cards %d lots:\n%+v\n%+v", c.after, c.limit,
					len(byRange.Cards), len(byRange.Lots), len(byCode.Cards), len(byCode.Lots), byRange.Lots, byCode.Lots)
			}
			for _, l := range byRange.Lots {
				if l.Remaining == nil || l.Remaining.IsZero() {
					t.Errorf("after %q: used-up lot %s of %s in the page", c.after, l.ID, l.Card)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
