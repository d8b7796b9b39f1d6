package e2e

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/internal/store"
	"tillagent/sync/client"
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
		hc, err := client.HTTPClient(c.ca)
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
