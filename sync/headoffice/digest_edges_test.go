package headoffice

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// edgeOldContent is an entry's content bytes and digest as the build before
// this one computed them (canonicalEntry: json.Marshal of the entry in
// UTC), the digests head office has stored for every entry until now.
func edgeOldContent(t *testing.T, e wire.Entry) (string, []byte) {
	t.Helper()
	e.Entry = e.Entry.InUTC()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	return string(body), sum[:]
}

// edgeDecoded is the batch as head office's handler has it: sent as a till
// sends it (json.Marshal) and read by DecodeBatch, with nothing refused.
func edgeDecoded(t *testing.T, till string, entries []wire.Entry) *wire.Batch {
	t.Helper()
	data, err := json.Marshal(wire.Batch{TillID: till, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Invalid) > 0 {
		t.Fatalf("refused: %+v", b.Invalid)
	}
	return b
}

// edgeOddEntries is a chain of n entries of till S001-T09 (after prev) on
// ingestFixture's cards with the content that writes oddly: notes and
// check ids of every kind of character, points of 9 decimal places or 9
// digits, times with nanoseconds in zones of half and quarter hours and
// of 14 hours, lots expiring, fiscal numbers, returns taking points back
// with withheld money and written-off points, some marked acked.
func edgeOddEntries(from, n int, prev string) []wire.Entry {
	texts := []string{"возврат «брак» — 5%", "<b>&amp;</b>", "tab\tnew\nline\r", `quote " back \ slash`, "\u2028\u2029", "\x7f\x01\x1f",
		"😀𝄞", "\uFFFD", "bad \xff utf-8", "ſ\u212a", "/", "plain"}
	points := []string{"10", "0.5", "123456789.123456789", "0.000000001", "7.10", "999999999"}
	// (Not a zone whose offset has seconds: json.Marshal writes the
	// offset without them, so such a till's times are 17 s off once
	// decoded, before and after this change alike; no zone has had one
	// since 1972.)
	zones := []*time.Location{time.UTC, time.FixedZone("MSK", 3*3600), time.FixedZone("", 5*3600+45*60), time.FixedZone("", -(3*3600 + 30*60)),
		time.FixedZone("", 12*3600+45*60), time.FixedZone("", 14*3600)}
	cards := []string{"3300000000001", "3300000000002", "3300000000003"}
	var out []wire.Entry
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("S001-T09-%026d", i)
		zone := zones[i%len(zones)]
		at := time.Date(2026, 11, 23, 12, 0, i, i*1234567, time.UTC).In(zone)
		pts := dec(points[i%len(points)])
		e := store.Entry{ID: id, CheckID: texts[(i+3)%len(texts)] + fmt.Sprint(i), CardCode: cards[i%3], Kind: store.KindAccrual, Points: pts,
			PurchaseKop: int64(i) * 1001, Note: texts[i%len(texts)], FD: uint32(i * 17), FP: uint32(i) * 2654435761, CreatedAt: at, Acked: i%2 == 0,
			Lots: []store.LotChange{{LotID: id, Delta: pts, Create: true, ActiveFrom: at.Add(time.Duration(i) * time.Hour),
				ExpiresAt: time.Date(2027, 5, 22, 23, 59, 59, i*999, zones[(i+1)%len(zones)])}}}
		if i%4 == 3 && len(out) > 0 {
			// A return taking back part of an earlier accrual of the card.
			acc := out[len(out)-3%len(out)]
			if acc.Kind == store.KindAccrual {
				back := acc.Points.Div(dec("2")).Truncate(9).Neg()
				e = store.Entry{ID: id, CheckID: acc.CheckID, CardCode: acc.CardCode, Kind: store.KindReversal, Points: back, PurchaseKop: -500,
					WithheldKop: int64(i), WrittenOff: dec("0.75"), Note: texts[i%len(texts)], CreatedAt: at,
					Lots: []store.LotChange{{LotID: acc.ID, Delta: back}}}
			}
		}
		if i%5 == 0 {
			e.Lots[0].ExpiresAt = time.Time{}
		}
		out = append(out, wire.Entry{Entry: e, Prev: prev})
		prev = id
	}
	return out
}

// TestStoredDigestsAreTheOldOnes: entries of odd content, pushed as a
// till pushes them, are stored with the body and digest the build before
// this one stored (json.Marshal of the entry in UTC and its SHA-256), byte
// for byte; sent again in another zone and marked acked they are
// duplicates. Entries stored by the old build, not folded yet (their
// predecessor not there), sent again, are duplicates and fold.
func TestStoredDigestsAreTheOldOnes(t *testing.T) {
	s, _ := ingestFixture(t)
	ctx := context.Background()
	first := edgeOddEntries(1, 24, "")
	b := edgeDecoded(t, "S001-T09", first)
	res, err := s.Ingest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "applied", ""), ",") != "" || res.FoldedThrough != first[len(first)-1].ID {
		t.Fatalf("first push: %s through %s", got, res.FoldedThrough)
	}
	for _, e := range b.Entries {
		var body string
		var digest []byte
		if err := s.db.QueryRow(ctx, `SELECT body::text, digest FROM journal WHERE id = $1`, e.ID).Scan(&body, &digest); err != nil {
			t.Fatal(err)
		}
		wantBody, wantDigest := edgeOldContent(t, e)
		if body != wantBody || string(digest) != string(wantDigest) {
			t.Errorf("entry %s stored as\n%s (%x)\nthe old build stored\n%s (%x)", e.ID, body, digest, wantBody, wantDigest)
		}
	}
	again := slices.Clone(first)
	for i := range again {
		again[i].Acked = true
	}
	res, err = s.Ingest(ctx, edgeDecoded(t, "S001-T09", inZone(again, time.FixedZone("", -(9*3600+30*60)))))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "duplicate", ""), ",") != "" {
		t.Errorf("re-sent in -09:30 and acked: %s, want all duplicate", got)
	}

	// Stored by the old build, unfolded: the first of them missing.
	second := edgeOddEntries(25, 12, first[len(first)-1].ID)
	old := edgeDecoded(t, "S001-T09", second)
	for _, e := range old.Entries[1:] {
		body, sum := edgeOldContent(t, e)
		if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded)
			VALUES ($1, 'S001-T09', $2, $3, $4, $5::numeric, $6::json, $7, false)`,
			e.ID, e.Prev, e.CardCode, string(e.Kind), e.Points.String(), body, sum); err != nil {
			t.Fatal(err)
		}
	}
	res, err = s.Ingest(ctx, edgeDecoded(t, "S001-T09", second))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(res), "applied"+strings.Repeat(",duplicate", len(second)-1); got != want || res.FoldedThrough != second[len(second)-1].ID {
		t.Errorf("the old build's unfolded entries re-sent: %s through %s, want %s through %s", got, res.FoldedThrough, want, second[len(second)-1].ID)
	}
	var accruals []string
	for _, e := range second[1:] {
		if e.Kind == store.KindAccrual {
			accruals = append(accruals, e.ID)
		}
	}
	var lots int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM lots WHERE lot_id = ANY($1)`, accruals).Scan(&lots); err != nil {
		t.Fatal(err)
	}
	if lots != len(accruals) || lots == 0 {
		t.Errorf("%d of the old build's %d accruals' lots made (folded)", lots, len(accruals))
	}
	// Folded now, the old build's entries are still duplicates, sent as
	// they were or in another zone.
	for _, es := range [][]wire.Entry{second, inZone(second, time.FixedZone("", 9*3600))} {
		res, err = s.Ingest(ctx, edgeDecoded(t, "S001-T09", es))
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "duplicate", ""), ",") != "" {
			t.Errorf("the old build's folded entries re-sent: %s, want all duplicate", got)
		}
	}
}

// TestSettledConflictsAcrossTheChange: conflicts support settled by
// keeping head office's copy, under the old build (the till's copy's
// digest json.Marshal's): the till's copy sent again is a duplicate, not
// a conflict again, whatever odd content it holds. The settled digest is
// compared as it is, so this holds only if the digest is the old one.
func TestSettledConflictsAcrossTheChange(t *testing.T) {
	s, _ := ingestFixture(t)
	ctx := context.Background()
	stored := edgeOddEntries(1, 12, "")
	if res, err := s.Ingest(ctx, edgeDecoded(t, "S001-T09", stored)); err != nil || res.FoldedThrough != stored[len(stored)-1].ID {
		t.Fatalf("push: %v %v", res, err)
	}
	// The till's copies: another note, check and time each.
	others := edgeOddEntries(101, 12, "")
	tillCopies := make([]wire.Entry, len(stored))
	for i, e := range stored {
		c := e
		c.Note, c.CheckID, c.CreatedAt = others[i].Note+"!", others[i].CheckID, others[i].CreatedAt
		c.Lots = slices.Clone(e.Lots)
		tillCopies[i] = c
	}
	b := edgeDecoded(t, "S001-T09", tillCopies)
	res, err := s.Ingest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "conflict", ""), ",") != "" {
		t.Fatalf("the till's other copies: %s, want all conflict", got)
	}
	for _, e := range b.Entries {
		_, sum := edgeOldContent(t, e)
		if _, err := s.db.Exec(ctx, `UPDATE journal_conflicts SET digest = $2, settled_at = now(), reason = 'qa: kept head office''s' WHERE id = $1`, e.ID, sum); err != nil {
			t.Fatal(err)
		}
	}
	res, err = s.Ingest(ctx, edgeDecoded(t, "S001-T09", tillCopies))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "duplicate", ""), ",") != "" {
		t.Errorf("settled copies re-sent: %s, want all duplicate", got)
	}
}

// TestHistoriesStoredByOlderCode: cards whose histories were stored by
// older code or by hand — json.Marshal's bytes, the same history with
// white space, keys in another order, money as a number or with other
// decimal places, the column's default {} and {} with white space — take
// the same purchases: each pair ends with the same history, written as
// json.Marshal writes it, and the feed reads it back as it is stored; the
// feed reads the histories of cards no batch touched as json.Unmarshal
// read them (duplicate keys, keys in another case, unknown keys).
func TestHistoriesStoredByOlderCode(t *testing.T) {
	s, _ := ingestFixture(t)
	ctx := context.Background()
	h := store.CardHistory{Month: "2026-11", PurchasesAllTime: checkout.MustMoney("1000"), PurchasesMonth: checkout.MustMoney("100"),
		PurchasesPrevMonth: checkout.MustMoney("50"), AccruedMonth: checkout.MustPoints("10"), RedeemedMonth: checkout.MustPoints("3")}
	canonical, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"3300000000011": string(canonical),
		"3300000000012": "{\n  \"redeemed_month\" : \"3.000\",\t\"accrued_month\": 10,\r\n \"purchases_prev_month\":\"50\", \"purchases_month\":\"1e2\", \"purchases_all_time\":1000.0, \"month\":\"2026-11\" }\n",
		"3300000000021": `{}`,
		"3300000000022": " \n{ }\t",
	}
	for code, hist := range forms {
		if _, err := s.db.Exec(ctx, `INSERT INTO cards (code, kind, state, history) VALUES ($1, 'bonus', 'active', $2::json)`, code, hist); err != nil {
			t.Fatal(err)
		}
	}
	var entries []wire.Entry
	prev := ""
	i := 0
	for _, code := range []string{"3300000000011", "3300000000012", "3300000000021", "3300000000022"} {
		for _, pts := range []string{"10", "-4"} {
			i++
			id := fmt.Sprintf("S001-T09-%026d", i)
			e := store.Entry{ID: id, CheckID: id, CardCode: code, Points: dec(pts), CreatedAt: demoNow}
			if pts == "10" {
				e.Kind, e.PurchaseKop = store.KindAccrual, 12345
				e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: demoNow}}
			} else {
				e.Kind, e.AmountKop = store.KindRedemption, 400
				e.Lots = []store.LotChange{{LotID: fmt.Sprintf("S001-T09-%026d", i-1), Delta: e.Points}}
			}
			entries = append(entries, wire.Entry{Entry: e, Prev: prev})
			prev = id
		}
	}
	res, err := s.Ingest(ctx, edgeDecoded(t, "S001-T09", entries))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); strings.Trim(strings.ReplaceAll(got, "applied", ""), ",") != "" {
		t.Fatalf("%s, want all applied", got)
	}
	stored := map[string]string{}
	for code := range forms {
		var text string
		if err := s.db.QueryRow(ctx, `SELECT history::text FROM cards WHERE code = $1`, code).Scan(&text); err != nil {
			t.Fatal(err)
		}
		stored[code] = text
		got, err := store.DecodeHistory([]byte(text))
		if err != nil {
			t.Fatalf("card %s history %q: %v", code, text, err)
		}
		if want, _ := json.Marshal(got); string(want) != text {
			t.Errorf("card %s history stored as %q, json.Marshal writes %q", code, text, want)
		}
	}
	for _, pair := range [][2]string{{"3300000000011", "3300000000012"}, {"3300000000021", "3300000000022"}} {
		if stored[pair[0]] != stored[pair[1]] {
			t.Errorf("the same history stored two ways ended apart:\n%s: %s\n%s: %s", pair[0], stored[pair[0]], pair[1], stored[pair[1]])
		}
	}
	want := store.CardHistory{Month: "2026-11", PurchasesAllTime: checkout.MustMoney("1123.45"), PurchasesMonth: checkout.MustMoney("223.45"),
		PurchasesPrevMonth: checkout.MustMoney("50"), AccruedMonth: checkout.MustPoints("20"), RedeemedMonth: checkout.MustPoints("7")}
	if w, _ := json.Marshal(want); stored["3300000000011"] != string(w) {
		t.Errorf("history after the purchases: %s, want %s", stored["3300000000011"], w)
	}
	// Cards no batch touched keep what older code stored: the feed reads
	// it as json.Unmarshal did.
	untouched := map[string]string{
		"3300000000031": string(canonical),
		"3300000000032": "{ \"month\" : \"2026-11\",\n\"purchases_month\": 12.5 }",
		"3300000000033": `{"month":"2026-10","month":"2026-11","Accrued_Month":"4"}`,
		"3300000000034": `{"purchases_all_time":"1.5","tier":"gold"}`,
		"3300000000035": `{ }`,
	}
	for code, hist := range untouched {
		if _, err := s.db.Exec(ctx, `INSERT INTO cards (code, kind, state, history) VALUES ($1, 'bonus', 'active', $2::json)`, code, hist); err != nil {
			t.Fatal(err)
		}
		var h store.CardHistory
		if err := json.Unmarshal([]byte(hist), &h); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(h)
		stored[code] = string(b)
	}
	f, err := s.Feed(ctx, "S001-T09", "")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, c := range f.Replica.Cards {
		if text, ok := stored[c.Code]; ok {
			found++
			if got, _ := json.Marshal(c.History); string(got) != text {
				t.Errorf("feed: card %s history %s, want %s", c.Code, got, text)
			}
		}
	}
	if found != len(forms)+len(untouched) {
		t.Errorf("feed carries %d of the %d cards", found, len(forms)+len(untouched))
	}
}

// TestImportedHistoryBytes: the ERP import writes a card's history as
// json.Marshal wrote it before (AppendHistoryJSON), empty ones as {}.
func TestImportedHistoryBytes(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	hs := []store.CardHistory{{}, {Month: "2026-11"}, {PurchasesAllTime: checkout.MustMoney("0.5")},
		{Month: "2025-01", PurchasesAllTime: checkout.MustMoney("99999999999.99"), PurchasesMonth: checkout.MustMoney("12.3"),
			PurchasesPrevMonth: checkout.MustMoney("7"), AccruedMonth: checkout.MustPoints("0.000000001"), RedeemedMonth: checkout.MustPoints("123456789.5")},
		{Month: "2026-10", RedeemedMonth: checkout.MustPoints("5")}}
	r := &store.Replica{Version: 1}
	for i, h := range hs {
		r.Cards = append(r.Cards, store.ReplicaCard{Code: fmt.Sprintf("33000000009%02d", i), Kind: "bonus", State: checkout.StateActive, History: h})
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Cards {
		var text string
		if err := s.db.QueryRow(ctx, `SELECT history::text FROM cards WHERE code = $1`, c.Code).Scan(&text); err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(c.History); text != string(want) {
			t.Errorf("card %s history stored %s, json.Marshal writes %s", c.Code, text, want)
		}
	}
}

// TestRefusedEntryPastYear9999InUTC: a till's entry dated
// 9999-12-31T23:30:00-01:00 (10000-01-01 in UTC) is refused by
// DecodeBatch (outside 2000..2198) and, its chain link being the till's,
// kept as rejected so the entries after it fold. JSON has no year past
// 9999, so it is kept with that time made zero (wire.Sanitized); before,
// storing it failed the whole batch, the entry before it too, and the
// till sending the batch again was stuck.
func TestRefusedEntryPastYear9999InUTC(t *testing.T) {
	s, entries := ingestFixture(t)
	good := entries[0]
	good.Prev = ""
	body, err := json.Marshal(wire.Batch{TillID: "S001-T09", Entries: []wire.Entry{good}})
	if err != nil {
		t.Fatal(err)
	}
	bad := fmt.Sprintf(`,{"id":%q,"check_id":"c","card_code":"3300000000002","kind":"accrual","points":"1","amount_kop":0,"purchase_kop":0,`+
		`"created_at":"9999-12-31T23:30:00-01:00","acked":false,"prev":%q}]}`, entries[1].ID, good.ID)
	data := append(body[:len(body)-2], bad...)
	b, err := wire.DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Refused) != 1 || len(b.Entries) != 1 {
		t.Fatalf("decoded %d entries, %d refused; want 1 and 1", len(b.Entries), len(b.Refused))
	}
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatalf("ingest: %v\n(want the entry dated past 9999 in UTC rejected and %s applied)", err, good.ID)
	}
	if got := statuses(res); got != "applied,rejected" {
		t.Errorf("%s, want applied,rejected", got)
	}
	// Sent again (the till never acknowledged the rejected one), the same
	// refused entry is kept with the same digest: nothing new, no error.
	b, err = wire.DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = s.Ingest(context.Background(), b); err != nil {
		t.Fatalf("ingest again: %v", err)
	}
	var kept int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM journal WHERE rejected <> ''`).Scan(&kept); err != nil || kept != 1 {
		t.Fatalf("%d entries kept as rejected (%v), want 1", kept, err)
	}
	if got := statuses(res); got != "duplicate,duplicate" {
		t.Errorf("sent again: %s, want duplicate,duplicate (acknowledged; support settles the card)", got)
	}
}
