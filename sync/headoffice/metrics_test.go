package headoffice

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tillagent/sync/wire"
)

// TestMetricsOverHTTP: head office's /metrics (on its own handler) counts
// what its API answered, by route pattern (a till id in a path makes no
// series of its own) and status, the journal entries by result, an expiry
// run, and shows what the database holds for an operator to alert on:
// an entry waiting behind a gap and for how long, an open conflict, the
// tills enrolled and retired.
func TestMetricsOverHTTP(t *testing.T) {
	now := demoNow
	const card = "3400000000051"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	ctx := context.Background()
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T09", "S001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retire(ctx, "S001-T09"); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	mon := httptest.NewServer(s.MetricsHandler())
	defer mon.Close()
	call := func(method, url, user, pass string, body any) int {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = strings.NewReader(string(b))
		}
		req, _ := http.NewRequest(method, url, r)
		if user != "" {
			req.SetBasicAuth(user, pass)
		} else if pass != "" {
			req.Header.Set("Authorization", "Bearer "+pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var lt lateTill
	b1 := lt.batch(spendFrom(card, "A", "c1", "10"))
	lt.batch(spendFrom(card, "A", "c2", "5")) // never pushed: the gap
	later := lt.batch(spendFrom(card, "A", "c3", "5"))
	for _, b := range []*wire.Batch{b1, b1, later} {
		if code := call("POST", api.URL+"/v1/till/journal", "S001-T01", secret, b); code != 200 {
			t.Fatalf("push: %d", code)
		}
	}
	other := *b1
	other.Entries = []wire.Entry{b1.Entries[0]}
	other.Entries[0].Note = "other content"
	if code := call("POST", api.URL+"/v1/till/journal", "S001-T01", secret, &other); code != 200 {
		t.Fatalf("push of a conflicting copy: %d", code)
	}
	if code := call("POST", api.URL+"/v1/till/journal", "S001-T01", "wrong", b1); code != 401 {
		t.Fatalf("push with a wrong secret: %d, want 401", code)
	}
	if code := call("GET", api.URL+"/v1/nosuch", "", "", nil); code != 404 {
		t.Fatalf("unknown endpoint: %d", code)
	}
	if code := call("POST", api.URL+"/v1/erp/tills/S001-T01/reset-feed", "", "erp-secret", nil); code != 200 {
		t.Fatalf("reset-feed: %d", code)
	}
	if code := call("POST", api.URL+"/v1/erp/maintain", "", "erp-secret", nil); code != 200 {
		t.Fatalf("maintain: %d", code)
	}

	resp, err := http.Get(mon.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`headoffice_http_requests_total{route="POST /v1/till/journal",code="200"} 4`,
		`headoffice_http_requests_total{route="POST /v1/till/journal",code="401"} 1`,
		`headoffice_http_requests_total{route="unmatched",code="404"} 1`,
		`headoffice_http_requests_total{route="POST /v1/erp/tills/{till}/reset-feed",code="200"} 1`,
		`headoffice_http_request_duration_seconds_count{route="POST /v1/till/journal"} 5`,
		`headoffice_journal_entries_total{result="applied"} 2`,
		`headoffice_journal_entries_total{result="duplicate"} 1`,
		`headoffice_journal_entries_total{result="conflict"} 1`,
		`headoffice_maintain_runs_total{result="ok"} 1`,
		"\nheadoffice_journal_waiting_entries 1\n",
		"\nheadoffice_conflicts_open 1\n",
		"\nheadoffice_tills_enrolled 1\n",
		"\nheadoffice_tills_retired 1\n",
		"\nheadoffice_db_pool_max_conns 16\n",
		"\nheadoffice_ingest_retries_total 0\n",
		"\nheadoffice_db_connections_lost_total 0\n",
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`\nheadoffice_journal_waiting_oldest_seconds (\S+)\n`).FindStringSubmatch(scrape); m == nil {
		t.Errorf("scrape lacks how long the entry behind the gap waited")
	} else if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 || v > 60 {
		t.Errorf("the entry behind the gap waited %s s, want the moments since its push", m[1])
	}
	if m := regexp.MustCompile(`\nheadoffice_maintain_last_ok_timestamp_seconds (\S+)\n`).FindStringSubmatch(scrape); m == nil {
		t.Errorf("scrape lacks the last expiry run")
	} else if v, _ := strconv.ParseFloat(m[1], 64); time.Since(time.UnixMilli(int64(v*1000))) > time.Minute {
		t.Errorf("last expiry run at %s, want just now", m[1])
	}
	if strings.Contains(scrape, "S001-T01") {
		t.Errorf("a till id made a series of its own:\n%s", scrape)
	}
	if code := call("GET", api.URL+"/metrics", "", "", nil); code != 404 {
		t.Errorf("/metrics on the API's handler: %d, want 404 (tills reach it)", code)
	}
}

// TestHealth: /healthz answers 200 while the database answers with this
// build's schema, 503 naming why when the schema is another build's (a
// rolling upgrade migrated it) or the database is gone; on the API's
// handler too, without authentication.
func TestHealth(t *testing.T) {
	s := openTest(t)
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	mon := httptest.NewServer(s.MetricsHandler())
	defer mon.Close()
	health := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Status, Error string }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v.Status + ": " + v.Error
	}
	for _, u := range []string{api.URL, mon.URL} {
		if code, st := health(u); code != 200 || st != "ok: " {
			t.Fatalf("health at %s: %d %s", u, code, st)
		}
	}
	ctx := context.Background()
	if _, err := s.db.Exec(ctx, `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if code, st := health(mon.URL); code != 503 || !strings.Contains(st, "this build's") {
		t.Fatalf("health with a newer schema: %d %s", code, st)
	}
	if _, err := s.db.Exec(ctx, `UPDATE schema_version SET version = version - 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if code, st := health(api.URL); code != 503 || !strings.Contains(st, "database") {
		t.Fatalf("health with the pool closed: %d %s", code, st)
	}
}
