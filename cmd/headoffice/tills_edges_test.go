package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"tillagent/sync/headoffice"
)

// TestTillsTableAgentTab: a till's User-Agent is its own text; a tab or
// a blank in it stays one column of the tills table (shown as _), so a till
// cannot show an operator WAITING 0 REJECTED 0 of its choosing and push
// its real counts off the row (found in review: it could).
func TestTillsTableAgentTab(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	seen := now.Add(-time.Minute)
	var out bytes.Buffer
	ts := []headoffice.TillState{{TillID: "S001-T01", StoreID: "S001", LastSeenAt: &seen, Agent: "tillagent/1.4\t0\t0\tfine", Waiting: 7, Rejected: 3}}
	if err := printTills(&out, ts, 0, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	// The header has 10 fields (LAST SEEN and FOLDED THROUGH are two words each).
	if len(row) != len(head)-2 {
		t.Errorf("a row of %d columns under a header of %d:\n%s", len(row), len(head)-2, out.String())
	}
}
