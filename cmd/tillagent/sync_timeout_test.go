package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/internal/config"
	"tillagent/internal/store"
)

// TestSyncNowTimeoutHintsNameWhatTimedOut: `sync now` against a head
// office (real, on PostgreSQL) behind a server that can stall. Answering
// nothing at all is "Офис не отвечает", not a slow link (no page size in
// the hint); a push whose answer starts but never ends names
// sync.batch_size and sync.request_timeout, not sync.page_size; a feed page
// that does the same names sync.page_size.
func TestSyncNowTimeoutHintsNameWhatTimedOut(t *testing.T) {
	srv, secretFile := syncHO(t, store.OfflineLimits{})
	const (
		pass = iota
		hang
		slowPush
		slowFeed
	)
	var mode atomic.Int32
	quit := make(chan struct{})
	wait := func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}
	stall := func(w http.ResponseWriter, r *http.Request) { // the answer starts, the rest never comes
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("{"))
		http.NewResponseController(w).Flush()
		wait(r)
	}
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch m := mode.Load(); {
		case m == hang:
			io.Copy(io.Discard, r.Body) // the whole request taken, then nothing
			wait(r)
		case m == slowPush && r.URL.Path == "/v1/till/journal", m == slowFeed && r.URL.Path == "/v1/till/feed":
			stall(w, r)
		default:
			srv.Handler().ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { close(quit); ho.CloseClientConnections(); ho.Close() })
	h := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, ho.URL, secretFile
		c.Sync.Interval, c.Sync.RequestTimeout = time.Hour, time.Second
		c.Sync.BackoffMin, c.Sync.BackoffMax = time.Minute, time.Minute
		c.Sync.PageSize, c.Sync.BatchSize = 100, 50 // 100: the floor, one timeout a feed
		c.Store.DemoReplica = ""
	})
	var st struct{ Sync map[string]any }
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.must(200, "GET", "/v1/status", nil, &st)
		if st.Sync["replica_loaded"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first load did not finish: %v", st.Sync)
		}
	}
	check := func(name, wantMsg string, want, notWant []string) {
		t.Helper()
		e := h.refusal(502, "sync.failed", "POST", "/v1/sync/now", nil)
		t.Logf("%s: message %s\ndetail: %s\nhint: %s", name, e.Error.Message, e.Error.Detail, e.Error.Hint)
		if !strings.HasPrefix(e.Error.Message, wantMsg) {
			t.Errorf("%s: message %q, want %q", name, e.Error.Message, wantMsg)
		}
		for _, w := range want {
			if !strings.Contains(e.Error.Hint, w) {
				t.Errorf("%s: hint %q does not say %q", name, e.Error.Hint, w)
			}
		}
		for _, w := range notWant {
			if strings.Contains(e.Error.Hint, w) {
				t.Errorf("%s: hint %q says %q", name, e.Error.Hint, w)
			}
		}
	}
	mode.Store(hang)
	check("no answer to the feed", "Офис не отвечает", []string{"no answer at all", "sync.request_timeout (1s)", "not a slow link"},
		[]string{"sync.page_size", "was reached", "sync.batch_size"})

	mode.Store(pass)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("push-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	mode.Store(hang)
	check("no answer to a push", "Офис не отвечает", []string{"no answer at all", "sync.batch_size (50)"}, []string{"sync.page_size"})
	mode.Store(slowPush)
	check("slow push", "Офис не успевает принять журнал", []string{"sync.batch_size (50", "sync.request_timeout (1s)"}, []string{"sync.page_size"})
	mode.Store(slowFeed)
	check("slow feed page", "Офис не успевает ответить", []string{"sync.page_size (100", "sync.request_timeout (1s)"}, []string{"sync.batch_size"})
}
