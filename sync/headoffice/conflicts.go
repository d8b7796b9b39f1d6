package headoffice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Conflict is a till's journal entry whose id head office holds with other
// content: both copies, for support to compare.
type Conflict struct {
	ID     string `json:"id"`
	TillID string `json:"till_id"`
	// TillCopy is the latest copy the till sent; HeadOfficeCopy the one
	// stored, Folded whether it is in the card's lots and balance.
	TillCopy       json.RawMessage `json:"till_copy"`
	HeadOfficeCopy json.RawMessage `json:"head_office_copy"`
	Folded         bool            `json:"folded"`
	FirstSeen      time.Time       `json:"first_seen"`
	LastSeen       time.Time       `json:"last_seen"`
	SettledAt      *time.Time      `json:"settled_at,omitempty"`
	Reason         string          `json:"reason,omitempty"`
}

// ConflictPage is a page of the journal conflicts, oldest first. More is
// true when later ones follow; Next (set only then) is the after to ask
// with for them.
type ConflictPage struct {
	Conflicts []Conflict `json:"conflicts"`
	More      bool       `json:"more"`
	Next      string     `json:"next,omitempty"`
}

// Conflicts lists the open conflicts (all: the settled ones too), oldest
// first, in one answer (tests; ERP pages with ConflictsPage).
func (s *Server) Conflicts(ctx context.Context, all bool) ([]Conflict, error) {
	out, _, err := s.conflicts(ctx, all, timeKey{}, 0)
	return out, err
}

// ConflictsPage lists up to limit conflicts (0: the default, above the
// maximum: the maximum) first seen after the one after names ("": from
// the oldest). The settled ones, which all lists too, only grow: one
// answer of them all would grow with the chain's history.
func (s *Server) ConflictsPage(ctx context.Context, all bool, after string, limit int) (*ConflictPage, error) {
	const op = "journal conflicts"
	limit, err := pageLimit(op, limit)
	if err != nil {
		return nil, err
	}
	key, err := parseTimeKey(op, "after", after)
	if err != nil {
		return nil, err
	}
	cs, next, err := s.conflicts(ctx, all, key, limit)
	if err != nil {
		return nil, err
	}
	return &ConflictPage{Conflicts: cs, More: next != "", Next: next}, nil
}

// conflicts reads up to limit conflicts (0: all) after key, and the next
// page's after ("" when none follow). first_seen is set once, so a walk
// sees each conflict open when it began once (unless settled meanwhile,
// when all is false); one opened while it runs comes last. Two queries,
// not one with "$1 OR settled_at IS NULL", so that the open ones are read
// from their partial index (migration 0020), not filtered out of every
// conflict ever settled.
func (s *Server) conflicts(ctx context.Context, all bool, key timeKey, limit int) ([]Conflict, string, error) {
	q := `SELECT c.id, c.till_id, c.body::text, j.body::text, j.folded, c.first_seen, c.last_seen, c.settled_at, c.reason
		FROM journal_conflicts c JOIN journal j ON j.id = c.id
		WHERE ($1::timestamptz IS NULL OR (c.first_seen, c.id) > ($1, $2::text)) %s
		ORDER BY c.first_seen, c.id LIMIT nullif($3, 0)`
	open := "AND c.settled_at IS NULL"
	if all {
		open = ""
	}
	rows, err := s.db.Query(ctx, fmt.Sprintf(q, open), key.atOrNil(), key.id, pageRows(limit))
	if err != nil {
		return nil, "", fmt.Errorf("list journal conflicts: %w", err)
	}
	defer rows.Close()
	out := []Conflict{}
	for rows.Next() {
		var c Conflict
		var till, ho string
		if err := rows.Scan(&c.ID, &c.TillID, &till, &ho, &c.Folded, &c.FirstSeen, &c.LastSeen, &c.SettledAt, &c.Reason); err != nil {
			return nil, "", fmt.Errorf("list journal conflicts: %w", err)
		}
		c.TillCopy, c.HeadOfficeCopy = json.RawMessage(till), json.RawMessage(ho)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list journal conflicts: %w", err)
	}
	out, next := pageCut(out, limit, func(i int) string { return timeKey{at: out[i].FirstSeen, id: out[i].ID}.String() })
	return out, next, nil
}

// KeepHeadOffice settles a conflict keeping head office's copy: the
// till's copy (as last sent) is then answered duplicate and the till
// acknowledges it; its replica follows head office's lots. Taking the
// till's copy instead is not done here: head office's copy may already be
// folded, so support corrects the card by the difference
// (POST /v1/erp/corrections) and then keeps head office's copy.
func (s *Server) KeepHeadOffice(ctx context.Context, id, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return refused(fmt.Errorf("settle conflict %s: a reason is required", id))
	}
	tag, err := s.db.Exec(ctx, `UPDATE journal_conflicts SET settled_at = now(), reason = $2 WHERE id = $1 AND settled_at IS NULL`, id, reason)
	if err != nil {
		return fmt.Errorf("settle conflict %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("settle conflict %s: %w", id, ErrNoConflict)
	}
	s.log.Warn("journal conflict settled: head office's copy kept", "entry", id, "reason", reason)
	return nil
}

// ErrNoConflict is an id with no open conflict.
var ErrNoConflict = errors.New("no open conflict with this id")

func (s *Server) handleConflicts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	const op = "journal conflicts"
	if err := onlyParams(q, op, "all", "after", "limit"); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	all := false
	if q.Has("all") {
		var err error
		// 1/true lists the settled conflicts too, 0/false only the open.
		if all, err = strconv.ParseBool(q.Get("all")); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("journal conflicts: all %q: want 1 or true (also the settled), 0 or false (only the open)", q.Get("all")))
			return
		}
	}
	limit, err := queryLimit(q, op, MaxNewestLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.ConflictsPage(r.Context(), all, q.Get("after"), limit)
	s.reply(w, r, p, err)
}

func (s *Server) handleSettle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keep   string `json:"keep"`
		Reason string `json:"reason"`
	}
	if err := decodeStrict(w, r, 1<<20, &req); err != nil {
		decodeFailed(w, "settle conflict", err)
		return
	}
	id := r.PathValue("id")
	var err error
	switch req.Keep {
	case "head_office":
		err = s.KeepHeadOffice(r.Context(), id, req.Reason)
	case "till":
		err = refused(fmt.Errorf("settle conflict %s: head office does not take the till's copy in place of its own (it may be folded): correct the card by the difference (POST /v1/erp/corrections), then settle with keep head_office", id))
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf(`settle conflict %s: keep must be "head_office" (or "till", refused: see the error)`, id))
		return
	}
	switch {
	case errors.Is(err, ErrNoConflict):
		httpError(w, http.StatusNotFound, err.Error())
	case err != nil && requestsFault(err):
		httpError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		s.reply(w, r, map[string]string{"id": id, "kept": "head_office"}, err)
	}
}
