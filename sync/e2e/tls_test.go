package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/internal/testpki"
	"tillagent/sync/client"
	"tillagent/sync/wire"
)

// TestSyncOverTLS: the till trusts only the CA file it is given; with it
// the sync works, without it the certificate is refused.
func TestSyncOverTLS(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	ts := httptest.NewUnstartedServer(h.srv.Handler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	ts.StartTLS()
	defer ts.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	secret, err := h.srv.Enrol(ctx, "S001-T40", "S001")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T40"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		ca      string
		wantErr string
	}{{"", "certificate"}, {ca, ""}} {
		hc, err := client.HTTPClient(client.TLSFiles{CA: c.ca})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.New(client.Options{URL: ts.URL, TillID: "S001-T40", StoreID: "S001", Secret: secret, Store: st, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		err = cl.SyncNow(ctx)
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("sync with ca %q: %v, want error containing %q", c.ca, err, c.wantErr)
		}
	}
}

// TestSyncOverMutualTLS: head office checks the tills' certificates
// against its client CA (`headoffice serve -tls-client-ca`). A till with
// its certificate and no secret loads its replica and pushes a sale; its
// certificate files are read at each handshake (another CA's written over
// them is refused, a renewed one works, with no restart); a
// certificate of an enrolled till stands for that till only (pushing
// another's journal is refused, and so are credentials of another till);
// one of a till not enrolled is refused 401; one signed by another CA
// fails the handshake; a till with a secret and no certificate still
// syncs.
func TestSyncOverMutualTLS(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	ca := testpki.NewCA(t, "tills CA")
	ts := httptest.NewUnstartedServer(h.srv.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	ts.StartTLS()
	defer ts.Close()
	p := newProxy(t, h.hs.URL) // unused: the tills below talk TLS to ts
	certClient := func(cn string, signer *testpki.CA) *http.Client {
		pair := signer.Till(t, cn)
		hc, err := client.HTTPClient(client.TLSFiles{CA: ca.File, Cert: pair.CertFile, Key: pair.KeyFile})
		if err != nil {
			t.Fatal(err)
		}
		return hc
	}
	withCert := func(cn string, signer *testpki.CA) func(*client.Options) {
		hc := certClient(cn, signer)
		return func(o *client.Options) { o.URL, o.HTTPClient, o.CertAuth, o.Secret = ts.URL, hc, true, "" }
	}
	aPair := ca.Till(t, "S001-T40")
	aClient, err := client.HTTPClient(client.TLSFiles{CA: ca.File, Cert: aPair.CertFile, Key: aPair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	a := newTillWith(t, h, p, "S001-T40", "S001", 0, func(o *client.Options) {
		o.URL, o.HTTPClient, o.CertAuth, o.Secret = ts.URL, aClient, true, ""
	})
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatalf("till with its certificate: %v", err)
	}
	// The files are read at each handshake: a certificate of another CA
	// written over them is refused, a renewed one works, no restart.
	writeOver := func(p testpki.Pair) {
		t.Helper()
		for _, f := range [][2]string{{p.CertFile, aPair.CertFile}, {p.KeyFile, aPair.KeyFile}} {
			if err := os.WriteFile(f[1], mustRead(t, f[0]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		aClient.CloseIdleConnections()
	}
	writeOver(testpki.NewCA(t, "rogue CA").Till(t, "S001-T40"))
	if err := a.c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("after another CA's certificate was written over the till's: %v, want refused", err)
	}
	writeOver(ca.Till(t, "S001-T40")) // renewed
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatalf("with the renewed certificate: %v", err)
	}
	sale := a.sell(t, card13, powder("1"), "100")
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.st.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("after the sync %d entries pending (%v)", n, err)
	}
	if got, want := hoBalances(t, h)[card13], sale.Cards[0].BalanceAfter.String(); got != want || want != "440" {
		t.Fatalf("head office: card 13 at %s after the sale, the till says %s (500 − 100 + 40)", got, want)
	}

	// S001-T41's certificate cannot speak for S001-T40.
	if _, err := h.srv.Enrol(ctx, "S001-T41", "S001"); err != nil {
		t.Fatal(err)
	}
	hc := certClient("S001-T41", ca)
	body, _ := json.Marshal(wire.Batch{TillID: "S001-T40"})
	for _, c := range []struct {
		what, basic string
		want        int
	}{{"another till's journal", "", http.StatusForbidden}, {"another till's credentials", "S001-T40", http.StatusUnauthorized}} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/till/journal", bytes.NewReader(body))
		if c.basic != "" {
			req.SetBasicAuth(c.basic, a.secret)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("S001-T41's certificate, %s: %d, want %d", c.what, resp.StatusCode, c.want)
		}
	}
	// Not enrolled: 401. Another CA: no handshake.
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T42"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := client.Options{TillID: "S001-T42", StoreID: "S001", Store: st, RequestTimeout: 5 * time.Second}
	withCert("S001-T42", ca)(&o)
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a certificate of a till not enrolled: %v, want 401", err)
	}
	withCert("S001-T40", testpki.NewCA(t, "rogue CA"))(&o)
	o.TillID = "S001-T40"
	if c, err = client.New(o); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a certificate of another CA: %v, want a TLS certificate error", err)
	}
	// A till with its secret only.
	sec := newTillWith(t, h, p, "S001-T43", "S001", 0, func(o *client.Options) {
		hc, err := client.HTTPClient(client.TLSFiles{CA: ca.File})
		if err != nil {
			t.Fatal(err)
		}
		o.URL, o.HTTPClient = ts.URL, hc
	})
	if err := sec.c.SyncNow(ctx); err != nil {
		t.Fatalf("till with a secret and no certificate: %v", err)
	}
}
