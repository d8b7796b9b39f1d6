package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"tillagent/sync/headoffice"
)

// TestConflictSettledKeepingHeadOffice: a till's entry head office holds
// with other content is listed for support over the ERP API with both
// copies; settling it keeping head office's copy (the only way head office
// offers: its copy may be folded) makes the till's copy a duplicate, so the
// till acknowledges it at its next sync, nothing is left refused, and the
// balances agree. Bad settlements are refused, naming why.
func TestConflictSettledKeepingHeadOffice(t *testing.T) {
	ctx := context.Background()
	h, _, a, bad := conflictFixture(t, "S001-T64", nil)
	if err := a.c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), bad.ID+" conflict") {
		t.Fatalf("sync: %v, want the conflict of %s", err, bad.ID)
	}
	list := func(q string) []headoffice.Conflict {
		t.Helper()
		code, data := erpCall(t, h, "GET", "/v1/erp/conflicts"+q, nil)
		var p headoffice.ConflictPage
		if err := json.Unmarshal(data, &p); code != 200 || err != nil || p.More {
			t.Fatalf("conflicts: %d %s %v", code, data, err)
		}
		return p.Conflicts
	}
	cs := list("")
	if len(cs) != 1 || cs[0].ID != bad.ID || cs[0].TillID != a.id || !strings.Contains(string(cs[0].HeadOfficeCopy), "another copy") ||
		strings.Contains(string(cs[0].TillCopy), "another copy") {
		t.Fatalf("conflicts: %+v, want %s with the till's copy and head office's", cs, bad.ID)
	}
	for _, c := range []struct {
		id   string
		body any
		code int
		want string
	}{
		{bad.ID, map[string]string{"keep": "till", "reason": "r"}, 422, "/v1/erp/corrections"},
		{bad.ID, map[string]string{"keep": "head_office"}, 422, "reason is required"},
		{bad.ID, map[string]string{"keep": "both", "reason": "r"}, 400, "keep must be"},
		{"S001-T64-nosuch", map[string]string{"keep": "head_office", "reason": "r"}, 404, "no open conflict"},
	} {
		if code, data := erpCall(t, h, "POST", "/v1/erp/conflicts/"+c.id, c.body); code != c.code || !strings.Contains(string(data), c.want) {
			t.Errorf("settle %s %v: %d %s, want %d naming %q", c.id, c.body, code, data, c.code, c.want)
		}
	}
	if err := a.c.SyncNow(ctx); err == nil {
		t.Fatal("sync before the conflict is settled: no error")
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/conflicts/"+bad.ID, map[string]string{"keep": "head_office", "reason": "till copy corrupted, ticket 42"}); code != 200 {
		t.Fatalf("settle: %d %s", code, data)
	}
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync after the settlement: %v", err)
	}
	if st := a.c.Status(); st.RefusedCount != 0 || st.Backlog != 0 {
		t.Errorf("status after the settlement: %+v, want nothing refused or pending", st)
	}
	sameBalances(t, h, a, []string{card13})
	if cs := list(""); len(cs) != 0 {
		t.Errorf("open conflicts after the settlement: %+v", cs)
	}
	if cs := list("?all=1"); len(cs) != 1 || cs[0].SettledAt == nil || cs[0].Reason != "till copy corrupted, ticket 42" {
		t.Errorf("all conflicts: %+v, want the settled one with its reason", cs)
	}
}
