package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{client.Status{State: "failing", LoadedCards: 5000}, "first load from head office not finished: stopped after 5000 cards, which the till holds and sells on"},
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

// TestStatusShowsOfflineRules: `tillctl status` and `tillctl sync status`
// show the offline rules the agent reports: the caps, the till cap used
// and left, the maximum age and the feed's age, and first of all whether
// redemption is blocked on the whole till and why.
func TestStatusShowsOfflineRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offline map[string]any
		want    []string
	}{
		{"in force", map[string]any{"rules": true, "card_cap": "150", "till_cap": "400", "max_age_s": 7200.0, "feed_age_s": 65.0,
			"till_cap_used": "100", "till_cap_left": "300"},
			[]string{"card cap 150, till cap 400 (used 100, left 300), max age 2h0m0s, last feed 1m5s ago"}},
		{"too long", map[string]any{"rules": true, "card_cap": "150", "till_cap": "0", "max_age_s": 45.0, "feed_age_s": 66.0,
			"redeem_blocked": "offline_too_long", "till_cap_used": "0"},
			[]string{"REDEMPTION BLOCKED on this till (offline_too_long): the last feed is 1m6s old, head office allows 45s", "till cap none"}},
		{"first load", map[string]any{"rules": false, "redeem_blocked": "offline_first_load", "till_cap_used": "0"},
			[]string{"REDEMPTION BLOCKED on this till (offline_first_load)"}},
		{"till cap used up", map[string]any{"rules": true, "card_cap": "150", "till_cap": "400", "max_age_s": 0.0, "feed_age_s": 3.0,
			"redeem_blocked": "offline_till_cap", "till_cap_used": "400", "till_cap_left": "0"},
			[]string{"REDEMPTION BLOCKED on this till (offline_till_cap)", "(used 400, left 0), max age none"}},
	} {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := map[string]any{"state": "ok", "replica_loaded": true, "offline": tc.offline}
			var body any = st
			if r.URL.Path == "/v1/status" {
				body = map[string]any{"version": "test", "till_id": "S001-T01", "store_id": "S001", "sync": st, "offline": tc.offline}
			}
			json.NewEncoder(w).Encode(body)
		}))
		for _, cmd := range []struct {
			name string
			run  func(*flag.FlagSet) agentRun
		}{{"status", cmdStatus}, {"sync status", cmdSync("GET", "/v1/sync")}} {
			var out bytes.Buffer
			c := &agentClient{http: hs.Client(), base: hs.URL, out: &out}
			if err := cmd.run(flag.NewFlagSet(cmd.name, flag.ContinueOnError))(context.Background(), c, nil); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%s, tillctl %s: output lacks %q:\n%s", tc.name, cmd.name, w, out.String())
				}
			}
			if strings.Contains(out.String(), "map[") {
				t.Errorf("%s, tillctl %s: a Go map printed:\n%s", tc.name, cmd.name, out.String())
			}
		}
		hs.Close()
	}
}

// TestSyncStatusCountersInDigits: the counters of `tillctl sync status` and
// `tillctl status` read as numbers: decoded into any, a million on were
// printed 1e+06 (found by a QA pass).
func TestSyncStatusCountersInDigits(t *testing.T) {
	var out bytes.Buffer
	st := client.Status{State: "ok", ReplicaLoaded: true, ImportedRecs: 6000123, Pushed: 1500000, Backlog: 1000000, RefusedCount: 2000000}
	c := syncAgent(t, st, &out)
	if err := cmdSync("GET", "/v1/sync")(flag.NewFlagSet("sync status", flag.ContinueOnError))(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	if err := cmdStatus(flag.NewFlagSet("status", flag.ContinueOnError))(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"6000123", "1500000", "1000000", "2000000 entries refused"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tillctl sync status, status lack %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "e+0") {
		t.Errorf("counters in exponent form:\n%s", out.String())
	}
}

// TestSyncNowWaitsAsLongAsTheAgentMay: the agent answers `sync now` within
// 2 × sync.request_timeout, up to 20 minutes; tillctl gave up on every
// call after 3 minutes, so a technician on a slow link (the sync.busy hint
// says to raise request_timeout) read Go's "Client.Timeout exceeded"
// instead of the agent's answer and hint (found by a QA pass). Sync now
// now waits as long as the agent's config lets it take, other calls as
// before, and a call that gets no answer in time says so.
func TestSyncNowWaitsAsLongAsTheAgentMay(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, []byte("api: {socket: "+filepath.Join(dir, "api.sock")+"}\n"+
		"sync: {enabled: true, url: \"http://ho.example:8440\", secret: \"0123456789abcdef0123\", request_timeout: 5m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("sync now", flag.ContinueOnError)
	af := addAgentFlags(fs)
	if err := fs.Parse([]string{"-config", conf}); err != nil {
		t.Fatal(err)
	}
	c, err := af.client(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.syncNowWait != 11*time.Minute {
		t.Errorf("sync now waits %v with sync.request_timeout 5m, want 11m (2 × 5m and a minute for the answer)", c.syncNowWait)
	}
	// An agent that takes 300 ms for every answer.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte(`{"state": "ok"}`))
	}))
	t.Cleanup(hs.Close)
	slow := &agentClient{http: hs.Client(), base: hs.URL, out: io.Discard, callWait: 100 * time.Millisecond, syncNowWait: 5 * time.Second}
	if _, err := slow.call(context.Background(), "POST", "/v1/sync/now", nil, nil); err != nil {
		t.Errorf("sync now answered within its wait: %v", err)
	}
	if _, err := slow.call(context.Background(), "GET", "/v1/sync", nil, nil); err == nil || !strings.Contains(err.Error(), "GET /v1/sync: no answer from the agent within 100ms") {
		t.Errorf("a call past its wait: %v, want it named", err)
	}
}
