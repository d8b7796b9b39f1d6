package client

import (
	"testing"
	"time"

	"tillagent/internal/store"
)

// TestRefusedWaitDefaults: with the defaults a refused entry waits two
// cycle intervals (the next cycle leaves it out), then twice as long after
// each refusal in a row, never more than an hour; SyncNow's force holds
// nothing back. The behaviour against head office is
// sync/e2e TestRefusedEntryBacksOff.
func TestRefusedWaitDefaults(t *testing.T) {
	c, err := New(Options{URL: "http://ho.invalid", TillID: "S001-T01", Secret: "s", Store: &store.Store{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := c.refusedWait(i + 1); got != w {
			t.Errorf("refused %d times in a row: wait %v, want %v", i+1, got, w)
		}
	}
	now := time.Now()
	c.refuse("S001-T01-A", "S001-T01-A conflict: other content", now)
	c.refuse("S001-T01-B", "S001-T01-B rejected: bad", now.Add(-2*time.Minute))
	if held := c.heldRefusals(now, false); len(held) != 1 || !held["S001-T01-A"] {
		t.Errorf("held at %v: %v, want only the entry refused just now", now, held)
	}
	if held := c.heldRefusals(now, true); len(held) != 0 {
		t.Errorf("held when forced: %v, want none", held)
	}
	if c.refused["S001-T01-A"].times != 1 {
		t.Errorf("refusals of A: %d, want 1", c.refused["S001-T01-A"].times)
	}
}
