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

// maxUnknownListed bounds the report, as maxRejectedListed does.
const maxUnknownListed = 1000

// UnknownCards lists the cards tills' entries named while head office did
// not hold them, the most recently seen first (at most maxUnknownListed),
// read through the journal's no_card index (migration 0015).
func (s *Server) UnknownCards(ctx context.Context) ([]UnknownCard, error) {
	rows, err := s.db.Query(ctx, `SELECT j.card_code, count(*), sum(j.points)::text, count(DISTINCT j.till_id),
			min(j.received_at), max(j.received_at), EXISTS (SELECT 1 FROM cards c WHERE c.code = j.card_code)
		FROM journal j WHERE j.no_card GROUP BY j.card_code ORDER BY max(j.received_at) DESC, j.card_code LIMIT $1`, maxUnknownListed)
	if err != nil {
		return nil, fmt.Errorf("unknown cards report: %w", err)
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
