package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"tillagent/internal/store"
)

// MaxFetchCards is the most cards a till asks for at once.
const MaxFetchCards = 1000

// CardAnswer is head office's answer to a till asking for cards its
// replica lacks (POST /v1/till/cards, {"codes": [...]}): those it holds,
// with their live lots, as a replica the till imports like a delta, the
// codes it does not hold, and the store's card scope.
type CardAnswer struct {
	// Scope is the till's store's card scope ("all" or "home").
	Scope   string         `json:"scope"`
	Replica *store.Replica `json:"replica"`
	Unknown []string       `json:"unknown,omitempty"`
	// Undecoded are the replica's records that did not decode (set by
	// DecodeCardAnswer, never sent), each a card or lot of a card asked
	// for; Unreadable are those cards, which the till leaves out whole.
	Undecoded  []store.RejectedRecord `json:"-"`
	Unreadable []string               `json:"-"`
}

// DecodeCardAnswer parses a CardAnswer to a till that asked for codes, its
// records as DecodeFeed does. It refuses an answer naming a card not
// asked for, or carrying anything but cards and lots: an answer must not
// move the till's watermark or its catalog, which only its feed does, in
// order.
func DecodeCardAnswer(data []byte, codes []string) (*CardAnswer, error) {
	var raw struct {
		Scope   string          `json:"scope"`
		Replica json.RawMessage `json:"replica"`
		Unknown []string        `json:"unknown"`
	}
	if err := strictDecode(data, &raw); err != nil {
		return nil, fmt.Errorf("decode card answer: %w", err)
	}
	if len(raw.Replica) == 0 || string(raw.Replica) == "null" {
		return nil, errors.New("decode card answer: no replica")
	}
	r, bad, err := decodeRecords(raw.Replica)
	if err != nil {
		return nil, fmt.Errorf("decode card answer: %w", err)
	}
	set := make(map[string]bool, len(codes))
	for _, c := range codes {
		set[c] = true
	}
	asked := func(code string) bool { return set[code] }
	switch {
	case len(r.FoldedThrough) > 0:
		return nil, errors.New("decode card answer: it carries a watermark")
	case len(r.Stores)+len(r.Groups)+len(r.Products)+len(r.Programs)+len(r.Promotions)+len(r.CardKinds)+len(r.CardKeys) > 0:
		return nil, errors.New("decode card answer: it carries catalog records")
	}
	for _, c := range r.Cards {
		if !asked(c.Code) {
			return nil, fmt.Errorf("decode card answer: it carries card %q, not asked for", c.Code)
		}
	}
	for _, l := range r.Lots {
		if !asked(l.Card) {
			return nil, fmt.Errorf("decode card answer: it carries lot %q of card %q, not asked for", l.ID, l.Card)
		}
	}
	for _, u := range raw.Unknown {
		if !asked(u) {
			return nil, fmt.Errorf("decode card answer: it names card %q unknown, not asked for", u)
		}
	}
	var unreadable []string
	for _, u := range bad {
		card := u.Card()
		if card == "" || !asked(card) {
			return nil, fmt.Errorf("decode card answer: record %s %s, not of a card asked for, does not decode: %s", u.Section, u.Key, u.Error)
		}
		if !slices.Contains(unreadable, card) {
			unreadable = append(unreadable, card)
		}
	}
	return &CardAnswer{Scope: raw.Scope, Replica: r, Unknown: raw.Unknown, Undecoded: bad, Unreadable: unreadable}, nil
}
