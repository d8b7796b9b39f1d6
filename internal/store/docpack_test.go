package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// docJSON is a sale's result, receipt and answer shaped as the sale flow
// writes them: the receipt restates the result's lines, the answer both.
func docJSON(lines int) (result, receipt, answer []byte) {
	var rl, cl []string
	for i := 1; i <= lines; i++ {
		rl = append(rl, fmt.Sprintf(`{"no":%d,"product_id":"%d","qty":"1","price":"%d.90","name":"Товар номер %d","groups":["food"],"vat":"vat10","sum":"%d.90","discount":"0.00","redeemed":"0.00","payable":"%d.90"}`, i, 1000+i, 50+i, i, 50+i, 50+i))
		cl = append(cl, fmt.Sprintf(`{"name":"Товар номер %d","qty":"1","price":"%d.90","sum":"%d.90","vat":2}`, i, 50+i, 50+i))
	}
	result = []byte(`{"check_id":"C1","lines":[` + strings.Join(rl, ",") + `]}`)
	receipt = []byte(`{"kind":"sale","lines":[` + strings.Join(cl, ",") + `]}`)
	answer = []byte(`{"sale_id":"C1","fiscal":{"fd":7,"fp":1},"receipt":` + string(receipt) + `,"result":` + string(result) + `}`)
	return
}

// TestDocsArePacked: a document reads back exactly as written, and the
// till's database holds it in well under half its JSON.
func TestDocsArePacked(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	result, receipt, answer := docJSON(30)
	d := Doc{ID: "C1", Kind: DocSale, IdemKey: "k1", RequestSHA: "sha", Result: result, Receipt: receipt}
	if _, err := s.BeginDoc(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DocByKey(ctx, "k1"); err != nil || !bytes.Equal(got.Result, result) || !bytes.Equal(got.Receipt, receipt) || got.Answer != nil {
		t.Fatalf("pending document read back: %v %q %q %q", err, got.Result, got.Receipt, got.Answer)
	}
	if err := s.FinishDoc(ctx, "C1", 7, 1, answer); err != nil {
		t.Fatal(err)
	}
	got, err := s.DocByID(ctx, "C1")
	if err != nil || got.State != DocDone || !bytes.Equal(got.Result, result) || !bytes.Equal(got.Receipt, receipt) || !bytes.Equal(got.Answer, answer) {
		t.Fatalf("done document read back: %v %s\n%q\n%q\n%q", err, got.State, got.Result, got.Receipt, got.Answer)
	}
	var stored int
	if err := s.r.QueryRowContext(ctx, `SELECT length(result) + length(receipt) + length(answer) FROM sale_docs WHERE id = 'C1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	raw := len(result) + len(receipt) + len(answer)
	t.Logf("stored %d bytes of %d", stored, raw)
	if stored*4 > raw {
		t.Errorf("stored %d bytes for %d of JSON, want under a quarter", stored, raw)
	}
}

// TestUnpackedDocsStillRead: documents an earlier build wrote as plain
// JSON text read as they are, a pending one among them finishes packed,
// and a damaged packed value is an error naming the document, not
// garbage handed to a return.
func TestUnpackedDocsStillRead(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	result, receipt, answer := docJSON(3)
	for _, q := range []string{
		`INSERT INTO sale_docs(id, kind, idem_key, request_sha, state, result, receipt, answer, fd, created_ms) VALUES ('OLD', 'sale', 'k-old', 'sha', 'done', ?1, ?2, ?3, 5, 1)`,
		`INSERT INTO sale_docs(id, kind, idem_key, request_sha, state, result, receipt, created_ms) VALUES ('OLDP', 'sale', 'k-oldp', 'sha', 'pending', ?1, ?2, 1)`,
	} {
		if _, err := s.w.ExecContext(ctx, q, string(result), string(receipt), string(answer)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DocByID(ctx, "OLD")
	if err != nil || !bytes.Equal(got.Result, result) || !bytes.Equal(got.Receipt, receipt) || !bytes.Equal(got.Answer, answer) {
		t.Fatalf("plain document: %v %q %q %q", err, got.Result, got.Receipt, got.Answer)
	}
	if err := s.FinishDoc(ctx, "OLDP", 6, 1, answer); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DocByID(ctx, "OLDP"); err != nil || !bytes.Equal(got.Answer, answer) || !bytes.Equal(got.Result, result) {
		t.Fatalf("plain pending document finished: %v %q", err, got.Answer)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE sale_docs SET answer = x'00ffff0000' WHERE id = 'OLDP'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DocByID(ctx, "OLDP"); err == nil || !strings.Contains(err.Error(), "document OLDP: answer") {
		t.Fatalf("damaged answer read: %v, want an error naming the document and column", err)
	}
	if _, err := s.DocByID(ctx, "NONE"); !errors.Is(err, ErrNoDoc) {
		t.Fatalf("unknown document: %v", err)
	}
}
