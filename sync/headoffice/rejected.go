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

// maxRejectedListed bounds the list: a till sending garbage for a day must
// not make the answer unreadable.
const maxRejectedListed = 1000

// Rejected lists the entries kept as rejected, newest first (at most
// maxRejectedListed).
func (s *Server) Rejected(ctx context.Context) ([]RejectedEntry, error) {
	rows, err := s.db.Query(ctx, `SELECT id, till_id, rejected, received_at, body::text FROM journal
		WHERE rejected <> '' ORDER BY received_at DESC, id DESC LIMIT $1`, maxRejectedListed)
	if err != nil {
		return nil, fmt.Errorf("list rejected entries: %w", err)
	}
	defer rows.Close()
	out := []RejectedEntry{}
	for rows.Next() {
		var r RejectedEntry
		var body string
		if err := rows.Scan(&r.ID, &r.TillID, &r.Reason, &r.ReceivedAt, &body); err != nil {
			return nil, fmt.Errorf("list rejected entries: %w", err)
		}
		r.Entry = json.RawMessage(body)
		out = append(out, r)
	}
	return out, rows.Err()
}
