package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Feed returns the changes a till has not seen since cursor ("" = a whole
// snapshot) as a replica delta, with the till's folded_through watermark.
//
// Correctness of the cursor: every change row carries the xid8 of the
// transaction that wrote it. The feed reads in one REPEATABLE READ snapshot
// and returns the current state of every record with a change of xid >=
// cursor that the snapshot sees; the next cursor is the snapshot's xmin,
// the oldest transaction still running. Every transaction with an xid below
// xmin had finished when the snapshot was taken, so everything it wrote is
// in this feed or an earlier one; a transaction at or above xmin (a long
// one that commits late) is looked at again next time. Nothing is skipped;
// a change may come twice, and applying a record's current state twice is a
// no-op. Because every card changed since the last feed is sent with its
// state in this same snapshot, the lots sent and the watermark read here
// describe exactly the same folded entries.
func (s *Server) Feed(ctx context.Context, tillID, cursor string) (*wire.Feed, error) {
	var since uint64
	if cursor != "" {
		v, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("feed for till %s: bad cursor %q", tillID, cursor)
		}
		since = v
	}
	off := s.offline
	f := &wire.Feed{Full: cursor == "", Replica: &store.Replica{Version: store.ReplicaFormatVersion}, Offline: &off}
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&f.Cursor); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		var folded string
		if err := tx.QueryRow(ctx, `SELECT folded_through FROM tills WHERE till_id = $1`, tillID).Scan(&folded); err != nil {
			return fmt.Errorf("read watermark: %w", err)
		}
		if folded != "" {
			f.Replica.FoldedThrough = map[string]string{tillID: folded}
		}
		var catalogQ, cardsQ string
		var args []any
		if f.Full {
			catalogQ = `SELECT section, body::text FROM catalog ORDER BY section, id`
			cardsQ = `SELECT code FROM cards ORDER BY code`
		} else {
			catalogQ = `SELECT c.section, c.body::text FROM catalog c
				WHERE (c.section, c.id) IN (SELECT section, key FROM changes WHERE xid >= $1::text::xid8 AND section <> 'cards')
				ORDER BY c.section, c.id`
			cardsQ = `SELECT DISTINCT key FROM changes WHERE xid >= $1::text::xid8 AND section = 'cards' ORDER BY key`
			args = []any{strconv.FormatUint(since, 10)}
		}
		if err := s.feedCatalog(ctx, tx, f.Replica, catalogQ, args); err != nil {
			return err
		}
		return s.feedCards(ctx, tx, f.Replica, cardsQ, args)
	})
	if err != nil {
		return nil, fmt.Errorf("feed for till %s since %q: %w", tillID, cursor, err)
	}
	now := s.now()
	f.Replica.AsOf = &now
	return f, nil
}

// Snapshot is a whole replica in pages, for a till's first load: cards
// (with their lots) after the code after, at most limit of them, and the
// whole catalog on the first page. Pages carry no watermark. The first
// page's cursor is the xmin of its snapshot: once every page is imported,
// a Feed from that cursor re-sends every card any later transaction
// changed, with the watermark, in one snapshot — so pages read at
// different moments end consistent. A card no transaction from the cursor
// on has touched reads the same in every page's snapshot.
func (s *Server) Snapshot(ctx context.Context, tillID, after string, limit int) (*wire.Feed, error) {
	if limit <= 0 || limit > 20000 {
		limit = 5000
	}
	off := s.offline
	f := &wire.Feed{Full: true, Replica: &store.Replica{Version: store.ReplicaFormatVersion}, Offline: &off}
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&f.Cursor); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		if after == "" {
			if err := s.feedCatalog(ctx, tx, f.Replica, `SELECT section, body::text FROM catalog ORDER BY section, id`, nil); err != nil {
				return err
			}
		}
		if err := s.feedCards(ctx, tx, f.Replica, `SELECT code FROM cards WHERE code > $1 ORDER BY code LIMIT $2`,
			[]any{after, limit}); err != nil {
			return err
		}
		if n := len(f.Replica.Cards); n == limit {
			f.Next, f.More = f.Replica.Cards[n-1].Code, true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot for till %s after card %q: %w", tillID, after, err)
	}
	now := s.now()
	f.Replica.AsOf = &now
	return f, nil
}

func (s *Server) feedCatalog(ctx context.Context, tx pgx.Tx, r *store.Replica, q string, args []any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read catalog changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var section, body string
		if err := rows.Scan(&section, &body); err != nil {
			return err
		}
		if err := appendRecord(r, section, []byte(body)); err != nil {
			return fmt.Errorf("catalog %s record %s: %w", section, body, err)
		}
	}
	return rows.Err()
}

func appendRecord(r *store.Replica, section string, body []byte) error {
	switch section {
	case "stores":
		return appendJSON(&r.Stores, body)
	case "groups":
		return appendJSON(&r.Groups, body)
	case "products":
		return appendJSON(&r.Products, body)
	case "programs":
		return appendJSON(&r.Programs, body)
	case "promotions":
		return appendJSON(&r.Promotions, body)
	case "card_kinds":
		return appendJSON(&r.CardKinds, body)
	case "card_keys":
		return appendJSON(&r.CardKeys, body)
	}
	return fmt.Errorf("unknown section %q", section)
}

func appendJSON[T any](dst *[]T, body []byte) error {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	*dst = append(*dst, v)
	return nil
}

// feedCards adds the cards the query names, with all their lots.
func (s *Server) feedCards(ctx context.Context, tx pgx.Tx, r *store.Replica, q string, args []any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read card changes: %w", err)
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read card changes: %w", err)
	}
	if len(codes) == 0 {
		return nil
	}
	rows, err = tx.Query(ctx, `SELECT code, kind, program, state, block_reason, holder, debt::text, history::text
		FROM cards WHERE code = ANY($1) ORDER BY code`, codes)
	if err != nil {
		return fmt.Errorf("read cards: %w", err)
	}
	for rows.Next() {
		var c store.ReplicaCard
		var debt, hist string
		if err := rows.Scan(&c.Code, &c.Kind, &c.Program, &c.State, &c.BlockReason, &c.Holder, &debt, &hist); err != nil {
			rows.Close()
			return err
		}
		d, err := decimal.NewFromString(debt)
		if err != nil {
			rows.Close()
			return fmt.Errorf("card %s debt: %w", c.Code, err)
		}
		c.Debt = checkout.PointsOf(d)
		if err := json.Unmarshal([]byte(hist), &c.History); err != nil {
			rows.Close()
			return fmt.Errorf("card %s history: %w", c.Code, err)
		}
		r.Cards = append(r.Cards, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT card, lot_id, points::text, remaining::text, accrued_at, active_from, expires_at, check_id
		FROM lots WHERE card = ANY($1) ORDER BY card, lot_id`, codes)
	if err != nil {
		return fmt.Errorf("read lots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l store.ReplicaLot
		var pts, rem string
		var from time.Time
		if err := rows.Scan(&l.Card, &l.ID, &pts, &rem, &l.AccruedAt, &from, &l.ExpiresAt, &l.CheckID); err != nil {
			return err
		}
		p, err1 := decimal.NewFromString(pts)
		m, err2 := decimal.NewFromString(rem)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("lot %s of card %s: bad numbers %q %q", l.ID, l.Card, pts, rem)
		}
		l.Points = checkout.PointsOf(p)
		mp := checkout.PointsOf(m)
		l.Remaining, l.ActiveFrom = &mp, &from
		r.Lots = append(r.Lots, l)
	}
	return rows.Err()
}
