package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/checkout"
	"tillagent/driver/scanner/classify"
)

func TestImportDemo(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	has, err := s.HasReplica(ctx)
	if err != nil || has {
		t.Fatalf("HasReplica before import = %v, %v", has, err)
	}
	st, err := s.ImportFile(ctx, demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	want := ImportStats{Stores: 2, Groups: 13, Products: 31, Programs: 3, Promotions: 3, CardKinds: 4, Cards: 8, Lots: 9, CardKeys: 1}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	// Idempotent: a second import changes no row count.
	counts := func() map[string]int {
		m := map[string]int{}
		for _, tbl := range []string{"stores", "product_groups", "products", "barcodes", "programs", "promotions", "card_kinds", "cards", "lots", "card_keys"} {
			var n int
			if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
				t.Fatal(err)
			}
			m[tbl] = n
		}
		return m
	}
	before := counts()
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatalf("second import: %v", err)
	}
	after := counts()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %d rows after re-import, %d before", k, after[k], v)
		}
	}
	if before["barcodes"] != 5 || before["lots"] != 9 {
		t.Errorf("barcodes %d lots %d, want 5 and 9", before["barcodes"], before["lots"])
	}
	if has, _ := s.HasReplica(ctx); !has {
		t.Fatal("HasReplica after import = false")
	}
	// Defaults applied: L-13-2 has no remaining → all 200 remain.
	var rem string
	if err := s.r.QueryRowContext(ctx, `SELECT remaining FROM lots l JOIN cards c ON c.id = l.card_id WHERE c.code = '2900000000018' AND lot_id = 'L-13-2'`).Scan(&rem); err != nil || rem != "200" {
		t.Fatalf("L-13-2 remaining = %q (%v), want 200", rem, err)
	}
	// Promotions are merged into their program on load.
	cat, err := s.catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cat.programs["BONUS"].Promotions); n != 3 {
		t.Fatalf("BONUS has %d promotions, want 3", n)
	}
	if got := cat.programs["FAMILY"].PointValue.String(); got != "0.10" {
		t.Fatalf("FAMILY point value %s, want 0.10", got)
	}
	chain, seg := cat.groupChain("meat")
	if strings.Join(chain, ",") != "meat,food" || seg != "fresh" {
		t.Fatalf("groupChain(meat) = %v %q", chain, seg)
	}
	if _, seg := cat.groupChain("dairy"); seg != "regular" {
		t.Fatalf("dairy inherits segment %q, want regular", seg)
	}
}

func TestEnsureDemoOnlyOnce(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	did, err := s.EnsureDemo(ctx, demoPath(t))
	if err != nil || !did {
		t.Fatalf("first EnsureDemo = %v, %v; want true", did, err)
	}
	did, err = s.EnsureDemo(ctx, demoPath(t))
	if err != nil || did {
		t.Fatalf("second EnsureDemo = %v, %v; want false", did, err)
	}
}

// minimal is a valid replica the error cases below break one field at a time.
const minimal = `{
 "version": 1,
 "stores": [{"id": "S1", "name": "Shop", "timezone": "Europe/Moscow"}],
 "groups": [{"id": "g", "name": "G"}],
 "products": [{"id": "p1", "name": "P", "group": "g", "vat": "vat20"}],
 "programs": [{"id": "P1", "name": "Prog", "point_value": "1", "point_rounding": {"scale": 0}, "redemption": {}, "negative_balance": {}}],
 "card_kinds": [{"id": "k", "name": "K", "kind": "bonus", "program": "P1"}],
 "cards": [{"code": "2900000000018", "kind": "k", "state": "active"}],
 "lots": [{"id": "L1", "card": "2900000000018", "points": "10", "accrued_at": "2026-01-01T00:00:00Z"}]
}`

func TestImportErrorsNameTheRecord(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown program", `"program": "P1"}]`, `"program": "P9"}]`, `card_kinds[0] id "k": unknown program "P9"`},
		{"card program", `"kind": "k", "state": "active"`, `"kind": "k", "program": "P9", "state": "active"`, `cards[0] code "2900000000018": unknown program "P9"`},
		{"card state", `"state": "active"`, `"state": "frozen"`, `cards[0] code "2900000000018": state "frozen"`},
		{"blocked without reason", `"state": "active"`, `"state": "blocked"`, `cards[0] code "2900000000018": blocked card needs a block_reason`},
		{"lot of unknown card", `"card": "2900000000018"`, `"card": "1"`, `lots[0] id "L1": unknown card "1"`},
		{"remaining above points", `"points": "10",`, `"points": "10", "remaining": "11",`, `lots[0] id "L1": remaining 11 outside 0..10`},
		{"bad vat", `"vat20"`, `"vat18"`, `products[0] id "p1": vat "vat18"`},
		{"unknown group", `"group": "g"`, `"group": "h"`, `products[0] id "p1": unknown group "h"`},
		{"bad zone", `Europe/Moscow`, `Mars/Olympus`, `stores[0] id "S1": timezone "Mars/Olympus"`},
		{"zero point value", `"point_value": "1"`, `"point_value": "0"`, `programs[0] id "P1": point_value 0.00 must be positive`},
		{"unknown field", `"holder_name"`, `"holder_name"`, ``}, // placeholder, replaced below
		{"money precision", `"point_value": "1"`, `"point_value": "1.001"`, `programs[0] id "P1": parse money "1.001": more than 2 decimal places`},
		{"date without time", `"accrued_at": "2026-01-01T00:00:00Z"`, `"accrued_at": "2026-01-01"`, `lots[0] id "L1": parsing time "2026-01-01"`},
		{"wrong type", `"state": "active"`, `"state": 1`, `cards[0] code "2900000000018": state is a number, want text`},
		{"unknown section", `"version": 1,`, `"version": 1, "coupons": [],`, `unknown section "coupons"`},
		{"version", `"version": 1`, `"version": 2`, `version 2: this build reads version 1`},
		{"unquoted code", `"code": "2900000000018"`, `"code": 2900000000018`, `cards[0] code "2900000000018": code is a number, want text: quote it (code: "2900000000018")`},
	}
	cases[10] = struct{ name, old, new, want string }{"unknown field", `"state": "active"`, `"state": "active", "colour": "red"`, `cards[0] code "2900000000018": json: unknown field "colour"`}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(minimal, c.old) {
				t.Fatalf("fixture lacks %q", c.old)
			}
			data := strings.Replace(minimal, c.old, c.new, 1)
			s := mustOpen(t)
			path := filepath.Join(t.TempDir(), "r.json")
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := s.ImportFile(ctx, path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("import: err = %v, want it to contain %q", err, c.want)
			}
			// All or nothing: not even the valid stores were written.
			var n int
			s.r.QueryRowContext(ctx, `SELECT count(*) FROM stores`).Scan(&n)
			if n != 0 {
				t.Fatalf("%d stores written by a failed import", n)
			}
		})
	}
}

func TestImportReferencesExistingRecords(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	// A delta file with only a card and a lot, referring to the demo's kinds.
	delta := `{"version": 1,
	 "cards": [{"code": "2900000009999", "kind": "bonus", "state": "issued"}],
	 "lots": [{"id": "N1", "card": "2900000009999", "points": "5", "accrued_at": "2026-11-01T00:00:00Z"},
	          {"id": "L-13-1", "card": "2900000000018", "points": "150", "remaining": "90", "accrued_at": "2026-06-01T10:00:00+03:00",
	           "active_from": "2026-06-15T10:00:00+03:00", "expires_at": "2026-12-12T10:00:00+03:00"}]}`
	r, err := ParseReplica([]byte(delta), "json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatalf("import delta: %v", err)
	}
	b, err := s.Spendable(ctx, "2900000000018", demoNow)
	if err != nil {
		t.Fatal(err)
	}
	// 90 (L-13-1 updated) + 200 (L-13-2) active; L-13-3 (200) not yet.
	if b.Spendable.String() != "290" || b.Total.String() != "490" {
		t.Fatalf("balance after delta = %+v, want spendable 290 total 490", b)
	}
	// A reference to nothing is still refused.
	r, err = ParseReplica([]byte(`{"version": 1, "cards": [{"code": "1", "kind": "gold", "state": "active"}]}`), "json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, r); err == nil || !strings.Contains(err.Error(), `cards[0] code "1": unknown card kind "gold"`) {
		t.Fatalf("import with unknown kind: %v", err)
	}
}

func TestYAMLAndJSONAgree(t *testing.T) {
	data, err := os.ReadFile(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	y, err := ParseReplica(data, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseReplica(js, "json")
	if err != nil {
		t.Fatalf("re-parse JSON of the demo: %v", err)
	}
	js2, _ := json.Marshal(j)
	if string(js) != string(js2) {
		t.Fatalf("YAML → JSON → JSON round trip differs")
	}
	// Exact decimals survive YAML: "0.10" must not become a float.
	if got := y.Programs[2].PointValue; !got.Equal(checkout.MustMoney("0.10")) {
		t.Fatalf("FAMILY point_value = %s", got)
	}
	if y.Cards[0].History.Month != "2026-11" {
		t.Fatalf("history month = %q", y.Cards[0].History.Month)
	}
}

func TestParseReplicaYAMLEdgeCases(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", ``, "empty document"},
		{"not a mapping", `- 1`, "cannot unmarshal array"},
		{"duplicate key", "version: 1\nversion: 1\n", "duplicate key"},
		{"infinite number", "version: .inf\n", "not a finite decimal"},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", "too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseReplica([]byte(c.in), "yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestPublicKeys(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	keys, err := s.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != 1 || len(keys[0].Key) != 32 || keys[0].ValidTo.IsZero() {
		t.Fatalf("keys = %+v", keys)
	}
	if !keys[0].ValidAt(demoNow) || keys[0].ValidAt(demoNow.AddDate(1, 0, 0)) {
		t.Fatalf("ValidAt wrong for %+v", keys[0])
	}
	// The demo key is the public half of the documented demo seed (0x07 × 32).
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	k, err := s.CardKey(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(k.Public, []byte("token"), ed25519.Sign(priv, []byte("token"))) {
		t.Fatal("demo key does not verify a signature of the demo seed")
	}
	if _, err := s.CardKey(ctx, 2); !errors.Is(err, classify.ErrUnknownKey) {
		t.Fatalf("CardKey(2): %v, want ErrUnknownKey", err)
	}
}

// TestImportRetiresByValue: an import deletes nothing, so head office
// retires a lot by sending it with nothing remaining and a promotion by
// ending its window (docs/replica.md, "Nothing is deleted by an import").
func TestImportRetiresByValue(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	quote := func() checkout.Result {
		t.Helper()
		in, err := s.QuoteInput(ctx, basket(), []string{"2900000000018"}, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		ten := checkout.MustPoints("10")
		in.Redeem = &ten // taken from the lot expiring first
		r, err := checkout.Quote(in)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	promoted := func(r checkout.Result) bool {
		for _, e := range r.Explain {
			if e.Code == checkout.CodePromotion && e.Rule == "BONUS/dairy-x2" {
				return true
			}
		}
		return false
	}
	before := quote()
	if !before.Cards[0].SpendableBefore.Equal(checkout.MustPoints("300")) || !promoted(before) ||
		len(before.Redemption.LotsConsumed) != 1 || before.Redemption.LotsConsumed[0].LotID != "L-13-1" {
		t.Fatalf("demo: spendable %s, dairy promotion %v, lots %v; want 300, on, L-13-1",
			before.Cards[0].SpendableBefore, promoted(before), before.Redemption.LotsConsumed)
	}
	delta, err := ParseReplica([]byte(`{"version": 1,
		"lots": [{"id": "L-13-1", "card": "2900000000018", "points": "150", "remaining": "0",
			"accrued_at": "2026-06-01T10:00:00+03:00", "active_from": "2026-06-15T10:00:00+03:00", "expires_at": "2026-12-12T10:00:00+03:00"}],
		"promotions": [{"program": "BONUS", "id": "dairy-x2", "from": "2026-11-16", "to": "2026-11-20", "scope": "groups", "groups": ["dairy"], "multiplier": "2"}]}`), "json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, delta); err != nil {
		t.Fatal(err)
	}
	after := quote()
	if got := after.Cards[0].SpendableBefore; !got.Equal(checkout.MustPoints("200")) {
		t.Errorf("spendable after retiring L-13-1 = %s, want 200", got)
	}
	if l := after.Redemption.LotsConsumed; len(l) != 1 || l[0].LotID != "L-13-2" {
		t.Errorf("lots consumed after retiring L-13-1 = %v, want L-13-2 only", l)
	}
	if promoted(after) {
		t.Error("the ended promotion dairy-x2 still multiplies the accrual")
	}
}
