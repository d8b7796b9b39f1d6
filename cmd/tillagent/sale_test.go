package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
	"tillagent/internal/config"
)

const card = "2900000000018" // demo: 300 spendable, 500 balance at the test moment

// The whole day of a till over the real socket, discount mode: shift, card
// lookup, quote, sale with points, retry, partial and full return, X, Z.
func TestSaleDayDiscountMode(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", map[string]any{"cashier": "Иванова"}, nil)

	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Balance != "500" || c.Spendable != "300" || c.Pending != "200" {
		t.Fatalf("card before: %+v, want balance 500, spendable 300, pending 200", c)
	}

	lines := []map[string]any{line(1, "1001", "2", "89.90"), line(2, "3001", "1", "210.00")}
	var q struct {
		Payable, Redeemed string
		Redemption        struct{ Max, MaxLimit string } `json:"redemption"`
	}
	h.must(200, "POST", "/v1/quote", map[string]any{"check": map[string]any{"lines": lines}, "cards": []string{card}, "redeem": "40"}, &q)
	if q.Payable != "349.80" || q.Redeemed != "40.00" {
		t.Fatalf("quote: %+v, want payable 349.80 after 40 points", q)
	}

	body := saleBody("sale-1", []string{card}, "40", "500.00", lines...)
	var a saleAnswer
	first := h.must(201, "POST", "/v1/sales", body, &a)
	rs := h.receipts()
	if len(rs) != 1 {
		t.Fatalf("%d receipts fiscalised, want 1", len(rs))
	}
	r := rs[0]
	// Discount mode: the 40 points lower the milk line (179.80 → 139.80);
	// tobacco takes no points; 1031 is cash less change.
	if r.FD != a.Fiscal.FD || r.FP != a.Fiscal.FP || r.T1054 != 1 || r.T1020 != 34980 || r.T1031 != 34980 || r.Change != 15020 || r.T1217 != 0 {
		t.Fatalf("receipt %+v does not match the answer %+v", r, a.Fiscal)
	}
	if len(r.Items) != 2 || r.Items[0].T1043 != 13980 || r.Items[1].T1043 != 21000 {
		t.Fatalf("receipt lines: %+v", r.Items)
	}
	if r.T1084 == nil || r.T1084.Name != "Бонусная карта" || !strings.Contains(r.T1084.Value, "*0018") {
		t.Fatalf("1084: %+v", r.T1084)
	}
	if !strings.Contains(docText(r), a.SaleID) {
		t.Errorf("receipt text does not name the sale %s: %q", a.SaleID, r.Text)
	}
	// Balance: 500 − 40 spent + the accrual (a new lot, not yet active, so
	// spendable is 300 − 40).
	accrued := a.Quote.Cards[0].Accrued
	if a.Fiscal.Change != "150.20" || len(a.Journal) != 2 || len(a.Cards) != 1 ||
		a.Cards[0].Balance != fmt.Sprint(460+atoi(t, accrued)) || a.Cards[0].Spendable != "260" || atoi(t, accrued) <= 0 {
		t.Fatalf("answer: %+v", a)
	}
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Balance != a.Cards[0].Balance || c.Spendable != "260" || c.Pending != fmt.Sprint(200+atoi(t, accrued)) {
		t.Fatalf("card after sale: %+v, want the answer's %+v", c, a.Cards[0])
	}

	// A retry (double click, timeout) gets the same bytes and prints nothing.
	st, again := h.do("POST", "/v1/sales", body, nil)
	if st != 200 || !bytes.Equal(first, again) {
		t.Fatalf("retry: status %d, same body %v", st, bytes.Equal(first, again))
	}
	if n := len(h.receipts()); n != 1 {
		t.Fatalf("retry printed: %d receipts", n)
	}
	// The same key with another check is refused, not sold.
	h.refusal(409, "idempotency.conflict", "POST", "/v1/sales", saleBody("sale-1", []string{card}, "", "500.00", line(1, "1001", "1", "89.90")))

	// Partial return: one milk.
	var ra struct {
		ReturnID string `json:"return_id"`
		Fiscal   struct {
			FD    uint32
			Total string
		}
		Return struct{ Refund string }
		Cards  []struct{ Balance, Spendable string }
	}
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "ret-1",
		"lines": []map[string]any{{"no": 1, "qty": "1"}}}, &ra)
	rs = h.receipts()
	if len(rs) != 2 || rs[1].T1054 != 2 || rs[1].FD != ra.Fiscal.FD {
		t.Fatalf("return receipt: %+v", rs[len(rs)-1])
	}
	// Half the milk line after points: 139.80 / 2 = 69.90 back in cash.
	if ra.Return.Refund != "69.90" || rs[1].T1020 != 6990 || rs[1].T1031 != 6990 {
		t.Fatalf("partial return: refund %s, receipt 1020 %d 1031 %d", ra.Return.Refund, rs[1].T1020, rs[1].T1031)
	}
	// The rest: everything not yet returned. Afterwards the card is
	// exactly where it was before the sale.
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "ret-2"}, &ra)
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Balance != "500" || c.Spendable != "300" {
		t.Fatalf("card after the full return: %+v, want 500 / 300 again", c)
	}
	rs = h.receipts()
	if got := rs[1].T1020 + rs[2].T1020; got != 34980 {
		t.Fatalf("returns refund %s in all, the sale took 349.80", fmtKop(got))
	}
	h.refusal(409, "return.nothing_left", "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "ret-3"})

	h.must(200, "POST", "/v1/reports/x", nil, nil)
	h.must(200, "POST", "/v1/shift/close", nil, nil)
	kinds := map[string]int{}
	for _, d := range h.em.Journal() {
		kinds[d.Kind]++
	}
	if kinds["shift_open"] != 1 || kinds["shift_close"] != 1 || kinds["receipt"] != 3 {
		t.Fatalf("fiscal journal: %v", kinds)
	}
	// A sale after the Z report is refused by the printer with its code.
	e := h.refusal(503, "printer.shift_closed", "POST", "/v1/sales", saleBody("sale-2", nil, "", "100.00", line(1, "1001", "1", "89.90")))
	if e.Error.Hint == "" {
		t.Errorf("printer refusal without a hint: %+v", e)
	}
}

func TestSaleCounterProvisionMode(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Receipt.BonusMode = "counter_provision" })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("cp-1", []string{card}, "40", "349.80", line(1, "1001", "2", "89.90"), line(2, "3001", "1", "210.00")), &a)
	r := h.receipts()[0]
	// Full prices; the points' 40.00 paid as counter-provision (1217):
	// 1031 + 1217 = 1020 = Σ1043.
	if r.T1020 != 38980 || r.T1217 != 4000 || r.T1031 != 34980 || r.Items[0].T1043 != 17980 {
		t.Fatalf("counter-provision receipt: %+v", r)
	}
	if a.Receipt.Payments["counter_provision"] != "40.00" || a.Fiscal.Total != "389.80" {
		t.Fatalf("answer: %+v", a)
	}
}

func TestSaleAllPoints(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Store.DemoReplica = "testdata/full-points.yaml" })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("all-1", []string{card}, "150", "", line(1, "1001", "1", "89.00"), line(2, "1101", "1", "61.00")), &a)
	r := h.receipts()[0]
	if r.T1020 != 0 || r.T1031 != 0 || r.T1217 != 0 || len(r.Items) != 2 || r.Items[0].T1043 != 0 || r.Items[0].T1079 != 0 {
		t.Fatalf("100 %% points receipt: %+v", r)
	}
	// 1000 − 150; nothing earned on a check paid with points only.
	if a.Quote.Payable != "0.00" || a.Cards[0].Balance != "850" {
		t.Fatalf("answer: payable %s, balance %s", a.Quote.Payable, a.Cards[0].Balance)
	}
}

// A printer that refuses leaves nothing behind: no journal entry, the
// points not spent; the same key works once the paper is in.
func TestSalePaperOut(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.em.PaperOut()
	body := saleBody("paper-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90"))
	e := h.refusal(503, "printer.paper_out", "POST", "/v1/sales", body)
	if !strings.Contains(e.Error.Message, "бумага") {
		t.Errorf("cashier message %q does not say paper", e.Error.Message)
	}
	if n := len(h.receipts()); n != 0 {
		t.Fatalf("%d receipts after a refusal", n)
	}
	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Spendable != "300" {
		t.Fatalf("points not released: %+v", c)
	}
	var st struct {
		Journal struct{ Backlog int } `json:"journal"`
	}
	h.must(200, "GET", "/v1/status", nil, &st)
	if st.Journal.Backlog != 0 {
		t.Fatalf("journal has %d entries after a refused sale", st.Journal.Backlog)
	}
	h.em.LoadPaper()
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", body, &a)
	if len(h.receipts()) != 1 || a.Cards[0].Spendable != "260" {
		t.Fatalf("after paper: receipts %d, %+v", len(h.receipts()), a.Cards)
	}
}

// A shift open for more than 24 h: the printer refuses, the cashier is told
// to close it, nothing is recorded.
func TestSaleShiftExpired(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.em.ExpireShift()
	e := h.refusal(503, "printer.shift_expired", "POST", "/v1/sales", saleBody("exp-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Message, "24") || e.Error.Hint == "" {
		t.Errorf("refusal: %+v", e)
	}
	var st struct {
		Printer struct {
			Status struct {
				ShiftExpired bool `json:"shift_expired"`
			}
		}
	}
	h.must(200, "GET", "/v1/status", nil, &st)
	if !st.Printer.Status.ShiftExpired || len(h.receipts()) != 0 {
		t.Fatalf("status %+v, receipts %d", st, len(h.receipts()))
	}
	h.must(200, "POST", "/v1/shift/close", nil, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("exp-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")), nil)
}

// The printer loses power right after it fiscalised the receipt, before
// it answered: the agent asks it (Resolve) and journals the sale once.
func TestSalePowerCutAfterClose(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Printer.AnswerTimeout = time.Second })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.em.Inject(emulator.Fault{Kind: mustFault(t, "power_cut_after"), Cmd: 0xFF45, PowerOffFor: 300 * time.Millisecond})
	var a saleAnswer
	body := saleBody("cut-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90"))
	st, _ := h.do("POST", "/v1/sales", body, &a)
	if st != 201 {
		// The printer came back too late for this request: the outcome is
		// unknown, and the retry settles it from the printer's record.
		time.Sleep(500 * time.Millisecond)
		h.must(200, "POST", "/v1/sales", body, &a)
	}
	rs := h.receipts()
	if len(rs) != 1 || rs[0].FD != a.Fiscal.FD {
		t.Fatalf("receipts %+v, answer FD %d", rs, a.Fiscal.FD)
	}
	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	if c.Spendable != "260" {
		t.Fatalf("card after: %+v", c)
	}
}

func mustFault(t *testing.T, name string) emulator.FaultKind {
	k, ok := emulator.ParseFault(name)
	if !ok {
		t.Fatalf("emulator has no fault %q", name)
	}
	return k
}

func TestAPIRefusals(t *testing.T) {
	h := newHarness(t, nil)
	if fi, err := os.Stat(h.cfg.API.Socket); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v %v, want a socket with mode 0660", h.cfg.API.Socket, fi.Mode(), err)
	}
	h.refusal(404, "request.unknown_route", "GET", "/v1/nope", nil)
	h.refusal(405, "request.method_not_allowed", "GET", "/v1/sales", nil)
	h.refusal(400, "request.bad_json", "POST", "/v1/reports/x", `{"copies": 2}`)
	h.refusal(400, "request.bad_json", "POST", "/v1/quote", `{"check": `)
	h.refusal(400, "request.bad_json", "POST", "/v1/quote", `{"check": {"lines": []}, "colour": "red"}`)
	h.refusal(422, "check.empty", "POST", "/v1/quote", `{"check": {"lines": []}}`)
	h.refusal(404, "card.unknown", "GET", "/v1/cards/2900000000995", nil)
	h.refusal(404, "product.unknown", "POST", "/v1/quote", map[string]any{"check": map[string]any{"lines": []any{line(1, "9999", "1", "1.00")}}})
	h.refusal(422, "request.idempotency_key", "POST", "/v1/sales", saleBody("", nil, "", "100", line(1, "1001", "1", "89.90")))
	h.refusal(422, "payment.short", "POST", "/v1/sales", saleBody("short-1", nil, "", "50.00", line(1, "1001", "1", "89.90")))
	h.refusal(422, "redeem.over_limit", "POST", "/v1/sales", saleBody("over-1", []string{card}, "290", "500", line(1, "1001", "2", "89.90")))
	h.refusal(404, "sale.unknown", "POST", "/v1/sales/nope/returns", map[string]any{"idempotency_key": "r"})
	h.refusal(403, "auth.bad_host", "GET", "/v1/status", nil, "Host", "evil.example")
	h.refusal(403, "auth.bad_origin", "GET", "/v1/status", nil, "Origin", "http://evil.example")
	if n := len(h.receipts()); n != 0 {
		t.Fatalf("refusals printed %d receipts", n)
	}
}

func TestTCPListenerNeedsToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	h := newHarness(t, func(c *config.Config) {
		c.API.TCP, c.API.Token = "127.0.0.1:0", token
		c.API.AllowedOrigins = []string{"http://localhost:3000"}
	})
	base := "http://" + h.main.TCPAddr
	get := func(auth, origin string) int {
		req, _ := http.NewRequest("GET", base+"/v1/status", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		auth, origin string
		want         int
	}{
		{"", "", 401}, {"wrong-token-wrong-token", "", 401}, {token, "", 200},
		{token, "http://localhost:3000", 200}, {token, "http://localhost:3001", 403},
	} {
		if got := get(c.auth, c.origin); got != c.want {
			t.Errorf("token %q origin %q: %d, want %d", c.auth, c.origin, got, c.want)
		}
	}
	// A browser page: the preflight carries no token and passes for an
	// allowed origin only; errors are readable by the page; EventSource,
	// which cannot send headers, gives the token in the query.
	do := func(method, path, origin string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	pre := do("OPTIONS", "/v1/sales", "http://localhost:3000", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if pre.StatusCode != 204 || pre.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	if r := do("OPTIONS", "/v1/sales", "http://evil.example"); r.StatusCode != 403 {
		t.Errorf("foreign preflight: %d", r.StatusCode)
	}
	if r := do("GET", "/v1/status", "http://localhost:3000"); r.StatusCode != 401 || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("error without CORS headers: %d %v", r.StatusCode, r.Header)
	}
	if r := do("GET", "/v1/status?access_token="+token, "http://localhost:3000"); r.StatusCode != 200 {
		t.Errorf("token in the query of a GET: %d", r.StatusCode)
	}
	if r := do("POST", "/v1/shift/open?access_token="+token, "http://localhost:3000"); r.StatusCode != 401 {
		t.Errorf("token in the query of a POST accepted: %d", r.StatusCode)
	}
}

// A code typed on the demo's virtual serial scanner goes through the real
// serial driver and the classifier and reaches /v1/events; the counters
// show on /metrics.
func TestEventsAndMetrics(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Demo.VirtualScanner = true })
	req, _ := http.NewRequest("GET", "http://localhost/v1/events", nil)
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events content type %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := resp.Body.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.Index(acc, "\n\n")
				if i < 0 {
					break
				}
				events <- acc[:i]
				acc = acc[i+2:]
			}
			if err != nil {
				close(events)
				return
			}
		}
	}()
	h.refusal(400, "request.bad_json", "POST", "/v1/demo/scan", map[string]string{"code": "29000\r00000018"})
	h.must(202, "POST", "/v1/demo/scan", map[string]string{"code": card}, nil)
	h.must(202, "POST", "/v1/demo/scan", map[string]string{"code": "4600000010014"}, nil)
	want := []string{`"kind":"loyalty_card"`, `"kind":"product"`}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if strings.HasPrefix(e, "event: scan") && strings.Contains(e, want[0]) {
				if want[0] == `"kind":"loyalty_card"` && !strings.Contains(e, `"card":"`+card+`"`) {
					t.Fatalf("card scan without the card number: %s", e)
				}
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("scan events not seen: %v", want)
		}
	}
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("m-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	h.em.PaperOut()
	h.refusal(503, "printer.paper_out", "POST", "/v1/sales", saleBody("m-2", nil, "", "100.00", line(1, "1001", "1", "89.90")))
	for want := []string{`"code":"printer.ok"`, `"code":"printer.paper_out"`}; len(want) > 0; {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if strings.HasPrefix(e, "event: printer") && strings.Contains(e, want[0]) {
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("printer events not seen: %v", want)
		}
	}
	st, body := h.do("GET", "/metrics", nil, nil)
	for _, s := range []string{`tillagent_sales_total{outcome="done"} 1`, `tillagent_receipts_total{kind="sale"} 1`, `tillagent_scans_total{device="demo",kind="loyalty_card"} 1`,
		"tillagent_journal_backlog 1", `tillagent_scanner_health_total{device="demo",code="scanner.ok"} 1`,
		`tillagent_printer_errors_total{code="printer.paper_out"} 1`} {
		if st != 200 || !strings.Contains(string(body), s) {
			t.Errorf("metrics lack %s:\n%s", s, body)
		}
	}
	// The database's disk, in the metrics and the status alike.
	var status struct {
		Journal struct {
			DBBytes   int64  `json:"db_bytes"`
			DiskFree  int64  `json:"disk_free_bytes"`
			DiskError string `json:"disk_error"`
		} `json:"journal"`
	}
	h.must(200, "GET", "/v1/status", nil, &status)
	fi, err := os.Stat(h.cfg.Store.Path)
	if err != nil || status.Journal.DBBytes < fi.Size() || status.Journal.DiskFree <= 0 || status.Journal.DiskError != "" {
		t.Errorf("status journal disk %+v, want the database's files (main file %d bytes, %v) and the free space", status.Journal, fi.Size(), err)
	}
	for _, g := range []string{"tillagent_store_db_bytes", "tillagent_store_disk_free_bytes"} {
		m := regexp.MustCompile(`(?m)^` + g + ` ([0-9.e+]+)$`).FindStringSubmatch(string(body))
		if m == nil || m[1] == "0" {
			t.Errorf("metrics: %s missing or 0: %v", g, m)
		}
	}
}

// Paper runs out while the fiscalised receipt prints: the sale is done
// (journaled, FD known) with print_pending; after paper is loaded the
// technician's continue finishes the copy.
func TestSalePaperOutWhilePrinting(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.em.Inject(emulator.Fault{Kind: mustFault(t, "paper_out"), Cmd: 0xFF45})
	var a struct {
		SaleID string `json:"sale_id"`
		Fiscal struct {
			FD           uint32 `json:"fd"`
			PrintPending bool   `json:"print_pending"`
		} `json:"fiscal"`
	}
	h.must(201, "POST", "/v1/sales", saleBody("pp-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), &a)
	rs := h.receipts()
	if !a.Fiscal.PrintPending || len(rs) != 1 || rs[0].FD != a.Fiscal.FD || rs[0].Printed {
		t.Fatalf("answer %+v, receipts %+v", a, rs)
	}
	h.em.LoadPaper()
	h.must(200, "POST", "/v1/printer/continue", nil, nil)
	if rs := h.receipts(); !rs[0].Printed {
		t.Fatalf("copy not finished after continue: %+v", rs[0])
	}
}

// Findings of the QA review, each pinned down.
func TestSaleEdgeCases(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)

	// A sale paid partly by card is refunded to the card first.
	mixed := saleBody("mix-1", nil, "", "50.00", line(1, "1001", "2", "89.90"))
	mixed["payments"] = map[string]any{"cash": "50.00", "electronic": "129.80"}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", mixed, &a)
	var ra struct {
		Receipt struct{ Payments map[string]string }
	}
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "mix-r1", "lines": []any{map[string]any{"no": 1, "qty": "1"}}}, &ra)
	if ra.Receipt.Payments["electronic"] != "89.90" || ra.Receipt.Payments["cash"] != "" {
		t.Fatalf("first refund %v, want all 89.90 to the card", ra.Receipt.Payments)
	}
	h.must(201, "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "mix-r2"}, &ra)
	if ra.Receipt.Payments["electronic"] != "39.90" || ra.Receipt.Payments["cash"] != "50.00" {
		t.Fatalf("second refund %v, want 39.90 to the card and 50.00 cash", ra.Receipt.Payments)
	}

	// Returning more than was sold is refused, not a 500.
	h.must(201, "POST", "/v1/sales", saleBody("ret-big", nil, "", "200.00", line(1, "1001", "2", "89.90")), &a)
	h.refusal(409, "return.exceeds_sale", "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "rb-1", "lines": []any{map[string]any{"no": 1, "qty": "3"}}})

	// The UI's check id is not part of the request: a renumbered retry
	// is the same sale.
	b1 := saleBody("renum", nil, "", "100.00", line(1, "1001", "1", "89.90"))
	b1["check"].(map[string]any)["id"] = "A"
	h.must(201, "POST", "/v1/sales", b1, nil)
	b1["check"].(map[string]any)["id"] = "B"
	h.must(200, "POST", "/v1/sales", b1, nil)

	h.refusal(422, "cashier.invalid", "POST", "/v1/sales", func() map[string]any {
		b := saleBody("cash-bad", nil, "", "100.00", line(1, "1001", "1", "89.90"))
		b["cashier"] = "a\u0000b"
		return b
	}())
	h.refusal(422, "payment.invalid", "POST", "/v1/sales", saleBody("huge", nil, "", "184467440737095616.16", line(1, "1001", "1", "89.90")))

	// The unit comes from the product: bananas by the kilogram (2108 = 11)
	// whole or not, milk by the piece, never half a bottle.
	h.refusal(422, "check.fractional_piece", "POST", "/v1/sales", saleBody("half", nil, "", "100.00", line(1, "1001", "0.5", "89.90")))
	h.must(201, "POST", "/v1/sales", saleBody("weighed", nil, "", "600.00", line(1, "1301", "1.5", "129.90"), line(2, "1301", "2", "129.90"), line(3, "1001", "1", "89.90")), &a)
	h.refusal(422, "check.fractional_piece", "POST", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "half-r", "lines": []any{map[string]any{"no": 3, "qty": "0.5"}}})
	rs := h.receipts()
	if it := rs[len(rs)-1].Items; len(it) != 3 || it[0].T2108 != 11 || it[1].T2108 != 11 || it[2].T2108 != 0 || it[0].T1023 != 1_500_000 {
		t.Fatalf("measures: %+v", it)
	}

	// A blocked card shows no spendable points.
	var c struct {
		Spendable string `json:"spendable"`
		CanSpend  bool   `json:"can_spend"`
		Reason    string `json:"reason"`
	}
	h.must(200, "GET", "/v1/cards/2900000000032", nil, &c)
	if c.Spendable != "0" || c.CanSpend || c.Reason != "card.blocked" {
		t.Fatalf("blocked card: %+v", c)
	}
	// Journal and receipts agree: every receipt is a finished document.
	if n := len(h.receipts()); n != 6 {
		t.Fatalf("%d receipts, want 6: 4 sales (the renumbered retry printed once) and 2 returns", n)
	}
}

// The printer's port goes away (a USB adapter pulled, the printer power-
// cycled) and comes back under the same name: the agent reopens it.
func TestPrinterReconnects(t *testing.T) {
	dir := t.TempDir()
	em := emulator.New(emulator.Config{Baud: 115200})
	link := filepath.Join(dir, "ttyFISCAL")
	plug := func() *emulator.PTY {
		pt, err := emulator.ServePTY(context.Background(), em)
		if err != nil {
			t.Skipf("no pty: %v", err)
		}
		os.Remove(link)
		if err := os.Symlink(pt.Name, link); err != nil {
			t.Fatal(err)
		}
		return pt
	}
	pt := plug()
	h := newHarness(t, func(c *config.Config) { c.Printer.Port = link; c.Printer.AnswerTimeout = time.Second })
	h.em = em
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("rc-1", nil, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	pt.Close()
	h.refusal(503, "printer.link", "POST", "/v1/sales", saleBody("rc-2", nil, "", "100.00", line(1, "1001", "1", "89.90")))
	pt = plug()
	defer pt.Close()
	time.Sleep(1100 * time.Millisecond) // the agent retries the port at most once a second
	h.must(201, "POST", "/v1/sales", saleBody("rc-2", nil, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	if n := len(h.receipts()); n != 2 {
		t.Fatalf("%d receipts, want 2", n)
	}
}

// Partial returns of lines with a card discount and points, in both bonus
// modes: every return prints, and the returns add up to the sale exactly —
// totals, money and 1217 — and give the card back what the sale took.
func TestPartialReturnsWithCardsAddUp(t *testing.T) {
	for _, c := range []struct {
		mode, card, redeem string
	}{
		{"discount", "2800000000011", ""},
		{"discount", "2700000000014", "300"},
		{"counter_provision", "2700000000014", "300"},
	} {
		t.Run(c.mode+"/"+c.card, func(t *testing.T) {
			h := newHarness(t, func(cfg *config.Config) { cfg.Receipt.BonusMode = c.mode })
			h.must(200, "POST", "/v1/shift/open", nil, nil)
			var before cardAnswer
			h.must(200, "GET", "/v1/cards/"+c.card, nil, &before)
			var a saleAnswer
			h.must(201, "POST", "/v1/sales", saleBody("pr-1", []string{c.card}, c.redeem, "2000.00",
				line(1, "1005", "2", "189.90"), line(2, "1401", "3", "84.90"), line(3, "1102", "4", "52.30")), &a)
			sale := h.receipts()[0]
			for i, ret := range []map[string]any{
				{"idempotency_key": "pr-r1", "lines": []any{map[string]any{"no": 1, "qty": "1"}}},
				{"idempotency_key": "pr-r2", "lines": []any{map[string]any{"no": 2, "qty": "1"}, map[string]any{"no": 3, "qty": "3"}}},
				{"idempotency_key": "pr-r3", "lines": []any{map[string]any{"no": 2, "qty": "1"}}},
				{"idempotency_key": "pr-r4"},
			} {
				if st, b := h.do("POST", "/v1/sales/"+a.SaleID+"/returns", ret, nil); st != 201 {
					t.Fatalf("return %d: %d %s", i+1, st, b)
				}
			}
			var t1020, t1031, t1217 int64
			for _, r := range h.receipts()[1:] {
				t1020, t1031, t1217 = t1020+r.T1020, t1031+r.T1031, t1217+r.T1217
			}
			if t1020 != sale.T1020 || t1031 != sale.T1031 || t1217 != sale.T1217 {
				t.Fatalf("returns 1020 %s 1031 %s 1217 %s; sale %s %s %s", fmtKop(t1020), fmtKop(t1031), fmtKop(t1217),
					fmtKop(sale.T1020), fmtKop(sale.T1031), fmtKop(sale.T1217))
			}
			var after cardAnswer
			h.must(200, "GET", "/v1/cards/"+c.card, nil, &after)
			if after.Balance != before.Balance {
				t.Fatalf("card after all returns %s, before the sale %s", after.Balance, before.Balance)
			}
		})
	}
}

// A double click while the receipt prints: the second request waits for
// the first and gets its answer; one receipt.
func TestDoubleClickWhilePrinting(t *testing.T) {
	h := newHarness(t, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.em.Inject(emulator.Fault{Kind: mustFault(t, "delay"), Cmd: 0xFF45, Delay: 400 * time.Millisecond})
	body := saleBody("dbl-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90"))
	type res struct {
		st int
		b  []byte
	}
	out := make(chan res, 2)
	for i := 0; i < 2; i++ {
		go func() {
			ht := *h
			st, b := ht.do("POST", "/v1/sales", body, nil)
			out <- res{st, b}
		}()
		time.Sleep(150 * time.Millisecond) // the second click lands while the first prints
	}
	r1, r2 := <-out, <-out
	if r1.st+r2.st != 201+200 || !bytes.Equal(r1.b, r2.b) {
		t.Fatalf("double click: %d and %d, same body %v: %s / %s", r1.st, r2.st, bytes.Equal(r1.b, r2.b), r1.b, r2.b)
	}
	if n := len(h.receipts()); n != 1 {
		t.Fatalf("%d receipts", n)
	}
}
