package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tillagent/internal/testpki"
	"tillagent/sync/pgtest"
)

// demoTill imports the demo into head office's database and enrols till
// there, in store S001.
func demoTill(t *testing.T, dsn, till string) {
	t.Helper()
	for _, args := range [][]string{{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"}, {"enrol", "-dsn", dsn, "-till", till, "-store", "S001"}} {
		if err := run(context.Background(), args, io.Discard, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// serveTLSAt runs headoffice serve on a loopback port with the flags
// until the test ends, and returns its address.
func serveTLSAt(t *testing.T, dsn string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0"}, flags...), io.Discard, func(l listening) { addrc <- l.api })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !t.Failed() {
			t.Error(err)
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		done <- err // for the cleanup
		t.Fatal(err)
	}
	return ""
}

// copyFile writes src's bytes to dst, as a renewal replaces a file.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReadsRenewedTLSFiles: head office's certificate and the tills'
// CA bundle renewed in place are served from the next handshake, without
// a restart: the new certificate is presented, and a till whose
// certificate the new CA signed is admitted. HTTP/2 is still offered.
func TestServeReadsRenewedTLSFiles(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	oldCA, newCA := testpki.NewCA(t, "tills CA 2025"), testpki.NewCA(t, "tills CA 2026")
	oldSrv, newSrv := oldCA.Server(t), newCA.Server(t)
	certFile, keyFile, caFile := filepath.Join(dir, "ho.pem"), filepath.Join(dir, "ho-key.pem"), filepath.Join(dir, "tills-ca.pem")
	copyFile(t, oldSrv.CertFile, certFile)
	copyFile(t, oldSrv.KeyFile, keyFile)
	copyFile(t, oldCA.File, caFile)

	demoTill(t, dsn, "S001-T07")
	addr := serveTLSAt(t, dsn, "-tls-cert", certFile, "-tls-key", keyFile, "-tls-client-ca", caFile)
	// feed asks for the till's feed with its certificate, trusting both
	// CAs: which certificate head office presented, and the answer.
	roots := x509.NewCertPool()
	roots.AddCert(oldCA.Cert)
	roots.AddCert(newCA.Cert)
	transport := func(till tls.Certificate) *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{till}}, ForceAttemptHTTP2: true}
	}
	type answer struct {
		served      *x509.Certificate
		status      int
		proto, body string
	}
	// as asks for the feed through tr: which certificate head office
	// presented, the answer and the protocol.
	as := func(tr *http.Transport) answer {
		t.Helper()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/v1/till/feed")
		if err != nil {
			t.Fatalf("HTTPS request: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return answer{resp.TLS.PeerCertificates[0], resp.StatusCode, resp.Proto, string(body)}
	}
	// feed asks on a connection of its own.
	feed := func(till tls.Certificate) (served *x509.Certificate, status int, proto string) {
		t.Helper()
		tr := transport(till)
		defer tr.CloseIdleConnections()
		a := as(tr)
		return a.served, a.status, a.proto
	}
	oldTill, newTill := oldCA.Till(t, "S001-T07").TLS, newCA.Till(t, "S001-T07").TLS
	served, status, proto := feed(oldTill)
	if !served.Equal(oldSrv.TLS.Leaf) || status != http.StatusOK || proto != "HTTP/2.0" {
		t.Fatalf("before the renewal: certificate %s, %d over %s; want the first one, 200 over HTTP/2.0", served.Issuer.CommonName, status, proto)
	}
	if _, status, _ := feed(newTill); status != http.StatusUnauthorized {
		t.Fatalf("a till of the new CA before the renewal: %d, want 401", status)
	}

	// A till of the old CA keeps its connection open across the renewal.
	kept := transport(oldTill)
	defer kept.CloseIdleConnections()
	if a := as(kept); a.status != http.StatusOK {
		t.Fatalf("kept-alive till before the renewal: %d %s", a.status, a.body)
	}

	copyFile(t, newSrv.CertFile, certFile)
	copyFile(t, newSrv.KeyFile, keyFile)
	copyFile(t, newCA.File, caFile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		served, status, proto = feed(newTill)
		if served.Equal(newSrv.TLS.Leaf) && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the renewal: certificate of %s, the new CA's till %d", served.Issuer.CommonName, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if proto != "HTTP/2.0" {
		t.Errorf("after the renewal: %s, want HTTP/2.0", proto)
	}
	if _, status, _ := feed(oldTill); status != http.StatusUnauthorized {
		t.Errorf("a till of the CA no longer in the bundle: %d, want 401", status)
	}
	// The kept-alive connection was verified to the old CA: refused now,
	// saying so, and closed.
	if a := as(kept); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "no longer in head office's tills' CA bundle") {
		t.Errorf("kept-alive till of the dropped CA: %d %.200s, want 401 saying its CA is no longer trusted", a.status, a.body)
	}
}

// TestTLSFilesHalfRenewed: a certificate renewed before its key (the
// pair does not match yet) is not taken: the pair read before is served,
// the failure logged once however many handshakes see it; once the key
// is written too, the new pair is served and that is logged.
func TestTLSFilesHalfRenewed(t *testing.T) {
	ca := testpki.NewCA(t, "head office CA")
	a, b := ca.Server(t), ca.Server(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ho.pem"), filepath.Join(dir, "ho-key.pem")
	copyFile(t, a.CertFile, certFile)
	copyFile(t, a.KeyFile, keyFile)
	var log bytes.Buffer
	f, err := loadTLSFiles(certFile, keyFile, "", slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	f.now = func() time.Time { return clock }
	served := func() *x509.Certificate {
		t.Helper()
		clock = clock.Add(statEvery)
		cfg, err := f.config(nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Certificates[0].Leaf
	}
	copyFile(t, b.CertFile, certFile)
	for i := 0; i < 3; i++ {
		if c := served(); !c.Equal(a.TLS.Leaf) {
			t.Fatalf("handshake %d with the key not renewed yet: serial %s, want the pair read before", i, c.SerialNumber)
		}
	}
	if n := strings.Count(log.String(), "do not load"); n != 1 {
		t.Errorf("the half renewal logged %d times, want once:\n%s", n, log.String())
	}
	copyFile(t, b.KeyFile, keyFile)
	if c := served(); !c.Equal(b.TLS.Leaf) {
		t.Fatalf("with the key renewed too: serial %s, want the new pair", c.SerialNumber)
	}
	if !strings.Contains(log.String(), "TLS files read again") {
		t.Errorf("the renewal is not logged:\n%s", log.String())
	}
	os.Remove(keyFile)
	if c := served(); !c.Equal(b.TLS.Leaf) {
		t.Errorf("with the key file gone: serial %s, want the pair read before", c.SerialNumber)
	}
	served()
	if n := strings.Count(log.String(), "unreadable"); n != 1 {
		t.Errorf("the missing key logged %d times, want once:\n%s", n, log.String())
	}
}
