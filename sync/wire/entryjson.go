package wire

import (
	"slices"
	"strconv"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// AppendEntry appends e encoded exactly as json.Marshal(e) encodes it,
// byte for byte, without reflection, and reports true; or, for an entry
// json.Marshal refuses (a time of a year past 9999), appends nothing and
// reports false. These bytes are the input of the content digests head
// office stores forever and compares on every re-send (canonicalEntry):
// they must equal json.Marshal's for every entry it takes, now and after
// any change here (TestAppendEntryIsMarshal, FuzzAppendEntry). Strings and
// times are written by store's writers for the replica, which are
// json.Marshal's byte for byte too (store.TestAppendJSONIsMarshal).
func AppendEntry(dst []byte, e Entry) ([]byte, bool) {
	if decimal.MarshalJSONWithoutQuotes {
		return dst, false // encoding/json would check and compact decimal's number
	}
	// Room for the whole entry at once: its keys and numbers take about
	// 200 bytes, a lot about 100, the text what it takes (more if escaped).
	n := 200 + len(e.ID) + len(e.CheckID) + len(e.CardCode) + len(e.Kind) + len(e.Note) + len(e.Prev)
	for _, l := range e.Lots {
		n += 100 + len(l.LotID)
	}
	b := append(slices.Grow(dst, n), `{"id":`...)
	b = store.AppendJSONString(b, e.ID)
	b = store.AppendJSONString(append(b, `,"check_id":`...), e.CheckID)
	b = store.AppendJSONString(append(b, `,"card_code":`...), e.CardCode)
	b = store.AppendJSONString(append(b, `,"kind":`...), string(e.Kind))
	b = appendDecimal(append(b, `,"points":`...), e.Points)
	b = strconv.AppendInt(append(b, `,"amount_kop":`...), e.AmountKop, 10)
	b = strconv.AppendInt(append(b, `,"purchase_kop":`...), e.PurchaseKop, 10)
	if e.WithheldKop != 0 {
		b = strconv.AppendInt(append(b, `,"withheld_kop":`...), e.WithheldKop, 10)
	}
	if !e.WrittenOff.IsZero() { // omitzero: decimal's IsZero
		b = appendDecimal(append(b, `,"written_off":`...), e.WrittenOff)
	}
	if e.Note != "" {
		b = store.AppendJSONString(append(b, `,"note":`...), e.Note)
	}
	if e.FD != 0 {
		b = strconv.AppendUint(append(b, `,"fd":`...), uint64(e.FD), 10)
	}
	if e.FP != 0 {
		b = strconv.AppendUint(append(b, `,"fp":`...), uint64(e.FP), 10)
	}
	if len(e.Lots) > 0 {
		b = append(b, `,"lots":[`...)
		for i, l := range e.Lots {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendLotChange(b, l); err != nil {
				return dst, false
			}
		}
		b = append(b, ']')
	}
	b, err := store.AppendJSONTime(append(b, `,"created_at":`...), e.CreatedAt)
	if err != nil {
		return dst, false
	}
	if e.Acked {
		b = append(b, `,"acked":true`...)
	} else {
		b = append(b, `,"acked":false`...)
	}
	b = store.AppendJSONString(append(b, `,"prev":`...), e.Prev)
	return append(b, '}'), true
}

func appendLotChange(b []byte, l store.LotChange) ([]byte, error) {
	var err error
	b = store.AppendJSONString(append(b, `{"lot_id":`...), l.LotID)
	b = appendDecimal(append(b, `,"delta":`...), l.Delta)
	if l.Create {
		b = append(b, `,"create":true`...)
	}
	if !l.ActiveFrom.IsZero() { // omitzero: time's IsZero
		if b, err = store.AppendJSONTime(append(b, `,"active_from":`...), l.ActiveFrom); err != nil {
			return nil, err
		}
	}
	if !l.ExpiresAt.IsZero() {
		if b, err = store.AppendJSONTime(append(b, `,"expires_at":`...), l.ExpiresAt); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendDecimal appends d as its MarshalJSON writes it (with
// MarshalJSONWithoutQuotes unset): its String in quotes.
func appendDecimal(b []byte, d decimal.Decimal) []byte {
	return append(append(append(b, '"'), d.String()...), '"')
}
