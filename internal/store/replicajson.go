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
	// Room for a page at once (a card about 150 bytes, a lot 270), not
	// grown and copied a dozen times on the way.
	b = slices.Grow(b, 1024+150*len(r.Cards)+270*len(r.Lots))
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
		return nil, err
	}
	if len(r.Cards) > 0 {
		b = append(b, `,"cards":[`...)
		for i := range r.Cards {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCard(b, &r.Cards[i])
		}
		b = append(b, ']')
	}
	if len(r.Lots) > 0 {
		b = append(b, `,"lots":[`...)
		for i := range r.Lots {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendLot(b, &r.Lots[i]); err != nil {
				return nil, err
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
		return nil, err
	}
	return append(b, '}'), nil
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

// appendJSONTime appends t as time.Time's MarshalJSON does; what it
// refuses (a year past 9999) it refuses too.
func AppendJSONTime(b []byte, t time.Time) ([]byte, error) {
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 || off%60 != 0 {
		x, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, x...), nil
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
