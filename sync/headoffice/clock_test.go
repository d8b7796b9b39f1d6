package headoffice

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestClockComparedWithTheDatabase: head office whose clock runs 5 min
// ahead of the database server's (on this host, the same clock) says so
// at start, in its log and in headoffice_clock_skew_seconds; its clock
// put 10 min behind, the next expiry run sees that; in step, nothing is
// logged.
func TestClockComparedWithTheDatabase(t *testing.T) {
	var offset atomic.Int64
	offset.Store(int64(5 * time.Minute))
	var log syncBuffer
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Clock: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	near := func(what string, want float64) {
		t.Helper()
		if got := metricValue(t, s, "headoffice_clock_skew_seconds"); got < want-5 || got > want+5 {
			t.Errorf("%s: skew %v s, want about %v", what, got, want)
		}
	}
	near("5 min ahead, at start", 300)
	if !strings.Contains(log.String(), "clock differs from the database server's") || !strings.Contains(log.String(), "skew=5m0s") {
		t.Errorf("log at start:\n%s", log.String())
	}
	offset.Store(int64(-10 * time.Minute))
	if _, err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	near("10 min behind, at the expiry run", -600)

	var quiet syncBuffer
	s2, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), Logger: slog.New(slog.NewTextHandler(&quiet, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := metricValue(t, s2, "headoffice_clock_skew_seconds"); got < -5 || got > 5 {
		t.Errorf("in step: skew %v s", got)
	}
	if strings.Contains(quiet.String(), "clock differs") {
		t.Errorf("in step, yet logged:\n%s", quiet.String())
	}
}
