package headoffice

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestFetchesAssignmentsAndCorrectionsAtOnce: two tills of a home store
// fetch the same 60 cards in shuffled batches, while ERP assigns the same
// cards to the store (in reverse order) and corrects them: nothing fails
// (no deadlock, no duplicate key), each card is home to the store once,
// with one home/S002 change row, and each answer carries exactly the cards
// asked for with head office's lots of them.
func TestFetchesAssignmentsAndCorrectionsAtOnce(t *testing.T) {
	ctx := context.Background()
	s, _, _ := twoScopes(t)
	if _, err := s.Enrol(ctx, "S002-T02", "S002"); err != nil {
		t.Fatal(err)
	}
	r := &store.Replica{Version: store.ReplicaFormatVersion}
	var codes []string
	for i := range 60 {
		code := fmt.Sprintf("29300000%05d", i)
		codes = append(codes, code)
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: "active"})
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		till := []string{"S002-T01", "S002-T02"}[g%2]
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 7))
			for range 5 {
				batch := slices.Clone(codes)
				rnd.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				batch = batch[:20]
				a, err := s.FetchCards(ctx, till, "S002", batch)
				if err != nil {
					errs <- fmt.Errorf("%s fetching: %w", till, err)
					return
				}
				if len(a.Replica.Cards) != 20 || len(a.Unknown) != 0 || a.Scope != ScopeHome {
					errs <- fmt.Errorf("%s fetching 20: %d cards, unknown %v, scope %q", till, len(a.Replica.Cards), a.Unknown, a.Scope)
				}
			}
		})
	}
	wg.Go(func() {
		rev := slices.Clone(codes)
		slices.Reverse(rev)
		for i := 0; i < len(rev); i += 15 {
			if _, err := s.AssignCards(ctx, "S002", rev[i:i+15]); err != nil {
				errs <- fmt.Errorf("assign: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i, c := range codes {
			if i%3 == 0 {
				if _, err := s.Correct(ctx, Correction{ID: "qa-fetch-" + c, Card: c, Points: dec("5"), Reason: "qa"}); err != nil {
					errs <- fmt.Errorf("correct %s: %w", c, err)
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var rows, changes int
	if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM card_stores WHERE store_id = 'S002' AND card = ANY($1)),
		(SELECT count(*) FROM changes WHERE section = 'home/S002' AND key = ANY($1))`, codes).Scan(&rows, &changes); err != nil {
		t.Fatal(err)
	}
	if rows != 60 || changes != 60 {
		t.Errorf("after the fetches and assignments at once: %d card_stores rows and %d home/S002 changes of the 60 cards, want 60 and 60", rows, changes)
	}
	// An answer read now holds head office's lots.
	a, err := s.FetchCards(ctx, "S002-T01", "S002", codes[:3])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes[:3] {
		sum := dec("0")
		for _, l := range a.Replica.Lots {
			if l.Card == c {
				sum = sum.Add(l.Remaining.Decimal())
			}
		}
		if want := heldPoints(t, s, c); sum.String() != want {
			t.Errorf("card %s: the answer's lots hold %s, head office %s", c, sum, want)
		}
	}
}

// TestFetchCardsEdges: a retired till is refused (401) and writes
// nothing; codes no card can have (spaces, percent signs, Cyrillic, a
// newline, a leading sign) are refused (400), 64 characters of the import's
// rule are unknown; 1,000 codes of 64 characters
// fit the request limit; a store whose scope row is missing is `all`.
func TestFetchCardsEdges(t *testing.T) {
	ctx := context.Background()
	s, secrets, hs := twoScopes(t)
	call := func(till, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", hs.URL+"/v1/till/cards", strings.NewReader(body))
		req.SetBasicAuth(till, secrets[till])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	// Codes no card can have (the import's rule) are refused, naming the
	// first; 64 characters of the rule are only unknown.
	for i, odd := range []string{"2900 000000049", "29%30", "карта", `2900000000049\n`, "-29"} {
		code, data := call("S002-T01", `{"codes": ["`+strings.Repeat("9", 64)+`", "`+odd+`"]}`)
		if code != 400 || !strings.Contains(data, "card code 2") {
			t.Errorf("odd code %d %q: %d %s; want 400 naming code 2", i, odd, code, data)
		}
	}
	code, data := call("S002-T01", `{"codes": ["`+strings.Repeat("9", 64)+`"]}`)
	a, err := wire.DecodeCardAnswer([]byte(data), []string{strings.Repeat("9", 64)})
	if code != 200 || err != nil || len(a.Replica.Cards) != 0 || len(a.Unknown) != 1 {
		t.Errorf("64 nines: %d %+v, %v; want unknown", code, a, err)
	}
	many := make([]string, wire.MaxFetchCards)
	for i := range many {
		many[i] = fmt.Sprintf("%064d", i)
	}
	code, data = call("S002-T01", `{"codes": ["`+strings.Join(many, `", "`)+`"]}`)
	if code != 200 {
		t.Errorf("1,000 codes of 64 characters: %d %.200s", code, data)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM store_card_scope WHERE store_id = 'S001'`); err != nil {
		t.Fatal(err)
	}
	if code, data = call("S001-T01", `{"codes": ["2900000000049"]}`); code != 200 || !strings.Contains(data, `"scope":"all"`) {
		t.Errorf("a store without a scope row: %d %.300s", code, data)
	}

	if _, err := s.Retire(ctx, "S002-T01"); err != nil {
		t.Fatal(err)
	}
	before, err := s.StoreCardScope(ctx, "S002")
	if err != nil {
		t.Fatal(err)
	}
	if code, data := call("S002-T01", `{"codes": ["2900000000018"]}`); code != 401 {
		t.Errorf("a retired till fetching: %d %s, want 401", code, data)
	}
	if after, err := s.StoreCardScope(ctx, "S002"); err != nil || after.HomeCards != before.HomeCards {
		t.Errorf("a retired till's fetch: home cards %d → %d (%v)", before.HomeCards, after.HomeCards, err)
	}
}
