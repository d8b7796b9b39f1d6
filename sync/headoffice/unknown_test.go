package headoffice

import (
	"context"
	"encoding/json"
	"testing"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// TestUnknownCardsReport: two tills accrue on a card head office does not
// hold (lost with a restore, say) and on a demo card. The report lists the
// unknown card alone: its three entries, their 15 points, two tills, not
// known now; the scrape counts the three entries. Once ERP imports the
// card it is listed as known now, its balance still 0: the entries were
// folded as nothing, support corrects them.
func TestUnknownCardsReport(t *testing.T) {
	s, hs, _ := servedHO(t, pgtest.DSN(t))
	ctx := context.Background()
	if _, err := s.Enrol(ctx, "S001-T02", "S001"); err != nil {
		t.Fatal(err)
	}
	const lost = "4400000000017"
	accrue := func(card, pts string) store.Entry {
		return store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec(pts), PurchaseKop: 700, CreatedAt: demoNow,
			Lots: []store.LotChange{{Create: true, Delta: dec(pts), ActiveFrom: demoNow}}}
	}
	wantStatuses(t, "T01", (&lateTill{}).push(t, s, accrue(lost, "7"), accrue(demoCard, "7"), accrue(lost, "5")), wire.Applied, wire.Applied, wire.Applied)
	wantStatuses(t, "T02", (&lateTill{till: "S001-T02"}).push(t, s, accrue(lost, "3")), wire.Applied)

	report := func() []UnknownCard {
		t.Helper()
		code, data := httpCall(t, hs, "GET", "/v1/erp/reports/unknown-cards", nil, "")
		var u UnknownCardPage
		if code != 200 || json.Unmarshal(data, &u) != nil || u.More {
			t.Fatalf("unknown cards report: %d %s", code, data)
		}
		return u.Cards
	}
	u := report()
	if len(u) != 1 || u[0].Card != lost || u[0].Entries != 3 || u[0].Points.String() != "15" || u[0].Tills != 2 || u[0].KnownNow ||
		u[0].First.IsZero() || u[0].Last.Before(u[0].First) {
		t.Fatalf("report %+v, want %s alone: 3 entries, 15 points, 2 tills, not known now", u, lost)
	}
	if got := metricValue(t, s, "headoffice_journal_unknown_card_entries"); got != 3 {
		t.Errorf("unknown card entries in /metrics: %v, want 3", got)
	}
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: lost, Kind: "bonus", State: checkout.StateActive}}}); err != nil {
		t.Fatal(err)
	}
	if u := report(); len(u) != 1 || !u[0].KnownNow || u[0].Entries != 3 {
		t.Fatalf("after ERP imported the card: %+v, want it known now with its 3 entries", u)
	}
	if b := balanceOf(t, s, lost); b != "0" {
		t.Errorf("imported card's balance %s, want 0 (its entries were folded as nothing)", b)
	}
	if code, _ := httpCall(t, hs, "GET", "/v1/erp/reports/unknown-cards", nil, "wrong"); code != 401 {
		t.Errorf("a till's credentials on the report: %d, want 401", code)
	}
}
