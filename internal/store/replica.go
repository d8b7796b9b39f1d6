package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shopspring/decimal"
	"gopkg.in/yaml.v3"

	"tillagent/checkout"
	"tillagent/internal/jsonkeys"
	"tillagent/internal/recordid"
)

// ReplicaFormatVersion is the replica file format this build reads.
const ReplicaFormatVersion = 1

// Replica is head office's data for one till, as a file (docs/replica.md).
// Both JSON and YAML use these (snake_case JSON) names; YAML is converted to
// JSON before decoding, so the two formats cannot drift apart.
type Replica struct {
	Version    int                `json:"version"`
	AsOf       *time.Time         `json:"as_of,omitempty"`
	Stores     []ReplicaStore     `json:"stores,omitempty"`
	Groups     []ReplicaGroup     `json:"groups,omitempty"`
	Products   []ReplicaProduct   `json:"products,omitempty"`
	Programs   []checkout.Program `json:"programs,omitempty"`
	Promotions []ReplicaPromotion `json:"promotions,omitempty"`
	CardKinds  []ReplicaCardKind  `json:"card_kinds,omitempty"`
	Cards      []ReplicaCard      `json:"cards,omitempty"`
	Lots       []ReplicaLot       `json:"lots,omitempty"`
	CardKeys   []ReplicaCardKey   `json:"card_keys,omitempty"`
	// FoldedThrough maps a till id to the last of that till's journal ids
	// whose effects the lots in this replica include (head office folds a
	// till's entries in id order). The till counts only its entries after it
	// (docs/replica.md, "A card's balance").
	FoldedThrough map[string]string `json:"folded_through,omitempty"`
}

// ReplicaStore is a shop of the chain.
type ReplicaStore struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	TimeZone string `json:"timezone"`
	Address  string `json:"address,omitempty"`
}

// ReplicaGroup is a product group; Parent makes a tree. Segment is inherited
// by products (and subgroups) that do not name their own.
type ReplicaGroup struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Parent  string `json:"parent,omitempty"`
	Segment string `json:"segment,omitempty"`
}

// ReplicaProduct is a catalog item.
type ReplicaProduct struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Group   string `json:"group"`
	Segment string `json:"segment,omitempty"`
	VAT     string `json:"vat"`
	Tobacco bool   `json:"tobacco,omitempty"`
	Alcohol bool   `json:"alcohol,omitempty"`
	// Unit the product is sold in: pcs (default), g, kg, ml, l, m, m2, m3.
	// Only pieces refuse a fractional quantity.
	Unit string `json:"unit,omitempty"`
	// LastPurchasePrice is the supplier's unit price; nil = unknown.
	LastPurchasePrice *checkout.Money `json:"last_purchase_price,omitempty"`
	Barcodes          []string        `json:"barcodes,omitempty"`
}

// ReplicaPromotion is a promotion of a program, kept apart from the program
// so head office can send promotions on their own.
type ReplicaPromotion struct {
	Program string `json:"program"`
	checkout.Promotion
}

// ReplicaCardKind is a sort of card the chain issues.
type ReplicaCardKind struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Kind    checkout.CardKind `json:"kind"`
	Program string            `json:"program"`
}

// ReplicaCard is one card with its purchase history as of the snapshot.
type ReplicaCard struct {
	Code        string             `json:"code"`
	Kind        string             `json:"kind"`
	Program     string             `json:"program,omitempty"` // overrides the kind's program
	State       checkout.CardState `json:"state"`
	BlockReason string             `json:"block_reason,omitempty"`
	Holder      string             `json:"holder,omitempty"`
	Debt        checkout.Points    `json:"debt,omitzero"`
	History     CardHistory        `json:"history,omitzero"`
}

// CardHistory is the card's purchase history. Month ("2026-11", store
// local) is the month PurchasesMonth, AccruedMonth and RedeemedMonth count;
// PurchasesPrevMonth is the month before it.
type CardHistory struct {
	Month              string          `json:"month,omitempty"`
	PurchasesAllTime   checkout.Money  `json:"purchases_all_time,omitzero"`
	PurchasesMonth     checkout.Money  `json:"purchases_month,omitzero"`
	PurchasesPrevMonth checkout.Money  `json:"purchases_prev_month,omitzero"`
	AccruedMonth       checkout.Points `json:"accrued_month,omitzero"`
	RedeemedMonth      checkout.Points `json:"redeemed_month,omitzero"`
}

// IsZero lets omitzero drop an empty history.
func (h CardHistory) IsZero() bool {
	return h.Month == "" && h.PurchasesAllTime.IsZero() && h.PurchasesMonth.IsZero() &&
		h.PurchasesPrevMonth.IsZero() && h.AccruedMonth.IsZero() && h.RedeemedMonth.IsZero()
}

// ReplicaLot is a point lot of a card. Remaining defaults to Points,
// ActiveFrom to AccruedAt.
type ReplicaLot struct {
	ID         string           `json:"id"`
	Card       string           `json:"card"`
	Points     checkout.Points  `json:"points"`
	Remaining  *checkout.Points `json:"remaining,omitempty"`
	AccruedAt  time.Time        `json:"accrued_at"`
	ActiveFrom *time.Time       `json:"active_from,omitempty"`
	ExpiresAt  *time.Time       `json:"expires_at,omitempty"`
	CheckID    string           `json:"check_id,omitempty"`
}

// RemainingPoints is Remaining, or Points when omitted.
func (l ReplicaLot) RemainingPoints() checkout.Points {
	if l.Remaining != nil {
		return *l.Remaining
	}
	return l.Points
}

// ActiveSince is ActiveFrom, or AccruedAt when omitted.
func (l ReplicaLot) ActiveSince() time.Time {
	if l.ActiveFrom != nil {
		return *l.ActiveFrom
	}
	return l.AccruedAt
}

// ReplicaCardKey is an Ed25519 public key that signs virtual-card QR tokens.
type ReplicaCardKey struct {
	// ID is the 16-bit key id signed tokens carry (0-65535).
	ID uint16 `json:"id"`
	// PublicKey is 32 bytes, base64 (standard or URL alphabet) or hex.
	PublicKey string     `json:"public_key"`
	ValidFrom time.Time  `json:"valid_from"`
	ValidTo   *time.Time `json:"valid_to,omitempty"`
}

// ParseReplicaFile parses by extension: .json, or .yaml/.yml.
func ParseReplicaFile(path string, data []byte) (*Replica, error) {
	var (
		r   *Replica
		err error
	)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		r, err = ParseReplica(data, "json")
	case ".yaml", ".yml":
		r, err = ParseReplica(data, "yaml")
	default:
		return nil, fmt.Errorf("replica %s: unknown extension, want .json, .yaml or .yml", path)
	}
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", path, err)
	}
	return r, nil
}

// ParseReplica decodes a replica ("json" or "yaml"), rejecting unknown
// fields, and checks every record on its own. References are checked by
// Import, which can also see the records already in the store (a file may
// carry only lots, say); Validate(nil) checks them within the file alone.
func ParseReplica(data []byte, format string) (*Replica, error) {
	js := data
	switch format {
	case "json":
	case "yaml":
		var err error
		if js, err = yamlToJSON(data); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown replica format %q", format)
	}
	r, err := decodeReplica(js)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	if err := r.Validate(func(string, string) (bool, error) { return true, nil }); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeReplica decodes section by section and record by record, so that a
// bad value is reported with the record it is in (`lots[3] id "L1":
// parsing time …`), not just a position in the file.
func decodeReplica(js []byte) (*Replica, error) {
	if err := jsonkeys.Check(js, nil); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the replica")
	}
	if top == nil {
		return nil, errors.New("replica must be an object")
	}
	var r Replica
	var errs []error
	for k, raw := range top {
		var err error
		switch k {
		case "version":
			err = json.Unmarshal(raw, &r.Version)
		case "as_of":
			err = json.Unmarshal(raw, &r.AsOf)
		case "stores":
			r.Stores, err = decodeSection[ReplicaStore](k, raw)
		case "groups":
			r.Groups, err = decodeSection[ReplicaGroup](k, raw)
		case "products":
			r.Products, err = decodeSection[ReplicaProduct](k, raw)
		case "programs":
			r.Programs, err = decodeSection[checkout.Program](k, raw)
		case "promotions":
			r.Promotions, err = decodeSection[ReplicaPromotion](k, raw)
		case "card_kinds":
			r.CardKinds, err = decodeSection[ReplicaCardKind](k, raw)
		case "cards":
			r.Cards, err = decodeSection[ReplicaCard](k, raw)
		case "lots":
			r.Lots, err = decodeSection[ReplicaLot](k, raw)
		case "card_keys":
			r.CardKeys, err = decodeSection[ReplicaCardKey](k, raw)
		case "folded_through":
			dec := json.NewDecoder(bytes.NewReader(raw))
			err = dec.Decode(&r.FoldedThrough)
		default:
			err = fmt.Errorf("unknown section %q", k)
		}
		if err != nil {
			if _, ok := err.(*RecordError); !ok && !strings.HasPrefix(err.Error(), "unknown section") {
				err = fmt.Errorf("%s: %w", k, err)
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() }) // map order is random
		return nil, errors.Join(errs...)
	}
	return &r, nil
}

func decodeSection[T any](section string, raw json.RawMessage) ([]T, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	if items == nil {
		return nil, nil
	}
	out := make([]T, len(items))
	for i, it := range items {
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) && ute.Value == "number" && ute.Type != nil && ute.Type.Kind() == reflect.String {
				// YAML reads an unquoted 2900000000018 as a number; codes
				// and ids are text (leading zeros, 13+ digits).
				err = fmt.Errorf("%s is a number, want text: quote it (%s: \"%s\")", ute.Field, lastField(ute.Field), numberAt(it, ute.Offset))
			}
			return nil, &RecordError{Section: section, Index: i, Key: recordKey(it), Err: err}
		}
	}
	return out, nil
}

// recordKey names a raw record by its id or code, as far as it can be read.
// A number is shown as written (UseNumber), never as 2.900000000018e+12.
func recordKey(raw json.RawMessage) string {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&m) == nil {
		for _, k := range []string{"id", "code"} {
			switch v := m[k].(type) {
			case string:
				return fmt.Sprintf("%s %q", k, v)
			case json.Number:
				return fmt.Sprintf("%s %q", k, v.String())
			}
		}
	}
	return "(no id)"
}

func lastField(f string) string {
	if i := strings.LastIndexByte(f, '.'); i >= 0 {
		return f[i+1:]
	}
	return f
}

// numberAt returns the number that ends at byte offset end of raw (where
// the decoder reports a type error), for the hint.
func numberAt(raw []byte, end int64) string {
	if end <= 0 || end > int64(len(raw)) {
		return "…"
	}
	i := int(end)
	j := i
	for j > 0 && strings.IndexByte("0123456789.-+eE", raw[j-1]) >= 0 {
		j--
	}
	if j == i {
		return "…"
	}
	return string(raw[j:i])
}

// yamlToJSON turns a YAML document into the equivalent JSON, keeping scalars
// as written: numbers stay exact decimals (no float64 round trip) and
// timestamps stay strings.
func yamlToJSON(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	if doc.Kind == 0 {
		return nil, errors.New("parse yaml: empty document")
	}
	// Aliases are followed; the budget stops an alias bomb. A document
	// without aliases has fewer nodes than bytes, so this never refuses one.
	budget := 10_000 + 2*len(data)
	v, err := nodeValue(&doc, &budget, 0)
	if err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	return json.Marshal(v)
}

func nodeValue(n *yaml.Node, budget *int, depth int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, errors.New("document too large (alias expansion)")
	}
	if depth > 100 {
		return nil, errors.New("document nested too deeply")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0], budget, depth+1)
	case yaml.AliasNode:
		return nodeValue(n.Alias, budget, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c, budget, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key must be a scalar", k.Line)
			}
			if k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: merge keys (<<) are not supported", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := nodeValue(vn, budget, depth+1)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil, fmt.Errorf("line %d: unsupported yaml node", n.Line)
}

func scalarValue(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return b, nil
	case "!!int", "!!float":
		s := strings.ReplaceAll(n.Value, "_", "")
		if d, err := decimal.NewFromString(s); err == nil && !strings.ContainsAny(s, "xXoObB") {
			return json.Number(d.String()), nil
		}
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		return nil, fmt.Errorf("line %d: number %q is not a finite decimal", n.Line, n.Value)
	default: // !!str, !!timestamp, !!binary: as written
		return n.Value, nil
	}
}

// ---------------------------------------------------------------- checks --

// RecordError names the record a problem is in: `cards[12] code
// "2900000000018": unknown program "P9"`.
type RecordError struct {
	Section string // "cards"
	Index   int
	Key     string // `code "2900000000018"`
	Err     error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s[%d] %s: %v", e.Section, e.Index, e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Exists answers whether a record is already in the store; table is one of
// "stores", "groups", "products", "programs", "card_kinds", "cards".
type Exists func(table, id string) (bool, error)

// MaxHistory bounds each purchase counter of a card's history and a
// product's last purchase price (10^15 kopecks, 10 trillion roubles): the
// till keeps them in int64 kopecks, and a value past that would stop every
// till's import of the card. Head office's folding stops a counter here.
var MaxHistory = checkout.Kopecks(1_000_000_000_000_000)

// Lots' and card keys' times lie within the years 1..9999 in UTC: head
// office's feed sends them in UTC, where a time near year 9999 in a
// western zone is year 10000 and cannot be encoded (every till's feed
// would fail). ERP's "no date" sentinels (0001-01-01, 9999-12-31) pass.
var minReplicaTime, maxReplicaTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

// ReplicaTime reports whether t lies within those years: a lot's times,
// and a correction's expiry at head office, which becomes one.
func ReplicaTime(t time.Time) bool { return !t.Before(minReplicaTime) && t.Before(maxReplicaTime) }

// printable reports whether s holds something a receipt line shows: a
// letter, digit, mark, punctuation or symbol (not only spaces or
// zero-width characters, which leave a line with no name or an invisible
// one).
func printable(s string) bool {
	for _, r := range s {
		if unicode.IsGraphic(r) && !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) {
			return true
		}
	}
	return false
}

// ValidID reports whether id may name a replica record (recordid.Valid).
// A till's journal entry may only name lots by such ids (or DebtLot): head
// office folds them into lots that every till's feed must carry.
func ValidID(id string) bool { return recordid.Valid(id) }

var monthRe = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)

// recKey names a record in an error, formatted only when there is one.
type recKey struct {
	field, id string
	bare      bool // id as it is, not quoted
}

func (k recKey) String() string {
	if k.bare {
		return k.field + " " + k.id
	}
	return k.field + " " + strconv.Quote(k.id)
}

// Validate checks every record and the references between them. A
// reference not found in the file is looked up with exists (nil: must be in
// the file). All problems are returned together, at most 50.
func (r *Replica) Validate(exists Exists) error {
	var errs []error
	bad := func(sec string, i int, key recKey, format string, args ...any) {
		if len(errs) < 50 {
			errs = append(errs, &RecordError{Section: sec, Index: i, Key: key.String(), Err: fmt.Errorf(format, args...)})
		}
	}
	if r.Version != ReplicaFormatVersion {
		errs = append(errs, fmt.Errorf("version %d: this build reads version %d", r.Version, ReplicaFormatVersion))
	}
	sets := map[string]map[string]bool{}
	unique := func(sec string, i int, key recKey, id string) {
		if sets[sec] == nil {
			sets[sec] = map[string]bool{}
		}
		if !ValidID(id) {
			bad(sec, i, key, "id must be 1-64 of A-Z a-z 0-9 _ . : / - (not starting with a sign)")
		}
		if sets[sec][id] {
			bad(sec, i, key, "duplicate")
		}
		sets[sec][id] = true
	}
	// Found in the database: a page of 5,000 cards names the same few
	// card kinds 5,000 times; each is looked up once.
	found := map[[2]string]bool{}
	known := func(table, id string) (bool, error) {
		if sets[table][id] || found[[2]string{table, id}] {
			return true, nil
		}
		if exists == nil {
			return false, nil
		}
		ok, err := exists(table, id)
		if ok {
			found[[2]string{table, id}] = true
		}
		return ok, err
	}
	ref := func(sec string, i int, key recKey, table, what, id string) {
		ok, err := known(table, id)
		if err != nil {
			bad(sec, i, key, "look up %s %q: %v", what, id, err)
		} else if !ok {
			bad(sec, i, key, "unknown %s %q", what, id)
		}
	}

	for i, s := range r.Stores {
		key := recKey{field: "id", id: s.ID}
		unique("stores", i, key, s.ID)
		if s.Name == "" {
			bad("stores", i, key, "empty name")
		}
		if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "" || s.TimeZone == "Local" {
			bad("stores", i, key, "timezone %q is not an IANA zone", s.TimeZone)
		}
	}
	for i, g := range r.Groups {
		unique("groups", i, recKey{field: "id", id: g.ID}, g.ID)
	}
	parents := map[string]string{}
	for i, g := range r.Groups {
		key := recKey{field: "id", id: g.ID}
		if g.Name == "" {
			bad("groups", i, key, "empty name")
		}
		if g.Parent != "" {
			ref("groups", i, key, "groups", "parent group", g.Parent)
			parents[g.ID] = g.Parent
		}
	}
	for i, g := range r.Groups { // a cycle would make group expansion loop
		seen := map[string]bool{g.ID: true}
		for p := parents[g.ID]; p != ""; p = parents[p] {
			if seen[p] {
				bad("groups", i, recKey{field: "id", id: g.ID}, "parent chain has a cycle through %q", p)
				break
			}
			seen[p] = true
		}
	}
	for i, p := range r.Products {
		key := recKey{field: "id", id: p.ID}
		unique("products", i, key, p.ID)
		if !printable(p.Name) {
			bad("products", i, key, "name %q: nothing to print on a receipt line", p.Name)
		}
		ref("products", i, key, "groups", "group", p.Group)
		switch p.VAT {
		case "vat20", "vat22", "vat10", "vat5", "vat7", "vat0", "none":
		default:
			bad("products", i, key, "vat %q: want vat22, vat20, vat10, vat7, vat5, vat0 or none", p.VAT)
		}
		if p.LastPurchasePrice != nil && (p.LastPurchasePrice.IsNegative() || p.LastPurchasePrice.Cmp(MaxHistory) > 0) {
			bad("products", i, key, "last_purchase_price %s outside 0..%s", p.LastPurchasePrice, MaxHistory)
		}
		if !checkout.ValidUnit(p.Unit) {
			bad("products", i, key, "unit %q: want pcs, g, kg, ml, l, m, m2 or m3", p.Unit)
		}
		for _, b := range p.Barcodes {
			if b == "" || len(b) > 64 {
				bad("products", i, key, "barcode %q: want 1-64 characters", b)
			}
			if sets["barcodes"] == nil {
				sets["barcodes"] = map[string]bool{}
			}
			if sets["barcodes"][b] {
				bad("products", i, key, "barcode %q used twice", b)
			}
			sets["barcodes"][b] = true
		}
	}
	for i := range r.Programs {
		p := &r.Programs[i]
		key := recKey{field: "id", id: p.ID}
		unique("programs", i, key, p.ID)
		for _, e := range r.checkProgram(p, known) {
			bad("programs", i, key, "%v", e)
		}
	}
	for i := range r.Promotions {
		pr := &r.Promotions[i]
		key := recKey{field: "id", id: pr.ID}
		unique("promotions", i, key, pr.ID)
		ref("promotions", i, key, "programs", "program", pr.Program)
		for _, e := range checkPromotion(&pr.Promotion, known) {
			bad("promotions", i, key, "%v", e)
		}
	}
	for i, k := range r.CardKinds {
		key := recKey{field: "id", id: k.ID}
		unique("card_kinds", i, key, k.ID)
		if k.Name == "" {
			bad("card_kinds", i, key, "empty name")
		}
		switch k.Kind {
		case checkout.KindBonus, checkout.KindDiscount, checkout.KindCombined, checkout.KindReferral:
		default:
			bad("card_kinds", i, key, "kind %q: want bonus, discount, combined or referral", k.Kind)
		}
		ref("card_kinds", i, key, "programs", "program", k.Program)
	}
	for i, c := range r.Cards {
		key := recKey{field: "code", id: c.Code}
		unique("cards", i, key, c.Code)
		ref("cards", i, key, "card_kinds", "card kind", c.Kind)
		if c.Program != "" {
			ref("cards", i, key, "programs", "program", c.Program)
		}
		switch c.State {
		case checkout.StateIssued, checkout.StateActive:
			if c.BlockReason != "" {
				bad("cards", i, key, "block_reason on a card that is not blocked")
			}
		case checkout.StateBlocked:
			if c.BlockReason == "" {
				bad("cards", i, key, "blocked card needs a block_reason")
			}
		default:
			bad("cards", i, key, "state %q: want issued, active or blocked", c.State)
		}
		if c.Debt.IsNegative() {
			bad("cards", i, key, "negative debt %s", c.Debt)
		}
		h := c.History
		if h.Month != "" && !monthRe.MatchString(h.Month) {
			bad("cards", i, key, "history month %q: want YYYY-MM", h.Month)
		}
		if h.Month == "" && !(h.PurchasesMonth.IsZero() && h.PurchasesPrevMonth.IsZero() && h.AccruedMonth.IsZero() && h.RedeemedMonth.IsZero()) {
			bad("cards", i, key, "history has monthly counters but no month")
		}
		for _, m := range [...]struct {
			name string
			v    checkout.Money
		}{{"purchases_all_time", h.PurchasesAllTime}, {"purchases_month", h.PurchasesMonth}, {"purchases_prev_month", h.PurchasesPrevMonth}} {
			if !m.v.IsZero() && (m.v.IsNegative() || m.v.Cmp(MaxHistory) > 0) {
				bad("cards", i, key, "history %s %s outside 0..%s", m.name, m.v, MaxHistory)
			}
		}
		if h.AccruedMonth.IsNegative() || h.RedeemedMonth.IsNegative() {
			bad("cards", i, key, "negative monthly points")
		}
	}
	lotKeys := make(map[[2]string]bool, len(r.Lots))
	for i, l := range r.Lots {
		key := recKey{field: "id", id: l.ID}
		if !ValidID(l.ID) {
			bad("lots", i, key, "bad id")
		}
		if lotKeys[[2]string{l.Card, l.ID}] {
			bad("lots", i, key, "duplicate lot of card %q", l.Card)
		}
		lotKeys[[2]string{l.Card, l.ID}] = true
		ref("lots", i, key, "cards", "card", l.Card)
		if l.Points.IsNegative() {
			bad("lots", i, key, "negative points %s", l.Points)
		}
		if l.Remaining != nil && (l.Remaining.IsNegative() || l.Remaining.Cmp(l.Points) > 0) {
			bad("lots", i, key, "remaining %s outside 0..%s", l.Remaining, l.Points)
		}
		if l.AccruedAt.IsZero() {
			bad("lots", i, key, "missing accrued_at")
		}
		for _, t := range [...]struct {
			name string
			at   *time.Time
		}{{"accrued_at", &r.Lots[i].AccruedAt}, {"active_from", l.ActiveFrom}, {"expires_at", l.ExpiresAt}} {
			if t.at != nil && !ReplicaTime(*t.at) {
				bad("lots", i, key, "%s %s outside %d..%d", t.name, t.at.UTC().Format(time.RFC3339Nano), minReplicaTime.Year(), maxReplicaTime.Year()-1)
			}
		}
		if l.ActiveFrom != nil && l.ActiveFrom.Before(l.AccruedAt) {
			bad("lots", i, key, "active_from before accrued_at")
		}
		if l.ExpiresAt != nil {
			// In milliseconds, as the till keeps them: a lot expiring
			// within the millisecond it activates is stored with both
			// times equal.
			if !l.ExpiresAt.Truncate(time.Millisecond).After(l.ActiveSince().Truncate(time.Millisecond)) {
				bad("lots", i, key, "expires_at not after active_from")
			}
		}
	}
	tills := make([]string, 0, len(r.FoldedThrough))
	for till := range r.FoldedThrough {
		tills = append(tills, till)
	}
	sort.Strings(tills) // errors in a stable order
	for _, till := range tills {
		id := r.FoldedThrough[till]
		rest, ok := strings.CutPrefix(id, till+"-")
		_, _, _, err := decodeULID(rest)
		if !ValidID(till) || !ok || err != nil {
			errs = append(errs, fmt.Errorf("folded_through %q: %q is not a journal id of that till (%s-<26 characters>)", till, id, till))
		}
	}
	keyIDs := map[uint16]bool{}
	for i, k := range r.CardKeys {
		key := recKey{field: "id", id: strconv.Itoa(int(k.ID)), bare: true}
		if keyIDs[k.ID] {
			bad("card_keys", i, key, "duplicate")
		}
		keyIDs[k.ID] = true
		if _, err := decodeKey(k.PublicKey); err != nil {
			bad("card_keys", i, key, "%v", err)
		}
		if k.ValidFrom.IsZero() {
			bad("card_keys", i, key, "missing valid_from")
		}
		if k.ValidTo != nil && !k.ValidTo.After(k.ValidFrom) {
			bad("card_keys", i, key, "valid_to not after valid_from")
		}
		if !k.ValidFrom.IsZero() && !ReplicaTime(k.ValidFrom) || k.ValidTo != nil && !ReplicaTime(*k.ValidTo) {
			bad("card_keys", i, key, "valid_from or valid_to outside %d..%d", minReplicaTime.Year(), maxReplicaTime.Year()-1)
		}
	}
	return errors.Join(errs...)
}

func (r *Replica) checkProgram(p *checkout.Program, known Exists) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Name == "" {
		add("empty name")
	}
	if !p.PointValue.IsPositive() {
		add("point_value %s must be positive", p.PointValue)
	}
	if err := p.PointRounding.Valid(); err != nil {
		add("%v", err)
	}
	if p.ActivationDays < 0 || p.ActivationDays > 3650 {
		add("activation_days %d out of range 0..3650", p.ActivationDays)
	}
	if p.ExpiryDays < 0 || p.ExpiryDays > 36500 {
		add("expiry_days %d out of range 0..36500", p.ExpiryDays)
	}
	// What every till's engine checks before it uses the program: refused
	// here, it cannot stop every quote with the program's cards.
	if err := checkout.ValidateProgram(p); err != nil {
		add("%v", err)
	}
	refs := func(where, what, table string, ids []string) {
		for _, id := range ids {
			if ok, err := known(table, id); err != nil || !ok {
				add("%s: unknown %s %q", where, what, id)
			}
		}
	}
	refs("stores", "store", "stores", p.Stores)
	ruleIDs := map[string]bool{}
	for j, a := range p.Accrual {
		where := fmt.Sprintf("accrual[%d] %q", j, a.ID)
		if a.ID == "" || ruleIDs[a.ID] {
			add("%s: empty or duplicate rule id", where)
		}
		ruleIDs[a.ID] = true
		switch a.Kind {
		case checkout.AccrualPercent:
			if a.Tiers == nil && !a.Percent.Decimal().IsPositive() {
				add("%s: percent rule needs a positive percent or tiers", where)
			}
			if a.Tiers != nil {
				switch a.Tiers.Basis {
				case checkout.BasisCheck, checkout.BasisPrevMonth, checkout.BasisAllTime:
				default:
					add("%s: tier basis %q: want check_sum, prev_month or all_time", where, a.Tiers.Basis)
				}
				if len(a.Tiers.Levels) == 0 {
					add("%s: empty tier table", where)
				}
				for k, l := range a.Tiers.Levels {
					if l.Percent.Decimal().IsNegative() || l.From.IsNegative() {
						add("%s: tier %d is negative", where, k)
					}
					if k > 0 && l.From.Cmp(a.Tiers.Levels[k-1].From) <= 0 {
						add("%s: tier %d: from must increase", where, k)
					}
				}
			}
		case checkout.AccrualFixed, checkout.AccrualPerUnit:
			if !a.Points.IsPositive() {
				add("%s: needs positive points", where)
			}
		default:
			add("%s: kind %q: want percent, fixed_per_check or per_unit", where, a.Kind)
		}
		switch a.For {
		case "", checkout.ForCustomer, checkout.ForAgent:
		default:
			add("%s: for %q: want customer or agent", where, a.For)
		}
		if a.Percent.Decimal().IsNegative() || a.Percent.Decimal().GreaterThan(decimal.NewFromInt(100)) {
			add("%s: percent %s outside 0..100", where, a.Percent)
		}
		if a.MinCheckSum.IsNegative() {
			add("%s: negative min_check_sum", where)
		}
		refs(where, "group", "groups", append(append([]string{}, a.IncludeGroups...), a.ExcludeGroups...))
		refs(where, "product", "products", append(append([]string{}, a.IncludeProducts...), a.ExcludeProducts...))
		refs(where, "store", "stores", a.Stores)
	}
	for j := range p.Promotions {
		for _, e := range checkPromotion(&p.Promotions[j], known) {
			add("promotions[%d] %q: %v", j, p.Promotions[j].ID, e)
		}
	}
	rd := p.Redemption
	pct := func(name string, v *checkout.Percent) {
		if v != nil && (v.Decimal().IsNegative() || v.Decimal().GreaterThan(decimal.NewFromInt(1000))) {
			add("redemption %s %s out of range", name, v)
		}
	}
	pct("max_check_percent", rd.MaxCheckPercent)
	pct("min_markup_percent", rd.MinMarkupPercent)
	if rd.MinRedeem.IsNegative() || (rd.MonthlyCap != nil && rd.MonthlyCap.IsNegative()) {
		add("redemption: negative min_redeem or monthly_cap")
	}
	if p.MonthlyAccrualCap != nil && p.MonthlyAccrualCap.IsNegative() {
		add("negative monthly_accrual_cap")
	}
	if d := p.Discount; d != nil {
		switch d.Mode {
		case checkout.DiscountCumulative:
			if len(d.Levels) == 0 {
				add("discount: cumulative mode needs levels")
			}
		case checkout.DiscountCategory:
			if len(d.Categories) == 0 {
				add("discount: category mode needs categories")
			}
			for _, c := range d.Categories {
				refs("discount", "group", "groups", []string{c.Group})
			}
		default:
			add("discount: mode %q: want cumulative or category", d.Mode)
		}
	}
	switch p.NegativeBalance.Mode {
	case "", checkout.NegativeForbid, checkout.NegativeAllow, checkout.NegativeDeductRefund:
	case checkout.NegativeLimit:
		if !p.NegativeBalance.Limit.IsPositive() {
			add("negative_balance: limit mode needs a positive limit")
		}
	default:
		add("negative_balance: mode %q unknown", p.NegativeBalance.Mode)
	}
	return errs
}

func checkPromotion(p *checkout.Promotion, known Exists) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.ID == "" {
		add("empty id")
	}
	if p.From.IsZero() || p.To.IsZero() || !p.To.In(time.UTC).After(p.From.In(time.UTC)) {
		add("window from %s to %s: to must be after from", p.From, p.To)
	}
	if !p.Multiplier.Decimal().IsPositive() && len(p.ProductMultipliers) == 0 {
		add("multiplier must be positive")
	}
	ids := make([]string, 0, len(p.ProductMultipliers))
	for id := range p.ProductMultipliers {
		ids = append(ids, id)
	}
	sort.Strings(ids) // errors in a stable order
	for _, id := range ids {
		if !p.ProductMultipliers[id].Decimal().IsPositive() {
			add("product_multipliers %q: must be positive", id)
		}
	}
	refs := func(what, table string, ids []string) {
		for _, id := range ids {
			if ok, err := known(table, id); err != nil || !ok {
				add("unknown %s %q", what, id)
			}
		}
	}
	switch p.Scope {
	case checkout.ScopeAll:
	case checkout.ScopeGroups:
		if len(p.Groups) == 0 {
			add("scope groups needs groups")
		}
		refs("group", "groups", p.Groups)
	case checkout.ScopeProducts:
		if len(p.Products) == 0 && len(p.ProductMultipliers) == 0 {
			add("scope products needs products")
		}
		refs("product", "products", p.Products)
		refs("product", "products", ids)
	default:
		add("scope %q: want all, groups or products", p.Scope)
	}
	refs("store", "stores", p.Stores)
	return errs
}

// decodeKey accepts a 32-byte key as hex, standard or URL base64.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("public_key: %d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("public_key: want 32 bytes as hex or base64")
}
