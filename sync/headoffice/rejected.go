package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// RejectedEntry is a till's journal entry head office refused and kept:
// on the till's chain, so the entries after it fold, but applied to no
// card. Support corrects the card if the entry should have counted.
type RejectedEntry struct {
	ID         string          `json:"id"`
	TillID     string          `json:"till_id"`
	Reason     string          `json:"reason"`
	ReceivedAt time.Time       `json:"received_at"`
	Entry      json.RawMessage `json:"entry"`
}

// RejectedPage is a page of the rejected entries, newest received first.
// More is true when older ones follow; Next (set only then) is the before
// to ask with for them.
type RejectedPage struct {
	Rejected []RejectedEntry `json:"rejected"`
	More     bool            `json:"more"`
	Next     string          `json:"next,omitempty"`
}

// Rejected lists every entry kept as rejected, newest received first, in
// one answer (tests; ERP pages with RejectedPage).
func (s *Server) Rejected(ctx context.Context) ([]RejectedEntry, error) {
	out, _, err := s.rejected(ctx, timeKey{}, 0)
	return out, err
}

// RejectedPage lists up to limit rejected entries (0: the default, above
// the maximum: the maximum) received before the one before names ("":
// from the newest).
func (s *Server) RejectedPage(ctx context.Context, before string, limit int) (*RejectedPage, error) {
	const op = "rejected entries"
	limit, err := pageLimit(op, limit)
	if err != nil {
		return nil, err
	}
	key, err := parseTimeKey(op, "before", before)
	if err != nil {
		return nil, err
	}
	rej, next, err := s.rejected(ctx, key, limit)
	if err != nil {
		return nil, err
	}
	return &RejectedPage{Rejected: rej, More: next != "", Next: next}, nil
}

// rejected reads up to limit rejected entries (0: all) before key, and
// the next page's before ("" when none follow). An entry's received_at
// never changes once it is kept, so a walk through the pages sees every
// entry kept before it began exactly once; one kept while it runs (its
// fold found it out late) is seen if it falls behind the walk, else by
// the next walk. The journal_rejected index (migration 0006) holds only
// the rejected rows, by received_at.
func (s *Server) rejected(ctx context.Context, key timeKey, limit int) ([]RejectedEntry, string, error) {
	rows, err := s.db.Query(ctx, `SELECT id, till_id, rejected, received_at, body::text FROM journal
		WHERE rejected <> '' AND ($1::timestamptz IS NULL OR (received_at, id) < ($1, $2::text))
		ORDER BY received_at DESC, id DESC LIMIT nullif($3, 0)`, key.atOrNil(), key.id, pageRows(limit))
	if err != nil {
		return nil, "", fmt.Errorf("list rejected entries: %w", err)
	}
	defer rows.Close()
	out := []RejectedEntry{}
	for rows.Next() {
		var r RejectedEntry
		var body string
		if err := rows.Scan(&r.ID, &r.TillID, &r.Reason, &r.ReceivedAt, &body); err != nil {
			return nil, "", fmt.Errorf("list rejected entries: %w", err)
		}
		r.Entry = json.RawMessage(body)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list rejected entries: %w", err)
	}
	out, next := pageCut(out, limit, func(i int) string { return timeKey{at: out[i].ReceivedAt, id: out[i].ID}.String() })
	return out, next, nil
}
