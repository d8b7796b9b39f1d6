package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestDebtFollowsTheNegativeBalancePolicy: four programs that differ only
// in negative_balance; on each a card with one active 100-point lot is
// overdrawn by 50 (a till redeemed 150 offline), pushed over HTTP. forbid
// and deduct_refund keep no debt (50 written off), limit 30 keeps 30 (20
// written off), allow keeps all 50; every overdraft is flagged. Then an
// accrual active at once settles the allow card's debt, a correction on
// the forbid card may drive it below zero (support's deliberate deduction),
// and a later overdraft on the limit card, already at its limit, is all
// written off.
func TestDebtFollowsTheNegativeBalancePolicy(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	demo := demoReplica(t)
	if _, err := s.Import(ctx, demo); err != nil {
		t.Fatal(err)
	}
	modes := []checkout.NegativeBalancePolicy{
		{Mode: checkout.NegativeForbid}, {Mode: checkout.NegativeAllow},
		{Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("30")}, {Mode: checkout.NegativeDeductRefund},
	}
	extra := &store.Replica{Version: 1}
	at := demoNow.Add(-48 * time.Hour)
	for i, m := range modes {
		p := demo.Programs[0]
		p.ID, p.Promotions, p.NegativeBalance = fmt.Sprintf("P-%s", m.Mode), nil, m
		extra.Programs = append(extra.Programs, p)
		extra.CardKinds = append(extra.CardKinds, store.ReplicaCardKind{ID: "k-" + p.ID, Name: p.ID, Kind: checkout.KindBonus, Program: p.ID})
		code := fmt.Sprintf("299000000000%d", i)
		extra.Cards = append(extra.Cards, store.ReplicaCard{Code: code, Kind: "k-" + p.ID, State: checkout.StateActive})
		extra.Lots = append(extra.Lots, store.ReplicaLot{ID: "L" + code, Card: code, Points: checkout.MustPoints("100"), AccruedAt: at})
	}
	if _, err := s.Import(ctx, extra); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	n := 0
	prev := ""
	push := func(es ...store.Entry) {
		t.Helper()
		b := wire.Batch{TillID: "S001-T01"}
		for _, e := range es {
			n++
			e.ID = fmt.Sprintf("S001-T01-%026d", n)
			e.CheckID, e.CreatedAt = fmt.Sprintf("c%d", n), demoNow
			for i := range e.Lots {
				if e.Lots[i].Create {
					e.Lots[i].LotID = e.ID
				}
			}
			b.Entries = append(b.Entries, wire.Entry{Entry: e, Prev: prev})
			prev = e.ID
		}
		body, _ := json.Marshal(b)
		req, _ := http.NewRequest("POST", hs.URL+"/v1/till/journal", bytes.NewReader(body))
		req.SetBasicAuth("S001-T01", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("push: %s %s", resp.Status, data)
		}
		res, err := wire.DecodeBatchResult(data)
		if err != nil || res.FoldedThrough != prev {
			t.Fatalf("push: %+v %v, want folded through %s", res, err, prev)
		}
	}
	redeem := func(code, pts string) store.Entry {
		return store.Entry{CardCode: code, Kind: store.KindRedemption, Points: dec("-" + pts), AmountKop: 100,
			Lots: []store.LotChange{{LotID: "L" + code, Delta: dec("-" + pts)}}}
	}
	var es []store.Entry
	for i := range modes {
		es = append(es, redeem(fmt.Sprintf("299000000000%d", i), "150"))
	}
	push(es...)
	debt := func(code string) string {
		var d string
		if err := s.db.QueryRow(ctx, `SELECT debt::text FROM cards WHERE code = $1`, code).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	written := func() map[string]string {
		wos, err := s.WriteOffs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum := map[string]decimal.Decimal{}
		for _, w := range wos {
			sum[w.Card+" "+w.Mode] = sum[w.Card+" "+w.Mode].Add(w.Points.Decimal())
		}
		out := map[string]string{}
		for k, v := range sum {
			out[k] = v.String()
		}
		return out
	}
	for i, c := range []struct{ debt, balance, written string }{
		{"0", "0", "50"},    // forbid
		{"50", "-50", ""},   // allow
		{"30", "-30", "20"}, // limit 30
		{"0", "0", "50"},    // deduct_refund
	} {
		code := fmt.Sprintf("299000000000%d", i)
		wo := written()[code+" "+string(modes[i].Mode)]
		if d, b := debt(code), balanceOf(t, s, code); d != c.debt || b != c.balance || wo != c.written {
			t.Errorf("%s (card %s): debt %s, balance %s, written off %q; want %s, %s, %q", modes[i].Mode, code, d, b, wo, c.debt, c.balance, c.written)
		}
	}
	ods, err := s.Overdrafts(ctx)
	if err != nil || len(ods) != 4 {
		t.Fatalf("overdrafts %+v, %v; want all four flagged", ods, err)
	}
	for _, o := range ods {
		if o.Points.String() != "50" {
			t.Errorf("overdraft %+v, want 50 points", o)
		}
	}
	// allow: an accrual active at once settles 40 of the debt; the balance is unchanged by settling.
	push(store.Entry{CardCode: "2990000000001", Kind: store.KindAccrual, Points: dec("40"),
		Lots: []store.LotChange{{Delta: dec("40"), Create: true, ActiveFrom: demoNow}}})
	if d, b := debt("2990000000001"), balanceOf(t, s, "2990000000001"); d != "10" || b != "-10" {
		t.Errorf("allow card after a 40-point accrual: debt %s balance %s, want 10 and -10", d, b)
	}
	// limit, already at 30: a second overdraft of 25 is all written off.
	push(store.Entry{CardCode: "2990000000002", Kind: store.KindRedemption, Points: dec("-25"), AmountKop: 100})
	if d, wo := debt("2990000000002"), written()["2990000000002 limit"]; d != "30" || wo != "45" {
		t.Errorf("limit card after another 25 overdrawn: debt %s, written off %s; want 30 and 45", d, wo)
	}
	// forbid: a correction by support is not limited by the policy.
	if _, err := s.Correct(ctx, Correction{ID: "fine", Card: "2990000000000", Points: dec("-70"), Reason: "fraud"}); err != nil {
		t.Fatal(err)
	}
	if d := debt("2990000000000"); d != "70" {
		t.Errorf("forbid card after a −70 correction: debt %s, want 70 (corrections keep their debt)", d)
	}
	// The write-offs report over HTTP.
	req, _ := http.NewRequest("GET", hs.URL+"/v1/erp/reports/writeoffs", nil)
	req.Header.Set("Authorization", "Bearer erp-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page WriteOffPage
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if rep := page.WriteOffs; page.More || len(rep) != 4 || rep[0].Card != "2990000000002" || rep[0].Points.String() != "25" || rep[0].Program != "P-limit" {
		t.Fatalf("write-offs report %+v, want 4 with the limit card's 25 newest", page)
	}
}
