package headoffice

import (
	"fmt"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// A lot is created once, by the entry that accrues it, under an id of the
// till's own (the entry's, or one it made for the lot), so no till writes
// an entry creating a lot its card already holds: such an entry is crafted,
// or ERP named a lot so. Folding it would either count nothing (the lot is
// there) or overwrite the lot's history, and the accruals report would
// count points no lot holds. It is kept as rejected instead, whole, for
// support (GET /v1/erp/rejected) to settle. A used-up lot is not read
// before the fold (only the live ones are): the lot's insert then fails on
// its key, and the batch is folded again with every lot read, which finds
// it here.

// createdTwice takes out of the entries to fold, in chain order, those
// creating a lot their card holds or an earlier entry of the chain
// created, answering why (id → why). Entries of cards head office does not
// hold fold into nothing and are let through.
func createdTwice(entries []wire.Entry, cards map[string]*cardState) ([]wire.Entry, map[string]string) {
	type key struct{ card, lot string }
	created := map[key]bool{}
	return takeOut(entries, func(e *store.Entry) string {
		c := cards[e.CardCode]
		if c == nil {
			return ""
		}
		ids := createdLots(e)
		for _, id := range ids {
			if _, ok := c.Lots[id]; ok || created[key{e.CardCode, id}] {
				return fmt.Sprintf("creates lot %q, which card %s already holds: a lot is created once, by the entry that accrues it (support corrects the card if this entry should count)", id, e.CardCode)
			}
		}
		for _, id := range ids {
			created[key{e.CardCode, id}] = true
		}
		return ""
	})
}

// createdLots is the ids of the lots e creates: those it marks created, or
// for an accrual without lots its own id (cardState.applyAt).
func createdLots(e *store.Entry) []string {
	if len(e.Lots) == 0 {
		if e.Points.IsPositive() {
			return []string{e.ID}
		}
		return nil
	}
	var ids []string
	for _, l := range e.Lots {
		if l.Create {
			ids = append(ids, l.LotID)
		}
	}
	return ids
}
