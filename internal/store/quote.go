package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// ErrUnknownCard is returned for a card code the replica does not have,
// as an *UnknownCardError naming it.
var ErrUnknownCard = errors.New("unknown card")

// UnknownCardError is ErrUnknownCard for one card: the sale service asks
// head office for that card.
type UnknownCardError struct{ Code string }

func (e *UnknownCardError) Error() string        { return ErrUnknownCard.Error() }
func (e *UnknownCardError) Is(target error) bool { return target == ErrUnknownCard }

// ErrUnknownStore is returned for a store id the replica does not have.
var ErrUnknownStore = errors.New("unknown store")

// ErrUnknownProduct is returned for a line whose product the replica does not have.
var ErrUnknownProduct = errors.New("unknown product")

// QuoteInput loads everything the engine needs to price check with the
// presented cards at now: product attributes on every line, each card with
// its lots and history (replica plus this till's journal entries after the
// replica's watermark), the cards' programs with their promotions, and the store's
// time zone. Redeem and RedeemCard are left for the caller.
func (s *Store) QuoteInput(ctx context.Context, check checkout.Check, cardCodes []string, now time.Time) (checkout.Input, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return checkout.Input{}, err
	}
	loc, ok := cat.stores[check.StoreID]
	if !ok {
		return checkout.Input{}, fmt.Errorf("quote check %s: %w %q (not in the replica)", check.ID, ErrUnknownStore, check.StoreID)
	}
	in := checkout.Input{Now: now, Location: loc, TimeZone: loc.String()}
	in.Check = check
	in.Check.Lines = append([]checkout.Line(nil), check.Lines...)
	if err := s.fillLines(ctx, cat, in.Check.Lines); err != nil {
		return checkout.Input{}, fmt.Errorf("quote check %s: %w", check.ID, err)
	}
	seen := map[string]bool{}
	for _, code := range cardCodes {
		if seen[code] {
			continue // scanned twice
		}
		seen[code] = true
		c, err := s.loadCard(ctx, cat, code, now, loc)
		if err != nil {
			return checkout.Input{}, fmt.Errorf("quote check %s: card %s: %w", check.ID, code, err)
		}
		in.Cards = append(in.Cards, c)
		if !programListed(in.Programs, c.ProgramID) {
			p, ok := cat.programs[c.ProgramID]
			if !ok {
				return checkout.Input{}, fmt.Errorf("quote check %s: card %s: program %q not in replica", check.ID, code, c.ProgramID)
			}
			in.Programs = append(in.Programs, p)
		}
	}
	return in, nil
}

func programListed(ps []checkout.Program, id string) bool {
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}

// fillLines sets Name, Groups, Segment, VAT, Tobacco and LastPurchasePrice
// from the cached catalog.
func (s *Store) fillLines(_ context.Context, cat *catalog, lines []checkout.Line) error {
	for i := range lines {
		l := &lines[i]
		p, ok := cat.products[l.ProductID]
		if !ok {
			return fmt.Errorf("line %d: product %q: %w", l.No, l.ProductID, ErrUnknownProduct)
		}
		l.Name, l.Groups, l.Segment, l.VAT, l.Tobacco, l.Unit = p.name, p.groups, p.segment, p.vat, p.tobacco, p.unit
		l.LastPurchasePrice = nil
		if p.lpp != nil {
			m := *p.lpp
			l.LastPurchasePrice = &m
		}
	}
	return nil
}

// loadCard builds the engine's view of one card. The arithmetic (also in
// docs/replica.md):
//
//	counted       = this till's journal entries on the card after the
//	                replica's watermark folded_through[till] (all of them
//	                when the replica has none), acknowledged or not
//	lot remaining = replica remaining + Σ deltas of counted entries on it
//	new lots      = lots created by counted accruals
//	debt          = replica debt + Σ (−remaining) of lots that went below 0
//	                + Σ (−delta) of counted negative deltas on lots the
//	                replica does not have
//	                + Σ (−points) of counted entries with no lots that take
//	                points away
//
// Entries at or before the watermark are already in the replica's lots, so
// they are not counted; entries after it are not, whatever their ack state
// (an ack only means head office has them, not that the lots we hold include
// them). So each entry counts exactly once, in whatever order acks and
// replica updates arrive. A lot an entry after the watermark created that the
// replica already has is taken from the replica (never both). A positive
// delta on a lot the replica no longer has is ignored until head office
// sends the lot again (the till never overstates a balance).
//
// All reads happen in one read transaction, so the lots, the watermark and
// the journal come from one snapshot even while an import commits.
func (s *Store) loadCard(ctx context.Context, cat *catalog, code string, now time.Time, loc *time.Location) (checkout.Card, error) {
	var (
		id                       int64
		kindID, debt, statsMonth string
		prog                     sql.NullString
		allTime, monthP, prevP   int64
		accMonth, redMonth       string
		c                        checkout.Card
	)
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return checkout.Card{}, fmt.Errorf("load card: %w", err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	err = tx.StmtContext(ctx, s.q.card).QueryRowContext(ctx, code).Scan(&id, &kindID, &prog, &c.State, &c.BlockReason, &debt, &statsMonth,
		&allTime, &monthP, &prevP, &accMonth, &redMonth)
	if errors.Is(err, sql.ErrNoRows) {
		return checkout.Card{}, &UnknownCardError{Code: code}
	}
	if err != nil {
		return checkout.Card{}, fmt.Errorf("load card: %w", err)
	}
	c.Code = code
	k, ok := cat.kinds[kindID]
	if !ok {
		return checkout.Card{}, fmt.Errorf("card kind %q not in replica", kindID)
	}
	c.Kind, c.ProgramID = k.kind, k.program
	if prog.Valid {
		c.ProgramID = prog.String
	}

	// History: the replica's counters refer to statsMonth; shift them to
	// now's month (store-local).
	ym := func(t time.Time) string { return t.In(loc).Format("2006-01") }
	thisMonth := ym(now)
	first := time.Date(now.In(loc).Year(), now.In(loc).Month(), 1, 0, 0, 0, 0, loc)
	prevMonth := ym(first.AddDate(0, -1, 0))
	accrued, redeemed := decimal.Zero, decimal.Zero
	prevKop := int64(0)
	switch statsMonth {
	case thisMonth:
		prevKop = prevP
		if accrued, err = parseDec(accMonth, "accrued_month"); err != nil {
			return checkout.Card{}, err
		}
		if redeemed, err = parseDec(redMonth, "redeemed_month"); err != nil {
			return checkout.Card{}, err
		}
	case prevMonth:
		prevKop = monthP
	}
	allKop := allTime
	debtD, err := parseDec(debt, "debt")
	if err != nil {
		return checkout.Card{}, err
	}

	lots, err := s.replicaLots(ctx, tx, s.q.lots, id)
	if err != nil {
		return checkout.Card{}, err
	}
	byID := make(map[string]int, len(lots))
	for i, l := range lots {
		byID[l.ID] = i
	}
	wm, err := s.watermark(ctx, tx)
	if err != nil {
		return checkout.Card{}, err
	}
	entries, err := s.unfoldedForCard(ctx, tx, code, wm)
	if err != nil {
		return checkout.Card{}, err
	}
	// The used-up lots the entries spend from or give back to, read by key:
	// with them the sums below are those over all the card's lots, zero
	// rows adding nothing. Not the lots they create: head office sends its
	// lots and its watermark from one snapshot, so it has not folded an
	// entry after the watermark, nor spent the lot it creates (so a quote
	// looks nothing up for each pending accrual).
	for _, e := range entries {
		for _, lc := range e.Lots {
			if _, ok := byID[lc.LotID]; ok || lc.Create {
				continue
			}
			spent, err := s.replicaLots(ctx, tx, s.q.lot, id, lc.LotID)
			if err != nil {
				return checkout.Card{}, err
			}
			byID[lc.LotID] = -1 // asked: not asked again when absent
			for _, l := range spent {
				lots = append(lots, l)
				byID[l.ID] = len(lots) - 1
			}
		}
	}
	for _, e := range entries {
		switch ym(e.CreatedAt) {
		case thisMonth:
			switch e.Kind {
			case KindAccrual:
				accrued = accrued.Add(e.Points)
			case KindRedemption:
				redeemed = redeemed.Sub(e.Points)
			}
		case prevMonth:
			prevKop += e.PurchaseKop
		}
		allKop += e.PurchaseKop
		if len(e.Lots) == 0 && e.Points.IsNegative() {
			debtD = debtD.Sub(e.Points)
		}
		if len(e.Lots) == 0 && e.Points.IsPositive() {
			// A credit without lot detail: a lot of its own, active now.
			lots = append(lots, checkout.Lot{ID: e.ID, Points: checkout.PointsOf(e.Points),
				Remaining: checkout.PointsOf(e.Points), AccruedAt: e.CreatedAt, ActiveFrom: e.CreatedAt, CheckID: e.CheckID})
			byID[e.ID] = len(lots) - 1
		}
		for _, lc := range e.Lots {
			if i, ok := byID[lc.LotID]; ok && i >= 0 {
				if lc.Create {
					// The replica already holds this lot although the
					// watermark says it has not folded the entry: trust the
					// replica rather than count the lot twice.
					s.log.Warn("replica has a lot the journal creates after the watermark", "card", code, "lot", lc.LotID, "entry", e.ID, "folded_through", wm)
					continue
				}
				lots[i].Remaining = lots[i].Remaining.Add(checkout.PointsOf(lc.Delta))
				continue
			}
			switch {
			case lc.Create:
				l := checkout.Lot{ID: lc.LotID, Points: checkout.PointsOf(lc.Delta), Remaining: checkout.PointsOf(lc.Delta),
					AccruedAt: e.CreatedAt, ActiveFrom: lc.ActiveFrom, CheckID: e.CheckID}
				if !lc.ExpiresAt.IsZero() {
					t := lc.ExpiresAt
					l.ExpiresAt = &t
				}
				lots = append(lots, l)
				byID[lc.LotID] = len(lots) - 1
			case lc.Delta.IsNegative():
				debtD = debtD.Sub(lc.Delta)
			default:
				// Points given back to a lot the replica lacks: head
				// office sends live lots only, so one this till created
				// and that was used up before a feed carried it is never
				// here. Its creation in this till's journal says what it
				// is; any other is left to head office's next feed.
				l, ok, err := s.ownLot(ctx, tx, lc.LotID)
				if err != nil {
					return checkout.Card{}, err
				}
				if !ok {
					s.log.Debug("journal restores a lot the replica lacks", "card", code, "lot", lc.LotID, "entry", e.ID)
					continue
				}
				l.Remaining = checkout.PointsOf(lc.Delta)
				lots = append(lots, l)
				byID[lc.LotID] = len(lots) - 1
			}
		}
	}
	// Keep lots with something left that have not lapsed; a lot driven
	// below zero becomes debt.
	kept := lots[:0]
	for _, l := range lots {
		if l.Remaining.IsNegative() {
			debtD = debtD.Sub(l.Remaining.Decimal())
			continue
		}
		if l.Remaining.IsZero() || (l.ExpiresAt != nil && !now.Before(*l.ExpiresAt)) {
			continue
		}
		kept = append(kept, l)
	}
	sort.SliceStable(kept, func(i, j int) bool { return expiresBefore(kept[i], kept[j]) })
	c.Lots = kept
	c.Debt = checkout.PointsOf(debtD)
	c.PurchasesAllTime = checkout.Kopecks(allKop)
	c.PurchasesPrevMonth = checkout.Kopecks(prevKop)
	c.AccruedThisMonth = checkout.PointsOf(accrued)
	c.RedeemedThisMonth = checkout.PointsOf(redeemed)
	return c, nil
}

// expiresBefore orders lots soonest-expiring first, never-expiring last.
func expiresBefore(a, b checkout.Lot) bool {
	switch {
	case a.ExpiresAt == nil:
		return false
	case b.ExpiresAt == nil:
		return true
	}
	return a.ExpiresAt.Before(*b.ExpiresAt)
}

// replicaLots reads a card's lots with q (s.q.lots: the live ones; s.q.lot:
// one by key).
func (s *Store) replicaLots(ctx context.Context, tx *sql.Tx, q *sql.Stmt, args ...any) ([]checkout.Lot, error) {
	rows, err := tx.StmtContext(ctx, q).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("load lots: %w", err)
	}
	defer rows.Close()
	var out []checkout.Lot
	for rows.Next() {
		var l checkout.Lot
		var pts, rem string
		var acc, from int64
		var exp sql.NullInt64
		if err := rows.Scan(&l.ID, &pts, &rem, &acc, &from, &exp, &l.CheckID); err != nil {
			return nil, fmt.Errorf("load lots: %w", err)
		}
		p, err1 := parseDec(pts, "lot "+l.ID+" points")
		r, err2 := parseDec(rem, "lot "+l.ID+" remaining")
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		l.Points, l.Remaining = checkout.PointsOf(p), checkout.PointsOf(r)
		l.AccruedAt, l.ActiveFrom = time.Unix(acc, 0).UTC(), time.Unix(from, 0).UTC()
		if exp.Valid {
			t := time.Unix(exp.Int64, 0).UTC()
			l.ExpiresAt = &t
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// foldedKey is the replica_meta key of a till's watermark.
func foldedKey(tillID string) string { return "folded_through:" + tillID }

// watermark is the last of this till's journal ids head office has folded
// into the replica's lots ("" when the replica says nothing).
func (s *Store) watermark(ctx context.Context, tx *sql.Tx) (string, error) {
	var wm string
	err := tx.StmtContext(ctx, s.q.folded).QueryRowContext(ctx, foldedKey(s.tillID)).Scan(&wm)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read replica watermark: %w", err)
	}
	return wm, nil
}

// FoldedThrough returns the replica's watermark for this till: the last of
// its journal ids the replica's lots include ("" when none).
func (s *Store) FoldedThrough(ctx context.Context) (string, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("store %s: %w", s.path, err)
	}
	defer tx.Rollback()
	return s.watermark(ctx, tx)
}

// ownLot is lot id as this till's journal created it (its entry's id, or
// the id and /n for an entry's later lots), with nothing remaining; false
// when no entry of this till created it.
func (s *Store) ownLot(ctx context.Context, tx *sql.Tx, id string) (checkout.Lot, bool, error) {
	entry, _, _ := strings.Cut(id, "/")
	var delta, check string
	var created int64
	var from, exp sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT jl.delta, j.check_id, j.created_ms, jl.active_from, jl.expires_at
		FROM journal j JOIN journal_lots jl ON jl.entry_seq = j.seq AND jl.lot_id = ?2
		WHERE j.id = ?1 AND jl.created = 1`, entry, id).Scan(&delta, &check, &created, &from, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return checkout.Lot{}, false, nil
	}
	if err != nil {
		return checkout.Lot{}, false, fmt.Errorf("lot %s in the journal: %w", id, err)
	}
	pts, err := parseDec(delta, "journal lot "+id+" delta")
	if err != nil {
		return checkout.Lot{}, false, err
	}
	l := checkout.Lot{ID: id, Points: checkout.PointsOf(pts), AccruedAt: time.UnixMilli(created).UTC(), ActiveFrom: fromNullUnix(from), CheckID: check}
	if t := fromNullUnix(exp); !t.IsZero() {
		l.ExpiresAt = &t
	}
	return l, true, nil
}

// unfoldedForCard returns this till's journal entries on the card after the
// watermark wm, with their lot changes, in append order: two range scans of
// the (card_code, id) index. Ids of one till sort in the order they were
// made, and every id of this till lies in [tillID+"-", tillID+".").
func (s *Store) unfoldedForCard(ctx context.Context, tx *sql.Tx, code, wm string) ([]Entry, error) {
	lo, hi := s.tillID+"-", s.tillID+"."
	if wm > lo {
		lo = wm
	}
	rows, err := tx.StmtContext(ctx, s.q.pending).QueryContext(ctx, code, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("load journal: %w", err)
	}
	var out []Entry
	idx := map[int64]int{}
	for rows.Next() {
		var e Entry
		var seq, ms int64
		var pts string
		if err := rows.Scan(&seq, &e.ID, &e.CheckID, &e.Kind, &pts, &e.AmountKop, &e.PurchaseKop, &ms); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load journal: %w", err)
		}
		if e.Points, err = parseDec(pts, "journal entry "+e.ID+" points"); err != nil {
			rows.Close()
			return nil, err
		}
		e.CardCode, e.CreatedAt = code, time.UnixMilli(ms)
		idx[seq] = len(out)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	rows, err = tx.StmtContext(ctx, s.q.pendingLots).QueryContext(ctx, code, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("load journal lots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var l LotChange
		var d string
		var af, ex sql.NullInt64
		if err := rows.Scan(&seq, &l.LotID, &d, &l.Create, &af, &ex); err != nil {
			return nil, fmt.Errorf("load journal lots: %w", err)
		}
		if l.Delta, err = parseDec(d, "journal lot "+l.LotID+" delta"); err != nil {
			return nil, err
		}
		l.ActiveFrom, l.ExpiresAt = fromNullUnix(af), fromNullUnix(ex)
		if i, ok := idx[seq]; ok {
			out[i].Lots = append(out[i].Lots, l)
		}
	}
	return out, rows.Err()
}

// Balance is a card's points as the till sees them now.
type Balance struct {
	// Total is the unexpired remaining points minus debt (may be negative).
	Total checkout.Points `json:"total"`
	// Spendable counts only lots already active, minus debt, never below 0.
	Spendable checkout.Points `json:"spendable"`
	Debt      checkout.Points `json:"debt"`
}

// Spendable returns the card's balance at now: replica lots plus this
// till's journal entries after the replica's watermark (see loadCard).
func (s *Store) Spendable(ctx context.Context, code string, now time.Time) (Balance, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return Balance{}, err
	}
	loc := time.UTC
	for _, l := range cat.stores { // any store's zone: months do not matter for a balance
		loc = l
		break
	}
	c, err := s.loadCard(ctx, cat, code, now, loc)
	if err != nil {
		return Balance{}, fmt.Errorf("balance of card %s: %w", code, err)
	}
	return BalanceOf(c, now), nil
}

// BalanceOf is the balance of a card loaded by the store (QuoteInput,
// Spendable) at now: unexpired remaining minus debt, and what of it is
// active (never below 0).
func BalanceOf(c checkout.Card, now time.Time) Balance {
	total, active := decimal.Zero, decimal.Zero
	for _, l := range c.Lots {
		total = total.Add(l.Remaining.Decimal())
		if !now.Before(l.ActiveFrom) {
			active = active.Add(l.Remaining.Decimal())
		}
	}
	d := c.Debt.Decimal()
	sp := active.Sub(d)
	if sp.IsNegative() {
		sp = decimal.Zero
	}
	return Balance{Total: checkout.PointsOf(total.Sub(d)), Spendable: checkout.PointsOf(sp), Debt: c.Debt}
}

// parseDec parses a decimal column. The store writes only decimal.String
// output there, so a failure means a damaged or hand-edited file: refuse
// rather than guess a balance.
func parseDec(s, what string) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero, fmt.Errorf("stored %s %q: %w", what, s, err)
	}
	return d, nil
}

// readQueries are the statements of the quote path, prepared once on the
// read pool (database/sql re-prepares them per connection as needed).
type readQueries struct {
	card, lots, lot, pending, pendingLots, folded *sql.Stmt
}

func (s *Store) prepareReads(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.r.PrepareContext(ctx, q)
		return st
	}
	s.q.card = prep(`SELECT id, kind_id, program_id, state, block_reason, debt, stats_month,
		purchases_all_time_kop, purchases_month_kop, purchases_prev_month_kop, accrued_month, redeemed_month
		FROM cards WHERE code = ?`)
	// Live lots only (lots_live): used-up ones are most of a card's
	// history, and only those a pending entry names matter (loadCard).
	s.q.lots = prep(`SELECT lot_id, points, remaining, accrued_at, active_from, expires_at, check_id
		FROM lots INDEXED BY lots_live WHERE card_id = ? AND remaining <> '0'`)
	s.q.lot = prep(`SELECT lot_id, points, remaining, accrued_at, active_from, expires_at, check_id
		FROM lots WHERE card_id = ? AND lot_id = ?`)
	// id > lo: the watermark itself is folded.
	s.q.pending = prep(`SELECT seq, id, check_id, kind, points, amount_kop, purchase_kop, created_ms
		FROM journal WHERE card_code = ? AND id > ? AND id < ? ORDER BY seq`)
	s.q.pendingLots = prep(`SELECT jl.entry_seq, jl.lot_id, jl.delta, jl.created, jl.active_from, jl.expires_at
		FROM journal j JOIN journal_lots jl ON jl.entry_seq = j.seq
		WHERE j.card_code = ? AND j.id > ? AND j.id < ? ORDER BY jl.entry_seq, jl.lot_id`)
	s.q.folded = prep(`SELECT value FROM replica_meta WHERE key = ?`)
	if err != nil {
		return fmt.Errorf("store %s: prepare: %w", s.path, err)
	}
	return nil
}
