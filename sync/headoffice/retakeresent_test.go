package headoffice

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestRetakeTakesACorrectionGivenAgainAfterTheRestore: head office A holds
// ERP's correction t-1 when it is lost; B, restored without it, is given
// it again by ERP two hours on (step 2 of the steps), a new row at B's
// time. ERP's export files since the backup then hold t-1 twice, A's copy
// and B's, with other bytes: the copy keeps the first, and the retake
// answers it duplicate. Before, the whole copy was refused as "not head
// office's export" (found by the QA pass). Another correction under the
// same id is still refused.
func TestRetakeTakesACorrectionGivenAgainAfterTheRestore(t *testing.T) {
	ctx := context.Background()
	a := openTest(t)
	later := demoNow.Add(2 * time.Hour)
	b, err := Open(ctx, Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []*Server{a, b} {
		if _, err := s.Import(ctx, demoReplica(t)); err != nil {
			t.Fatal(err)
		}
	}
	fix := Correction{ID: "t-1", Card: "2900000000018", Points: dec("-15"), Reason: "goodwill taken back"}
	if _, err := a.Correct(ctx, fix); err != nil {
		t.Fatal(err)
	}
	before := exportPages(t, a, 100, 1)
	if r, err := b.Correct(ctx, fix); err != nil || r.Duplicate {
		t.Fatalf("the correction given again to the restored head office: %+v, %v", r, err)
	}
	after := exportPages(t, b, 100, 1)
	if bytes.Equal(before, after) {
		t.Fatal("test setup: both exports hold the same bytes")
	}
	c := newCopy(t)
	if err := c.ReadExport(bytes.NewReader(append(append([]byte{}, before...), after...))); err != nil {
		t.Fatalf("ERP's export files from before and after the restore: %v", err)
	}
	balance := balanceOf(t, b, fix.Card)
	r := retake(t, b, c, ERPTill)[0]
	if r.Duplicate != 1 || r.Applied != 0 || r.Err != "" {
		t.Fatalf("retake of the correction head office holds: %+v, want it a duplicate", r)
	}
	if got := balanceOf(t, b, fix.Card); got != balance {
		t.Fatalf("balance %s after the retake, want %s: the correction counted twice", got, balance)
	}
	if _, err := a.Correct(ctx, Correction{ID: "t-2", Card: fix.Card, Points: dec("5"), Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Correct(ctx, Correction{ID: "t-2", Card: fix.Card, Points: dec("6"), Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	err = newCopy(t).ReadExport(bytes.NewReader(append(exportPages(t, a, 100, 2), exportPages(t, b, 100, 2)...)))
	if err == nil || !strings.Contains(err.Error(), "ERP-t-2 given twice with different content") {
		t.Fatalf("two different corrections under one id: %v, want the copy refused", err)
	}
}
