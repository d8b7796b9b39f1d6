// Package wire is the JSON spoken between a till and head office: the
// journal batch a till pushes, head office's per-entry answer, and the
// replica feed a till pulls. Decoders are strict (unknown fields, trailing
// data and bad records are errors naming the record) because both ends are
// ours and a silent default would corrupt balances.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// MaxBatch is the most entries one batch may carry.
const MaxBatch = 5000

// Entry is a journal entry as the till sends it. Prev is the id of the
// entry the till wrote just before this one ("" for its first): head office
// folds a till's entries strictly along this chain, so a reordered or
// partly lost batch can never move the till's watermark past a gap.
type Entry struct {
	store.Entry
	Prev string `json:"prev"`
}

// Batch is what POST /v1/till/journal carries.
type Batch struct {
	TillID  string  `json:"till_id"`
	Entries []Entry `json:"entries"`
	// Invalid are the entries DecodeBatch refused (wrong id, kind, sums):
	// head office answers them "rejected" and stores the rest.
	Invalid []Result `json:"-"`
	// Refused are those of Invalid whose id and prev are the till's, with
	// U+0000 in their text replaced (Sanitized): head office keeps them as
	// rejected, on the till's chain but not applied, so that one bad entry
	// does not stop every later entry of the till from folding.
	Refused []Entry `json:"-"`
}

// Status of one entry in head office's answer.
const (
	Applied   = "applied"   // stored now (folded as soon as the chain before it is complete)
	Duplicate = "duplicate" // stored before with the same content: a retry
	Conflict  = "conflict"  // the id is stored with other content: never acknowledged
	Rejected  = "rejected"  // invalid: not stored
)

// Result is head office's answer for one entry.
type Result struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Acked reports whether the till may mark the entry acknowledged.
func (r Result) Acked() bool { return r.Status == Applied || r.Status == Duplicate }

// BatchResult is head office's answer to a batch.
type BatchResult struct {
	Results []Result `json:"results"`
	// FoldedThrough is the till's watermark after the batch.
	FoldedThrough string `json:"folded_through,omitempty"`
}

// Feed is the answer to GET /v1/till/feed?cursor=C: the changes since C as a
// replica delta the till imports with (*store.Store).Import, and the cursor
// to ask with next time. A change may come twice (delivery is at least
// once); every record carries its whole current state, so applying it again
// changes nothing.
type Feed struct {
	Cursor  string         `json:"cursor"`
	Full    bool           `json:"full,omitempty"` // a whole snapshot (first load)
	Replica *store.Replica `json:"replica"`
	// Offline are the limits on spending while head office has not seen it
	// (store.OfflineLimits); every feed carries them.
	Offline *store.OfflineLimits `json:"offline,omitempty"`
	// More is true on a page that is not the last; Next is where the next
	// page starts (a snapshot: the card code to ask after; a delta: the
	// change to ask after, with the same cursor).
	More bool   `json:"more,omitempty"`
	Next string `json:"next,omitempty"`
	// Reset: head office reset this till's feed (restored from a backup):
	// drop the cursor and load the replica afresh. The replica is empty
	// but for head office's watermark for the till (folded_through, absent
	// when it has none): the till first pushes every entry after it again.
	Reset bool `json:"reset,omitempty"`
	// JournalHeld: the till may drop its acknowledged journal entries with
	// ids before this one (head office's backups all hold them; "" = keep
	// them all). Sent on a delta to a till that asks (held=1).
	JournalHeld string `json:"journal_held,omitempty"`
	// Undecoded are the records of the replica that did not decode (set by
	// DecodeFeed, never sent): the rest of the feed is still good.
	Undecoded []store.RejectedRecord `json:"-"`
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// DecodeBatch parses and checks a batch. A batch that is not JSON of the
// right shape, or names an id twice, is an error; an entry that decodes but
// fails CheckEntry (an id not of TillID, an unknown kind, deltas that do not
// add up) goes to Invalid with its error, and the others are kept.
func DecodeBatch(data []byte) (*Batch, error) {
	// A batch as tills write it is read by hand; else one strict pass over
	// the whole batch: a well-formed batch, nearly every one, is decoded
	// once. Only a malformed one is decoded again entry by entry, to name
	// the entries that are wrong.
	if till, entries, ok := scanBatch(data); ok {
		return checkBatch(till, entries)
	}
	var whole struct {
		TillID  string  `json:"till_id"`
		Entries []Entry `json:"entries"`
	}
	if err := strictDecode(data, &whole); err != nil {
		return decodeBatchByEntry(data)
	}
	return checkBatch(whole.TillID, whole.Entries)
}

// decodeBatchByEntry decodes a batch that did not decode whole, entry by
// entry, so the error names each entry that is not an entry.
func decodeBatchByEntry(data []byte) (*Batch, error) {
	var raw struct {
		TillID  string            `json:"till_id"`
		Entries []json.RawMessage `json:"entries"`
	}
	if err := strictDecode(data, &raw); err != nil {
		return nil, fmt.Errorf("decode journal batch: %w", err)
	}
	if err := checkBatchSize(raw.TillID, len(raw.Entries)); err != nil {
		return nil, err
	}
	entries := make([]Entry, len(raw.Entries))
	var errs []error
	for i, r := range raw.Entries {
		if err := strictDecode(r, &entries[i]); err != nil {
			// Not even an entry: the batch is malformed.
			errs = append(errs, fmt.Errorf("entries[%d]: %w", i, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("decode journal batch of till %s: %w", raw.TillID, errors.Join(errs...))
	}
	return checkBatch(raw.TillID, entries)
}

func checkBatchSize(till string, n int) error {
	if till == "" {
		return errors.New("decode journal batch: empty till_id")
	}
	if n > MaxBatch {
		return fmt.Errorf("decode journal batch of till %s: %d entries, at most %d", till, n, MaxBatch)
	}
	return nil
}

// checkBatch checks decoded entries: an id twice is an error of the
// batch; an entry failing CheckEntry goes to Invalid.
func checkBatch(till string, entries []Entry) (*Batch, error) {
	if err := checkBatchSize(till, len(entries)); err != nil {
		return nil, err
	}
	b := &Batch{TillID: till, Entries: entries[:0]}
	seen := make(map[string]bool, len(entries))
	var errs []error
	for i := range entries {
		e := entries[i]
		if seen[e.ID] {
			errs = append(errs, fmt.Errorf("entries[%d] id %q: twice in the batch", i, e.ID))
			continue
		}
		seen[e.ID] = true
		if err := CheckEntry(till, &e); err != nil {
			b.Invalid = append(b.Invalid, Result{ID: e.ID, Status: Rejected, Error: fmt.Sprintf("entries[%d] id %q: %v", i, e.ID, err)})
			if checkChainLink(till, &e) == nil {
				b.Refused = append(b.Refused, Sanitized(e))
			}
			continue
		}
		b.Entries = append(b.Entries, e)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("decode journal batch of till %s: %w", till, errors.Join(errs...))
	}
	return b, nil
}

// MaxPoints bounds the points of an entry, of each of its lot deltas and
// its written-off points (a till never writes more; a bigger value is a
// bug or an attack and would mint or wipe points).
var MaxPoints = checkout.MaxCheckPoints.Decimal()

// MaxPointsScale is the most decimal places points may have on any
// program; the card's own program's scale is checked by head office,
// which knows it (CheckPoints).
const MaxPointsScale = 9

// CheckPoints checks a value of points against the bound and, when
// scale >= 0, the program's scale (decimal places); what names the value
// in the error.
func CheckPoints(what string, d decimal.Decimal, scale int32) error {
	if d.Abs().GreaterThan(MaxPoints) {
		return fmt.Errorf("%s %s: more than %s in magnitude", what, shortNumber(d), MaxPoints)
	}
	if !d.Equal(d.Truncate(MaxPointsScale)) {
		return fmt.Errorf("%s %s: more than %d decimal places", what, shortNumber(d), MaxPointsScale)
	}
	if scale >= 0 && !d.Equal(d.Truncate(scale)) {
		return fmt.Errorf("%s %s: finer than the program's %d decimal places", what, shortNumber(d), scale)
	}
	return nil
}

// shortNumber is d as an error quotes it: written out when that takes at
// most 30 characters, else in scientific notation with at most 10
// significant digits ("-1e+400", "1.234567890…e-40"), so that a value
// like 1e400 is not quoted as 401 digits.
func shortNumber(d decimal.Decimal) string {
	if s := d.String(); len(s) <= 30 {
		return s
	}
	digits := strings.TrimLeft(d.Coefficient().String(), "-")
	exp := int64(d.Exponent()) + int64(len(digits)) - 1
	digits = strings.TrimRight(digits, "0")
	sign := ""
	if d.IsNegative() {
		sign = "-"
	}
	mant := digits[:1]
	if len(digits) > 1 {
		rest, more := digits[1:], ""
		if len(rest) > 9 {
			rest, more = rest[:9], "…"
		}
		mant += "." + rest + more
	}
	return fmt.Sprintf("%s%se%+d", sign, mant, exp)
}

// CheckEntry checks one entry of till: its id and chain link belong to the
// till, the kind is one a till writes (not a correction: those are head
// office's), the points have the kind's sign (an accrual adds, a
// redemption takes; a reversal either) and are within MaxPoints, and the
// lot deltas add up to the points.
func CheckEntry(till string, e *Entry) error {
	if err := checkChainLink(till, e); err != nil {
		return err
	}
	if e.CheckID == "" || e.CardCode == "" {
		return errors.New("empty check_id or card_code")
	}
	if hasNUL(e) {
		// PostgreSQL cannot read a json value holding one back.
		return errors.New("text with U+0000")
	}
	switch e.Kind {
	case store.KindAccrual, store.KindRedemption, store.KindReversal:
	case store.KindCorrection:
		// Applied, a till's "correction" would mint points and count
		// among the ERP corrections in the accruals report.
		return errors.New(`kind "correction": only head office writes corrections (ERP: POST /v1/erp/corrections); a till's return is a reversal`)
	default:
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	if err := CheckPoints("points", e.Points, -1); err != nil {
		return err
	}
	switch {
	case e.Kind == store.KindAccrual && e.Points.IsNegative():
		return fmt.Errorf("accrual of %s points: an accrual cannot take points", e.Points)
	case e.Kind == store.KindRedemption && e.Points.IsPositive():
		return fmt.Errorf("redemption of +%s points: a redemption cannot add points", e.Points)
	}
	if err := CheckPoints("written_off", e.WrittenOff, -1); err != nil {
		return err
	}
	sum := e.Points.Sub(e.Points)
	lots := map[string]bool{}
	for _, l := range e.Lots {
		if l.LotID == "" || lots[l.LotID] {
			return fmt.Errorf("lot %q empty or twice", l.LotID)
		}
		if err := CheckPoints("lot "+l.LotID+" delta", l.Delta, -1); err != nil {
			return err
		}
		lots[l.LotID] = true
		if l.Create && (!l.Delta.IsPositive() || l.ActiveFrom.IsZero()) {
			return fmt.Errorf("created lot %s needs a positive delta and active_from", l.LotID)
		}
		if err := checkLotChange(e.Kind, l); err != nil {
			return err
		}
		if l.Create && !inTimeBounds(l.ActiveFrom) {
			return checkTime("lot "+l.LotID+" active_from", l.ActiveFrom)
		}
		if !l.ExpiresAt.IsZero() && !inTimeBounds(l.ExpiresAt) {
			return checkTime("lot "+l.LotID+" expires_at", l.ExpiresAt)
		}
		sum = sum.Add(l.Delta)
	}
	if len(e.Lots) > 0 && !sum.Equal(e.Points) {
		return fmt.Errorf("points %s differ from the sum of lot deltas %s", e.Points, sum)
	}
	if e.WithheldKop < 0 || e.WrittenOff.IsNegative() {
		return errors.New("negative withheld_kop or written_off")
	}
	for _, k := range []struct {
		name string
		kop  int64
	}{{"amount_kop", e.AmountKop}, {"purchase_kop", e.PurchaseKop}, {"withheld_kop", e.WithheldKop}} {
		if k.kop > MaxKop || k.kop < -MaxKop {
			return fmt.Errorf("%s %d: more than %d (a check's largest sum) in magnitude", k.name, k.kop, MaxKop)
		}
	}
	return checkTime("created_at", e.CreatedAt)
}

// MaxKop bounds an entry's money (amount_kop, purchase_kop, withheld_kop):
// a check's largest sum. Head office adds purchase_kop to the card's
// purchase history, which every till keeps in int64 kopecks.
var MaxKop = checkout.MaxCheckTotal.Kopecks()

// Entries' times lie within [minTime, maxTime): a zero time, or one head
// office cannot carry a day further in JSON (year 9999), would give the
// card a lot no till's feed import takes.
var minTime, maxTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)

// inTimeBounds reports whether t is in the years an entry's times may
// have (checkTime's error names them).
func inTimeBounds(t time.Time) bool { return !t.Before(minTime) && t.Before(maxTime) }

func checkTime(name string, t time.Time) error {
	if !inTimeBounds(t) {
		return fmt.Errorf("%s %s: outside %d..%d", name, t.UTC().Format(time.RFC3339Nano), minTime.Year(), maxTime.Year()-1)
	}
	return nil
}

// checkLotChange checks that a lot change is one an entry of kind makes on
// a till (store.RecordSale, RecordReturn): a redemption only takes from
// lots, an accrual only creates them, and only a return's debit beyond the
// balance names store.DebtLot; every other lot id is one the replica feed
// can carry, since head office folds it into a lot every till must import.
func checkLotChange(kind store.Kind, l store.LotChange) error {
	switch {
	case l.LotID == store.DebtLot && (kind != store.KindReversal || !l.Delta.IsNegative() || l.Create):
		return fmt.Errorf("lot %s: only a return's debit beyond the balance names it (a negative delta on a reversal)", l.LotID)
	case l.LotID != store.DebtLot && !store.ValidID(l.LotID):
		return fmt.Errorf("lot id %q: not a replica lot id (a letter or digit, then up to 63 letters, digits or _.:/-)", l.LotID)
	case kind == store.KindRedemption && (l.Create || l.Delta.IsPositive()):
		return fmt.Errorf("lot %s: a redemption only takes points from lots (delta %s)", l.LotID, l.Delta)
	case kind == store.KindAccrual && !l.Create:
		return fmt.Errorf("lot %s: an accrual only creates lots", l.LotID)
	case kind == store.KindReversal && l.Create:
		return fmt.Errorf("lot %s: a return gives points back to the lots its sale spent and takes them from lots; it creates none", l.LotID)
	}
	return nil
}

// checkChainLink checks that the entry's id and prev are ids of till, prev
// the earlier.
func checkChainLink(till string, e *Entry) error {
	prefix := till + "-"
	if !strings.HasPrefix(e.ID, prefix) || len(e.ID) != len(prefix)+26 || strings.ContainsRune(e.ID, 0) {
		return fmt.Errorf("not a journal id of till %s", till)
	}
	if e.Prev != "" && (!strings.HasPrefix(e.Prev, prefix) || e.Prev >= e.ID || strings.ContainsRune(e.Prev, 0)) {
		return fmt.Errorf("prev %q is not an earlier id of till %s", e.Prev, till)
	}
	return nil
}

// entryText calls f on each text field of e (not the id and prev, which
// checkChainLink checks).
func entryText(e *Entry, f func(*string)) {
	f(&e.CheckID)
	f(&e.CardCode)
	f((*string)(&e.Kind))
	f(&e.Note)
	for i := range e.Lots {
		f(&e.Lots[i].LotID)
	}
}

func hasNUL(e *Entry) bool {
	found := false
	entryText(e, func(s *string) { found = found || strings.IndexByte(*s, 0) >= 0 })
	return found
}

// Sanitized is e with each U+0000 in its text replaced by U+FFFD, and
// each time that has no year 0–9999 in UTC made zero, so that a refused
// entry can be kept: head office stores it in UTC as JSON, which has no
// other years (the refusal's reason, kept with it, names the time).
func Sanitized(e Entry) Entry {
	e.Lots = slices.Clone(e.Lots)
	entryText(&e, func(s *string) { *s = strings.ReplaceAll(*s, "\x00", "\uFFFD") })
	storable := func(t *time.Time) {
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			*t = time.Time{}
		}
	}
	storable(&e.CreatedAt)
	for i := range e.Lots {
		storable(&e.Lots[i].ActiveFrom)
		storable(&e.Lots[i].ExpiresAt)
	}
	return e
}

// DecodeBatchResult parses head office's answer to a batch.
func DecodeBatchResult(data []byte) (*BatchResult, error) {
	var r BatchResult
	if err := strictDecode(data, &r); err != nil {
		return nil, fmt.Errorf("decode batch result: %w", err)
	}
	for i, x := range r.Results {
		switch x.Status {
		case Applied, Duplicate, Conflict, Rejected:
		default:
			return nil, fmt.Errorf("decode batch result: results[%d] id %q: unknown status %q", i, x.ID, x.Status)
		}
	}
	return &r, nil
}

// DecodeFeed parses a feed. The replica's records are checked by the
// till's import (store.ImportFeed, the replica file's validation); a record
// that does not even decode (a bad number, an unknown field) is left out of
// Replica and listed in Undecoded with its error, so one bad record cannot
// keep the rest of the feed out. Anything else malformed refuses the feed.
func DecodeFeed(data []byte) (*Feed, error) {
	// Fast paths for large pages: the cards and lots read by hand, or one
	// strict decode of the whole feed. Only when both fail is it decoded
	// again, the replica record by record, to name (and leave out) the
	// records that do not decode.
	f, ok := scanFeed(data)
	if !ok {
		var whole feedEnvelope[*store.Replica]
		if strictDecode(data, &whole) == nil && whole.Replica != nil {
			f, ok = whole.feed(), true
			f.Replica = whole.Replica
		}
	}
	if ok {
		if err := checkFeed(f, true); err != nil {
			return nil, err
		}
		return f, nil
	}
	var raw feedEnvelope[json.RawMessage]
	if err := strictDecode(data, &raw); err != nil {
		return nil, fmt.Errorf("decode feed: %w", err)
	}
	f = raw.feed()
	if err := checkFeed(f, len(raw.Replica) > 0 && string(raw.Replica) != "null"); err != nil {
		return nil, err
	}
	var err error
	if f.Replica, f.Undecoded, err = decodeRecords(raw.Replica); err != nil {
		return nil, fmt.Errorf("decode feed (cursor %s): %w", raw.Cursor, err)
	}
	return f, nil
}

// feedEnvelope is a Feed as it is decoded, its replica R whole or raw.
type feedEnvelope[R any] struct {
	Cursor  string               `json:"cursor"`
	Full    bool                 `json:"full"`
	Replica R                    `json:"replica"`
	Offline *store.OfflineLimits `json:"offline"`
	More    bool                 `json:"more"`
	Next    string               `json:"next"`
	Reset   bool                 `json:"reset"`
	Held    string               `json:"journal_held"`
}

// feed is the envelope without its replica.
func (e *feedEnvelope[R]) feed() *Feed {
	return &Feed{Cursor: e.Cursor, Full: e.Full, Offline: e.Offline, More: e.More, Next: e.Next, Reset: e.Reset, JournalHeld: e.Held}
}

// checkFeed checks what a feed says beside its records.
func checkFeed(f *Feed, hasReplica bool) error {
	switch {
	case f.Cursor == "":
		return errors.New("decode feed: empty cursor")
	case !hasReplica:
		return errors.New("decode feed: no replica")
	case f.Offline != nil && (f.Offline.CardCap.IsNegative() || f.Offline.TillCap.IsNegative() || f.Offline.MaxAge < 0):
		return fmt.Errorf("decode feed (cursor %s): negative offline limit", f.Cursor)
	case f.More && f.Next == "":
		return fmt.Errorf("decode feed (cursor %s): more pages but no next", f.Cursor)
	}
	return nil
}

// decodeRecords decodes a replica section by section and record by
// record; the header (version, as_of, folded_through) and the sections'
// shape must be right, records that fail are returned apart.
func decodeRecords(js json.RawMessage) (*store.Replica, []store.RejectedRecord, error) {
	var top map[string]json.RawMessage
	if err := strictDecode(js, &top); err != nil {
		return nil, nil, fmt.Errorf("replica: %w", err)
	}
	var r store.Replica
	var bad []store.RejectedRecord
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := top[k]
		var err error
		switch k {
		case "version":
			err = json.Unmarshal(v, &r.Version)
		case "as_of":
			err = json.Unmarshal(v, &r.AsOf)
		case "folded_through":
			err = strictDecode(v, &r.FoldedThrough)
		case "stores":
			err = section(k, v, &r.Stores, &bad)
		case "groups":
			err = section(k, v, &r.Groups, &bad)
		case "products":
			err = section(k, v, &r.Products, &bad)
		case "programs":
			err = section(k, v, &r.Programs, &bad)
		case "promotions":
			err = section(k, v, &r.Promotions, &bad)
		case "card_kinds":
			err = section(k, v, &r.CardKinds, &bad)
		case "cards":
			err = section(k, v, &r.Cards, &bad)
		case "lots":
			err = section(k, v, &r.Lots, &bad)
		case "card_keys":
			err = section(k, v, &r.CardKeys, &bad)
		default:
			err = errors.New("unknown section")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("replica %s: %w", k, err)
		}
	}
	return &r, bad, nil
}

func section[T any](name string, raw json.RawMessage, dst *[]T, bad *[]store.RejectedRecord) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return err
	}
	for i, it := range items {
		var v T
		if err := strictDecode(it, &v); err != nil {
			*bad = append(*bad, store.RejectedRecord{Section: name, Key: fmt.Sprintf("%s[%d] %s", name, i, recordName(it)),
				Error: err.Error(), Record: append(json.RawMessage(nil), it...)})
			continue
		}
		*dst = append(*dst, v)
	}
	return nil
}

// recordName names a raw record by its code or id, as far as it reads.
func recordName(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		for _, k := range []string{"code", "id"} {
			if v, ok := m[k]; ok {
				return fmt.Sprintf("%s %v", k, v)
			}
		}
	}
	return "(no id)"
}

// AppendJSON appends f as json.Marshal encodes it (TestFeedAppendJSON),
// its replica through store.Replica.AppendJSON: head office's encoding of
// a feed page.
func (f *Feed) AppendJSON(b []byte) ([]byte, error) {
	if f == nil {
		return append(b, "null"...), nil
	}
	b, _, _, err := f.AppendJSONGaps(b, 0, 0)
	return b, err
}

// AppendJSONGaps is AppendJSON leaving out the replica's first skipCards
// cards and skipLots lots, with the offsets in b where they go, as
// store.Replica.AppendJSONGaps (f and its replica not nil).
func (f *Feed) AppendJSONGaps(b []byte, skipCards, skipLots int) (_ []byte, cardsAt, lotsAt int, err error) {
	b = store.AppendJSONString(append(b, `{"cursor":`...), f.Cursor)
	if f.Full {
		b = append(b, `,"full":true`...)
	}
	b = append(b, `,"replica":`...)
	cardsAt, lotsAt = -1, -1
	if f.Replica == nil {
		b = append(b, "null"...)
	} else if b, cardsAt, lotsAt, err = f.Replica.AppendJSONGaps(b, skipCards, skipLots); err != nil {
		return nil, 0, 0, err
	}
	if f.Offline != nil {
		x, err := json.Marshal(f.Offline)
		if err != nil {
			return nil, 0, 0, err
		}
		b = append(append(b, `,"offline":`...), x...)
	}
	if f.More {
		b = append(b, `,"more":true`...)
	}
	if f.Next != "" {
		b = store.AppendJSONString(append(b, `,"next":`...), f.Next)
	}
	if f.Reset {
		b = append(b, `,"reset":true`...)
	}
	if f.JournalHeld != "" {
		b = store.AppendJSONString(append(b, `,"journal_held":`...), f.JournalHeld)
	}
	return append(b, '}'), cardsAt, lotsAt, nil
}
