package headoffice

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// getPage GETs path from the ERP API into page, failing on anything but a
// 200 with JSON.
func getPage(t *testing.T, call func(method, path, body string) (int, string), path string, page any) {
	t.Helper()
	code, body := call("GET", path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), page); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// walkPages GETs path (which holds a "?") page after page, asking for
// the next with param=next, until more is false, and gives the pages in
// order. during (nil: nothing) runs after each page is read. A page whose
// more and next disagree fails the test; so does an eleventh page.
func walkPages[P any](t *testing.T, call func(method, path, body string) (int, string), path, param string, during func(page int)) []P {
	t.Helper()
	var pages []P
	next := ""
	for page := 0; page < 10; page++ {
		u := path
		if next != "" {
			u += "&" + param + "=" + url.QueryEscape(next)
		}
		var p P
		var m struct {
			More bool   `json:"more"`
			Next string `json:"next"`
		}
		getPage(t, call, u, &p)
		getPage(t, call, u, &m)
		if m.More != (m.Next != "") {
			t.Fatalf("GET %s: more %v with next %q", u, m.More, m.Next)
		}
		pages = append(pages, p)
		if during != nil {
			during(page)
		}
		if !m.More {
			return pages
		}
		next = m.Next
	}
	t.Fatalf("GET %s: still more after 10 pages", path)
	return nil
}

// wantRefused asks each path and wants a 400 whose error holds its text.
func wantRefused(t *testing.T, call func(method, path, body string) (int, string), want map[string]string) {
	t.Helper()
	for path, text := range want {
		if code, body := call("GET", path, ""); code != http.StatusBadRequest || !strings.Contains(refusal(body), text) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, code, body, text)
		}
	}
}

// TestRejectedListPages: five entries kept as rejected, three of them in
// one push (so one received_at: the id orders them), two in a later one.
// GET /v1/erp/rejected in pages of 2 gives them newest first, 2, 2 and 1,
// each once, although an entry rejected during the walk comes in ahead of
// it (the next walk starts with it). A malformed before or limit, or a
// parameter of another report, is a 400 naming it. The list used to stop
// at the newest 1,000.
func TestRejectedListPages(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	good := store.Entry{CardCode: demoCard, Kind: store.KindAccrual, Points: dec("5"), PurchaseKop: 1000, CreatedAt: demoNow,
		Lots: []store.LotChange{{Create: true, Delta: dec("5"), ActiveFrom: demoNow}}}
	// Only head office writes corrections: a till's is kept as rejected.
	bad := store.Entry{CardCode: demoCard, Kind: store.KindCorrection, Points: dec("500"), CreatedAt: demoNow,
		Lots: []store.LotChange{{Create: true, Delta: dec("500"), ActiveFrom: demoNow}}}
	rejectIf := map[store.Kind]string{store.KindCorrection: wire.Rejected}
	idsOf := func(b *wire.Batch, at ...int) []string {
		var out []string
		for _, i := range at {
			out = append(out, b.Entries[i].ID)
		}
		return out
	}
	push := func(es ...store.Entry) *wire.Batch {
		t.Helper()
		b := lt.batch(es...)
		// Through the decoder, as a push comes: it refuses the correction.
		data, _ := json.Marshal(b)
		decoded, err := wire.DecodeBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Ingest(ctx, decoded)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(res.Results, func(a, b wire.Result) int { return strings.Compare(a.ID, b.ID) })
		for i, r := range res.Results {
			if want := cmp.Or(rejectIf[b.Entries[i].Kind], wire.Applied); r.Status != want {
				t.Fatalf("%s: %+v, want %s", b.Entries[i].Kind, r, want)
			}
		}
		return b
	}
	b1 := push(bad, good, bad, bad)
	time.Sleep(2 * time.Millisecond) // a later received_at, whatever the clock's grain
	b2 := push(bad, bad)
	want := append(idsOf(b2, 1, 0), idsOf(b1, 3, 2, 0)...)

	all, err := s.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rs []RejectedEntry) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if !slices.Equal(ids(all), want) {
		t.Fatalf("rejected, newest first: %v, want %v", ids(all), want)
	}

	call := erpHTTP(t, s)
	var got []string
	var sizes []int
	for _, p := range walkPages[RejectedPage](t, call, "/v1/erp/rejected?limit=2", "before", func(page int) {
		if page == 0 {
			push(bad) // rejected during the walk
		}
	}) {
		got, sizes = append(got, ids(p.Rejected)...), append(sizes, len(p.Rejected))
		for _, r := range p.Rejected {
			if r.TillID != "S001-T01" || !strings.Contains(r.Reason, "only head office writes corrections") || len(r.Entry) == 0 {
				t.Errorf("rejected entry %+v: want its till, why and the entry", r)
			}
		}
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(got, want) {
		t.Errorf("rejected in pages of 2: sizes %v, ids %v; want 2, 2, 1 of %v", sizes, got, want)
	}
	var p RejectedPage
	getPage(t, call, "/v1/erp/rejected", &p)
	if len(p.Rejected) != 6 || p.More || p.Rejected[0].ID != fmt.Sprintf("S001-T01-%026d", lt.n) {
		t.Errorf("rejected, default page after the walk: %d entries, more %v, first %+v; want all 6, the one rejected during the walk first", len(p.Rejected), p.More, p.Rejected[0])
	}

	wantRefused(t, call, map[string]string{
		"/v1/erp/rejected?before=x":         `before "x" is not a page's next`,
		"/v1/erp/rejected?before=123":       `before "123" is not a page's next`,
		"/v1/erp/rejected?before=0_S001-T0": `before "0_S001-T0" is not a page's next`,
		"/v1/erp/rejected?before=12_":       `before "12_" is not a page's next`,
		"/v1/erp/rejected?limit=-3":         `limit "-3" is not a positive integer`,
		"/v1/erp/rejected?after=1":          `unknown parameter "after"`,
	})
}

// TestUnknownCardsReportPages: five cards head office does not hold, seen
// in one push. The report in pages of 2 lists them in code order, 2, 2
// and 1; while it is walked a till uses the first and the last again and
// a sixth, whose code sorts first: the walk still lists each of the five
// once (the last with its new entry, read after it), and the next walk
// has all six. since= keeps the three cards seen again or first at or
// after it. A malformed since or limit is a 400 naming it. The report
// used to stop at the 1,000 most recently seen, and ordered by when a
// card was last seen a walk would miss one used again while it ran.
func TestUnknownCardsReportPages(t *testing.T) {
	s, hs, _ := servedHO(t, pgtest.DSN(t))
	ctx := context.Background()
	call := func(method, path, body string) (int, string) {
		code, data := httpCall(t, hs, method, path, []byte(body), "")
		return code, string(data)
	}
	code := func(i int) string { return fmt.Sprintf("44100000000%02d", i) }
	accrue := func(card string) store.Entry {
		return store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("3"), PurchaseKop: 300, CreatedAt: demoNow,
			Lots: []store.LotChange{{Create: true, Delta: dec("3"), ActiveFrom: demoNow}}}
	}
	var lt lateTill
	var first []store.Entry
	for i := 1; i <= 5; i++ {
		first = append(first, accrue(code(i)))
	}
	wantStatuses(t, "first push", lt.push(t, s, first...), wire.Applied, wire.Applied, wire.Applied, wire.Applied, wire.Applied)

	walk := func(query string, during func()) ([]UnknownCard, []int) {
		t.Helper()
		var cards []UnknownCard
		var sizes []int
		for _, p := range walkPages[UnknownCardPage](t, call, "/v1/erp/reports/unknown-cards?limit=2"+query, "after", func(page int) {
			if page == 0 && during != nil {
				during()
			}
		}) {
			cards, sizes = append(cards, p.Cards...), append(sizes, len(p.Cards))
		}
		return cards, sizes
	}
	line := func(cs []UnknownCard) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %d entries %s", c.Card, c.Entries, c.Points))
		}
		return out
	}
	var since time.Time
	got, sizes := walk("", func() {
		// The database's clock is this machine's; the first push is well
		// before since, the next one after it.
		time.Sleep(5 * time.Millisecond)
		since = time.Now().Truncate(time.Millisecond)
		wantStatuses(t, "push during the walk", lt.push(t, s, accrue(code(1)), accrue(code(5)), accrue(code(0))), wire.Applied, wire.Applied, wire.Applied)
	})
	want := []string{code(1) + " 1 entries 3", code(2) + " 1 entries 3", code(3) + " 1 entries 3", code(4) + " 1 entries 3", code(5) + " 2 entries 6"}
	if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(line(got), want) {
		t.Errorf("unknown cards in pages of 2: sizes %v\n%s\nwant 2, 2, 1 of\n%s", sizes, strings.Join(line(got), "\n"), strings.Join(want, "\n"))
	}
	got, _ = walk("", nil)
	if want := []string{code(0) + " 1 entries 3", code(1) + " 2 entries 6", want[1], want[2], want[3], want[4]}; !slices.Equal(line(got), want) {
		t.Errorf("the next walk:\n%s\nwant\n%s", strings.Join(line(got), "\n"), strings.Join(want, "\n"))
	}
	got, sizes = walk("&since="+since.UTC().Format(time.RFC3339Nano), nil)
	if want := []string{code(0) + " 1 entries 3", code(1) + " 2 entries 6", code(5) + " 2 entries 6"}; !slices.Equal(sizes, []int{2, 1}) || !slices.Equal(line(got), want) {
		t.Errorf("since %s: sizes %v\n%s\nwant 2, 1 of\n%s", since.Format(time.RFC3339Nano), sizes, strings.Join(line(got), "\n"), strings.Join(want, "\n"))
	}
	all, err := s.UnknownCards(ctx)
	if err != nil || len(all) != 6 || all[0].Card != code(0) {
		t.Errorf("UnknownCards: %+v, %v; want the six in code order", all, err)
	}

	wantRefused(t, call, map[string]string{
		"/v1/erp/reports/unknown-cards?since=yesterday": `since "yesterday" is not an RFC 3339 time`,
		"/v1/erp/reports/unknown-cards?limit=x":         `limit "x" is not a positive integer`,
		"/v1/erp/reports/unknown-cards?before=1":        `unknown parameter "before"`,
	})
}

// TestExpiringReportPages: five cards besides the demo's card 13 hold
// points lapsing within 20 days (one of them in two lots, one lot of
// another lapsing later). The report in pages of 2 over HTTP lists the
// six in code order, 2, 2, 2, the same as the whole report, each card's
// points summed over its lots in the window; a malformed limit or a
// parameter of another report is a 400. It used to be one answer of a row
// a card: a chain whose lots lapse within a year gave all its cards.
func TestExpiringReportPages(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	soon, later := demoNow.AddDate(0, 0, 5), demoNow.AddDate(0, 0, 40)
	code := func(i int) string { return fmt.Sprintf("29920000000%02d", i) }
	extra := &store.Replica{Version: 1}
	for i := 1; i <= 5; i++ {
		extra.Cards = append(extra.Cards, store.ReplicaCard{Code: code(i), Kind: "bonus", State: checkout.StateActive})
		extra.Lots = append(extra.Lots, lot(code(i), fmt.Sprintf("X%d", i), fmt.Sprint(i), demoNow.AddDate(0, 0, -30), &soon))
	}
	extra.Lots = append(extra.Lots, lot(code(2), "X2b", "10", demoNow.AddDate(0, 0, -30), &soon),
		lot(code(3), "X3late", "50", demoNow.AddDate(0, 0, -30), &later))
	if _, err := s.Import(ctx, extra); err != nil {
		t.Fatal(err)
	}
	all, err := s.ExpiringWithin(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	line := func(es []Expiring) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Card+" "+e.Points.String())
		}
		return out
	}
	want := []string{"2900000000018 100", code(1) + " 1", code(2) + " 12", code(3) + " 3", code(4) + " 4", code(5) + " 5"}
	if !slices.Equal(line(all), want) {
		t.Fatalf("expiring within 20 days:\n%s\nwant\n%s", strings.Join(line(all), "\n"), strings.Join(want, "\n"))
	}
	call := erpHTTP(t, s)
	var got []Expiring
	var sizes []int
	for _, p := range walkPages[ExpiringPage](t, call, "/v1/erp/reports/expiring?days=20&limit=2", "after", nil) {
		got, sizes = append(got, p.Expiring...), append(sizes, len(p.Expiring))
	}
	if !slices.Equal(sizes, []int{2, 2, 2}) || !slices.Equal(line(got), want) {
		t.Errorf("expiring in pages of 2: sizes %v\n%s\nwant\n%s", sizes, strings.Join(line(got), "\n"), strings.Join(want, "\n"))
	}
	wantRefused(t, call, map[string]string{
		"/v1/erp/reports/expiring?days=20&limit=0":    `limit "0" is not a positive integer`,
		"/v1/erp/reports/expiring?days=20&before=1":   `unknown parameter "before"`,
		"/v1/erp/reports/expiring?days=9999&after=29": `days 9999 outside 1..3650`,
	})
}

// TestConflictsListPages: five journal conflicts, three opened by one
// push (so one first_seen: the id orders them), two by later ones; the
// second is settled. GET /v1/erp/conflicts in pages of 2 lists the four
// open, oldest first, 2 and 2; with all=1 the five, 2, 2, 1, each once,
// although during that walk a sixth conflict opens (it comes last) and
// the first is sent again (its last_seen moves, its place does not). A
// malformed after or limit is a 400 naming it. The list was one answer
// of every conflict, and with all=1 the settled only grow.
func TestConflictsListPages(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	accrue := func(points string) store.Entry {
		return store.Entry{CardCode: demoCard, Kind: store.KindAccrual, Points: dec(points), PurchaseKop: 1000, CreatedAt: demoNow,
			Lots: []store.LotChange{{Create: true, Delta: dec(points), ActiveFrom: demoNow}}}
	}
	ingest := func(b *wire.Batch, want string) {
		t.Helper()
		res, err := s.Ingest(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Results {
			if r.Status != want {
				t.Fatalf("%s: %+v, want %s", r.ID, r, want)
			}
		}
	}
	// stored pushes n entries; clash sends them again with other points.
	stored := func(n int) *wire.Batch {
		var es []store.Entry
		for range n {
			es = append(es, accrue("5"))
		}
		b := lt.batch(es...)
		ingest(b, wire.Applied)
		return b
	}
	clash := func(b *wire.Batch, points string) {
		t.Helper()
		c := &wire.Batch{TillID: b.TillID}
		for _, e := range b.Entries {
			e.Points = dec(points)
			e.Lots = []store.LotChange{{Create: true, LotID: e.ID, Delta: dec(points), ActiveFrom: demoNow}}
			c.Entries = append(c.Entries, e)
		}
		ingest(c, wire.Conflict)
	}
	b1, b2, b3 := stored(3), stored(1), stored(1)
	clash(b1, "6")
	time.Sleep(2 * time.Millisecond) // a later first_seen, whatever the clock's grain
	clash(b2, "6")
	time.Sleep(2 * time.Millisecond)
	clash(b3, "6")
	ids := func(b *wire.Batch) []string {
		var out []string
		for _, e := range b.Entries {
			out = append(out, e.ID)
		}
		return out
	}
	wantAll := slices.Concat(ids(b1), ids(b2), ids(b3))
	if err := s.KeepHeadOffice(ctx, wantAll[1], "ticket 12"); err != nil {
		t.Fatal(err)
	}
	wantOpen := slices.Delete(slices.Clone(wantAll), 1, 2)

	call := erpHTTP(t, s)
	walk := func(query string, during func(page int)) ([]string, []int) {
		t.Helper()
		var got []string
		var sizes []int
		for _, p := range walkPages[ConflictPage](t, call, "/v1/erp/conflicts?limit=2"+query, "after", during) {
			for _, c := range p.Conflicts {
				got = append(got, c.ID)
				if c.TillID != "S001-T01" || strings.Contains(string(c.TillCopy), `"points":"5"`) || !strings.Contains(string(c.HeadOfficeCopy), `"points":"5"`) || !c.Folded {
					t.Errorf("conflict %s of %s: till's copy %s, head office's %s (folded %v); want the other points and head office's 5, folded", c.ID, c.TillID, c.TillCopy, c.HeadOfficeCopy, c.Folded)
				}
			}
			sizes = append(sizes, len(p.Conflicts))
		}
		return got, sizes
	}
	if got, sizes := walk("", nil); !slices.Equal(sizes, []int{2, 2}) || !slices.Equal(got, wantOpen) {
		t.Errorf("open conflicts in pages of 2: sizes %v, ids %v; want 2, 2 of %v", sizes, got, wantOpen)
	}
	var b4 *wire.Batch
	got, sizes := walk("&all=1", func(page int) {
		if page == 0 {
			b4 = stored(1)
			clash(b4, "7")
			clash(&wire.Batch{TillID: b1.TillID, Entries: b1.Entries[:1]}, "8")
		}
	})
	if want := append(slices.Clone(wantAll), ids(b4)...); !slices.Equal(sizes, []int{2, 2, 2}) || !slices.Equal(got, want) {
		t.Errorf("all conflicts in pages of 2: sizes %v, ids %v; want 2, 2, 2 of %v", sizes, got, want)
	}
	all, err := s.Conflicts(ctx, true)
	if err != nil || len(all) != 6 || all[0].ID != wantAll[0] || !strings.Contains(string(all[0].TillCopy), `"points":"8"`) || !all[0].LastSeen.After(all[0].FirstSeen) {
		t.Errorf("Conflicts(all): %+v, %v; want six, the first with the copy sent last and a later last_seen", all, err)
	}

	wantRefused(t, call, map[string]string{
		"/v1/erp/conflicts?after=x":    `after "x" is not a page's next`,
		"/v1/erp/conflicts?after=5_":   `after "5_" is not a page's next`,
		"/v1/erp/conflicts?limit=x":    `limit "x" is not a positive integer`,
		"/v1/erp/conflicts?before=1":   `unknown parameter "before"`,
		"/v1/erp/conflicts?all=1&all=": `parameter "all" given 2 times`,
	})
}
