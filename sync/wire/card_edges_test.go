package wire

import (
	"strings"
	"testing"
)

// TestCardAnswerRefusesHostileAnswers: an answer to a till that asked
// for one card must carry that card's records only: anything naming
// another card, a watermark, a catalog record, or a body that is not one
// answer is refused, with an error saying what.
func TestCardAnswerRefusesHostileAnswers(t *testing.T) {
	const asked = "2900000000049"
	card := `{"code":"` + asked + `","kind":"bonus","state":"active"}`
	lot := `{"id":"L-1","card":"` + asked + `","points":"10","remaining":"10","accrued_at":"2026-11-01T00:00:00Z"}`
	for _, c := range []struct{ name, body, says string }{
		{"another card", `{"scope":"home","replica":{"version":1,"cards":[{"code":"2900000000018","kind":"bonus","state":"active"}]}}`, "not asked for"},
		{"a lot of another card", `{"scope":"home","replica":{"version":1,"cards":[` + card + `],"lots":[{"id":"L-2","card":"2900000000018","points":"5","accrued_at":"2026-11-01T00:00:00Z"}]}}`, "not asked for"},
		{"another card unknown", `{"scope":"home","replica":{"version":1},"unknown":["2900000000018"]}`, "not asked for"},
		{"a watermark", `{"scope":"home","replica":{"version":1,"cards":[` + card + `],"folded_through":{"S002-T01":"S002-T01-1"}}}`, "watermark"},
		{"a store", `{"scope":"home","replica":{"version":1,"stores":[{"id":"S009","name":"x","timezone":"UTC"}]}}`, "catalog"},
		{"a program", `{"scope":"home","replica":{"version":1,"programs":[{"id":"P"}]}}`, "catalog"},
		{"a card key", `{"scope":"home","replica":{"version":1,"card_keys":[{"id":1}]}}`, "catalog"},
		{"no replica", `{"scope":"home"}`, "no replica"},
		{"a null replica", `{"scope":"home","replica":null}`, "no replica"},
		{"a feed's fields", `{"scope":"home","cursor":"99","replica":{"version":1}}`, "decode card answer"},
		{"an unknown section", `{"scope":"home","replica":{"version":1,"deleted":["` + asked + `"]}}`, "unknown section"},
		{"two answers", `{"scope":"home","replica":{"version":1}} {"scope":"home","replica":{"version":1}}`, "after the JSON"},
		{"not JSON", `<html>502 Bad Gateway</html>`, "decode card answer"},
	} {
		a, err := DecodeCardAnswer([]byte(c.body), []string{asked})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %+v, %v; want refused saying %q", c.name, a, err, c.says)
		}
	}
	// The answer the till wants goes through whole.
	a, err := DecodeCardAnswer([]byte(`{"scope":"home","replica":{"version":1,"as_of":"2026-11-23T12:00:00Z","cards":[`+card+`],"lots":[`+lot+`]}}`), []string{asked})
	if err != nil || len(a.Replica.Cards) != 1 || len(a.Replica.Lots) != 1 || a.Scope != "home" || len(a.Undecoded) != 0 {
		t.Fatalf("the right answer: %+v, %v", a, err)
	}
}

// TestCardAnswerRefusesUndecodableRecordsOfOthers: a record that does
// not decode (an unknown field) is not in Replica but in Undecoded, which
// the till saves as a feed record held back and shows in its sync status
// until head office sends that record again. A card answer's Undecoded
// records are not checked at all: an answer to a till that asked for one
// card can leave a store, a program or another card's record held back on
// the till, which no later feed replaces when head office has no such
// record. DecodeCardAnswer must refuse those as it refuses decodable ones.
func TestCardAnswerRefusesUndecodableRecordsOfOthers(t *testing.T) {
	const asked = "2900000000049"
	for _, c := range []struct{ name, body string }{
		{"a store that does not decode", `{"scope":"home","replica":{"version":1,"stores":[{"id":"S009","bogus":1}]}}`},
		{"a program that does not decode", `{"scope":"home","replica":{"version":1,"programs":[{"id":"EVIL","bogus":1}]}}`},
		{"another card that does not decode", `{"scope":"home","replica":{"version":1,"cards":[{"code":"2900000000018","kind":"bonus","state":"active","bogus":1}]}}`},
		{"a lot of another card that does not decode", `{"scope":"home","replica":{"version":1,"lots":[{"id":"L-9","card":"2900000000018","bogus":1}]}}`},
	} {
		a, err := DecodeCardAnswer([]byte(c.body), []string{asked})
		if err == nil {
			t.Errorf("%s: accepted, %d records undecoded (%+v); want the answer refused", c.name, len(a.Undecoded), a.Undecoded)
		}
	}
}
