package main

import (
	"encoding/json"
	"testing"
)

// FuzzRequestBodies sends arbitrary bodies to the routes that take JSON:
// the agent never fails with a 500 and every refusal is the JSON error with
// a stable code, whatever the UI sends.
func FuzzRequestBodies(f *testing.F) {
	h := newHarness(f, nil)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	for _, s := range []string{
		`{"check":{"lines":[{"no":1,"product_id":"1001","qty":"2","price":"89.90"}]},"cards":["2900000000018"],"redeem":"40"}`,
		`{"idempotency_key":"f1","check":{"lines":[{"no":1,"product_id":"1001","qty":"0.5","price":"89.90"}]},"payments":{"cash":"100"}}`,
		`{"idempotency_key":"f2","check":{"lines":[{"no":1,"product_id":"1001","qty":"-1","price":"89.90"}]},"payments":{"cash":"1e9"}}`,
		`{"idempotency_key":"f3","check":{"lines":[{"no":1,"product_id":"1001","qty":"1","price":"0.001"}]},"payments":{"electronic":"0.001"}}`,
		`{"check":{"lines":[{"no":0,"product_id":"","qty":"1","price":"1"},{"no":0,"product_id":"","qty":"1","price":"1"}]}}`,
		`{"lines":[{"no":1,"qty":"1"}]}`, `[]`, `null`, `{"check":null}`, `{"idempotency_key":"` + string(make([]byte, 300)) + `"}`,
	} {
		f.Add("/v1/quote", s)
		f.Add("/v1/sales", s)
	}
	f.Add("/v1/shift/open", `{"cashier":1}`)
	f.Fuzz(func(t *testing.T, path, body string) {
		switch path {
		case "/v1/quote", "/v1/sales", "/v1/shift/open":
		default:
			path = "/v1/quote"
		}
		ht := *h // the same agent, failures reported on this input's t
		ht.t = t
		st, b := ht.do("POST", path, body, nil)
		if st >= 500 && st != 503 {
			t.Fatalf("POST %s %q: status %d: %s", path, body, st, b)
		}
		if st >= 300 {
			var e apiError
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("POST %s %q: status %d without a JSON error: %s", path, body, st, b)
			}
		}
	})
}
