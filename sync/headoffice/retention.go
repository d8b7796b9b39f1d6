package headoffice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneLock is the advisory lock key of pruneChanges ("chgl"), paired
// with the schema's hash: advisory locks are per database, and head
// offices (or tests) in other schemas of it prune change logs of their own.
const pruneLock = 0x6368676c

// pruneChunk is how many change rows one statement deletes: short
// statements, so that the feed's reads and the tills' pushes never wait
// long behind a prune.
const pruneChunk = 10000

// pruneChanges keeps the change log to what the feed needs (Options.
// ChangeRetention; migration 0014). Each run marks the oldest transaction
// running now: every change row of an older transaction is committed. It
// then takes the newest mark at least the retention old, makes its xid the
// feed's horizon and deletes the change rows of older transactions. The
// horizon is written first, in its own transaction, so a till asking from
// a cursor older than it is reset (its feed reloads) before any row it
// would need is gone; a delta read from a snapshot taken before still
// sees the rows. Returns the rows deleted.
//
// One head-office process prunes at a time (a session advisory lock on
// the connection it prunes on): two deleting the same rows in chunks would
// deadlock. One that finds the lock taken marks and leaves the rest.
func (s *Server) pruneChanges(ctx context.Context, now time.Time) (int64, error) {
	if s.changeRetention <= 0 {
		return 0, nil
	}
	pc, err := s.db.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune the change log: %w", err)
	}
	defer pc.Release()
	conn := pc.Conn()
	if _, err := conn.Exec(ctx, `INSERT INTO change_marks (at, oldest) VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()))
		ON CONFLICT (at) DO NOTHING`, now); err != nil {
		return 0, fmt.Errorf("prune the change log: mark: %w", err)
	}
	var mine bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, pruneLock).Scan(&mine); err != nil {
		return 0, fmt.Errorf("prune the change log: lock: %w", err)
	}
	if !mine {
		return 0, nil // another process is pruning
	}
	defer func() {
		// On a connection gone bad the lock went with its session.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, pruneLock); err != nil {
			pc.Conn().Close(context.Background())
		}
	}()
	var at time.Time
	var oldest string
	err = conn.QueryRow(ctx, `SELECT at, oldest::text FROM change_marks WHERE at <= $1 ORDER BY at DESC LIMIT 1`,
		now.Add(-s.changeRetention)).Scan(&at, &oldest)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // retention not reached since marks began
	}
	if err != nil {
		return 0, fmt.Errorf("prune the change log: find the mark: %w", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO feed_horizon (oldest) VALUES ($1::text::xid8)
		ON CONFLICT (one) DO UPDATE SET oldest = greatest(feed_horizon.oldest, excluded.oldest)`, oldest); err != nil {
		return 0, fmt.Errorf("prune the change log: set the feed's horizon: %w", err)
	}
	var n int64
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM changes WHERE seq IN
			(SELECT seq FROM changes WHERE xid < $1::text::xid8 ORDER BY xid LIMIT $2)`, oldest, pruneChunk)
		if err != nil {
			return n, fmt.Errorf("prune the change log before xid %s: %w", oldest, err)
		}
		n += tag.RowsAffected()
		if tag.RowsAffected() < pruneChunk {
			break
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM change_marks WHERE at < $1`, at); err != nil {
		return n, fmt.Errorf("prune the change log: drop old marks: %w", err)
	}
	if n > 0 {
		s.log.Info("change log pruned", "rows", n, "before_xid", oldest, "marked_at", at)
	}
	return n, nil
}
