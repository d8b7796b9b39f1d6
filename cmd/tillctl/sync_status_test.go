package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tillagent/sync/client"
)

// syncAgent answers /v1/sync and /v1/status over a real listener with the
// sync loop's Status st, and returns a tillctl client of it writing to out.
func syncAgent(t *testing.T, st client.Status, out *bytes.Buffer) *agentClient {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body any = st
		if r.URL.Path == "/v1/status" {
			body = map[string]any{"version": "test", "till_id": "S001-T01", "store_id": "S001", "sync": st}
		}
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(hs.Close)
	return &agentClient{http: hs.Client(), base: hs.URL, out: out}
}

// TestSyncStatusShowsEachRefusedEntry: `tillctl sync status` prints each
// refused entry and each rejected feed record on a line of its own, not as
// one Go slice.
func TestSyncStatusShowsEachRefusedEntry(t *testing.T) {
	var out bytes.Buffer
	st := client.Status{State: "failing", ReplicaLoaded: true, RefusedCount: 2, Refused: []string{
		"S001-T01-01AAA rejected: card 2700000000014, program FAMILY: points 1.7: finer than the program's 0 decimal places",
		"S001-T01-01BBB conflict: other content",
	}}
	c := syncAgent(t, st, &out)
	if err := cmdSync("GET", "/v1/sync")(flag.NewFlagSet("sync status", flag.ContinueOnError))(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "S001-T01-01") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "refused_entries ") || !strings.HasSuffix(lines[0], st.Refused[0]) ||
		strings.TrimSpace(lines[1]) != st.Refused[1] || strings.Contains(out.String(), "[") {
		t.Fatalf("refused entries not one a line:\n%s", out.String())
	}
}

// TestStatusSaysTheReplicaIsNotLoaded: `tillctl status` and `tillctl sync
// status` say when the replica never came from head office, and during a
// first load how many cards are in so far, with no total (head office
// gives none).
func TestStatusSaysTheReplicaIsNotLoaded(t *testing.T) {
	for _, tc := range []struct {
		st   client.Status
		want string
	}{
		{client.Status{State: "failing", LastError: "no route"}, "replica never loaded from head office"},
		{client.Status{State: "idle", Loading: true, LoadedCards: 20000, Running: true}, "first load from head office running: 20000 cards loaded so far (head office gives no total)"},
		{client.Status{State: "failing", LoadedCards: 5000}, "first load from head office not finished: stopped after 5000 cards"},
		{client.Status{State: "ok", ReplicaLoaded: true}, ""},
	} {
		for _, cmd := range []func(*flag.FlagSet) agentRun{cmdStatus, cmdSync("GET", "/v1/sync")} {
			var out bytes.Buffer
			c := syncAgent(t, tc.st, &out)
			if err := cmd(flag.NewFlagSet("status", flag.ContinueOnError))(context.Background(), c, nil); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && strings.Contains(out.String(), "first load"):
				t.Errorf("loaded replica shown as not loaded:\n%s", out.String())
			case tc.want != "" && !strings.Contains(out.String(), tc.want):
				t.Errorf("status %+v: output lacks %q:\n%s", tc.st, tc.want, out.String())
			}
		}
	}
}
