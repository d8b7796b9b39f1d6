package headoffice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// keptEntries are the entries retake-journal kept for tills head office
// did not know (table retake_kept), as an entrySource.
type keptEntries struct{ db *pgxpool.Pool }

func (k keptEntries) page(ctx context.Context, till, after string, n int) ([]copiedEntry, error) {
	rows, _ := k.db.Query(ctx, `SELECT id, body FROM retake_kept WHERE till_id = $1 AND id > $2 ORDER BY id LIMIT $3`, till, after, n)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (copiedEntry, error) {
		var e copiedEntry
		err := row.Scan(&e.id, &e.body)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the entries kept for till %s: %w", till, err)
	}
	return out, nil
}

func (k keptEntries) ids(ctx context.Context, till, after, through string, n int) ([]string, error) {
	rows, _ := k.db.Query(ctx, `SELECT id FROM retake_kept WHERE till_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4`, till, after, through, n)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the entries kept for till %s: %w", till, err)
	}
	return ids, nil
}

// keepEntries keeps the copy's entries of till, a till head office does
// not know: enrolled since the backup head office was restored from, so
// it has no row, no secret and no watermark yet. The till is admitted at
// its next sync (its secret signed with the enrolment key) or enrolled
// again, and takeKept then ingests them as the retake would have; before,
// a second run of the retake was needed once every such till had synced,
// a step easily forgotten. Should the till have been admitted while they
// were being kept, they are taken now.
func (s *Server) keepEntries(ctx context.Context, c *JournalCopy, till string) Retaken {
	r := Retaken{TillID: till}
	for after := ""; ; {
		es, err := c.page(ctx, till, after, retakeBatch)
		if err == nil && len(es) == 0 {
			break
		}
		if err == nil {
			ids, bodies := make([]string, len(es)), make([][]byte, len(es))
			for i, e := range es {
				ids[i], bodies[i] = e.id, e.body
			}
			// An entry kept by an earlier run stays as it was: the copy is
			// head office's own export, and ingestion compares it with
			// what the till pushes.
			_, err = s.db.Exec(ctx, `INSERT INTO retake_kept (till_id, id, body)
				SELECT $1, * FROM unnest($2::text[], $3::bytea[]) ON CONFLICT DO NOTHING`, till, ids, bodies)
		}
		if err != nil {
			r.Err = fmt.Sprintf("keep the entries of till %s: %v", till, err)
			s.log.Error("retake journal: keep the entries of a till not known here", "till", till, "err", err)
			return r
		}
		r.Kept += len(es)
		after = es[len(es)-1].id
	}
	s.log.Warn("retake journal: till not known here (enrolled since the backup?): its entries are kept until it is admitted from its enrolment secret or enrolled again",
		"till", till, "entries", r.Kept)
	if t, err := s.takeKept(ctx, till); !errors.Is(err, ErrUnknownTill) {
		return t
	}
	return r
}

// takeKept ingests the entries kept for till (keepEntries), as
// retake-journal does, and deletes them once all were taken; a run that
// fails leaves them for the next (an entry taken twice answers duplicate).
// It is ErrUnknownTill while the till is not enrolled. Called when a till
// is admitted or enrolled, and by every maintenance run.
func (s *Server) takeKept(ctx context.Context, till string) (Retaken, error) {
	// Asked at every admission and enrolment: almost always none.
	var some bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM retake_kept WHERE till_id = $1)`, till).Scan(&some); err != nil {
		return Retaken{TillID: till}, fmt.Errorf("read the entries kept for till %s: %w", till, err)
	}
	if !some {
		return Retaken{TillID: till}, nil
	}
	r, err := s.takeEntries(ctx, keptEntries{s.db}, till)
	if err != nil {
		if !errors.Is(err, ErrUnknownTill) {
			s.log.Error("retake journal: the entries kept for a till not taken; the next maintenance run tries again", "till", till, "err", err)
		}
		return r, err
	}
	tag, err := s.db.Exec(ctx, `DELETE FROM retake_kept WHERE till_id = $1 AND id <= $2`, till, r.through)
	if err != nil {
		r.Err = err.Error()
		return r, fmt.Errorf("delete the entries kept for till %s, taken: %w", till, err)
	}
	r.unkept = int(tag.RowsAffected())
	log := s.log.Info
	if r.Conflict+r.Rejected+r.PassedOver > 0 || r.Waiting > 0 {
		log = s.log.Error
	}
	log("retake journal: the entries kept for a till not known at the retake taken", "till", till,
		"applied", r.Applied, "held", r.Held+r.Duplicate, "conflicting", r.Conflict, "rejected", r.Rejected,
		"passed_over", r.PassedOver, "waiting", r.Waiting, "folded_through", r.FoldedThrough, "problems", r.Problems)
	return r, nil
}

// takeAllKept takes the entries kept for every till enrolled by now
// (Maintain): one whose admission's take failed, or was admitted by
// another head-office process meanwhile. It returns how many entries it
// took: those whose kept rows it deleted, so two processes taking a till
// at once do not both count its entries (the second finds them
// duplicates, and nothing left to delete).
func (s *Server) takeAllKept(ctx context.Context) (int, error) {
	rows, _ := s.db.Query(ctx, `SELECT DISTINCT k.till_id FROM retake_kept k JOIN tills t USING (till_id)
		WHERE t.retired_at IS NULL ORDER BY 1`)
	tills, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find the tills with entries kept by retake-journal: %w", err)
	}
	n := 0
	var errs []error
	for _, till := range tills {
		r, err := s.takeKept(ctx, till)
		n += r.unkept
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// KeptTill is a till whose entries retake-journal kept (keepEntries) and
// head office has not taken yet: not enrolled here, or enrolled and its
// take failed (the next maintenance run tries again).
type KeptTill struct {
	TillID   string    `json:"till_id"`
	Entries  int       `json:"entries"`
	KeptAt   time.Time `json:"kept_at"` // the first kept
	Enrolled bool      `json:"enrolled"`
}

// KeptTills lists the tills with entries kept by retake-journal, by id.
func (s *Server) KeptTills(ctx context.Context) ([]KeptTill, error) {
	rows, _ := s.db.Query(ctx, `SELECT k.till_id, count(*), min(k.kept_at), bool_or(t.till_id IS NOT NULL)
		FROM retake_kept k LEFT JOIN tills t USING (till_id) GROUP BY k.till_id ORDER BY k.till_id`)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[KeptTill])
	if err != nil {
		return nil, fmt.Errorf("tills with entries kept by retake-journal: %w", err)
	}
	if out == nil {
		out = []KeptTill{} // [] in JSON, not null
	}
	return out, nil
}
