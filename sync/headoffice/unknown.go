package headoffice

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// UnknownCard is a card code tills' entries named while head office did
// not hold the card: a card ERP has not imported yet, or one lost when head
// office was restored from a backup taken before its import. Those entries
// were folded as nothing (journal column no_card) and stay so once ERP
// imports the card: support gives the customer their points by a
// correction.
type UnknownCard struct {
	Card string `json:"card"`
	// Entries and Points: how many entries, and their net points, applied
	// to no card.
	Entries int64           `json:"entries"`
	Points  checkout.Points `json:"points"`
	Tills   int64           `json:"tills"`    // how many tills' entries
	First   time.Time       `json:"first_at"` // when head office received the first, and the last
	Last    time.Time       `json:"last_at"`
	// KnownNow: ERP has imported the card since; its entries' points still
	// count nowhere.
	KnownNow bool `json:"known_now"`
}

// UnknownCardPage is a page of the unknown cards report, in code order
// (byte order, as the balances report). More is true when cards follow;
// Next (set only then) is the after to ask with for them.
type UnknownCardPage struct {
	Cards []UnknownCard `json:"cards"`
	More  bool          `json:"more"`
	Next  string        `json:"next,omitempty"`
}

// UnknownCards lists every card tills' entries named while head office did
// not hold it, in code order, in one answer (tests; ERP pages with
// UnknownCardsPage).
func (s *Server) UnknownCards(ctx context.Context) ([]UnknownCard, error) {
	return s.unknownCards(ctx, "", time.Time{}, 0)
}

// UnknownCardsPage lists up to limit of those cards (0: the default, above
// the maximum: the maximum) with codes after after ("": from the first);
// a since not zero keeps the cards an entry named at or after it
// (last_at). The report pages by code, not by when a card was last seen:
// that changes as tills go on using the card, and a walk ordered by it
// would miss a card seen again while it ran. By code every card is
// listed once per walk, with its totals as its page was read.
func (s *Server) UnknownCardsPage(ctx context.Context, after string, since time.Time, limit int) (*UnknownCardPage, error) {
	limit, err := pageLimit("unknown cards report", limit)
	if err != nil {
		return nil, err
	}
	us, err := s.unknownCards(ctx, after, since, pageRows(limit))
	if err != nil {
		return nil, err
	}
	us, next := pageCut(us, limit, func(i int) string { return us[i].Card })
	return &UnknownCardPage{Cards: us, More: next != "", Next: next}, nil
}

// unknownCards reads up to limit cards (0: all) after after, read through
// the journal's no_card index (migration 0015), which is in code order.
func (s *Server) unknownCards(ctx context.Context, after string, since time.Time, limit int) ([]UnknownCard, error) {
	var from *time.Time
	if !since.IsZero() {
		from = &since
	}
	rows, err := s.db.Query(ctx, `SELECT j.card_code, count(*), sum(j.points)::text, count(DISTINCT j.till_id),
			min(j.received_at), max(j.received_at), EXISTS (SELECT 1 FROM cards c WHERE c.code = j.card_code)
		FROM journal j WHERE j.no_card AND j.card_code > $1 GROUP BY j.card_code
		HAVING $2::timestamptz IS NULL OR max(j.received_at) >= $2
		ORDER BY j.card_code LIMIT nullif($3, 0)`, after, from, limit)
	if err != nil {
		return nil, fmt.Errorf("unknown cards report after %q: %w", after, err)
	}
	defer rows.Close()
	out := []UnknownCard{}
	for rows.Next() {
		var u UnknownCard
		var pts string
		if err := rows.Scan(&u.Card, &u.Entries, &pts, &u.Tills, &u.First, &u.Last, &u.KnownNow); err != nil {
			return nil, fmt.Errorf("unknown cards report: %w", err)
		}
		d, err := decimal.NewFromString(pts)
		if err != nil {
			return nil, fmt.Errorf("unknown cards report: card %s points %q: %w", u.Card, pts, err)
		}
		u.Points = checkout.PointsOf(d)
		out = append(out, u)
	}
	return out, rows.Err()
}
