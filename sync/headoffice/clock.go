package headoffice

import (
	"context"
	"time"
)

// maxClockSkew is how far head office's clock may be from the database
// server's before it says so.
const maxClockSkew = time.Minute

// checkClock compares head office's clock with the database server's.
// Lot expiry, corrections and the change log's retention marks are
// stamped by each head-office process's own clock, so two processes whose
// clocks differ expire lots at different times and shorten the retention
// by as much; the database server is the one clock they all reach. Run
// at start and at every maintenance run; the difference is in
// headoffice_clock_skew_seconds.
func (s *Server) checkClock(ctx context.Context) {
	before := s.now()
	var db time.Time
	if err := s.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
		s.log.Warn("compare head office's clock with the database server's", "err", err)
		return
	}
	after := s.now()
	// The middle of the round trip: on a slow link the difference is
	// still right to within half of it.
	skew := before.Add(after.Sub(before) / 2).Sub(db)
	s.clockSkew.Store(int64(skew))
	if skew.Abs() > maxClockSkew {
		s.log.Warn("head office's clock differs from the database server's: keep every head-office host and the database in step (NTP); lot expiry and the change log's retention follow each process's clock",
			"skew", skew.Round(time.Second), "head_office", before.Format(time.RFC3339), "database", db.Format(time.RFC3339))
	}
}
