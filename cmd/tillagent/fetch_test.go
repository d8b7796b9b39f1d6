package main

import (
	"context"
	"strings"
	"testing"
)

// TestCardOfAnotherStoreWorksOnAHomeStore: store S001 receives only its
// home cards. The cashier scans a customer's card from another store: the
// agent asks head office, and the card answers with head office's balance
// and sells. A card head office lacks is card.unknown saying so; with head
// office down, card.unknown saying that, at once. Metrics count each.
func TestCardOfAnotherStoreWorksOnAHomeStore(t *testing.T) {
	ctx := context.Background()
	h, srv, hs := homeScopeAgent(t, nil)

	var c cardAnswer
	h.must(200, "GET", "/v1/cards/"+card, nil, &c)
	bs, err := srv.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Card == card && b.Balance.String() != c.Balance {
			t.Errorf("card %s fetched: balance %s, head office %s", card, c.Balance, b.Balance)
		}
	}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("visit-1", []string{card}, "", "500.00", line(1, "1001", "2", "89.90")), &a)
	if len(a.Cards) != 1 || a.Cards[0].Balance == c.Balance {
		t.Errorf("sale to the fetched card: %+v, want its balance moved from %s", a.Cards, c.Balance)
	}
	var st struct {
		CardsFetched int `json:"cards_fetched"`
	}
	h.must(200, "GET", "/v1/sync", nil, &st)
	if st.CardsFetched != 1 {
		t.Errorf("/v1/sync: %d cards fetched, want 1", st.CardsFetched)
	}

	if e := h.refusal(404, "card.unknown", "GET", "/v1/cards/2900000000099", nil); !strings.Contains(e.Error.Hint, "head office does not hold") {
		t.Errorf("a card head office lacks: %+v", e)
	}
	hs.Close()
	h.refusal(502, "sync.failed", "POST", "/v1/sync/now", nil)
	if e := h.refusal(404, "card.unknown", "GET", "/v1/cards/2900000000056", nil); !strings.Contains(e.Error.Message, "офис сейчас недоступен") ||
		!strings.Contains(e.Error.Hint, "did not answer") {
		t.Errorf("a card not held with head office down: %+v", e)
	}
	h.metricsHave(`tillagent_card_fetches_total{result="fetched"} 1`, `tillagent_card_fetches_total{result="unknown"} 1`,
		`tillagent_card_fetches_total{result="failed"} 1`)
}
