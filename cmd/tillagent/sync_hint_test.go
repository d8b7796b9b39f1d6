package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tillagent/internal/config"
	"tillagent/internal/store"
	"tillagent/internal/testpki"
	"tillagent/sync/headoffice"
	"tillagent/sync/pgtest"
)

// syncHO is head office on PostgreSQL holding the demo, and the secret
// file of till S001-T01 enrolled there; offline are the limits it
// publishes, before run on head office before the till is enrolled.
func syncHO(t *testing.T, offline store.OfflineLimits, before ...func(*headoffice.Server)) (*headoffice.Server, string) {
	t.Helper()
	return syncHOWith(t, headoffice.Options{Offline: offline}, before...)
}

// syncHOWith is syncHO with head office's options o (its DSN, ERP token
// and, unset, its clock filled in).
func syncHOWith(t *testing.T, o headoffice.Options, before ...func(*headoffice.Server)) (*headoffice.Server, string) {
	t.Helper()
	ctx := context.Background()
	o.DSN, o.ERPToken = pgtest.DSN(t), "erp-token-for-tests"
	if o.Clock == nil {
		o.Clock = testClock()
	}
	srv, err := headoffice.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	data, err := os.ReadFile("../../testdata/demo/replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := store.ParseReplicaFile("replica.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Import(ctx, demo); err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(srv)
	}
	secret, err := srv.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, f
}

// TestSyncNowHintsNameTheSetting: `sync now` against a head office that is
// there but set up wrong on the till says which setting to check, and what
// it saw: a TLS certificate from an unknown CA (sync.ca_file); http:// to
// head office serving HTTPS, https:// to one serving plain HTTP, a path in
// sync.url (sync.url, with what answered); a link too slow for a feed page
// (sync.request_timeout, sync.page_size). A till whose replica never came
// from head office says so in /v1/status.
func TestSyncNowHintsNameTheSetting(t *testing.T) {
	srv, secretFile := syncHO(t, store.OfflineLimits{})
	tlsHO := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(tlsHO.Close)
	plainHO := httptest.NewServer(srv.Handler())
	t.Cleanup(plainHO.Close)
	slowHO := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/till/feed" {
			// A page that starts to arrive, then takes longer than the
			// request timeout.
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("{"))
			http.NewResponseController(w).Flush()
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-r.Context().Done():
			}
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(slowHO.Close)
	host := func(u string) string { _, h, _ := strings.Cut(u, "://"); return h }
	for _, tc := range []struct {
		name, url string
		want      []string // in the hint
	}{
		{"unknown CA", tlsHO.URL, []string{"sync.ca_file", "not trusted"}},
		{"http to HTTPS", "http://" + host(tlsHO.URL), []string{"sync.url", "http://" + host(tlsHO.URL), "400 Bad Request", "HTTPS server", "https://"}},
		{"https to HTTP", "https://" + host(plainHO.URL), []string{"sync.url", "plain HTTP"}},
		{"path in the URL", plainHO.URL + "/headoffice", []string{"sync.url", plainHO.URL + "/headoffice/v1/till", "404"}},
		{"slow link", slowHO.URL, []string{"sync.request_timeout (1s)", "sync.page_size (200", "half the size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, tc.url, secretFile
				c.Sync.Interval, c.Sync.RequestTimeout = time.Hour, time.Second
				// After its first cycle the loop waits, so sync now runs its own.
				c.Sync.BackoffMin, c.Sync.BackoffMax = time.Minute, time.Minute
				c.Sync.PageSize = 200    // the slow link: 200, then 100, both too slow
				c.Store.DemoReplica = "" // the replica comes from head office only
			})
			// The loop's first cycle (a first load) fails first (on the slow
			// link after halving its page to 100), then sync now runs one.
			var st struct {
				Sync map[string]any
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				h.must(200, "GET", "/v1/status", nil, &st)
				if n, _ := st.Sync["consecutive_failures"].(float64); n >= 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the loop's first cycle did not fail: %v", st.Sync)
				}
			}
			e := h.refusal(502, "sync.failed", "POST", "/v1/sync/now", nil)
			t.Logf("detail: %s\nhint: %s", e.Error.Detail, e.Error.Hint)
			for _, w := range tc.want {
				if !strings.Contains(e.Error.Hint, w) {
					t.Errorf("hint %q does not say %q (detail %q)", e.Error.Hint, w, e.Error.Detail)
				}
			}
			if strings.Contains(e.Error.Hint, "check the network") {
				t.Errorf("hint %q sends the technician to the network", e.Error.Hint)
			}
			h.must(200, "GET", "/v1/status", nil, &st)
			if st.Sync["replica_loaded"] != false || st.Sync["state"] != "failing" {
				t.Errorf("status of a till never loaded from head office: %v", st.Sync)
			}
		})
	}
}

// TestSyncNowHeadOfficeBusy: `sync now` while head office (here a proxy
// before it) answers 503 with Retry-After is told head office is too busy
// and that the till goes on by itself: 503 sync.head_office_busy, not a
// network or head-office failure.
func TestSyncNowHeadOfficeBusy(t *testing.T) {
	srv, secretFile := syncHO(t, store.OfflineLimits{})
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/till/") {
			w.Header().Set("Retry-After", "30")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error": "head office is busy: send again in 30 s (Retry-After)"}`))
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(busy.Close)
	h := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, busy.URL, secretFile
		c.Sync.Interval, c.Sync.BackoffMin, c.Sync.BackoffMax = time.Hour, time.Minute, 2*time.Minute
	})
	e := h.refusal(503, "sync.head_office_busy", "POST", "/v1/sync/now", nil)
	for _, w := range []string{"Retry-After", "sync.backoff_max (2m0s)", "nothing to fix on this till"} {
		if !strings.Contains(e.Error.Hint, w) {
			t.Errorf("hint %q does not say %q", e.Error.Hint, w)
		}
	}
	if !strings.Contains(e.Error.Detail, "503") || !strings.Contains(e.Error.Detail, "send again in 30 s") {
		t.Errorf("detail %q does not carry head office's answer", e.Error.Detail)
	}
}

// TestSyncNowHintsForCertificatesOutOfTheirDates: head office's renewed
// certificate not yet valid by a till's clock a day behind was told "set
// sync.ca_file", and a till certificate head office refused as expired
// "check the network" (both found by a QA pass): the hints now name the
// clock and the certificate's dates, and the till's certificate.
func TestSyncNowHintsForCertificatesOutOfTheirDates(t *testing.T) {
	srv, secretFile := syncHO(t, store.OfflineLimits{})
	ca := testpki.NewCA(t, "head office CA")
	now := time.Now()
	serve := func(cert tls.Certificate, clientCAs *x509.CertPool) string {
		hs := httptest.NewUnstartedServer(srv.Handler())
		hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: clientCAs, ClientAuth: tls.VerifyClientCertIfGiven}
		hs.Config.ErrorLog = log.New(io.Discard, "", 0)
		hs.StartTLS()
		t.Cleanup(hs.Close)
		return hs.URL
	}
	early := serve(ca.Issue(t, testpki.Spec{CN: "127.0.0.1", Usage: x509.ExtKeyUsageServerAuth,
		NotBefore: now.Add(23 * time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)}).TLS, nil)
	mtls := serve(ca.Server(t).TLS, ca.Pool())
	expired := ca.Issue(t, testpki.Spec{CN: "S001-T01", Usage: x509.ExtKeyUsageClientAuth, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	for _, tc := range []struct {
		name, url, code string
		conf            func(*config.Sync)
		want            []string
	}{
		{"head office's not valid yet", early, "sync.failed", func(s *config.Sync) { s.SecretFile = secretFile },
			[]string{"the till's clock says", "valid from " + now.Add(23*time.Hour).UTC().Format("2006-01-02T15"), "sync.ca_file need not change"}},
		{"the till's expired", mtls, "sync.unauthorized", func(s *config.Sync) { s.CertFile, s.KeyFile = expired.CertFile, expired.KeyFile },
			[]string{"refused the till's TLS certificate", "valid until " + now.Add(-time.Hour).UTC().Format("2006-01-02T15"), "renew it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.Sync.Enabled, c.Sync.URL, c.Sync.CAFile = true, tc.url, ca.File
				tc.conf(&c.Sync)
				c.Sync.Interval, c.Sync.BackoffMin, c.Sync.BackoffMax = time.Hour, time.Minute, time.Minute
			})
			e := h.refusal(502, tc.code, "POST", "/v1/sync/now", nil)
			for _, w := range tc.want {
				if !strings.Contains(e.Error.Hint, w) {
					t.Errorf("hint %q does not say %q (detail %q)", e.Error.Hint, w, e.Error.Detail)
				}
			}
			if strings.Contains(e.Error.Hint, "check the network") || strings.Contains(e.Error.Hint, "set sync.ca_file") {
				t.Errorf("hint %q sends the technician to the network or the CA file", e.Error.Hint)
			}
		})
	}
}
