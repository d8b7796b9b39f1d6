package headoffice

import (
	"context"
	"fmt"
	"time"
)

// TillState is one enrolled till as support looks for trouble: how far
// its journal is folded, and the entries it has sent that wait for a gap
// before them to be filled (a till that lost entries, or still has to
// send them: its later entries are in no balance until then).
type TillState struct {
	TillID         string     `json:"till_id"`
	StoreID        string     `json:"store_id"`
	EnrolledAt     time.Time  `json:"enrolled_at"`
	FoldedThrough  string     `json:"folded_through"`             // the first missing entry, if any wait, is the one after it
	Waiting        int        `json:"waiting"`                    // stored, not folded: behind a gap
	WaitingSince   *time.Time `json:"waiting_since,omitempty"`    // the oldest of them received
	Rejected       int        `json:"rejected"`                   // kept as rejected (GET /v1/erp/rejected)
	LastRejectedAt *time.Time `json:"last_rejected_at,omitempty"` // the newest of them received
	RetiredAt      *time.Time `json:"retired_at,omitempty"`       // taken out of service (Retire)
	LastSeenAt     *time.Time `json:"last_seen_at,omitempty"`     // its last authenticated request (none: never heard from)
	Agent          string     `json:"agent,omitempty"`            // the User-Agent it sent then: its build
}

// Tills reports every enrolled till, those with entries waiting first
// (longest waiting first), then by id. The counts read the journal's
// partial indexes (unfolded, rejected), not the whole journal.
func (s *Server) Tills(ctx context.Context) ([]TillState, error) {
	if err := s.flushSeen(ctx); err != nil {
		s.log.Warn("tills report", "err", err) // the report shows the last written
	}
	rows, err := s.db.Query(ctx, `SELECT t.till_id, t.store_id, t.enrolled_at, t.folded_through,
			coalesce(w.n, 0), w.since, coalesce(r.n, 0), r.last, t.retired_at, ts.last_seen_at, coalesce(ts.last_agent, '')
		FROM tills t
		LEFT JOIN till_seen ts ON ts.till_id = t.till_id
		LEFT JOIN (SELECT till_id, count(*) AS n, min(received_at) AS since FROM journal WHERE NOT folded GROUP BY till_id) w
			ON w.till_id = t.till_id
		LEFT JOIN (SELECT till_id, count(*) AS n, max(received_at) AS last FROM journal WHERE rejected <> '' GROUP BY till_id) r
			ON r.till_id = t.till_id
		ORDER BY w.since NULLS LAST, t.till_id`)
	if err != nil {
		return nil, fmt.Errorf("tills report: %w", err)
	}
	defer rows.Close()
	out := []TillState{}
	for rows.Next() {
		var t TillState
		if err := rows.Scan(&t.TillID, &t.StoreID, &t.EnrolledAt, &t.FoldedThrough, &t.Waiting, &t.WaitingSince, &t.Rejected, &t.LastRejectedAt, &t.RetiredAt, &t.LastSeenAt, &t.Agent); err != nil {
			return nil, fmt.Errorf("tills report: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
