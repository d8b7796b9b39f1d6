package store

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"tillagent/checkout"
)

// AppendJSON appends r encoded as json.Marshal encodes it, byte for byte
// (TestAppendJSONIsMarshal), the cards and lots written by hand: they are
// nearly all of a feed page, and reflection with the check encoding/json
// makes of every Points' and Money's MarshalJSON output was most of head
// office's work for a page.
func (r *Replica) AppendJSON(b []byte) ([]byte, error) {
	b, _, _, err := r.AppendJSONGaps(b, 0, 0)
	return b, err
}

// AppendJSONGaps is AppendJSON leaving out the first skipCards cards and
// skipLots lots, with the offsets in b where they go: their encoding (as
// AppendCardsJSON and AppendLotsJSON write it) inserted there makes
// AppendJSON's. Head office keeps a shared page's cards and lots encoded
// (and compressed) once for every till given it.
func (r *Replica) AppendJSONGaps(b []byte, skipCards, skipLots int) (_ []byte, cardsAt, lotsAt int, _ error) {
	// Room for a page at once (a card about 150 bytes, a lot 270), not
	// grown and copied a dozen times on the way.
	b = slices.Grow(b, 1024+150*(len(r.Cards)-skipCards)+270*(len(r.Lots)-skipLots))
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(r.Version), 10)
	var err error
	field := func(name string, v any) {
		if err != nil {
			return
		}
		var x []byte
		if x, err = json.Marshal(v); err == nil {
			b = append(append(append(b, ",\""...), name...), "\":"...)
			b = append(b, x...)
		}
	}
	if r.AsOf != nil {
		field("as_of", r.AsOf)
	}
	if len(r.Stores) > 0 {
		field("stores", r.Stores)
	}
	if len(r.Groups) > 0 {
		field("groups", r.Groups)
	}
	if len(r.Products) > 0 {
		field("products", r.Products)
	}
	if len(r.Programs) > 0 {
		field("programs", r.Programs)
	}
	if len(r.Promotions) > 0 {
		field("promotions", r.Promotions)
	}
	if len(r.CardKinds) > 0 {
		field("card_kinds", r.CardKinds)
	}
	if err != nil {
		return nil, 0, 0, err
	}
	cardsAt, lotsAt = -1, -1
	if len(r.Cards) > 0 {
		b = append(b, `,"cards":[`...)
		cardsAt = len(b)
		if rest := r.Cards[skipCards:]; len(rest) > 0 {
			if skipCards > 0 {
				b = append(b, ',')
			}
			b = AppendCardsJSON(b, rest)
		}
		b = append(b, ']')
	}
	if len(r.Lots) > 0 {
		b = append(b, `,"lots":[`...)
		lotsAt = len(b)
		if rest := r.Lots[skipLots:]; len(rest) > 0 {
			if skipLots > 0 {
				b = append(b, ',')
			}
			if b, err = AppendLotsJSON(b, rest); err != nil {
				return nil, 0, 0, err
			}
		}
		b = append(b, ']')
	}
	if len(r.CardKeys) > 0 {
		field("card_keys", r.CardKeys)
	}
	if len(r.FoldedThrough) > 0 {
		field("folded_through", r.FoldedThrough)
	}
	if err != nil {
		return nil, 0, 0, err
	}
	return append(b, '}'), cardsAt, lotsAt, nil
}

// AppendCardsJSON appends the cards' JSON objects, joined by commas.
func AppendCardsJSON(b []byte, cards []ReplicaCard) []byte {
	for i := range cards {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCard(b, &cards[i])
	}
	return b
}

// AppendLotsJSON appends the lots' JSON objects, joined by commas.
func AppendLotsJSON(b []byte, lots []ReplicaLot) ([]byte, error) {
	var err error
	for i := range lots {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendLot(b, &lots[i]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendCard(b []byte, c *ReplicaCard) []byte {
	b = AppendJSONString(append(b, `{"code":`...), c.Code)
	b = AppendJSONString(append(b, `,"kind":`...), c.Kind)
	if c.Program != "" {
		b = AppendJSONString(append(b, `,"program":`...), c.Program)
	}
	b = AppendJSONString(append(b, `,"state":`...), string(c.State))
	if c.BlockReason != "" {
		b = AppendJSONString(append(b, `,"block_reason":`...), c.BlockReason)
	}
	if c.Holder != "" {
		b = AppendJSONString(append(b, `,"holder":`...), c.Holder)
	}
	if !c.Debt.IsZero() {
		b = appendPointsJSON(append(b, `,"debt":`...), c.Debt)
	}
	if h := &c.History; !h.IsZero() {
		b = AppendHistoryJSON(append(b, `,"history":`...), h)
	}
	return append(b, '}')
}

// AppendHistoryJSON appends h as a JSON object ({} when empty), with the
// fields encoding/json writes for it.
func AppendHistoryJSON(b []byte, h *CardHistory) []byte {
	b = append(b, '{')
	sep := ""
	add := func(name, v string) {
		b = AppendJSONString(append(append(append(b, sep...), '"'), name+`":`...), v)
		sep = ","
	}
	if h.Month != "" {
		add("month", h.Month)
	}
	if !h.PurchasesAllTime.IsZero() {
		add("purchases_all_time", h.PurchasesAllTime.String())
	}
	if !h.PurchasesMonth.IsZero() {
		add("purchases_month", h.PurchasesMonth.String())
	}
	if !h.PurchasesPrevMonth.IsZero() {
		add("purchases_prev_month", h.PurchasesPrevMonth.String())
	}
	if !h.AccruedMonth.IsZero() {
		add("accrued_month", h.AccruedMonth.String())
	}
	if !h.RedeemedMonth.IsZero() {
		add("redeemed_month", h.RedeemedMonth.String())
	}
	return append(b, '}')
}

// appendPointsJSON appends p as a JSON string: its text is digits, a
// point and a sign, nothing to escape.
func appendPointsJSON(b []byte, p checkout.Points) []byte {
	return append(p.AppendString(append(b, '"')), '"')
}

func appendLot(b []byte, l *ReplicaLot) ([]byte, error) {
	var err error
	b = AppendJSONString(append(b, `{"id":`...), l.ID)
	b = AppendJSONString(append(b, `,"card":`...), l.Card)
	b = appendPointsJSON(append(b, `,"points":`...), l.Points)
	if l.Remaining != nil {
		b = appendPointsJSON(append(b, `,"remaining":`...), *l.Remaining)
	}
	if b, err = AppendJSONTime(append(b, `,"accrued_at":`...), l.AccruedAt); err != nil {
		return nil, err
	}
	if l.ActiveFrom != nil {
		if b, err = AppendJSONTime(append(b, `,"active_from":`...), *l.ActiveFrom); err != nil {
			return nil, err
		}
	}
	if l.ExpiresAt != nil {
		if b, err = AppendJSONTime(append(b, `,"expires_at":`...), *l.ExpiresAt); err != nil {
			return nil, err
		}
	}
	if l.CheckID != "" {
		b = AppendJSONString(append(b, `,"check_id":`...), l.CheckID)
	}
	return append(b, '}'), nil
}

// AppendJSONString appends s as encoding/json quotes it: plain printable
// ASCII as it is, anything else (escapes, <>&, other runes, invalid UTF-8)
// through encoding/json itself.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			x, _ := json.Marshal(s) // a string always encodes
			return append(b, x...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// AppendJSONTime appends t as time.Time's MarshalJSON does; what it
// refuses (a year past 9999) it refuses too. A feed page carries three
// times a lot, and time's own formatting was a tenth of encoding one, so
// the common case (years 0000-9999, an offset of whole minutes) is written
// here.
func AppendJSONTime(b []byte, t time.Time) ([]byte, error) {
	_, off := t.Zone()
	local := t.Unix() + int64(off)
	if local < year0 || local >= year10000 || off <= -24*3600 || off >= 24*3600 || off%60 != 0 {
		x, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, x...), nil
	}
	// Civil date of the local day (days from 1970-01-01; the era
	// arithmetic of proleptic Gregorian calendars, 400 years = 146097
	// days, shifted to start in March so the leap day ends a year).
	days, secs := floorDiv(local, 86400)
	z := days + 719468
	era, doe := floorDiv(z, 146097)
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year := yoe + era*400
	if month <= 2 {
		year++
	}
	b = append(b, '"')
	b = append4(b, int(year))
	b = append2(append(b, '-'), int(month))
	b = append2(append(b, '-'), int(day))
	b = append2(append(b, 'T'), int(secs/3600))
	b = append2(append(b, ':'), int(secs/60%60))
	b = append2(append(b, ':'), int(secs%60))
	if ns := t.Nanosecond(); ns != 0 {
		// RFC3339Nano: the fraction without its trailing zeros.
		var frac [9]byte
		for i := 8; i >= 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 9
		for frac[n-1] == '0' {
			n--
		}
		b = append(append(b, '.'), frac[:n]...)
	}
	if off == 0 {
		b = append(b, 'Z')
	} else {
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		b = append2(append(b, sign), off/3600)
		b = append2(append(b, ':'), off/60%60)
	}
	return append(b, '"'), nil
}

// year0 and year10000 bound the local times (Unix seconds with the
// offset added) written as four-digit years.
var (
	year0     = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	year10000 = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// floorDiv is x/d and x mod d rounded down (d > 0): times before 1970
// count back.
func floorDiv(x, d int64) (q, r int64) {
	q, r = x/d, x%d
	if r < 0 {
		q, r = q-1, r+d
	}
	return q, r
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

func append4(b []byte, n int) []byte { return append2(append2(b, n/100), n%100) }
