package store

import (
	"encoding/json"
	"time"

	"tillagent/checkout"
	"tillagent/internal/jsonscan"
)

// ScanCards reads a replica's cards array as AppendJSON writes it, as
// encoding/json would decode it into []ReplicaCard, without reflection:
// the cards and lots are nearly all of a feed page, and their decoding was
// most of the till's work for one besides the import. It declines (false)
// what it does not read the same way for certain: a key not spelt as the
// field's tag (encoding/json matches any case), a key twice, null, a number
// or an escape where a string is written. The caller then decodes with
// encoding/json, which names what is wrong.
func ScanCards(s *jsonscan.Scanner) ([]ReplicaCard, bool) {
	cards := []ReplicaCard{}
	ok := s.Array(func() bool {
		cards = append(cards, ReplicaCard{})
		return scanCard(s, &cards[len(cards)-1])
	})
	return cards, ok
}

// ScanLots is ScanCards for a replica's lots.
func ScanLots(s *jsonscan.Scanner) ([]ReplicaLot, bool) {
	lots := []ReplicaLot{}
	ok := s.Array(func() bool {
		lots = append(lots, ReplicaLot{})
		return scanLot(s, &lots[len(lots)-1])
	})
	return lots, ok
}

// str reads a string field into to, the first time its bit is met.
func str(s *jsonscan.Scanner, seen *jsonscan.Keys, bit int, to *string) bool {
	return s.Text(to) && seen.First(bit)
}

func scanCard(s *jsonscan.Scanner, c *ReplicaCard) bool {
	var seen jsonscan.Keys
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "code":
			return str(s, &seen, 0, &c.Code)
		case "kind":
			return str(s, &seen, 1, &c.Kind)
		case "program":
			return str(s, &seen, 2, &c.Program)
		case "state":
			var v string
			ok := str(s, &seen, 3, &v)
			c.State = checkout.CardState(v)
			return ok
		case "block_reason":
			return str(s, &seen, 4, &c.BlockReason)
		case "holder":
			return str(s, &seen, 5, &c.Holder)
		case "debt":
			return seen.First(6) && scanPoints(s, &c.Debt)
		case "history":
			return seen.First(7) && scanHistory(s, &c.History)
		}
		return false
	})
}

// DecodeHistory decodes a card's history as encoding/json does, reading
// it by hand when it is as AppendHistoryJSON writes it (head office reads
// and writes one for every card of every batch).
func DecodeHistory(data []byte) (CardHistory, error) {
	var h CardHistory
	s := jsonscan.New(data)
	if scanHistory(s, &h) && s.Peek() == 0 && s.Pos() == len(data) {
		return h, nil
	}
	h = CardHistory{}
	err := json.Unmarshal(data, &h)
	return h, err
}

func scanHistory(s *jsonscan.Scanner, h *CardHistory) bool {
	var seen jsonscan.Keys
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "month":
			return str(s, &seen, 0, &h.Month)
		case "purchases_all_time":
			return seen.First(1) && scanMoney(s, &h.PurchasesAllTime)
		case "purchases_month":
			return seen.First(2) && scanMoney(s, &h.PurchasesMonth)
		case "purchases_prev_month":
			return seen.First(3) && scanMoney(s, &h.PurchasesPrevMonth)
		case "accrued_month":
			return seen.First(4) && scanPoints(s, &h.AccruedMonth)
		case "redeemed_month":
			return seen.First(5) && scanPoints(s, &h.RedeemedMonth)
		}
		return false
	})
}

func scanLot(s *jsonscan.Scanner, l *ReplicaLot) bool {
	var seen jsonscan.Keys
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return str(s, &seen, 0, &l.ID)
		case "card":
			return str(s, &seen, 1, &l.Card)
		case "points":
			return seen.First(2) && scanPoints(s, &l.Points)
		case "remaining":
			l.Remaining = new(checkout.Points)
			return seen.First(3) && scanPoints(s, l.Remaining)
		case "accrued_at":
			return seen.First(4) && s.StringAs(&l.AccruedAt)
		case "active_from":
			l.ActiveFrom = new(time.Time)
			return seen.First(5) && s.StringAs(l.ActiveFrom)
		case "expires_at":
			l.ExpiresAt = new(time.Time)
			return seen.First(6) && s.StringAs(l.ExpiresAt)
		case "check_id":
			return str(s, &seen, 7, &l.CheckID)
		}
		return false
	})
}

// scanPoints reads points written as a string, as Points.UnmarshalJSON
// reads that string.
func scanPoints(s *jsonscan.Scanner, p *checkout.Points) bool {
	v, _, ok := s.String()
	if !ok {
		return false
	}
	x, err := checkout.ParsePoints(string(v))
	*p = x
	return err == nil
}

func scanMoney(s *jsonscan.Scanner, m *checkout.Money) bool {
	v, _, ok := s.String()
	if !ok {
		return false
	}
	x, err := checkout.ParseMoney(string(v))
	*m = x
	return err == nil
}
