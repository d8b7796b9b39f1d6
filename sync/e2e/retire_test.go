package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tillagent/internal/testpki"
	"tillagent/sync/client"
)

// TestRetiredTillRefused: ERP retires a till (stolen, broken): its secret
// (signed with the enrolment key, so a restored head office could have
// readmitted it) and its certificate are refused from then on, what it
// pushed stays, the tills report shows when it was retired, and
// retiring it again says the same time. Enrolled again, it syncs with
// its new secret; a head office restored to its retired row readmits it
// by that secret, never by the one from before.
func TestRetiredTillRefused(t *testing.T) {
	ctx := context.Background()
	h := &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), enrolKey: []byte(strings.Repeat("retire-enrol-key", 2))}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	ca := testpki.NewCA(t, "tills CA")
	ts := httptest.NewUnstartedServer(h.srv.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	p := newProxy(t, h.hs.URL)
	a := newTill(t, h, p, "S001-T50", "S001", 0)
	syncEach(t, a)
	a.sell(t, card13, powder("1"), "")
	syncEach(t, a)
	pair := ca.Till(t, "S001-T50")
	hc, err := client.HTTPClient(client.TLSFiles{CA: ca.File, Cert: pair.CertFile, Key: pair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	feed := func(c *http.Client, url, secret string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url+"/v1/till/feed", nil)
		if secret != "" {
			req.SetBasicAuth(a.id, secret)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := feed(hc, ts.URL, ""); got != 200 {
		t.Fatalf("feed with the till's certificate before it was retired: %d", got)
	}

	retire := func() string {
		t.Helper()
		code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+a.id+"/retire", nil)
		var r struct {
			RetiredAt string `json:"retired_at"`
		}
		if code != 200 || json.Unmarshal(data, &r) != nil || r.RetiredAt == "" {
			t.Fatalf("retire: %d %s", code, data)
		}
		return r.RetiredAt
	}
	at := retire()
	if again := retire(); again != at {
		t.Errorf("retired again: at %s, first %s", again, at)
	}
	if code, _ := erpCall(t, h, "POST", "/v1/erp/tills/S001-T99/retire", nil); code != 404 {
		t.Errorf("retire an unknown till: %d, want 404", code)
	}
	if got := feed(http.DefaultClient, h.hs.URL, a.secret); got != 401 {
		t.Errorf("feed with the retired till's secret: %d, want 401", got)
	}
	if got := feed(hc, ts.URL, ""); got != 401 {
		t.Errorf("feed with the retired till's certificate: %d, want 401", got)
	}
	if err := a.c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("sync of the retired till: %v, want 401", err)
	}
	ts2, err := h.srv.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ts2 {
		if s.TillID == a.id && (s.RetiredAt == nil || s.FoldedThrough == "") {
			t.Errorf("tills report for the retired till: %+v, want its retirement and its watermark kept", s)
		}
	}
	// Enrolled again: the new secret works, the old one stays refused.
	secret, err := h.srv.Enrol(ctx, a.id, "S001")
	if err != nil {
		t.Fatal(err)
	}
	if got := feed(http.DefaultClient, h.hs.URL, secret); got != 200 {
		t.Errorf("feed with the new secret: %d, want 200", got)
	}
	if got := feed(http.DefaultClient, h.hs.URL, a.secret); got != 401 {
		t.Errorf("feed with the secret from before the retirement: %d, want 401", got)
	}
	// Head office restored from a backup taken while the till was retired
	// (its row as then): the secret issued since, signed with the
	// enrolment key, readmits it; the one from before stays refused.
	if _, err := h.srv.DB().Exec(ctx, `UPDATE tills SET retired_at = $2::timestamptz, enrolled_at = $2::timestamptz - interval '1 hour' WHERE till_id = $1`, a.id, at); err != nil {
		t.Fatal(err)
	}
	if got := feed(http.DefaultClient, h.hs.URL, a.secret); got != 401 {
		t.Errorf("restored: feed with the secret from before the retirement: %d, want 401", got)
	}
	if got := feed(http.DefaultClient, h.hs.URL, secret); got != 200 {
		t.Errorf("restored: feed with the secret issued after the retirement: %d, want 200 (readmitted)", got)
	}
}
