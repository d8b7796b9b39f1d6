package store

import (
	"context"
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

// RecordSale writes what a priced and paid check did to its cards, in one
// transaction: per card a redemption entry (the lots consumed) and an
// accrual entry (the lots created, and the check's sum after discounts as
// the card's purchase, which tiers and cumulative discounts count). Cards
// that neither earn, spend nor get a discount (blocked) get no entry;
// referral cards earn but record no purchase. It returns the entry ids.
func (s *Store) RecordSale(ctx context.Context, res checkout.Result) ([]string, error) {
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
	if len(es) == 0 {
		return nil, nil
	}
	ids, err := s.Append(ctx, es)
	if err != nil {
		return nil, fmt.Errorf("record sale %s: %w", res.CheckID, err)
	}
	return ids, nil
}

// RecordReturn writes a return against original in one transaction: per card
// a reversal entry that gives spent points back to their lots, takes the
// reversed accrual from the lots the engine debited, and books any debt on
// DebtLot. Written-off points change no balance. The returned lines' share
// of the check's sum after discounts is taken off the purchase history of
// customer cards.
func (s *Store) RecordReturn(ctx context.Context, original checkout.Result, rr checkout.ReturnResult) ([]string, error) {
	kinds := map[string]checkout.CardKind{}
	for _, c := range original.Cards {
		kinds[c.Code] = c.Kind
	}
	refund := returnedNet(original, rr).Kopecks()
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
		if len(e.Lots) > 0 || e.PurchaseKop != 0 {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		return nil, nil
	}
	ids, err := s.Append(ctx, es)
	if err != nil {
		return nil, fmt.Errorf("record return on %s: %w", rr.CheckID, err)
	}
	return ids, nil
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
