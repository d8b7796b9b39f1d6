package wire

import (
	"strconv"

	"tillagent/internal/jsonscan"
	"tillagent/internal/store"
)

// scanBatch decodes a journal batch as a till writes it (json.Marshal of a
// Batch) without reflection: the strict decode of whole batches was a
// large share of head office's CPU in ingestion. What it takes it reads
// exactly as strictDecode reads it into DecodeBatch's struct
// (TestScanBatchCases, TestScanBatchRandom, FuzzScanBatch); everything
// else it declines (false) and DecodeBatch
// decodes with encoding/json, which names what is wrong: a key not spelt
// as its tag (encoding/json matches any case) or met twice, an unknown
// key, null, an escape in a string, a number where a string is written or
// the reverse, an integer strconv refuses as encoding/json does, a decimal
// or time its UnmarshalJSON refuses, data after the object.
func scanBatch(data []byte) (till string, entries []Entry, ok bool) {
	s := jsonscan.New(data)
	var seen jsonscan.Keys
	ok = s.Object(func(key []byte) bool {
		switch string(key) {
		case "till_id":
			return seen.First(0) && s.Text(&till)
		case "entries":
			if !seen.First(1) {
				return false
			}
			// Not nil even when empty, as encoding/json leaves "[]"; room
			// for the entries at about 400 bytes each, up to a full batch.
			entries = make([]Entry, 0, min(len(data)/400+1, MaxBatch))
			return s.Array(func() bool {
				entries = append(entries, Entry{})
				var prev *Entry
				if n := len(entries); n > 1 {
					prev = &entries[n-2]
				}
				return scanEntry(s, &entries[len(entries)-1], prev)
			})
		}
		return false
	})
	// Peek reads a NUL byte as the end: the position tells them apart.
	if !ok || s.Peek() != 0 || s.Pos() != len(data) {
		return "", nil, false
	}
	return till, entries, true
}

// scanEntry reads one entry. prev is the entry before it in the batch
// (nil for the first). A string equal to one already read is shared, not
// copied: a till's consecutive entries name the same check, a check's id
// may be its entry's, each prev is the id before it, and an accrual's lot
// is named after its entry.
func scanEntry(s *jsonscan.Scanner, e, prev *Entry) bool {
	var seen jsonscan.Keys
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return seen.First(0) && s.Text(&e.ID)
		case "check_id":
			if !seen.First(1) {
				return false
			}
			if prev != nil {
				return scanTextLike(s, &e.CheckID, e.ID, prev.CheckID)
			}
			return scanTextLike(s, &e.CheckID, e.ID, "")
		case "card_code":
			return seen.First(2) && s.Text(&e.CardCode)
		case "kind":
			v, _, ok := s.String()
			e.Kind = kindOf(v)
			return ok && seen.First(3)
		case "points":
			return seen.First(4) && s.StringAs(&e.Points)
		case "amount_kop":
			return seen.First(5) && scanInt64(s, &e.AmountKop)
		case "purchase_kop":
			return seen.First(6) && scanInt64(s, &e.PurchaseKop)
		case "withheld_kop":
			return seen.First(7) && scanInt64(s, &e.WithheldKop)
		case "written_off":
			return seen.First(8) && s.StringAs(&e.WrittenOff)
		case "note":
			return seen.First(9) && s.Text(&e.Note)
		case "fd":
			return seen.First(10) && scanUint32(s, &e.FD)
		case "fp":
			return seen.First(11) && scanUint32(s, &e.FP)
		case "lots":
			if !seen.First(12) {
				return false
			}
			e.Lots = []store.LotChange{}
			return s.Array(func() bool {
				e.Lots = append(e.Lots, store.LotChange{})
				return scanLotChange(s, &e.Lots[len(e.Lots)-1], e.ID)
			})
		case "created_at":
			return seen.First(13) && s.StringAs(&e.CreatedAt)
		case "acked":
			v, ok := s.Bool()
			e.Acked = v
			return ok && seen.First(14)
		case "prev":
			if !seen.First(15) {
				return false
			}
			if prev != nil {
				return scanTextLike(s, &e.Prev, prev.ID, "")
			}
			return s.Text(&e.Prev)
		}
		return false
	})
}

// kindOf is the kind v names, one of the constants when it is one (no
// copy of the bytes).
func kindOf(v []byte) store.Kind {
	for _, k := range [...]store.Kind{store.KindAccrual, store.KindRedemption, store.KindReversal, store.KindCorrection} {
		if string(v) == string(k) {
			return k
		}
	}
	return store.Kind(v)
}

// scanLotChange reads one lot change; id is its entry's id so far, which
// an accrual's created lot is named after.
func scanLotChange(s *jsonscan.Scanner, l *store.LotChange, id string) bool {
	var seen jsonscan.Keys
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "lot_id":
			return seen.First(0) && scanTextLike(s, &l.LotID, id, "")
		case "delta":
			return seen.First(1) && s.StringAs(&l.Delta)
		case "create":
			v, ok := s.Bool()
			l.Create = v
			return ok && seen.First(2)
		case "active_from":
			return seen.First(3) && s.StringAs(&l.ActiveFrom)
		case "expires_at":
			return seen.First(4) && s.StringAs(&l.ExpiresAt)
		}
		return false
	})
}

// scanTextLike is Scanner.Text sharing a or b (when not empty) if the string
// is the same, saving its copy.
func scanTextLike(s *jsonscan.Scanner, to *string, a, b string) bool {
	v, _, ok := s.String()
	switch {
	case !ok:
		return false
	case a != "" && string(v) == a:
		*to = a
	case b != "" && string(v) == b:
		*to = b
	default:
		*to = string(v)
	}
	return true
}

// scanInt64 reads an int64 field as encoding/json does: strconv.ParseInt
// of the number's literal; a literal it refuses is declined.
func scanInt64(s *jsonscan.Scanner, to *int64) bool {
	lit, ok := s.Integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	*to = n
	return err == nil
}

// scanUint32 reads a uint32 field as encoding/json does: strconv.ParseUint
// within 32 bits ("-0", which ParseUint refuses, is declined).
func scanUint32(s *jsonscan.Scanner, to *uint32) bool {
	lit, ok := s.Integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(string(lit), 10, 32)
	*to = uint32(n)
	return err == nil
}
