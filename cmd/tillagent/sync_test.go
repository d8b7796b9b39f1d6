package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/config"
	"tillagent/internal/store"
	"tillagent/internal/testpki"
	"tillagent/sync/headoffice"
)

// The agent with sync on, against a real head office on PostgreSQL: a sale
// reaches head office on `sync now`, balances agree; with head office down
// the till still sells and says why sync failed.
func TestAgentSyncsWithHeadOffice(t *testing.T) {
	ctx := context.Background()
	srv, secretFile := syncHO(t, store.OfflineLimits{CardCap: decimal.NewFromInt(60)})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, hs.URL, secretFile
		c.Sync.Interval = time.Hour // only `sync now` below
	})
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	// A till that syncs redeems nothing until a feed brought head
	// office's offline rules (TestRedemptionWaitsForTheFirstLoad).
	h.must(200, "POST", "/v1/sync/now", nil, nil)
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("sync-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")), &a)

	var st struct {
		Backlog int    `json:"backlog"`
		State   string `json:"state"`
	}
	h.must(200, "POST", "/v1/sync/now", nil, &st)
	if st.Backlog != 0 {
		t.Fatalf("after sync now: %+v", st)
	}
	var status struct {
		Journal struct{ Backlog int }
		Sync    struct{ State string }
	}
	h.must(200, "GET", "/v1/status", nil, &status)
	if status.Journal.Backlog != 0 || status.Sync.State == "" {
		t.Fatalf("status after sync: %+v", status)
	}
	// The export (like the feed) shows a change once no older transaction
	// anywhere in the cluster is still open, so other tests sharing the
	// server may delay it: wait for it, and let the feed catch up too.
	var exp *headoffice.Export
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		if exp, err = srv.ExportJournal(ctx, "", 100); err != nil {
			t.Fatal(err)
		}
		var c cardAnswer
		h.must(200, "GET", "/v1/cards/"+card, nil, &c)
		if len(exp.Entries) == len(a.Journal) && c.Balance == a.Cards[0].Balance || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
		h.must(200, "POST", "/v1/sync/now", nil, nil)
	}
	if len(exp.Entries) != len(a.Journal) {
		t.Fatalf("head office has %d entries, the sale wrote %d", len(exp.Entries), len(a.Journal))
	}
	// Head office gets each entry with the fiscal document of its receipt.
	for _, e := range exp.Entries {
		var got struct{ FD, FP uint32 }
		if err := json.Unmarshal(e.Entry, &got); err != nil || got.FD != a.Fiscal.FD || got.FP != a.Fiscal.FP {
			t.Fatalf("head office entry %s: FD %d FP %d, the receipt is FD %d FP %d (%v)", e.Entry, got.FD, got.FP, a.Fiscal.FD, a.Fiscal.FP, err)
		}
	}
	bs, err := srv.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bs {
		if b.Card == card {
			found = true
			if b.Balance.String() != a.Cards[0].Balance {
				t.Fatalf("head office balance %s, till %s", b.Balance, a.Cards[0].Balance)
			}
		}
	}
	if !found {
		t.Fatalf("card %s not in head office's balances", card)
	}
	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Balance != a.Cards[0].Balance {
		t.Fatalf("till after the feed: %+v, before %s", c, a.Cards[0].Balance)
	}

	metricsShow := func(want ...string) {
		t.Helper()
		code, body := h.do("GET", "/metrics", nil, nil)
		for _, s := range want {
			if code != 200 || !strings.Contains(string(body), s+"\n") {
				t.Errorf("metrics lack %q:\n%s", s, body)
			}
		}
	}
	metricsShow("tillagent_journal_backlog 0", "tillagent_sync_consecutive_failures 0", "tillagent_sync_refused_entries 0")

	// The till enrolled again at head office (a new secret) while the
	// agent still has the old one: sync says so, not "no connection".
	fresh, err := srv.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if e := h.refusal(502, "sync.unauthorized", "POST", "/v1/sync/now", nil); !strings.Contains(e.Error.Hint, "enrol the till") {
		t.Errorf("unauthorized sync hint %q", e.Error.Hint)
	}
	// The technician writes the new secret: the next sync uses it, with
	// no restart.
	if err := os.WriteFile(secretFile, []byte(fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(200, "POST", "/v1/sync/now", nil, nil)

	// Head office goes away: the till sells on, and sync says why not.
	hs.Close()
	h.must(201, "POST", "/v1/sales", saleBody("sync-2", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	// No cycle ran since the sale (it spent no points, so kicked none):
	// the sync status' backlog is the journal's now, not the last cycle's
	// 0 (found by a QA pass).
	var now struct{ Backlog int }
	h.must(200, "GET", "/v1/sync", nil, &now)
	var nowStatus struct{ Sync struct{ Backlog int } }
	h.must(200, "GET", "/v1/status", nil, &nowStatus)
	if now.Backlog != 1 || nowStatus.Sync.Backlog != 1 {
		t.Errorf("backlog after an unsynced sale: /v1/sync %d, /v1/status sync %d, want 1", now.Backlog, nowStatus.Sync.Backlog)
	}
	h.refusal(502, "sync.failed", "POST", "/v1/sync/now", nil)
	metricsShow("tillagent_journal_backlog 1")
	if _, body := h.do("GET", "/metrics", nil, nil); strings.Contains(string(body), "tillagent_sync_consecutive_failures 0\n") {
		t.Errorf("metrics show no failed sync with head office down:\n%s", body)
	}
	// Offline, a card may spend at most head office's offline cap (60) in
	// points head office has not folded: 30 now, then 31 more is refused.
	h.must(201, "POST", "/v1/sales", saleBody("sync-3", []string{card}, "30", "500.00", line(1, "1001", "2", "89.90")), nil)
	e := h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("sync-4", []string{card}, "31", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Detail, "offline_card_cap") {
		t.Fatalf("refusal: %+v", e)
	}
	h.must(201, "POST", "/v1/sales", saleBody("sync-5", []string{card}, "30", "500.00", line(1, "1001", "2", "89.90")), nil)
}

// TestRedemptionPushesAtOnce: on a till online with head office, the till
// cap (100 points on all cards until head office folds them) does not hold
// for a whole sync interval (an hour here): a sale that spent points kicks
// the sync loop, head office folds the redemption, and the card can spend
// again within moments, with no `sync now`.
func TestRedemptionPushesAtOnce(t *testing.T) {
	srv, secretFile := syncHO(t, store.OfflineLimits{CardCap: decimal.NewFromInt(150), TillCap: decimal.NewFromInt(100)})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.SecretFile = true, hs.URL, secretFile
		c.Sync.Interval = time.Hour
	})
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(200, "POST", "/v1/sync/now", nil, nil) // the first load
	basket := line(1, "1001", "20", "89.90")
	h.must(201, "POST", "/v1/sales", saleBody("kick-1", []string{card}, "100", "2000.00", basket), nil)
	var c cardLookup
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c = h.card(card); c.CanSpend && c.Spendable == "100" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after a sale used the till cap, online: %+v, want spendable 100 (folded by head office)", c)
		}
	}
	if c.SpendableLimit != store.OfflineTillCap {
		t.Errorf("after the fold: %+v, want the till cap (100) binding again", c)
	}
	h.must(201, "POST", "/v1/sales", saleBody("kick-2", []string{card}, "100", "2000.00", basket), nil)
}

// TestAgentSyncsOverMutualTLS: the agent configured with a till
// certificate (sync.cert_file, sync.key_file) and no secret syncs with a
// head office that checks tills' certificates.
func TestAgentSyncsOverMutualTLS(t *testing.T) {
	srv, _ := syncHO(t, store.OfflineLimits{})
	ca := testpki.NewCA(t, "tills CA")
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	pair := ca.Till(t, "S001-T01")
	h := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.CAFile, c.Sync.CertFile, c.Sync.KeyFile = true, hs.URL, ca.File, pair.CertFile, pair.KeyFile
		c.Sync.Interval = time.Hour // only `sync now` below
	})
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(200, "POST", "/v1/sync/now", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("mtls-1", []string{card}, "", "500.00", line(1, "1001", "2", "89.90")), nil)
	var st struct {
		Backlog int `json:"backlog"`
	}
	h.must(200, "POST", "/v1/sync/now", nil, &st)
	if st.Backlog != 0 {
		t.Fatalf("after sync now over mutual TLS: %+v", st)
	}
	// The certificate is valid for an hour (testpki): /metrics counts down.
	_, body := h.do("GET", "/metrics", nil, nil)
	var left float64
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "tillagent_sync_certificate_expiry_seconds "); ok {
			left, _ = strconv.ParseFloat(v, 64)
		}
	}
	if left < 3000 || left > 3600 {
		t.Errorf("certificate expiry metric %v s, want just under an hour:\n%s", left, body)
	}
	// A certificate for a till head office has not enrolled: the hint
	// names the certificate, not a secret.
	other := ca.Till(t, "S001-T99")
	h2 := newHarness(t, func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.CAFile, c.Sync.CertFile, c.Sync.KeyFile = true, hs.URL, ca.File, other.CertFile, other.KeyFile
		c.Sync.Interval, c.Till.TillID = time.Hour, "S001-T99"
	})
	if e := h2.refusal(502, "sync.unauthorized", "POST", "/v1/sync/now", nil); !strings.Contains(e.Error.Hint, "sync.cert_file") {
		t.Errorf("unauthorized hint with a certificate: %q", e.Error.Hint)
	}
}
