package headoffice

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// A till gives points back only for a check it sold (a return is made on
// the till that holds the sale), so a return that gives back more than its
// check spent is a till's bug or tampering: folding it would make points.
// Head office checks every reversal against the redemptions of its check
// on the same till, lot by lot, in chain order: what the check took from a
// lot, less what its earlier returns gave back to that lot, is the most a
// return may give back to it. Points go back only to lots the sale named:
// a reversal giving points back without naming lots is over the cap too.
// Only redemptions folded into a card count (not those of a card head
// office did not hold). A return over the cap is kept as rejected, whole:
// a till that sends it is not trusted for the rest of the entry either (the
// accrual it takes back), and support settles the card from
// GET /v1/erp/rejected.

// sqlCheckSpends reads the folded, applied redemptions and reversals of
// the checks whose returns a fold may apply: those of the batch ($1) and
// of the till's ($2) stored reversals not folded yet. Those not folded yet
// are counted in chain order by returnCap itself. Read check by check
// (LATERAL, OFFSET 0, as the lots are): as a join the planner scanned the
// whole index, 20 µs an entry in a batch without any return.
const sqlCheckSpends = `SELECT j.body::text
	FROM (SELECT unnest($1::text[]) UNION SELECT check_id` + sqlFromTillReversals + `) AS k(check_id),
		LATERAL (SELECT body FROM journal WHERE journal.check_id = k.check_id AND kind IN ('redemption', 'reversal')
			AND till_id = $2 AND folded AND rejected = '' AND NOT no_card OFFSET 0) AS j
	WHERE k.check_id <> ''`

// returnCap is, per check, card and lot, what the check's redemptions took
// from the lot less what its returns gave back to it.
type returnCap map[spendKey]decimal.Decimal

type spendKey struct{ check, card, lot string }

// scanCheckSpends reads sqlCheckSpends rows into rc.
func scanCheckSpends(rows pgx.Rows, rc returnCap) error {
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return fmt.Errorf("read the spends of returned checks: %w", err)
		}
		var e store.Entry
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return fmt.Errorf("read the spends of returned checks: stored entry: %w", err)
		}
		rc.count(&e)
	}
	return rows.Err()
}

// count adds what a redemption took, or takes off what a return gave back.
func (rc returnCap) count(e *store.Entry) {
	for _, l := range e.Lots {
		k := spendKey{e.CheckID, e.CardCode, l.LotID}
		switch {
		case e.Kind == store.KindRedemption && l.Delta.IsNegative():
			rc[k] = rc[k].Sub(l.Delta)
		case e.Kind == store.KindReversal && l.Delta.IsPositive():
			rc[k] = rc[k].Sub(l.Delta)
		}
	}
}

// refusal is why reversal e may not be folded ("" when it may): a lot it
// gives back more to than its check has left to give back, or points given
// back to no lot.
func (rc returnCap) refusal(e *store.Entry) string {
	if len(e.Lots) == 0 && e.Points.IsPositive() {
		return fmt.Sprintf("return gives %s points back to no lot: a return gives points back to the lots its sale spent", e.Points)
	}
	for _, l := range e.Lots {
		if !l.Delta.IsPositive() {
			continue
		}
		if left := rc[spendKey{e.CheckID, e.CardCode, l.LotID}]; l.Delta.GreaterThan(left) {
			return fmt.Sprintf("return gives %s points back to lot %q of card %s, but check %q has %s spent from it left to give back",
				l.Delta, l.LotID, e.CardCode, e.CheckID, left)
		}
	}
	return ""
}

// capReturns goes through the entries to fold in chain order and takes out
// the returns that give back more than their check spent, answering why
// (id → why). known tells the cards head office holds: only entries folded
// into a card count.
func (rc returnCap) capReturns(entries []wire.Entry, known func(card string) bool) ([]wire.Entry, map[string]string) {
	return takeOut(entries, func(e *store.Entry) string {
		if e.Kind == store.KindReversal {
			if why := rc.refusal(e); why != "" {
				return why
			}
		}
		if known(e.CardCode) {
			rc.count(e)
		}
		return ""
	})
}

// takeOut goes through the entries to fold in chain order and takes out
// those refuse gives a reason for (id → why). refuse sees every entry once,
// in order, so it may keep count of those it lets through.
func takeOut(entries []wire.Entry, refuse func(*store.Entry) string) ([]wire.Entry, map[string]string) {
	var out map[string]string
	var kept []wire.Entry // a copy only once one is taken out: most batches keep all
	for i := range entries {
		if why := refuse(&entries[i].Entry); why != "" {
			if out == nil {
				out, kept = map[string]string{}, slices.Clone(entries[:i])
			}
			out[entries[i].ID] = why
			continue
		}
		if out != nil {
			kept = append(kept, entries[i])
		}
	}
	if out == nil {
		return entries, nil
	}
	return kept, out
}
