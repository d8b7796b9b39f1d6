package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/scanconf"
	"tillagent/internal/config"
	"tillagent/internal/store"
)

const demoReplica = "../../testdata/demo/replica.yaml"

type wantCard struct {
	code, accrued    string
	canSpend         bool
	reason, discount string // reason prefix; discount percent ("" = none)
}

// TestQuoteEndToEnd prices the checks in testdata/checks against the demo
// replica. Every expected number is worked by hand in the comment beside it
// (Moscow time, 2026-11-23 unless the case says otherwise).
func TestQuoteEndToEnd(t *testing.T) {
	cases := []struct {
		name, check                      string
		args                             []string
		sum, discount, redeemed, payable string
		max, maxLimit, spent             string // "" = no redemption block expected
		lots                             string // lots consumed "id=points,…"
		lineRedeemed                     string // money paid with points per line "43.00,23.00,…" ("" = not checked)
		cards                            []wantCard
	}{
		{
			// Milk 2×89.90=179.80, bread 65.00, cigarettes 210.00, wine 799.00 → 1253.80.
			// Line caps: milk 179.80−2×62.00×1.10=43.40, bread 65.00−38.00×1.10=23.20,
			// tobacco 0, wine (segment alcohol) 0 → 66.60 → 66 points (limit lines;
			// balance 300, 50 % of check 626). 66 points = 66.00 ₽, split by the line
			// caps in points (43 and 23) as 43.00/23.00; taken from L-13-1, the
			// soonest-expiring lot. Accrual 5 % (last month 12 000 ≥ 10 000) on the
			// money part of eligible lines, milk ×2 (dairy promotion):
			// 136.80×5 %×2 + 42.00×5 % = 15.78 → 15.
			// The agent card earns its fixed 100 (check ≥ 1000.00).
			name: "bonus card redeems, agent card beside it", check: "bonus-basket.json",
			args: []string{"--cards", "2900000000018,2600000000017", "--redeem", "66"},
			sum:  "1253.80", discount: "0.00", redeemed: "66.00", payable: "1187.80",
			max: "66", maxLimit: checkout.LimitLines, spent: "66", lots: "L-13-1=66", lineRedeemed: "43.00,23.00,0.00,0.00",
			cards: []wantCard{{code: "2900000000018", accrued: "15", canSpend: true}, {code: "2600000000017", accrued: "100"}},
		},
		{
			// 27 300 ₽ all time → 5 % level. Cheese 749.90×5 % = 37.495 → 37.50 (half up);
			// cigarettes get no discount (15-FZ art. 16). 959.90 − 37.50 = 922.40.
			name: "discount card", check: "discount-card.json", args: []string{"--cards", "2800000000011"},
			sum: "959.90", discount: "37.50", redeemed: "0.00", payable: "922.40",
			cards: []wantCard{{code: "2800000000011", accrued: "0", discount: "5"}},
		},
		{
			// Butter 2×189.90=379.80 −5 % (dairy) 18.99; croissants 3×59.90=179.70 −3 %
			// (bakery) 5.391→5.39; bananas 1.2×129.90=155.88. Sum 715.38, discount 24.38,
			// 691.00 left. Max redemption 20 % of 691.00 = 138.20 ₽ = 1382 points at
			// 0.10 ₽ (balance 2500). Accrual 2 % of the money part 552.80 = 11.056 → 11.
			name: "combined card: category discount, redeem the maximum", check: "family-card.json",
			args: []string{"--cards", "2700000000014", "--redeem", "1382"},
			sum:  "715.38", discount: "24.38", redeemed: "138.20", payable: "552.80",
			max: "1382", maxLimit: checkout.LimitCheckPercent, spent: "1382", lots: "L-15-1=1382",
			cards: []wantCard{{code: "2700000000014", accrued: "11", canSpend: true}},
		},
		{
			// Same check without redemption: 2 % of 691.00 = 13.82 → 13 points.
			name: "combined card without redemption", check: "family-card.json", args: []string{"--cards", "2700000000014"},
			sum: "715.38", discount: "24.38", redeemed: "0.00", payable: "691.00",
			max: "1382", maxLimit: checkout.LimitCheckPercent, spent: "0",
			cards: []wantCard{{code: "2700000000014", accrued: "13", canSpend: true}},
		},
		{
			// Issued card earns (3 %: no purchases last month) but cannot spend:
			// 3×99.90 + 6×39.90 = 539.10 × 3 % = 16.173 → 16.
			name: "issued card earns only", check: "grocery.json", args: []string{"--cards", "2900000000025"},
			sum: "539.10", discount: "0.00", redeemed: "0.00", payable: "539.10",
			max: "0", maxLimit: checkout.LimitCardState, spent: "0",
			cards: []wantCard{{code: "2900000000025", accrued: "16", reason: checkout.ReasonIssued}},
		},
		{
			name: "blocked card does nothing", check: "grocery.json", args: []string{"--cards", "2900000000032"},
			sum: "539.10", discount: "0.00", redeemed: "0.00", payable: "539.10",
			max: "0", maxLimit: checkout.LimitCardState, spent: "0",
			cards: []wantCard{{code: "2900000000032", accrued: "0", reason: checkout.ReasonBlocked + ": lost"}},
		},
		{
			// 35 000 ₽ last month → 7 %. Coffee beans 2×1499.00: 209.86 + 50/unit ×2 = 309.86,
			// ×2 (coffee week) = 619.72; tea 329.00×7 % = 23.03 ×3 = 69.09. 688.81 → 688.
			// Spent 4980 of the 5000 monthly cap → at most 20 (limit monthly_cap).
			name: "promotions and the monthly cap", check: "coffee.json", args: []string{"--cards", "2900000000049"},
			sum: "3327.00", discount: "0.00", redeemed: "0.00", payable: "3327.00",
			max: "20", maxLimit: checkout.LimitMonthlyCap, spent: "0",
			cards: []wantCard{{code: "2900000000049", accrued: "688", canSpend: true}},
		},
		{
			// Saturday 28 Nov: black friday ×1.5 (all goods) × dairy ×2 = ×3 on kefir:
			// 100.00×5 %×3 = 15; apples 200.00×5 %×1.5 = 15. Total 30. Caps: kefir
			// 100.00−58.00×1.1 = 36.20, apples 200.00−120.00×1.1 = 68.00 → 104.
			name: "black friday multiplies the dairy promotion", check: "black-friday.json",
			args: []string{"--cards", "2900000000018", "--at", "2026-11-28T12:00"},
			sum:  "300.00", discount: "0.00", redeemed: "0.00", payable: "300.00",
			max: "104", maxLimit: checkout.LimitLines, spent: "0",
			cards: []wantCard{{code: "2900000000018", accrued: "30", canSpend: true}},
		},
		{
			// Bread 45.00 − 38.00×1.1 = 3.20 → 3 points, below the 10-point minimum.
			name: "below the minimum redemption", check: "small.json", args: []string{"--cards", "2900000000018"},
			sum: "45.00", discount: "0.00", redeemed: "0.00", payable: "45.00",
			max: "0", maxLimit: checkout.LimitMinRedeem, spent: "0",
			cards: []wantCard{{code: "2900000000018", accrued: "2", canSpend: true}},
		},
	}
	// Every check file has a case, so a new fixture cannot go unasserted.
	files, _ := filepath.Glob("../../testdata/checks/*.json")
	for _, f := range files {
		used := false
		for _, c := range cases {
			used = used || c.check == filepath.Base(f)
		}
		if !used {
			t.Errorf("%s has no case in TestQuoteEndToEnd", f)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--replica", demoReplica, "--check", filepath.Join("../../testdata/checks", c.check),
				"--at", "2026-11-23T12:00"}, c.args...)
			var out bytes.Buffer
			if err := quote(context.Background(), args, &out); err != nil {
				t.Fatalf("quote %v: %v", args, err)
			}
			var r checkout.Result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("result is not a checkout.Result: %v\n%s", err, out.String())
			}
			eq := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %s, want %s", what, got, want)
				}
			}
			eq("sum", r.Sum.String(), c.sum)
			eq("discount", r.Discount.String(), c.discount)
			eq("redeemed", r.Redeemed.String(), c.redeemed)
			eq("payable", r.Payable.String(), c.payable)
			if c.max != "" {
				if r.Redemption == nil {
					t.Fatalf("no redemption block")
				}
				eq("max", r.Redemption.Max.String(), c.max)
				eq("max_limit", r.Redemption.MaxLimit, c.maxLimit)
				eq("points spent", r.Redemption.Points.String(), c.spent)
				var lots []string
				for _, l := range r.Redemption.LotsConsumed {
					lots = append(lots, l.LotID+"="+l.Points.String())
				}
				eq("lots consumed", strings.Join(lots, ","), c.lots)
			}
			if len(r.Cards) != len(c.cards) {
				t.Fatalf("%d cards in result, want %d", len(r.Cards), len(c.cards))
			}
			for i, w := range c.cards {
				g := r.Cards[i]
				eq("card", g.Code, w.code)
				eq(w.code+" accrued", g.Accrued.String(), w.accrued)
				if g.CanSpend != w.canSpend {
					t.Errorf("%s can_spend = %v, want %v", w.code, g.CanSpend, w.canSpend)
				}
				if !strings.HasPrefix(g.Reason, w.reason) || (w.reason == "" && g.Reason != "") {
					t.Errorf("%s reason = %q, want prefix %q", w.code, g.Reason, w.reason)
				}
				dp := ""
				if g.DiscountPercent != nil {
					dp = g.DiscountPercent.String()
				}
				eq(w.code+" discount percent", dp, w.discount)
			}
			// Kopeck-exact allocation: line redemptions sum to the total.
			sum := checkout.Money{}
			for _, l := range r.Lines {
				sum = sum.Add(l.Redeemed)
			}
			eq("sum of line redemptions", sum.String(), r.Redeemed.String())
			if c.lineRedeemed != "" {
				var per []string
				for _, l := range r.Lines {
					per = append(per, l.Redeemed.String())
				}
				eq("redeemed per line", strings.Join(per, ","), c.lineRedeemed)
			}
			// Discounts per line sum to the check's discount.
			disc := checkout.Money{}
			for _, l := range r.Lines {
				disc = disc.Add(l.Discount)
			}
			if !disc.Equal(r.Discount) {
				t.Errorf("line discounts sum to %s, discount %s", disc, r.Discount)
			}
			// The explanation is in the output and accounts for each card's
			// accrual and for the discount, every entry naming its rule.
			if len(r.Explain) == 0 {
				t.Fatal("no explanation in the output")
			}
			accrued := map[string]checkout.Points{}
			explDisc := checkout.Money{}
			for _, e := range r.Explain {
				if e.Code == "" || e.Detail == "" || (e.Rule == "" && e.Code != checkout.CodeCardDenied && e.Code != checkout.CodeLineSum) {
					t.Errorf("explanation without code, rule or detail: %+v", e)
				}
				switch e.Code {
				case checkout.CodeAccrualPercent, checkout.CodeAccrualFixed, checkout.CodeAccrualPerUnit, checkout.CodePromotion,
					checkout.CodeAccrualRounding, checkout.CodeAccrualMonthlyCap:
					accrued[e.Card] = accrued[e.Card].Add(*e.Points)
				case checkout.CodeDiscountCumulative, checkout.CodeDiscountCategory:
					explDisc = explDisc.Add(*e.Money)
				}
			}
			for _, c := range r.Cards {
				if !accrued[c.Code].Equal(c.Accrued) {
					t.Errorf("card %s: explanations sum to %s points, accrued %s", c.Code, accrued[c.Code], c.Accrued)
				}
			}
			if !explDisc.Equal(r.Discount) {
				t.Errorf("discount explanations sum to %s, discount %s", explDisc, r.Discount)
			}
		})
	}
}

func TestQuoteErrors(t *testing.T) {
	ctx := context.Background()
	check := "../../testdata/checks/small.json"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--replica", demoReplica}, "usage"},
		{[]string{"--replica", demoReplica, "--check", check, "--cards", "123"}, "card 123: unknown card"},
		{[]string{"--replica", demoReplica, "--check", check, "--at", "tomorrow"}, `--at "tomorrow"`},
		{[]string{"--replica", demoReplica, "--check", check, "--cards", "2900000000018", "--redeem", "50"}, "at most 0"},
		{[]string{"--replica", "nope.yaml", "--check", check}, "nope.yaml"},
	} {
		err := quote(ctx, c.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("quote %v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

func TestReplicaImportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "till.db")
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("till:\n  till_id: S001-T09\nstore:\n  path: "+db+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := replicaImport(context.Background(), []string{"-config", cfg, demoReplica}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "8 cards, 9 lots") {
		t.Fatalf("output %q", out.String())
	}
	s, err := store.Open(context.Background(), store.Options{Path: db, TillID: "S001-T09"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Spendable(context.Background(), "2900000000018", mustTime(t, "2026-11-23T12:00:00+03:00"))
	if err != nil || b.Spendable.String() != "300" {
		t.Fatalf("spendable after import = %+v, %v; want 300", b, err)
	}
	// A broken file names the record and writes nothing.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1, "cards": [{"code": "2900000000099", "kind": "bonus", "program": "P9", "state": "active"}]}`), 0o644)
	err = replicaImport(context.Background(), []string{"-config", cfg, bad}, &out)
	if err == nil || !strings.Contains(err.Error(), `cards[0] code "2900000000099": unknown program "P9"`) {
		t.Fatalf("bad import: %v", err)
	}
}

func mustTime(t *testing.T, s string) (v time.Time) {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReplicaCheckCommand(t *testing.T) {
	ctx := context.Background()
	if err := runReplicaCheck(ctx, []string{demoReplica}); err != nil {
		t.Fatalf("demo: %v", err)
	}
	if err := runReplicaCheck(ctx, []string{"../../testdata/replica/delta-lots.json"}); err == nil ||
		!strings.Contains(err.Error(), `lots[0] id "L1": unknown card "2900000000018"`) {
		t.Fatalf("delta without -delta: %v", err)
	}
	if err := runReplicaCheck(ctx, []string{"-delta", "../../testdata/replica/delta-lots.json"}); err != nil {
		t.Fatalf("delta with -delta: %v", err)
	}
	if err := runReplicaCheck(ctx, []string{"-delta", "../../testdata/replica/bad-values.yaml"}); err == nil ||
		!strings.Contains(err.Error(), `products[0] id "x": vat "vat18"`) {
		t.Fatalf("bad values: %v", err)
	}
}

// TestQuoteRejectsBadCheck: trailing data, a missing price or check id, an
// unknown store and an unquoted YAML card code each give a clear error.
func TestQuoteRejectsBadCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const line = `{"no": 1, "product_id": "1101", "qty": "1", "price": "45.00"}`
	for _, c := range []struct {
		name, body, want string
		not              []string
	}{
		{"trailing.json", `{"id": "C1", "store_id": "S001", "lines": [` + line + `]} {"x": 1}`, "data after the check", nil},
		{"garbage.json", `{"id": "C1", "store_id": "S001", "lines": [` + line + `]}}`, "data after the check", nil},
		{"noprice.json", `{"id": "C1", "store_id": "S001", "lines": [` + line + `, {"no": 2, "product_id": "1001", "qty": "1"}]}`,
			`lines[1] (line 2, product "1001"): missing "price"`, nil},
		{"noid.json", `{"store_id": "S001", "lines": [` + line + `]}`, `missing "id"`, nil},
		{"nostore.json", `{"id": "C1", "store_id": "S009", "lines": [` + line + `]}`, `unknown store "S009" (not in the replica)`,
			[]string{os.TempDir() + "/tillctl-quote-", "quote.db", "shop"}},
	} {
		err := quote(ctx, []string{"--replica", demoReplica, "--check", write(c.name, c.body)}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
			continue
		}
		for _, n := range c.not {
			if strings.Contains(err.Error(), n) {
				t.Errorf("%s: err = %v, must not mention %q", c.name, err, n)
			}
		}
	}
	// A good file with trailing white space is fine.
	if err := quote(ctx, []string{"--replica", demoReplica, "--check", write("ok.json", `{"id": "C1", "store_id": "S001", "lines": [`+line+`]}`+"\n\n")}, &bytes.Buffer{}); err != nil {
		t.Fatalf("good check: %v", err)
	}
	// YAML reads an unquoted card code as a number: say so, as written.
	rep := write("unquoted.yaml", "version: 1\ncards:\n  - {code: 2900000000018, kind: bonus, state: active}\n")
	err := quote(ctx, []string{"--replica", rep, "--check", write("c.json", `{"id": "C1", "store_id": "S001", "lines": [`+line+`]}`)}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `cards[0] code "2900000000018": code is a number, want text: quote it (code: "2900000000018")`) ||
		strings.Contains(err.Error(), "e+12") {
		t.Fatalf("unquoted card code: %v", err)
	}
}

// TestDemoCodesClassify: every demo card number is a loyalty card and every
// product barcode a product under the default scanner classification (GS1
// check digits, card prefixes 26-29).
func TestDemoCodesClassify(t *testing.T) {
	data, err := os.ReadFile(demoReplica)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.ParseReplicaFile(demoReplica, data)
	if err != nil {
		t.Fatal(err)
	}
	cl := scanconf.Classifier(config.Default().Classify, nil, time.Now)
	scan := func(code string) classify.Result {
		raw := []byte("]E0" + code) // EAN-13 as a scanner with AIM ids sends it
		aim, sym := scanner.SplitAIM(raw)
		return cl.Classify(context.Background(), scanner.Scan{Raw: raw, AIM: aim, Symbology: sym})
	}
	if len(r.Cards) == 0 {
		t.Fatal("demo replica has no cards")
	}
	for _, c := range r.Cards {
		if got := scan(c.Code); got.Kind != classify.KindLoyaltyCard || got.Card != c.Code {
			t.Errorf("card %s classifies as %s (%s), want a loyalty card", c.Code, got.Kind, got.Reason)
		}
	}
	n := 0
	for _, p := range r.Products {
		for _, b := range p.Barcodes {
			n++
			if got := scan(b); got.Kind != classify.KindProduct || got.Code != b {
				t.Errorf("product %s barcode %s classifies as %s (%s), want a product", p.ID, b, got.Kind, got.Reason)
			}
		}
	}
	if n == 0 {
		t.Fatal("demo replica has no barcodes")
	}
}
