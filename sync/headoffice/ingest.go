package headoffice

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Ingest stores a till's batch and folds into the lots every entry whose
// chain back to the till's watermark is complete, all in one transaction.
// The caller has authenticated b.TillID. Storing is idempotent by entry id
// (unique forever): a retried, duplicated or reordered batch leaves the
// same state. Locks are taken in a fixed order (the till's row, then its
// cards sorted by code), so concurrent tills never deadlock.
func (s *Server) Ingest(ctx context.Context, b *wire.Batch) (*wire.BatchResult, error) {
	var res *wire.BatchResult
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		res, err = s.ingestOnce(ctx, b)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || (pe.Code != "40001" && pe.Code != "40P01") {
			break
		}
		s.retries.Add(1)
		s.log.Warn("ingest retried", "till", b.TillID, "code", pe.Code)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest batch of till %s (%d entries): %w", b.TillID, len(b.Entries), err)
	}
	for _, r := range b.Invalid {
		s.log.Error("journal entry rejected", "till", b.TillID, "entry", r.ID, "err", r.Error)
	}
	res.Results = append(res.Results, b.Invalid...)
	return res, nil
}

func (s *Server) ingestOnce(ctx context.Context, b *wire.Batch) (*wire.BatchResult, error) {
	out := &wire.BatchResult{Results: make([]wire.Result, len(b.Entries))}
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var storeID, folded string
		err := tx.QueryRow(ctx, `SELECT store_id, folded_through FROM tills WHERE till_id = $1 FOR UPDATE`, b.TillID).Scan(&storeID, &folded)
		if err != nil {
			return fmt.Errorf("lock till: %w", err)
		}
		ids := make([]string, len(b.Entries))
		bodies := make([]string, len(b.Entries))
		digests := make([][]byte, len(b.Entries))
		for i := range b.Entries {
			e := b.Entries[i]
			e.Acked = false // till-local state, not part of the entry
			body, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("entry %s: %w", e.ID, err)
			}
			sum := sha256.Sum256(body)
			ids[i], bodies[i], digests[i] = e.ID, string(body), sum[:]
			out.Results[i] = wire.Result{ID: e.ID, Status: wire.Applied}
		}
		// Entries stored before: a retry (same digest) or a conflict.
		stored := map[string][]byte{}
		rows, err := tx.Query(ctx, `SELECT id, digest FROM journal WHERE id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("look up stored entries: %w", err)
		}
		for rows.Next() {
			var id string
			var d []byte
			if err := rows.Scan(&id, &d); err != nil {
				rows.Close()
				return err
			}
			stored[id] = d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var fresh []int
		for i := range out.Results {
			d, ok := stored[ids[i]]
			switch {
			case !ok:
				fresh = append(fresh, i)
			case string(d) == string(digests[i]):
				out.Results[i].Status = wire.Duplicate
			default:
				out.Results[i] = wire.Result{ID: ids[i], Status: wire.Conflict,
					Error: "an entry with this id and other content is already stored"}
				s.log.Error("journal entry conflict", "till", b.TillID, "entry", ids[i])
			}
		}
		// The chain to fold: stored entries not folded yet and the fresh
		// ones, from the watermark on, each the successor of the one before.
		byPrev := map[string]string{} // prev id → id
		rows, err = tx.Query(ctx, `SELECT id, prev_id FROM journal WHERE till_id = $1 AND NOT folded`, b.TillID)
		if err != nil {
			return fmt.Errorf("load unfolded entries: %w", err)
		}
		for rows.Next() {
			var id, prev string
			if err := rows.Scan(&id, &prev); err != nil {
				rows.Close()
				return err
			}
			byPrev[prev] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		freshByID := map[string]*wire.Entry{}
		for _, i := range fresh {
			byPrev[b.Entries[i].Prev] = ids[i]
			freshByID[ids[i]] = &b.Entries[i]
		}
		var chain []string
		for cur := folded; ; {
			next, ok := byPrev[cur]
			if !ok && len(chain) == 0 && folded != "" && byPrev[""] > folded {
				// A first entry ("" before it) after the watermark: the till's
				// store was replaced and its journal starts again. Its old
				// unsent entries are gone with the old file; go on from here.
				next, ok = byPrev[""], true
				s.log.Warn("till journal restarted", "till", b.TillID, "folded_through", folded, "first", next)
			}
			if !ok {
				break
			}
			chain = append(chain, next)
			cur = next
		}
		inChain := map[string]bool{}
		for _, id := range chain {
			inChain[id] = true
		}
		// Fresh entries are written once, already marked folded when they
		// are on the chain (no second write of the row).
		if len(fresh) > 0 {
			cols := struct {
				id, prev, card, kind, points, body []string
				digest                             [][]byte
				folded                             []bool
			}{}
			for _, i := range fresh {
				e := &b.Entries[i]
				cols.id = append(cols.id, e.ID)
				cols.prev = append(cols.prev, e.Prev)
				cols.card = append(cols.card, e.CardCode)
				cols.kind = append(cols.kind, string(e.Kind))
				cols.points = append(cols.points, e.Points.String())
				cols.body = append(cols.body, bodies[i])
				cols.digest = append(cols.digest, digests[i])
				cols.folded = append(cols.folded, inChain[e.ID])
			}
			if _, err := tx.Exec(ctx, `INSERT INTO journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded)
				SELECT u.id, $1, u.prev, u.card, u.kind, u.points::numeric, u.body::json, u.digest, u.folded
				FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bool[])
					AS u(id, prev, card, kind, points, body, digest, folded)
				ORDER BY u.id`,
				b.TillID, cols.id, cols.prev, cols.card, cols.kind, cols.points, cols.body, cols.digest, cols.folded); err != nil {
				return fmt.Errorf("store entries: %w", err)
			}
		}
		out.FoldedThrough = folded
		if len(chain) == 0 {
			return nil
		}
		// Stored entries that the batch completed the chain for.
		entries := make([]wire.Entry, len(chain))
		var older []string
		for i, id := range chain {
			if e, ok := freshByID[id]; ok {
				entries[i] = *e
			} else {
				older = append(older, id)
			}
		}
		if len(older) > 0 {
			rows, err := tx.Query(ctx, `UPDATE journal SET folded = true WHERE id = ANY($1) RETURNING id, body`, older)
			if err != nil {
				return fmt.Errorf("mark folded: %w", err)
			}
			bodyOf := map[string]wire.Entry{}
			for rows.Next() {
				var id string
				var body []byte
				if err := rows.Scan(&id, &body); err != nil {
					rows.Close()
					return err
				}
				var e wire.Entry
				if err := json.Unmarshal(body, &e); err != nil {
					rows.Close()
					return fmt.Errorf("stored entry %s: %w", id, err)
				}
				bodyOf[id] = e
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for i, id := range chain {
				if _, ok := freshByID[id]; !ok {
					entries[i] = bodyOf[id]
				}
			}
		}
		wm, err := s.fold(ctx, tx, b.TillID, storeID, entries)
		if err != nil {
			return err
		}
		out.FoldedThrough = wm
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fold applies the chain of the till's entries (in chain order, following
// its watermark without a gap) to lots, debt and history, records
// overdrafts, and advances the watermark to the last of them.
func (s *Server) fold(ctx context.Context, tx pgx.Tx, till, storeID string, chain []wire.Entry) (string, error) {
	codes := map[string]bool{}
	for _, e := range chain {
		codes[e.CardCode] = true
	}
	sorted := make([]string, 0, len(codes))
	for c := range codes {
		sorted = append(sorted, c)
	}
	sort.Strings(sorted)
	cards, err := lockCards(ctx, tx, sorted)
	if err != nil {
		return "", err
	}
	loc := s.storeLocation(ctx, tx, storeID)
	var over []overdraft
	for _, e := range chain {
		c := cards[e.CardCode]
		if c == nil {
			// Kept in the journal, but there is nothing to fold it into.
			s.log.Warn("folded entry of a card head office does not know", "till", till, "entry", e.ID, "card", e.CardCode)
			continue
		}
		if p := c.apply(e, loc); p.IsPositive() {
			over = append(over, overdraft{card: e.CardCode, till: till, entry: e.ID, points: p})
		}
	}
	if err := saveCards(ctx, tx, cards); err != nil {
		return "", err
	}
	for _, o := range over {
		if _, err := tx.Exec(ctx, `INSERT INTO overdrafts (card, till_id, entry_id, points) VALUES ($1, $2, $3, $4::numeric)
			ON CONFLICT DO NOTHING`, o.card, o.till, o.entry, o.points.String()); err != nil {
			return "", fmt.Errorf("record overdraft of card %s: %w", o.card, err)
		}
		s.log.Warn("offline overdraft", "card", o.card, "till", o.till, "entry", o.entry, "points", o.points.String())
	}
	last := chain[len(chain)-1].ID
	if _, err := tx.Exec(ctx, `UPDATE tills SET folded_through = $2 WHERE till_id = $1`, till, last); err != nil {
		return "", fmt.Errorf("advance watermark: %w", err)
	}
	return last, nil
}

type overdraft struct {
	card, till, entry string
	points            decimal.Decimal
}

func (s *Server) storeLocation(ctx context.Context, tx pgx.Tx, storeID string) *time.Location {
	var tz string
	if err := tx.QueryRow(ctx, `SELECT body->>'timezone' FROM catalog WHERE section = 'stores' AND id = $1`, storeID).Scan(&tz); err == nil {
		if loc, err := time.LoadLocation(tz); err == nil {
			return loc
		}
	}
	return time.UTC
}

// lotState is a lot as folding changes it.
type lotState struct {
	ID                string
	Points, Remaining decimal.Decimal
	AccruedAt         time.Time
	ActiveFrom        time.Time
	ExpiresAt         *time.Time
	CheckID           string
	dirty             bool
}

// cardState is a locked card with its lots, changed in memory and written
// back once.
type cardState struct {
	Code    string
	Debt    decimal.Decimal
	History store.CardHistory
	Lots    map[string]*lotState
	order   []string
	dirty   bool
}

// lockCards locks the cards (codes sorted: the fixed lock order) and loads
// their lots.
func lockCards(ctx context.Context, tx pgx.Tx, sorted []string) (map[string]*cardState, error) {
	out := map[string]*cardState{}
	rows, err := tx.Query(ctx, `SELECT code, debt::text, history::text FROM cards WHERE code = ANY($1) ORDER BY code FOR UPDATE`, sorted)
	if err != nil {
		return nil, fmt.Errorf("lock cards: %w", err)
	}
	for rows.Next() {
		var c cardState
		var debt, hist string
		if err := rows.Scan(&c.Code, &debt, &hist); err != nil {
			rows.Close()
			return nil, err
		}
		if c.Debt, err = decimal.NewFromString(debt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("card %s debt %q: %w", c.Code, debt, err)
		}
		if err := json.Unmarshal([]byte(hist), &c.History); err != nil {
			rows.Close()
			return nil, fmt.Errorf("card %s history: %w", c.Code, err)
		}
		c.Lots = map[string]*lotState{}
		out[c.Code] = &c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT card, lot_id, points::text, remaining::text, accrued_at, active_from, expires_at, check_id
		FROM lots WHERE card = ANY($1) ORDER BY card, lot_id`, sorted)
	if err != nil {
		return nil, fmt.Errorf("load lots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var card, pts, rem string
		var l lotState
		if err := rows.Scan(&card, &l.ID, &pts, &rem, &l.AccruedAt, &l.ActiveFrom, &l.ExpiresAt, &l.CheckID); err != nil {
			return nil, err
		}
		var e1, e2 error
		l.Points, e1 = decimal.NewFromString(pts)
		l.Remaining, e2 = decimal.NewFromString(rem)
		if err := errors.Join(e1, e2); err != nil {
			return nil, fmt.Errorf("lot %s of card %s: %w", l.ID, card, err)
		}
		c := out[card]
		c.Lots[l.ID] = &l
		c.order = append(c.order, l.ID)
	}
	return out, rows.Err()
}

func (c *cardState) addLot(l *lotState) {
	l.dirty = true
	c.Lots[l.ID] = l
	c.order = append(c.order, l.ID)
}

// apply folds one entry into the card exactly as the till's balance formula
// reads it (docs/replica.md), keeping every lot within 0..points: a lot
// driven below zero is set to 0 and the shortfall is taken from the card's
// other active lots, and what they cannot cover becomes card debt (the
// returned overdraft); a new lot active at once first settles debt (later
// active lots settle it in Maintain). Balance = Σ lots − debt is the same
// either way. It returns the points the entry overdrew.
func (c *cardState) apply(e wire.Entry, loc *time.Location) decimal.Decimal {
	c.dirty = true
	over := decimal.Zero
	if len(e.Lots) == 0 {
		switch {
		case e.Points.IsNegative():
			c.Debt = c.Debt.Sub(e.Points)
			if e.Kind == store.KindRedemption {
				over = e.Points.Neg()
			}
		case e.Points.IsPositive():
			c.addLot(&lotState{ID: e.ID, Points: e.Points, Remaining: e.Points, AccruedAt: e.CreatedAt, ActiveFrom: e.CreatedAt, CheckID: e.CheckID})
		}
	}
	for _, lc := range e.Lots {
		l, ok := c.Lots[lc.LotID]
		switch {
		case lc.Create && ok:
			// Already folded under this id: never count a lot twice.
		case lc.Create:
			nl := &lotState{ID: lc.LotID, Points: lc.Delta, Remaining: lc.Delta, AccruedAt: e.CreatedAt,
				ActiveFrom: lc.ActiveFrom, CheckID: e.CheckID}
			if !lc.ExpiresAt.IsZero() {
				t := lc.ExpiresAt
				nl.ExpiresAt = &t
			}
			if nl.ActiveFrom.Before(nl.AccruedAt) {
				nl.AccruedAt = nl.ActiveFrom
			}
			if nl.ExpiresAt != nil && !nl.ExpiresAt.After(nl.ActiveFrom) {
				// A lot that lapses before it activates is worth nothing, but
				// a replica lot must expire after it activates, or every
				// till's feed import would be refused over it.
				t := nl.ActiveFrom.Add(time.Second)
				nl.ExpiresAt = &t
			}
			if !nl.ActiveFrom.After(e.CreatedAt) {
				// Settle debt only from points spendable now: taking it
				// from a lot not yet active would let the card spend the
				// settled amount early.
				take := decimal.Min(c.Debt, nl.Remaining)
				nl.Remaining, c.Debt = nl.Remaining.Sub(take), c.Debt.Sub(take)
			}
			c.addLot(nl)
		case ok:
			r := l.Remaining.Add(lc.Delta)
			if r.GreaterThan(l.Points) {
				l.Points = r
			}
			l.Remaining, l.dirty = decimal.Max(r, decimal.Zero), true
			if r.IsNegative() {
				// The lot was already spent (on another till, offline): take
				// the rest from the card's other active lots, as the till
				// would have had it known, and only what they cannot cover
				// is an overdraft.
				short := c.reallocate(r.Neg(), e.CreatedAt)
				c.Debt = c.Debt.Add(short)
				over = over.Add(short)
			}
		case lc.Delta.IsNegative():
			// The ~debt lot of a return the balance could not cover.
			c.Debt = c.Debt.Sub(lc.Delta)
		case lc.Delta.IsPositive():
			c.addLot(&lotState{ID: lc.LotID, Points: lc.Delta, Remaining: lc.Delta, AccruedAt: e.CreatedAt, ActiveFrom: e.CreatedAt, CheckID: e.CheckID})
		}
	}
	c.History = addHistory(c.History, e, loc)
	return over
}

// reallocate takes pts from the card's lots active and unexpired at t,
// soonest-expiring first, and returns what they could not cover.
func (c *cardState) reallocate(pts decimal.Decimal, t time.Time) decimal.Decimal {
	for _, lc := range consume(c, pts, t) {
		if l, ok := c.Lots[lc.LotID]; ok {
			l.Remaining, l.dirty = l.Remaining.Add(lc.Delta), true
			pts = pts.Add(lc.Delta)
		}
	}
	return pts
}

// addHistory counts an entry into the card's purchase history: the month
// is the entry's store-local month; counters of an older month roll over as
// the till reads them (docs/replica.md, "History for tiers and caps").
func addHistory(h store.CardHistory, e wire.Entry, loc *time.Location) store.CardHistory {
	m := e.CreatedAt.In(loc).Format("2006-01")
	p := checkout.Kopecks(e.PurchaseKop)
	h.PurchasesAllTime = h.PurchasesAllTime.Add(p)
	acc, red := checkout.Points{}, checkout.Points{}
	switch e.Kind {
	case store.KindAccrual:
		acc = checkout.PointsOf(e.Points)
	case store.KindRedemption:
		red = checkout.PointsOf(e.Points.Neg())
	}
	next := func(month string) string {
		t, err := time.Parse("2006-01", month)
		if err != nil {
			return ""
		}
		return t.AddDate(0, 1, 0).Format("2006-01")
	}
	switch {
	case h.Month == "" || m > h.Month:
		prev := checkout.Money{}
		if h.Month != "" && next(h.Month) == m {
			prev = h.PurchasesMonth
		}
		h.Month, h.PurchasesPrevMonth, h.PurchasesMonth = m, prev, p
		h.AccruedMonth, h.RedeemedMonth = acc, red
	case m == h.Month:
		h.PurchasesMonth = h.PurchasesMonth.Add(p)
		h.AccruedMonth = h.AccruedMonth.Add(acc)
		h.RedeemedMonth = h.RedeemedMonth.Add(red)
	case next(m) == h.Month:
		h.PurchasesPrevMonth = h.PurchasesPrevMonth.Add(p)
	}
	// A return can take a month's counters below zero only if the sale was
	// counted in a month head office has rolled over; keep them valid.
	for _, m := range []*checkout.Money{&h.PurchasesAllTime, &h.PurchasesMonth, &h.PurchasesPrevMonth} {
		if m.IsNegative() {
			*m = checkout.Money{}
		}
	}
	for _, p := range []*checkout.Points{&h.AccruedMonth, &h.RedeemedMonth} {
		if p.IsNegative() {
			*p = checkout.Points{}
		}
	}
	return h
}

// saveCards writes back the changed cards and lots in two statements and
// logs a change per card.
func saveCards(ctx context.Context, tx pgx.Tx, cards map[string]*cardState) error {
	codes := make([]string, 0, len(cards))
	for code, c := range cards {
		if c.dirty {
			codes = append(codes, code)
		}
	}
	if len(codes) == 0 {
		return nil
	}
	sort.Strings(codes) // rows in a fixed order
	var debts, hists []string
	var lc, lid, lpts, lrem, lcheck []string
	var lacc, lfrom []time.Time
	var lexp []*time.Time
	for _, code := range codes {
		c := cards[code]
		hist, err := json.Marshal(c.History)
		if err != nil {
			return err
		}
		debts, hists = append(debts, c.Debt.String()), append(hists, string(hist))
		for _, id := range c.order {
			l := c.Lots[id]
			if !l.dirty {
				continue
			}
			lc, lid, lpts, lrem, lcheck = append(lc, code), append(lid, l.ID), append(lpts, l.Points.String()),
				append(lrem, l.Remaining.String()), append(lcheck, l.CheckID)
			lacc, lfrom, lexp = append(lacc, l.AccruedAt), append(lfrom, l.ActiveFrom), append(lexp, l.ExpiresAt)
		}
	}
	var pb pgx.Batch
	pb.Queue(`UPDATE cards c SET debt = u.debt::numeric, history = u.history::json
		FROM unnest($1::text[], $2::text[], $3::text[]) AS u(code, debt, history) WHERE c.code = u.code`, codes, debts, hists)
	if len(lc) > 0 {
		pb.Queue(`INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from, expires_at, check_id)
			SELECT u.card, u.lot_id, u.points::numeric, u.remaining::numeric, u.acc, u.act, u.exp, u.chk
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::text[])
				AS u(card, lot_id, points, remaining, acc, act, exp, chk)
			ON CONFLICT (card, lot_id) DO UPDATE SET points = excluded.points, remaining = excluded.remaining`,
			lc, lid, lpts, lrem, lacc, lfrom, lexp, lcheck)
	}
	pb.Queue(`INSERT INTO changes (section, key) SELECT 'cards', unnest($1::text[])`, codes)
	if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
		return fmt.Errorf("save cards: %w", err)
	}
	return nil
}
