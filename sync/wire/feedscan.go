package wire

import (
	"bytes"

	"tillagent/internal/jsonscan"
	"tillagent/internal/store"
)

// scanFeed decodes a feed whose replica's cards and lots are as head
// office writes them (store.Replica.AppendJSON) without reflection: it
// reads those two arrays with store.ScanCards and ScanLots and hands the
// rest of the document, the arrays cut to [], to encoding/json as before,
// which checks and decodes everything else as it always did. It declines
// (false) a feed it cannot read the same way for certain, and DecodeFeed
// decodes that one with encoding/json alone (TestScanFeedIsDecode,
// FuzzScanFeed).
func scanFeed(data []byte) (*Feed, bool) {
	s := jsonscan.New(data)
	var cards []store.ReplicaCard
	var lots []store.ReplicaLot
	var cut [][2]int // the arrays' offsets, in the order they come
	array := func(key []byte) bool {
		from := s.Pos()
		var ok bool
		switch string(key) {
		case "cards":
			if cards != nil {
				return false
			}
			cards, ok = store.ScanCards(s)
		case "lots":
			if lots != nil {
				return false
			}
			lots, ok = store.ScanLots(s)
		}
		cut = append(cut, [2]int{from, s.Pos()})
		return ok
	}
	replicas := 0
	ok := s.Object(func(key []byte) bool {
		if !bytes.EqualFold(key, []byte("replica")) {
			return s.Skip()
		}
		// Any other spelling, or a second replica, is encoding/json's to
		// resolve.
		if replicas++; replicas > 1 || string(key) != "replica" || s.Peek() != '{' {
			return false
		}
		return s.Object(func(key []byte) bool {
			switch {
			case string(key) == "cards" || string(key) == "lots":
				return array(key)
			case bytes.EqualFold(key, []byte("cards")) || bytes.EqualFold(key, []byte("lots")):
				return false
			}
			return s.Skip()
		})
	})
	if !ok || len(cut) == 0 {
		return nil, false
	}
	rest := make([]byte, 0, 256)
	at := 0
	for _, c := range cut {
		rest = append(append(rest, data[at:c[0]]...), "[]"...)
		at = c[1]
	}
	rest = append(rest, data[at:]...)
	var whole feedEnvelope[*store.Replica]
	if strictDecode(rest, &whole) != nil || whole.Replica == nil {
		return nil, false
	}
	f := whole.feed()
	f.Replica = whole.Replica
	if cards != nil {
		f.Replica.Cards = cards
	}
	if lots != nil {
		f.Replica.Lots = lots
	}
	return f, true
}
