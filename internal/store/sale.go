package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// DebtLot is the lot id a return's reversal uses for the points that drove
// the balance below zero (checkout's DebtAdded). Replica lot ids cannot
// contain "~", so it never names a real lot, and a negative delta on a lot
// the replica lacks counts as debt (see loadCard).
const DebtLot = "~debt"

// ErrCheckConflict is returned when a sale (by check id) or a return (by
// return id) that is already recorded is recorded again with different
// journal effects: the till never writes two versions of one document.
var ErrCheckConflict = errors.New("already recorded with a different payload")

// recordOnce appends entries as the document (kind "sale" keyed by check
// id, "return" by return id) unless it is already recorded, in one
// transaction with its row in recorded. A replay with the same entries
// returns the first ids and writes nothing; different entries are
// ErrCheckConflict. A document with no entries is recorded too, so a later
// different payload under its key is still refused.
func (s *Store) recordOnce(ctx context.Context, kind, key, checkID string, es []Entry) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("empty %s key", kind)
	}
	// The digest covers the entries as built, before ids and times exist.
	body, err := json.Marshal(es)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var oldDigest, oldIDs string
	err = tx.QueryRowContext(ctx, `SELECT digest, entry_ids FROM recorded WHERE kind = ? AND key = ?`, kind, key).Scan(&oldDigest, &oldIDs)
	switch {
	case err == nil:
		if oldDigest != digest {
			return nil, fmt.Errorf("%s %s: %w", kind, key, ErrCheckConflict)
		}
		var ids []string
		if err := json.Unmarshal([]byte(oldIDs), &ids); err != nil {
			return nil, fmt.Errorf("%s %s: stored entry ids %q: %w", kind, key, oldIDs, err)
		}
		s.log.Info("replayed "+kind+" ignored", "key", key, "check", checkID)
		return ids, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("look up %s %s: %w", kind, key, err)
	}
	ids := []string{}
	if len(es) > 0 {
		if err := s.prepareEntries(es); err != nil {
			return nil, err
		}
		if ids, err = appendTx(ctx, tx, es); err != nil {
			return nil, err
		}
	}
	idsJSON, _ := json.Marshal(ids)
	if _, err := tx.ExecContext(ctx, `INSERT INTO recorded(kind, key, check_id, digest, entry_ids, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		kind, key, checkID, digest, string(idsJSON), s.now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("record %s %s: %w", kind, key, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

// RecordSale writes what a priced and paid check did to its cards, in one
// transaction: per card a redemption entry (the lots consumed) and an
// accrual entry (the lots created, and the check's sum after discounts as
// the card's purchase, which tiers and cumulative discounts count). Cards
// that neither earn, spend nor get a discount (blocked) get no entry;
// referral cards earn but record no purchase. It returns the entry ids.
//
// It is idempotent per check id: recording the same result again returns
// the ids written the first time and writes nothing; a different result
// under the same check id is ErrCheckConflict.
func (s *Store) RecordSale(ctx context.Context, res checkout.Result) ([]string, error) {
	return s.RecordFiscalSale(ctx, res, 0, 0)
}

// RecordFiscalSale is RecordSale with the fiscal document number and sign
// of the sale's receipt on every entry.
func (s *Store) RecordFiscalSale(ctx context.Context, res checkout.Result, fd, fp uint32) ([]string, error) {
	var es []Entry
	net := res.Sum.Sub(res.Discount).Kopecks()
	for _, c := range res.Cards {
		if !c.CanEarn && !c.CanSpend && !c.CanDiscount {
			continue
		}
		if c.Redeemed.IsPositive() {
			e := Entry{CheckID: res.CheckID, CardCode: c.Code, Kind: KindRedemption, Points: c.Redeemed.Decimal().Neg()}
			if r := res.Redemption; r != nil && r.Card == c.Code {
				e.AmountKop = r.Money.Kopecks()
				for _, l := range r.LotsConsumed {
					e.Lots = append(e.Lots, LotChange{LotID: l.LotID, Delta: l.Points.Decimal().Neg()})
				}
			}
			es = append(es, e)
		}
		e := Entry{CheckID: res.CheckID, CardCode: c.Code, Kind: KindAccrual, Points: c.Accrued.Decimal()}
		if c.Kind != checkout.KindReferral {
			e.PurchaseKop = net
		}
		for _, l := range c.NewLots {
			lc := LotChange{Create: true, Delta: l.Points.Decimal(), ActiveFrom: l.ActiveFrom}
			if l.ExpiresAt != nil {
				lc.ExpiresAt = *l.ExpiresAt
			}
			e.Lots = append(e.Lots, lc)
		}
		if !e.Points.IsZero() || e.PurchaseKop != 0 {
			es = append(es, e)
		}
	}
	stamp(es, fd, fp)
	ids, err := s.recordOnce(ctx, "sale", res.CheckID, res.CheckID, es)
	if err != nil {
		return nil, fmt.Errorf("record sale %s: %w", res.CheckID, err)
	}
	return ids, nil
}

// RecordReturn writes return returnID against original in one transaction:
// per card a reversal entry that gives spent points back to their lots (and,
// on the card that paid, the roubles they paid as a negative AmountKop),
// takes the reversed accrual from the lots the engine debited, books any
// debt on DebtLot, and carries the money withheld from the refund and the
// points written off (neither changes the balance). The returned lines'
// share of the check's sum after discounts is taken off the purchase
// history of customer cards.
//
// It is idempotent per returnID, like RecordSale per check id.
func (s *Store) RecordReturn(ctx context.Context, returnID string, original checkout.Result, rr checkout.ReturnResult) ([]string, error) {
	return s.RecordFiscalReturn(ctx, returnID, original, rr, 0, 0)
}

// RecordFiscalReturn is RecordReturn with the fiscal document number and
// sign of the return's receipt on every entry.
func (s *Store) RecordFiscalReturn(ctx context.Context, returnID string, original checkout.Result, rr checkout.ReturnResult, fd, fp uint32) ([]string, error) {
	kinds := map[string]checkout.CardKind{}
	for _, c := range original.Cards {
		kinds[c.Code] = c.Kind
	}
	refund := returnedNet(original, rr).Kopecks()
	spender := ""
	if original.Redemption != nil {
		spender = original.Redemption.Card
	}
	var es []Entry
	for _, c := range rr.Cards {
		e := Entry{CheckID: rr.CheckID, CardCode: c.Code, Kind: KindReversal}
		pts := decimal.Zero
		add := func(id string, d decimal.Decimal) {
			if d.IsZero() {
				return
			}
			for i := range e.Lots { // the same lot both restored and debited
				if e.Lots[i].LotID == id {
					e.Lots[i].Delta = e.Lots[i].Delta.Add(d)
					pts = pts.Add(d)
					return
				}
			}
			e.Lots = append(e.Lots, LotChange{LotID: id, Delta: d})
			pts = pts.Add(d)
		}
		for _, l := range c.LotsRestored {
			add(l.LotID, l.Points.Decimal())
		}
		for _, l := range c.LotsDebited {
			add(l.LotID, l.Points.Decimal().Neg())
		}
		add(DebtLot, c.DebtAdded.Decimal().Neg())
		e.Points = pts
		if k, ok := kinds[c.Code]; ok && k != checkout.KindReferral {
			e.PurchaseKop = -refund
		}
		if c.Code == spender && c.Restored.IsPositive() {
			e.AmountKop = -restoredMoney(original, rr).Kopecks()
		}
		e.WithheldKop = c.Withheld.Kopecks()
		e.WrittenOff = c.WrittenOff.Decimal()
		if len(e.Lots) > 0 || e.PurchaseKop != 0 || e.AmountKop != 0 || e.WithheldKop != 0 || !e.WrittenOff.IsZero() {
			es = append(es, e)
		}
	}
	stamp(es, fd, fp)
	ids, err := s.recordOnce(ctx, "return", returnID, rr.CheckID, es)
	if err != nil {
		return nil, fmt.Errorf("record return %s on %s: %w", returnID, rr.CheckID, err)
	}
	return ids, nil
}

// stamp puts a receipt's fiscal document on its entries.
func stamp(es []Entry, fd, fp uint32) {
	for i := range es {
		es[i].FD, es[i].FP = fd, fp
	}
}

// restoredMoney is the roubles the restored points had paid: per returned
// line, the line's money paid with points × restored points / points spent
// on the line, half up to the kopeck per line. A full return gives back
// exactly the line's Redeemed.
func restoredMoney(original checkout.Result, rr checkout.ReturnResult) checkout.Money {
	total := checkout.Money{}
	for _, rl := range rr.Lines {
		if !rl.RestoredPoints.IsPositive() {
			continue
		}
		for _, ol := range original.Lines {
			if ol.No != rl.No || !ol.RedeemedPoints.IsPositive() {
				continue
			}
			if rl.RestoredPoints.Cmp(ol.RedeemedPoints) == 0 {
				total = total.Add(ol.Redeemed)
			} else {
				total = total.Add(checkout.MoneyHalfUp(ol.Redeemed.Decimal().Mul(rl.RestoredPoints.Decimal()).Div(ol.RedeemedPoints.Decimal())))
			}
		}
	}
	return total
}

// ReturnInput loads the cards of original in their current state (lots,
// debt) and their programs, for checkout.Return; the caller sets Lines and
// Previous.
func (s *Store) ReturnInput(ctx context.Context, original checkout.Result, now time.Time) (checkout.ReturnInput, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return checkout.ReturnInput{}, err
	}
	loc, ok := cat.stores[original.StoreID]
	if !ok {
		return checkout.ReturnInput{}, fmt.Errorf("return on check %s: unknown store %q", original.CheckID, original.StoreID)
	}
	in := checkout.ReturnInput{Original: original, Now: now, Location: loc, TimeZone: loc.String()}
	for _, cr := range original.Cards {
		c, err := s.loadCard(ctx, cat, cr.Code, now, loc)
		if err != nil {
			return checkout.ReturnInput{}, fmt.Errorf("return on check %s: card %s: %w", original.CheckID, cr.Code, err)
		}
		in.Cards = append(in.Cards, c)
		if !programListed(in.Programs, c.ProgramID) {
			p, ok := cat.programs[c.ProgramID]
			if !ok {
				return checkout.ReturnInput{}, fmt.Errorf("return on check %s: card %s: program %q not in replica", original.CheckID, cr.Code, c.ProgramID)
			}
			in.Programs = append(in.Programs, p)
		}
	}
	return in, nil
}

// returnedNet is the returned lines' share of their sums after discounts:
// (sum − discount) × returned qty / sold qty, half up to the kopeck per
// line. A full return gives back exactly what RecordSale counted; partial
// returns of one line may differ from it by a kopeck in total.
func returnedNet(original checkout.Result, rr checkout.ReturnResult) checkout.Money {
	total := checkout.Money{}
	for _, rl := range rr.Lines {
		for _, ol := range original.Lines {
			if ol.No != rl.No || !ol.Qty.IsPositive() {
				continue
			}
			net := ol.Sum.Sub(ol.Discount).Decimal()
			if rl.Qty.Cmp(ol.Qty) == 0 {
				total = total.Add(ol.Sum.Sub(ol.Discount))
			} else {
				total = total.Add(checkout.MoneyHalfUp(net.Mul(rl.Qty.Decimal()).Div(ol.Qty.Decimal())))
			}
		}
	}
	return total
}
