package headoffice

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"tillagent/sync/pgtest"
)

// TestTillsLastSeen: the tills report shows when each till was last heard
// from and the User-Agent it sent (its build), none for a till never
// heard from; the metrics count the tills silent for over an hour, a day,
// and never seen (retired ones left out). Two head-office processes write
// their own notes; an older one never overwrites a newer.
func TestTillsLastSeen(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret", Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, id := range []string{"S001-T01", "S001-T02", "S001-T03", "S001-T04"} {
		sec, err := s.Enrol(ctx, id, "S001")
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = sec
	}
	if _, err := s.Retire(ctx, "S001-T04"); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	get := func(till, agent string) {
		t.Helper()
		req, _ := http.NewRequest("GET", api.URL+"/v1/till/feed?snapshot=1&limit=1", nil)
		req.SetBasicAuth(till, secrets[till])
		req.Header.Set("User-Agent", agent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("feed of %s: %s", till, resp.Status)
		}
	}
	before := time.Now()
	get("S001-T01", "tillagent/1.2.3")
	get("S001-T02", "tillagent/1.2.2")
	get("S001-T02", "tillagent/1.2.3") // the last one counts
	ts, err := s.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]TillState{}
	for _, x := range ts {
		seen[x.TillID] = x
	}
	for _, id := range []string{"S001-T01", "S001-T02"} {
		x := seen[id]
		if x.LastSeenAt == nil || x.LastSeenAt.Before(before.Add(-time.Second)) || time.Since(*x.LastSeenAt) > time.Minute || x.Agent != "tillagent/1.2.3" {
			t.Errorf("%s: last seen %v by %q, want just now by tillagent/1.2.3", id, x.LastSeenAt, x.Agent)
		}
	}
	if x := seen["S001-T03"]; x.LastSeenAt != nil || x.Agent != "" {
		t.Errorf("S001-T03, never heard from: last seen %v by %q", x.LastSeenAt, x.Agent)
	}

	// T01 silent for two days, T02 for two hours.
	if _, err := s.db.Exec(ctx, `UPDATE till_seen SET last_seen_at = now() - CASE till_id WHEN 'S001-T01' THEN interval '2 days' ELSE interval '2 hours' END
		WHERE till_id IN ('S001-T01', 'S001-T02')`); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	s.Metrics().Write(ctx, &b)
	for _, want := range []string{"\nheadoffice_tills_silent_hour 2\n", "\nheadoffice_tills_silent_day 1\n", "\nheadoffice_tills_never_seen 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}

	// A second process noted T01 before this one did: written last, its
	// older note does not win.
	s2, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret"})
	if err != nil {
		t.Fatal(err)
	}
	s2.noteSeen("S001-T01", "tillagent/old")
	time.Sleep(10 * time.Millisecond)
	s.noteSeen("S001-T01", "tillagent/new")
	if err := s.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s2.Close() // twice: nothing more
	if ts, err = s.Tills(ctx); err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.TillID == "S001-T01" && x.Agent != "tillagent/new" {
			t.Errorf("T01 after both processes wrote: agent %q, want the newer note's", x.Agent)
		}
	}

	// A long agent is cut, valid UTF-8 whatever the cut splits.
	s.noteSeen("S001-T03", strings.Repeat("я", 100))
	s.seen.mu.Lock()
	a := s.seen.till["S001-T03"].agent
	s.seen.mu.Unlock()
	if len(a) > 128 || !utf8.ValidString(a) || a == "" {
		t.Errorf("a 200-byte agent kept as %d bytes %q", len(a), a)
	}
}
