package headoffice

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// TestERPPoisonRefused: ERP records head office used to accept although
// every till then refused them (freezing a card or a whole catalogue
// chain-wide), or that stopped every till's feed, or that every till's
// engine refused on each quote, are refused (422 naming the record) and
// nothing is written. A correction id that is no replica id still gets a
// lot every till takes. Afterwards a till's first load imports the whole
// feed with nothing refused.
func TestERPPoisonRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	lotAt := func(field, at string) string {
		return `{"version":1,"lots":[{"id":"LX","card":"2900000000018","points":"10","accrued_at":"2026-10-01T00:00:00Z","` + field + `":"` + at + `"}]}`
	}
	for _, c := range []struct{ what, body, want string }{
		{"a lot expiring in year 10000 in UTC", lotAt("expires_at", "9999-12-31T23:00:00-05:00"), `expires_at 10000-01-01T04:00:00Z outside 1..9999`},
		{"a lot accrued in year -1 in UTC", strings.Replace(lotAt("active_from", "2026-10-01T00:00:00Z"), `"accrued_at":"2026-10-01T00:00:00Z"`, `"accrued_at":"0000-01-01T00:00:00+01:00"`, 1), `accrued_at`},
		{"a group cycle through a stored group", `{"version":1,"groups":[{"id":"food","name":"Продукты","segment":"regular","parent":"dairy"}]}`,
			`groups[0] id \"food\": parent \"dairy\": its parents with the stored groups lead back`},
		{"a product named with a space", `{"version":1,"products":[{"id":"QP1","name":" ","group":"dairy","vat":"vat20"}]}`, `nothing to print on a receipt line`},
		{"a product named with a zero-width space", `{"version":1,"products":[{"id":"QP2","name":"\u200b","group":"dairy","vat":"vat20"}]}`, `nothing to print on a receipt line`},
		{"a product name with a line break", `{"version":1,"products":[{"id":"QP3","name":"Молоко\nESC","group":"dairy","vat":"vat10"}]}`, `control characters`},
		{"a product name with a line break", `{"version":1,"products":[{"id":"QP3","name":"Молоко\nESC","group":"dairy","vat":"vat10"}]}`, `control characters`},
		{"a barcode another product holds", `{"version":1,"products":[{"id":"QP6","name":"Дубль","group":"dairy","vat":"vat10","barcodes":["4600000010014"]}]}`,
			`barcode 4600000010014 is product \"1001\"'s`},
		{"a barcode that is a stored card's code", `{"version":1,"products":[{"id":"QP7","name":"Весовой","group":"dairy","vat":"vat10","barcodes":["2900000000018"]}]}`,
			`products[0] id \"QP7\": barcode 2900000000018 is a loyalty card's code`},
		{"a card whose code is a stored product's barcode", `{"version":1,"cards":[{"code":"4600000010014","kind":"bonus","state":"active"}]}`,
			`cards[0] code \"4600000010014\": code 4600000010014 is product \"1001\"'s barcode`},
		{"a card and a product of one code in one file", `{"version":1,"products":[{"id":"QP8","name":"Весовой","group":"dairy","vat":"vat10","barcodes":["2900000000995"]}],` +
			`"cards":[{"code":"2900000000995","kind":"bonus","state":"active"}]}`, `barcode 2900000000995 is a loyalty card's code`},
		{"a holder of 5000 bytes", `{"version":1,"cards":[{"code":"2900000000999","kind":"bonus","state":"active","holder":"` + strings.Repeat("x", 5000) + `"}]}`,
			`holder is 5000 bytes long, over 4096`},
	} {
		if code, body := call("POST", "/v1/erp/import", c.body); code != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 422 naming %q", c.what, code, body, c.want)
		}
	}

	// Moving a barcode: the old product without it, in the same import.
	if code, body := call("POST", "/v1/erp/import", `{"version":1,"products":[{"id":"QP6","name":"Дубль","group":"dairy","vat":"vat10","barcodes":["4600000010014"]},`+
		`{"id":"1001","name":"Молоко 3,2% 1 л","group":"dairy","vat":"vat10","last_purchase_price":"62.00"}]}`); code != http.StatusOK {
		t.Errorf("moving a barcode with its old product: %d %s", code, body)
	}

	// Programs every till's engine would refuse, and coarser points.
	bonus := demoReplica(t).Programs[0]
	for _, c := range []struct {
		what string
		mod  func(p *checkout.Program)
		want string
	}{
		{"an unknown all_or_nothing_mode", func(p *checkout.Program) { p.Redemption.AllOrNothingMode = "Balance" }, `unknown all_or_nothing_mode "Balance"`},
		{"a point value over the maximum", func(p *checkout.Program) { p.PointValue = checkout.MustMoney("1000000000000") }, `over the maximum 1000000.00`},
		{"a rule of 10^30 points", func(p *checkout.Program) {
			p.Accrual = append(p.Accrual, checkout.AccrualRule{ID: "huge", Kind: checkout.AccrualPerUnit, Points: checkout.MustPoints("1e30")})
		}, `over 10000% or 1000000000`},
	} {
		p := bonus
		p.Accrual = append([]checkout.AccrualRule(nil), p.Accrual...)
		c.mod(&p)
		_, err := s.Import(ctx, &store.Replica{Version: 1, Programs: []checkout.Program{p}})
		var ref *RefusedImport
		if !errors.As(err, &ref) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("program with %s: %v, want refused naming %q", c.what, err, c.want)
		}
	}
	fine := bonus
	fine.ID, fine.Promotions, fine.PointRounding = "PZ", nil, checkout.Rounding{Scale: 2}
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Programs: []checkout.Program{fine}}); err != nil {
		t.Fatal(err)
	}
	fine.PointRounding.Scale = 0
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Programs: []checkout.Program{fine}}); err == nil || !strings.Contains(err.Error(), "point_rounding.scale 0 below the 2 stored") {
		t.Errorf("points made coarser: %v, want refused", err)
	}
	fine.PointRounding.Scale = 3
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Programs: []checkout.Program{fine}}); err != nil {
		t.Errorf("points made finer: %v", err)
	}

	// Corrections.
	for _, c := range []struct{ what, body string }{
		{"expiring in year 10000 in UTC", `{"id":"c10000","card":"2900000000018","points":"10","reason":"qa","expires_at":"9999-12-31T23:00:00-05:00"}`},
	} {
		if code, body := call("POST", "/v1/erp/corrections", c.body); code != http.StatusUnprocessableEntity {
			t.Errorf("correction %s: %d %s, want 422", c.what, code, body)
		}
	}
	for _, id := range []string{"ticket#1001", "бонус-1", strings.Repeat("x", 64)} {
		if _, err := s.Correct(ctx, Correction{ID: id, Card: "2900000000018", Points: dec("10"), Reason: "goodwill"}); err != nil {
			t.Errorf("correction %q: %v", id, err)
		}
	}
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Lots: []store.ReplicaLot{lot("2900000000025", "ERP-c77", "5", demoNow, nil)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "c77", Card: "2900000000025", Points: dec("50"), Reason: "goodwill"}); err == nil || !strings.Contains(err.Error(), "already has a lot ERP-c77") {
		t.Errorf("a correction whose lot is taken: %v, want refused", err)
	}

	// A till loading afresh takes every record.
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	takeFeed(t, s, "S001-T01")
}

// TestStoredCatalogChecked: records an older head office stored and every
// till's feed import now refuses (a program the engine refuses, a product
// with nothing to print) are found by CheckCatalog, which Open logs; the
// demo catalog passes.
func TestStoredCatalogChecked(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckCatalog(ctx); err != nil {
		t.Fatalf("the demo catalog: %v", err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE catalog SET body = jsonb_set(body::jsonb, '{redemption,all_or_nothing_mode}', '"Balance"')::json
		WHERE section = 'programs' AND id = 'BONUS';
		UPDATE catalog SET body = jsonb_set(body::jsonb, '{name}', '" "')::json WHERE section = 'products' AND id = '1001'`); err != nil {
		t.Fatal(err)
	}
	err := s.CheckCatalog(ctx)
	for _, want := range []string{`programs[0] id "BONUS"`, `unknown all_or_nothing_mode "Balance"`, `id "1001": name " ": nothing to print`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckCatalog: %v, want it to name %q", err, want)
		}
	}
}

// TestMigration0007MarksUnknownCards: migration 0007 marks the entries an
// older build folded on cards it did not hold (still unknown at the
// upgrade) as folded on no card, so a return of such a sale gives nothing
// back. Its statement is run again here over such a row.
func TestMigration0007MarksUnknownCards(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	sql, err := migrationFS.ReadFile("migrations/0007_return_cap_unknown_cards.sql")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(sql), "UPDATE journal j SET no_card = true")
	if i < 0 {
		t.Fatal("migration 0007 has no no_card backfill")
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded, check_id) VALUES
		('S001-T01-old1', 'S001-T01', '9999999999999', 'redemption', -5, '{}', '\x00', true, 'c'),
		('S001-T01-old2', 'S001-T01', '2900000000018', 'redemption', -5, '{}', '\x00', true, 'c')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, string(sql[i:])); err != nil {
		t.Fatal(err)
	}
	var unknown, known bool
	if err := s.db.QueryRow(ctx, `SELECT (SELECT no_card FROM journal WHERE id = 'S001-T01-old1'), (SELECT no_card FROM journal WHERE id = 'S001-T01-old2')`).Scan(&unknown, &known); err != nil {
		t.Fatal(err)
	}
	if !unknown || known {
		t.Errorf("no_card of the entry on an unknown card %v, on a known one %v; want true, false", unknown, known)
	}
}
