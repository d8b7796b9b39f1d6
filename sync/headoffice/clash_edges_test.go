package headoffice

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// TestCodeClashes: the clash check in the cases an ERP job gets wrong
// or right in one file: a stored product moving its barcode to a card's
// code (stored, or in the same file) is refused; a product giving up a
// barcode in the same file that makes it a card's code is taken; a card
// re-sent unchanged with a product taking its code is refused once, not
// twice; a barcode moved from one product to another is no clash; and
// nothing of a refused file is written.
func TestCodeClashes(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	const p1001 = `{"id":"1001","name":"Молоко","group":"dairy","vat":"vat10","barcodes":[%s]}`
	for _, c := range []struct {
		what, body string
		code       int
		want       string
	}{
		{"1001 moves its barcode to a stored card's code", `{"version":1,"products":[` + fmt.Sprintf(p1001, `"2900000000018"`) + `]}`, 422,
			`products[0] id \"1001\": barcode 2900000000018 is a loyalty card's code`},
		{"1001 moves its barcode to a card of the same file", `{"version":1,"products":[` + fmt.Sprintf(p1001, `"2900000000971"`) + `],` +
			`"cards":[{"code":"2900000000971","kind":"bonus","state":"active"}]}`, 422, `barcode 2900000000971 is a loyalty card's code`},
		{"a stored card re-sent with a product taking its code", `{"version":1,"products":[{"id":"QC1","name":"Весовой","group":"dairy","vat":"vat10","barcodes":["2900000000018"]}],` +
			`"cards":[{"code":"2900000000018","kind":"bonus","state":"active"}]}`, 422, `barcode 2900000000018 is a loyalty card's code`},
		{"1001 gives up its barcode and a card takes it, one file", `{"version":1,"products":[` + fmt.Sprintf(p1001, `"4600000019994"`) + `],` +
			`"cards":[{"code":"4600000010014","kind":"bonus","state":"active"}]}`, 200, ``},
	} {
		code, body := call("POST", "/v1/erp/import", c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d %s", c.what, code, body, c.code, c.want)
		}
		if code == 422 && strings.Count(refusal(body), "loyalty card's code") != 1 {
			t.Errorf("%s: refused %d times, want once: %s", c.what, strings.Count(refusal(body), "loyalty card's code"), body)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM catalog WHERE section = 'products' AND id = 'QC1'`); n != 0 {
		t.Errorf("a refused file's product written")
	}
	// The card 4600000010014 is stored now; product 1001 may not take
	// its old barcode back, and no product may.
	code, body := call("POST", "/v1/erp/import", `{"version":1,"products":[`+fmt.Sprintf(p1001, `"4600000010014"`)+`]}`)
	if code != 422 || !strings.Contains(body, "is a loyalty card's code") {
		t.Errorf("1001 taking back a barcode now a card's code: %d %s", code, body)
	}
}

// TestCodeClashesBigImport: 200,000 cards against a catalog whose
// products have barcodes, one card clashing with a stored barcode: the
// clash is found, named with its index, and the check takes at most a
// few seconds (timed only roughly; erpbench_test.go measures).
func TestCodeClashesBigImport(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	r := &store.Replica{Version: 1}
	for i := 0; i < 200_000; i++ {
		r.Cards = append(r.Cards, store.ReplicaCard{Code: fmt.Sprintf("28%011d", i), Kind: "bonus", State: checkout.StateActive})
	}
	const clashAt = 123_456
	r.Cards[clashAt].Code = "4600000010014" // product 1001's barcode
	start := time.Now()
	_, err := s.Import(ctx, r)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cards[%d]", clashAt)) || !strings.Contains(err.Error(), `product "1001"'s barcode`) {
		t.Fatalf("200,000 cards, one a barcode: %v", err)
	}
	t.Logf("200,000 cards refused for one clash in %v", took.Round(time.Millisecond))
	if took > 20*time.Second {
		t.Errorf("the refusal took %v", took)
	}
}
