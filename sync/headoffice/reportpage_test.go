package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestOverdraftAndWriteOffReportsPage: eight cards overdrawn by one push,
// five on an allow program (debt kept) and three on forbid (debt written
// off), then an accrual settling one allow card. Both reports page newest
// first over HTTP: the pages put together are the whole report, open=1
// keeps the four cards still in debt, and a malformed query is a 400 that
// names it. Both used to list every row ever written in one answer.
func TestOverdraftAndWriteOffReportsPage(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	demo := demoReplica(t)
	if _, err := s.Import(ctx, demo); err != nil {
		t.Fatal(err)
	}
	extra := &store.Replica{Version: 1}
	for _, m := range []checkout.NegativeMode{checkout.NegativeAllow, checkout.NegativeForbid} {
		p := demo.Programs[0]
		p.ID, p.Promotions, p.NegativeBalance = "P-"+string(m), nil, checkout.NegativeBalancePolicy{Mode: m}
		extra.Programs = append(extra.Programs, p)
		extra.CardKinds = append(extra.CardKinds, store.ReplicaCardKind{ID: "k-" + p.ID, Name: p.ID, Kind: checkout.KindBonus, Program: p.ID})
	}
	code := func(i int) string { return fmt.Sprintf("29910000000%02d", i) }
	for i := range 8 {
		kind := "k-P-allow"
		if i >= 5 {
			kind = "k-P-forbid"
		}
		extra.Cards = append(extra.Cards, store.ReplicaCard{Code: code(i), Kind: kind, State: checkout.StateActive})
		extra.Lots = append(extra.Lots, store.ReplicaLot{ID: "L" + code(i), Card: code(i), Points: checkout.MustPoints("10"), AccruedAt: demoNow.Add(-48 * time.Hour)})
	}
	if _, err := s.Import(ctx, extra); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	b := &wire.Batch{TillID: "S001-T01"}
	prev := ""
	add := func(e store.Entry) {
		e.ID = fmt.Sprintf("S001-T01-%026d", len(b.Entries)+1)
		e.CheckID, e.CreatedAt = "c-"+e.ID, demoNow
		b.Entries = append(b.Entries, wire.Entry{Entry: e, Prev: prev})
		prev = e.ID
	}
	for i := range 8 {
		add(store.Entry{CardCode: code(i), Kind: store.KindRedemption, Points: dec("-15"), AmountKop: 1500,
			Lots: []store.LotChange{{LotID: "L" + code(i), Delta: dec("-15")}}})
	}
	add(store.Entry{CardCode: code(0), Kind: store.KindAccrual, Points: dec("5"),
		Lots: []store.LotChange{{LotID: fmt.Sprintf("S001-T01-%026d", 9), Delta: dec("5"), Create: true, ActiveFrom: demoNow}}})
	if res, err := s.Ingest(ctx, b); err != nil || res.FoldedThrough != prev {
		t.Fatalf("ingest: %+v, %v", res, err)
	}
	allOds, err := s.Overdrafts(ctx)
	if err != nil || len(allOds) != 8 {
		t.Fatalf("overdrafts %+v, %v; want eight", allOds, err)
	}
	allWos, err := s.WriteOffs(ctx)
	if err != nil || len(allWos) != 3 {
		t.Fatalf("write-offs %+v, %v; want three", allWos, err)
	}

	call := erpHTTP(t, s)
	get := func(path string, page any) {
		t.Helper()
		code, body := call("GET", path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if err := json.Unmarshal([]byte(body), page); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	// walk asks for pages of limit 3 from the newest and returns the rows
	// and each page's length.
	walkOds := func(query string) ([]Overdraft, []int) {
		t.Helper()
		var rows []Overdraft
		var sizes []int
		next := ""
		for range 10 {
			var p OverdraftPage
			path := "/v1/erp/reports/overdrafts?limit=3" + query
			if next != "" {
				path += "&before=" + next
			}
			get(path, &p)
			rows, sizes = append(rows, p.Overdrafts...), append(sizes, len(p.Overdrafts))
			if p.More != (p.Next != "") {
				t.Fatalf("GET %s: more %v with next %q", path, p.More, p.Next)
			}
			if !p.More {
				return rows, sizes
			}
			next = p.Next
		}
		t.Fatal("overdrafts report: still more after 10 pages")
		return nil, nil
	}
	entries := func(ods []Overdraft) []string {
		var out []string
		for _, o := range ods {
			out = append(out, o.EntryID+" "+o.Card+" "+o.Points.String()+" debt "+o.DebtNow.String())
		}
		return out
	}
	got, sizes := walkOds("")
	if !slices.Equal(sizes, []int{3, 3, 2}) || !slices.Equal(entries(got), entries(allOds)) {
		t.Errorf("overdrafts in pages of 3: sizes %v\n%s\nwant 3, 3, 2 of\n%s", sizes, strings.Join(entries(got), "\n"), strings.Join(entries(allOds), "\n"))
	}
	var open []Overdraft
	for _, o := range allOds {
		if o.DebtNow.Decimal().IsPositive() {
			open = append(open, o)
		}
	}
	got, sizes = walkOds("&open=1")
	if len(open) != 4 || !slices.Equal(sizes, []int{3, 1}) || !slices.Equal(entries(got), entries(open)) {
		t.Errorf("open overdrafts in pages of 3: sizes %v\n%s\nwant the four cards still in debt\n%s", sizes, strings.Join(entries(got), "\n"), strings.Join(entries(open), "\n"))
	}

	var wp WriteOffPage
	get("/v1/erp/reports/writeoffs?limit=2", &wp)
	if len(wp.WriteOffs) != 2 || !wp.More || wp.WriteOffs[0].EntryID != allWos[0].EntryID || wp.WriteOffs[1].EntryID != allWos[1].EntryID {
		t.Fatalf("write-offs, first page of 2: %+v; want the two newest of %+v and more", wp, allWos)
	}
	next := wp.Next
	wp = WriteOffPage{}
	get("/v1/erp/reports/writeoffs?limit=2&before="+next, &wp)
	if len(wp.WriteOffs) != 1 || wp.More || wp.Next != "" || wp.WriteOffs[0].EntryID != allWos[2].EntryID {
		t.Fatalf("write-offs, second page: %+v; want the oldest, no more", wp)
	}
	wp = WriteOffPage{}
	get("/v1/erp/reports/writeoffs", &wp)
	if len(wp.WriteOffs) != 3 || wp.More {
		t.Fatalf("write-offs, default page: %+v; want all three", wp)
	}

	for path, want := range map[string]string{
		"/v1/erp/reports/overdrafts?before=x":     `before "x" is not a page's next`,
		"/v1/erp/reports/overdrafts?before=0":     `before "0" is not a page's next`,
		"/v1/erp/reports/overdrafts?limit=0":      `limit "0" is not a positive integer`,
		"/v1/erp/reports/overdrafts?open=maybe":   `open "maybe"`,
		"/v1/erp/reports/overdrafts?after=3":      `after`,
		"/v1/erp/reports/writeoffs?before=-1":     `before "-1" is not a page's next`,
		"/v1/erp/reports/writeoffs?open=1":        `open`,
		"/v1/erp/reports/writeoffs?limit=1000000": ``, // cut to the maximum
	} {
		code, body := call("GET", path, "")
		switch {
		case want == "" && code != http.StatusOK:
			t.Errorf("GET %s: %d %s, want 200", path, code, body)
		case want != "" && (code != http.StatusBadRequest || !strings.Contains(refusal(body), want)):
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, code, body, want)
		}
	}
}
