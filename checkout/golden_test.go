package checkout

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGoldenQuote quotes testdata/quote_input.json (the example of
// docs/check.md) and compares the result JSON with quote_result.golden.json.
// Run with -update after an intended change and review the diff.
func TestGoldenQuote(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "quote_input.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decode input: %v", err)
	}
	r, err := Quote(in)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	checkInvariants(t, in, r)
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "quote_result.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("result differs from %s; run with -update and review the diff:\n%s", golden, got)
	}

	// The result JSON decodes back (the journal keeps it for returns), and a
	// full return against the decoded copy gives everything back.
	var back Result
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("decode result: %v", err)
	}
	var lines []ReturnLine
	for _, l := range back.Lines {
		lines = append(lines, ReturnLine{No: l.No, Qty: l.Qty})
	}
	ret, err := Return(ReturnInput{Original: back, Lines: lines, Cards: in.Cards, Programs: in.Programs, Now: in.Now, TimeZone: in.TimeZone})
	if err != nil {
		t.Fatalf("Return: %v", err)
	}
	if !ret.Refund.Add(ret.Withheld).Equal(r.Payable) {
		t.Errorf("full return refunds %s + %s withheld, paid %s", ret.Refund, ret.Withheld, r.Payable)
	}
}
