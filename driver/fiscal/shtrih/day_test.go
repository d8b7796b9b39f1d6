package shtrih_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
)

var update = flag.Bool("update", false, "rewrite testdata/fiscal golden files")

const goldenDay = "../../../testdata/fiscal/day-journal.json"

func TestFullDay(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) }
	r := newRig(t, rigOpts{emu: emulator.Config{Now: clock, LastFD: 1200}})
	ctx := ctxT(t)
	st, err := r.drv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ShiftOpen || st.Mode != 4 {
		t.Fatalf("fresh device: %v", st)
	}
	if err := r.drv.OpenShift(ctx, "Иванова А."); err != nil {
		t.Fatal(err)
	}
	loyalty := &fiscal.LoyaltyInfo{Card: "7000123412341234", Spent: decimal.NewFromInt(100), Earned: decimal.NewFromInt(15), Balance: decimal.NewFromInt(230)}
	checks := []fiscal.BonusCheck{
		{ID: "discount", Lines: basket(), Redeemed: []fiscal.Money{7502, 2498}, Money: fiscal.Payments{Cash: 30000}, Loyalty: loyalty},
		{ID: "counter", Lines: basket(), Redeemed: []fiscal.Money{7502, 2498}, Mode: fiscal.CounterProvisionMode, Money: fiscal.Payments{Electronic: 29990}, Loyalty: loyalty},
		{ID: "all-points", Lines: basket(), Redeemed: []fiscal.Money{30000, 9990}, Money: fiscal.Payments{}, Loyalty: loyalty},
		{ID: "no-points", Lines: basket(), Money: fiscal.Payments{Cash: 50000}},
		{ID: "return", Kind: fiscal.SaleReturn, Lines: basket()[1:], Money: fiscal.Payments{Cash: 9990}},
	}
	var saved []fiscal.Checkpoint
	for _, c := range checks {
		rc, err := fiscal.BuildReceipt(c)
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		rc.Cashier = "Иванова А."
		res, err := r.drv.PrintReceipt(ctx, rc, func(_ context.Context, cp fiscal.Checkpoint) error {
			saved = append(saved, cp)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if res.FD != saved[len(saved)-1].LastFD+1 || res.PrintPending {
			t.Errorf("%s: result %+v after checkpoint %+v", c.ID, res, saved[len(saved)-1])
		}
	}
	if err := r.drv.XReport(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.drv.ZReport(ctx); err != nil {
		t.Fatal(err)
	}
	j := r.em.Journal()
	if len(j) != 7 {
		t.Fatalf("journal has %d documents, want 7 (open, 5 receipts, close)", len(j))
	}
	if j[0].Kind != "shift_open" || j[0].T1021 != "Иванова А." || j[6].Kind != "shift_close" {
		t.Errorf("shift documents: %+v / %+v", j[0], j[6])
	}
	rec := j[1:6]
	for _, d := range rec {
		checkFFD(t, d)
	}
	// Discount: lines reduced (spec §10.3), cash only.
	if got := rec[0]; got.T1020 != 29990 || got.T1031 != 29990 || got.Change != 10 || got.T1217 != 0 ||
		got.Items[0].T1079 != 11249 || got.Items[0].T1043 != 22498 || got.Items[1].T1079 != 7492 {
		t.Errorf("discount receipt: %+v", got)
	}
	if got := rec[0].T1084; got == nil || got.Name != "Бонусная карта" || got.Value != "*1234 списано 100 начислено 15 баланс 230" {
		t.Errorf("1084: %+v", got)
	}
	if len(rec[0].Text) == 0 || rec[0].Text[0] != "Бонусная карта *1234" {
		t.Errorf("printed lines: %q", rec[0].Text)
	}
	// Counter-provision: full prices, 1217.
	if got := rec[1]; got.T1020 != 39990 || got.T1217 != 10000 || got.T1081 != 29990 || got.Items[0].T1079 != 15000 {
		t.Errorf("counter-provision receipt: %+v", got)
	}
	// 100 % points: zero receipt.
	if got := rec[2]; got.T1020 != 0 || got.Items[0].T1043 != 0 || got.Items[1].T1079 != 0 {
		t.Errorf("zero receipt: %+v", got)
	}
	if got := rec[4]; got.T1054 != 2 || got.T1020 != 9990 {
		t.Errorf("return: %+v", got)
	}
	for i, d := range rec {
		if d.T1021 != "Иванова А." || d.T1055 != 1 || d.Items[0].T1214 != 4 || d.Items[0].T1212 != 1 {
			t.Errorf("receipt %d tags: %+v", i, d)
		}
	}
	// The whole electronic journal of the day is a golden file: every tag of
	// every document, as the OFD would receive it.
	got, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(goldenDay, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenDay)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("journal differs from %s (run with -update after checking the change)", goldenDay)
	}
}
