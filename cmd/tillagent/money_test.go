package main

import (
	"strings"
	"testing"

	"tillagent/internal/config"
)

// nothingRecorded checks that the agent has printed no receipt since the
// shift opened, keeps no document and journaled nothing.
func (h *harness) nothingRecorded(what string) {
	h.t.Helper()
	if docs, backlog := h.docCounts(); backlog != 0 || len(docs) != 0 {
		h.t.Fatalf("%s: journal backlog %d, documents %v, want none", what, backlog, docs)
	}
	for _, d := range h.em.Journal() {
		if d.Kind != "shift_open" {
			h.t.Fatalf("%s: the printer got a %s (FD %d)", what, d.Kind, d.FD)
		}
	}
}

// A mistyped tendered amount (1,000,000 ₽ for a 140 ₽ check) is refused
// before anything prints or is recorded; change up to one 5,000 ₽
// banknote goes through, with the same key.
func TestSaleChangeCap(t *testing.T) {
	h := newHarness(t, nil) // sale.max_change_kop: 500000 by default
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	milk := line(1, "1001", "2", "89.90") // 179.80 − 40 points = 139.80 due
	for _, cash := range []string{"1000000.00", "5139.81"} {
		e := h.refusal(422, "payment.change_over", "POST", "/v1/sales", saleBody("chg-1", []string{card}, "40", cash, milk))
		if !strings.Contains(e.Error.Message, "Сдача") || !strings.Contains(e.Error.Message, "5000.00") || !strings.Contains(e.Error.Detail, "sale.max_change_kop") {
			t.Errorf("cash %s: refusal %+v should name the change and the cap", cash, e.Error)
		}
		h.nothingRecorded("cash " + cash)
	}
	// Card and cash: the change is what the cash gives back over the card's part.
	mixed := saleBody("chg-2", []string{card}, "40", "5100.00", milk)
	mixed["payments"] = map[string]any{"cash": "5100.00", "electronic": "40.00"} // change 5000.20
	h.refusal(422, "payment.change_over", "POST", "/v1/sales", mixed)
	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Spendable != "300" {
		t.Fatalf("points spent by a refused sale: %+v", c)
	}
	h.nothingRecorded("refused sales")
	if _, body := h.do("GET", "/metrics", nil, nil); !strings.Contains(string(body), `tillagent_api_refused_total{code="payment.change_over"} 3`) {
		t.Errorf("metrics do not count the 3 refusals:\n%s", body)
	}

	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("chg-1", []string{card}, "40", "5139.80", milk), &a)
	rs := h.receipts()
	if a.Fiscal.Change != "5000.00" || len(rs) != 1 || rs[0].Change != 500000 || rs[0].FD != a.Fiscal.FD || len(a.Journal) == 0 {
		t.Fatalf("sale with 5,000.00 change: answer %+v, receipts %+v", a, rs)
	}
}

// sale.max_change_kop 0 takes the cap off.
func TestSaleChangeCapOff(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Sale.MaxChangeKop = 0 })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("nocap-1", nil, "", "1000000.00", line(1, "1001", "1", "89.90")), &a)
	if a.Fiscal.Change != "999910.10" || h.receipts()[0].Change != 99991010 {
		t.Fatalf("change %s, receipt %+v", a.Fiscal.Change, h.receipts()[0])
	}
}

// returnAnswer is what the return tests read of an answer.
type returnAnswer struct {
	ReturnID string `json:"return_id"`
	Receipt  struct {
		Payments map[string]string `json:"payments"`
	} `json:"receipt"`
}

// A card payment goes back to the card: refund "cash" may pay back the
// cash part of a sale, never its card part; the card and the default
// refund still work, and nothing is printed for a refused return.
func TestCardPaymentRefundedToCard(t *testing.T) {
	h := newHarness(t, nil) // sale.cash_refund_of_card: false by default
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	ret := func(key, saleID, refund string, lines ...int) map[string]any {
		b := map[string]any{"idempotency_key": key, "refund": refund}
		var ls []any
		for _, no := range lines {
			ls = append(ls, map[string]any{"no": no, "qty": "1"})
		}
		if ls != nil {
			b["lines"] = ls
		}
		return b
	}

	// All by card: no cash to pay back at all.
	byCard := saleBody("card-1", nil, "", "", line(1, "1001", "2", "89.90"))
	byCard["payments"] = map[string]any{"electronic": "179.80"}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", byCard, &a)
	e := h.refusal(422, "return.refund_to_card", "POST", "/v1/sales/"+a.SaleID+"/returns", ret("card-r1", a.SaleID, "cash", 1))
	if !strings.Contains(e.Error.Message, "на карту") || !strings.Contains(e.Error.Message, "89.90") || e.Error.Hint == "" {
		t.Errorf("refusal %+v should tell to refund 89.90 to the card", e.Error)
	}
	if n := len(h.receipts()); n != 1 {
		t.Fatalf("a refused return printed: %d receipts", n)
	}
	var r returnAnswer
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", ret("card-r1", a.SaleID, "electronic", 1), &r)
	if r.Receipt.Payments["electronic"] != "89.90" || r.Receipt.Payments["cash"] != "" {
		t.Fatalf("refund to the card: %v", r.Receipt.Payments)
	}

	// Cash and card: cash pays back up to the cash paid, not beyond.
	mixed := saleBody("mix-1", nil, "", "", line(1, "1001", "1", "89.90"), line(2, "1101", "1", "61.00"))
	mixed["payments"] = map[string]any{"cash": "100.00", "electronic": "50.90"}
	h.must(201, "POST", "/v1/sales", mixed, &a)
	if a.Quote.Payable != "150.90" {
		t.Fatalf("payable %s, want 150.90", a.Quote.Payable)
	}
	r = returnAnswer{} // a fresh map: Unmarshal adds to an existing one
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", ret("mix-r1", a.SaleID, "cash", 2), &r)
	if r.Receipt.Payments["cash"] != "61.00" || r.Receipt.Payments["electronic"] != "" {
		t.Fatalf("cash refund of the cash part: %v", r.Receipt.Payments)
	}
	before := len(h.receipts())
	e = h.refusal(422, "return.refund_to_card", "POST", "/v1/sales/"+a.SaleID+"/returns", ret("mix-r2", a.SaleID, "cash", 1))
	if !strings.Contains(e.Error.Message, "50.90") {
		t.Errorf("refusal %q should name the card's 50.90", e.Error.Message)
	}
	if n := len(h.receipts()); n != before {
		t.Fatalf("a refused return printed: %d receipts, was %d", n, before)
	}
	r = returnAnswer{}
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", ret("mix-r2", a.SaleID, "", 1), &r)
	if r.Receipt.Payments["electronic"] != "50.90" || r.Receipt.Payments["cash"] != "39.00" {
		t.Fatalf("default refund: %v, want 50.90 to the card and the 39.00 cash left", r.Receipt.Payments)
	}
}

// sale.cash_refund_of_card allows a card payment back in cash.
func TestCashRefundOfCardAllowed(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Sale.CashRefundOfCard = true })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	body := saleBody("card-1", nil, "", "", line(1, "1001", "2", "89.90"))
	body["payments"] = map[string]any{"electronic": "179.80"}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", body, &a)
	var r returnAnswer
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "card-r1", "refund": "cash"}, &r)
	if r.Receipt.Payments["cash"] != "179.80" || r.Receipt.Payments["electronic"] != "" {
		t.Fatalf("cash refund of a card payment: %v", r.Receipt.Payments)
	}
}
