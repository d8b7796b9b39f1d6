package headoffice

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// PostgreSQL's json columns store the escape \u0000, but every ->> that
// meets it fails (SQLSTATE 22P05) — on reports, on every till's push, on
// corrections — until someone finds the record; text columns refuse it
// outright. So ERP writes refuse U+0000 in any text before anything is
// written.

// maxRecordErrors bounds the per-record errors an import refusal lists, as
// store.Replica.Validate does.
const maxRecordErrors = 50

// recordText returns where in v (a record) a text textFault refuses is, as the
// JSON names it ("address", "accrual[1].include_products[0]"), and why
// ("" if none is). It walks what encoding/json would marshal: exported
// fields (embedded structs flattened, as json does), slices, maps and
// pointers.
func recordText(v any) (path, fault string) {
	return recordTextIn(reflect.ValueOf(v), "")
}

func recordTextIn(v reflect.Value, path string) (string, string) {
	switch v.Kind() {
	case reflect.String:
		if f := textFault(v.String()); f != "" {
			return path, f
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return recordTextIn(v.Elem(), path)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return "", "" // []byte marshals as base64
		}
		for i := range v.Len() {
			if p, f := recordTextIn(v.Index(i), path+"["+strconv.Itoa(i)+"]"); f != "" {
				return p, f
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := fmt.Sprint(it.Key().Interface())
			if f := textFault(k); f != "" {
				return path + "[" + strconv.Quote(k) + "] (the key)", f
			}
			if p, f := recordTextIn(it.Value(), path+"["+strconv.Quote(k)+"]"); f != "" {
				return p, f
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue // json leaves it out (decimal, time: no text of theirs)
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			sub := path
			if !f.Anonymous || name != "" {
				if name == "" {
					name = f.Name
				}
				if sub != "" {
					sub += "."
				}
				sub += name
			}
			if p, f := recordTextIn(v.Field(i), sub); f != "" {
				return p, f
			}
		}
	}
	return "", ""
}

// maxTextBytes bounds each text of an ERP record: a name or holder of
// megabytes would make the feed pages carrying it too large for a till
// to read.
const maxTextBytes = 4096

// textFault is what is wrong with an ERP text ("" if nothing).
func textFault(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return nulFault
	case len(s) > maxTextBytes:
		return fmt.Sprintf("is %d bytes long, over %d", len(s), maxTextBytes)
	}
	return ""
}

const nulFault = "holds U+0000 (NUL), which head office cannot store: remove it"

// nulRefusal is the error of a record whose field holds U+0000.
func nulRefusal(field string) error {
	return fmt.Errorf("%s %s", field, nulFault)
}

// checkImportText refuses a replica any of whose records holds U+0000 in
// its text (names, addresses, holders, ids…), or a text over
// maxTextBytes: one error per record (store.RecordError), at most
// maxRecordErrors.
func checkImportText(r *store.Replica) error {
	var errs []error
	check := func(section string, i int, key string, v any) {
		if len(errs) >= maxRecordErrors {
			return
		}
		if p, f := recordText(v); f != "" {
			errs = append(errs, &store.RecordError{Section: section, Index: i, Key: key, Err: fmt.Errorf("%s %s", p, f)})
		}
	}
	id := func(s string) string { return fmt.Sprintf("id %q", s) }
	for i, x := range r.Stores {
		check("stores", i, id(x.ID), x)
	}
	for i, x := range r.Groups {
		check("groups", i, id(x.ID), x)
	}
	for i, x := range r.Products {
		check("products", i, id(x.ID), x)
		if strings.ContainsFunc(x.Name, unicode.IsControl) && len(errs) < maxRecordErrors {
			// ESC, line breaks: the fiscal printer takes them as commands.
			// Refused here, not by the tills' import, which takes such
			// names stored before.
			errs = append(errs, &store.RecordError{Section: "products", Index: i, Key: id(x.ID), Err: fmt.Errorf("name %q: control characters", x.Name)})
		}
	}
	for i, x := range r.Programs {
		check("programs", i, id(x.ID), x)
	}
	for i, x := range r.Promotions {
		check("promotions", i, id(x.ID), x)
	}
	for i, x := range r.CardKinds {
		check("card_kinds", i, id(x.ID), x)
	}
	for i, x := range r.CardKeys {
		check("card_keys", i, fmt.Sprintf("id %d", x.ID), x)
	}
	// Cards and lots may be millions: their few text fields are checked
	// directly rather than walked.
	for i, c := range r.Cards {
		if len(errs) >= maxRecordErrors {
			break
		}
		if err := fieldFault("code", c.Code, "kind", c.Kind, "program", c.Program, "state", string(c.State),
			"block_reason", c.BlockReason, "holder", c.Holder, "history.month", c.History.Month); err != nil {
			errs = append(errs, &store.RecordError{Section: "cards", Index: i, Key: fmt.Sprintf("code %q", c.Code), Err: err})
		}
	}
	for i, l := range r.Lots {
		if len(errs) >= maxRecordErrors {
			break
		}
		if err := fieldFault("id", l.ID, "card", l.Card, "check_id", l.CheckID); err != nil {
			errs = append(errs, &store.RecordError{Section: "lots", Index: i, Key: id(l.ID), Err: err})
		}
	}
	return errors.Join(errs...)
}

// fieldFault is the first of the (name, text) pairs textFault refuses,
// naming the field; nil if none.
func fieldFault(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if fault := textFault(pairs[i+1]); fault != "" {
			return fmt.Errorf("%s %s", pairs[i], fault)
		}
	}
	return nil
}

// checkImportPoints refuses the lots' points and remaining and the cards'
// debt that the rest of head office would refuse: wire.CheckPoints, the
// check corrections and till entries pass (at most wire.MaxPoints in
// magnitude, wire.MaxPointsScale decimal places, no finer than the card's
// program's point scale). A new lot finer than its program's scale could
// never be spent whole by a till. The card's program is the one the import
// leaves it with (the file's card, kind and program, else head office's),
// read in tx.
func checkImportPoints(ctx context.Context, tx pgx.Tx, r *store.Replica) error {
	if len(r.Cards) == 0 && len(r.Lots) == 0 {
		return nil
	}
	progs, err := resolvePrograms(ctx, tx, r)
	if err != nil {
		return err
	}
	// A stored card's debt and a stored lot are head office's and the
	// import leaves them alone: ERP re-sending them unchanged after the
	// card moved to a coarser program is not refused over them. So the
	// records that fail are looked up, and the stored ones let through
	// (failures are few: the look-up is only theirs).
	type failure struct {
		err  *store.RecordError
		card string
		lot  string // "" for a card's debt
	}
	var fails []failure
	check := func(section string, i int, key, what string, d decimal.Decimal, program, card, lot string) {
		scale, ok := progs.scale[program]
		if !ok {
			scale = -1 // a program head office does not know: only the bounds
		}
		if err := wire.CheckPoints(what, d, scale); err != nil {
			if ok {
				err = fmt.Errorf("program %s: %w", program, err)
			}
			fails = append(fails, failure{&store.RecordError{Section: section, Index: i, Key: key, Err: err}, card, lot})
		}
	}
	for i, c := range r.Cards {
		check("cards", i, fmt.Sprintf("code %q", c.Code), "debt", c.Debt.Decimal(), progs.of(c.Code), c.Code, "")
	}
	for i, l := range r.Lots {
		key, prog := fmt.Sprintf("id %q", l.ID), progs.of(l.Card)
		check("lots", i, key, "points", l.Points.Decimal(), prog, l.Card, l.ID)
		if l.Remaining != nil {
			check("lots", i, key, "remaining", l.Remaining.Decimal(), prog, l.Card, l.ID)
		}
	}
	if len(fails) == 0 {
		return nil
	}
	cards, lotCards, lotIDs := []string{}, []string{}, []string{}
	for _, f := range fails {
		if f.lot == "" {
			cards = append(cards, f.card)
		} else {
			lotCards, lotIDs = append(lotCards, f.card), append(lotIDs, f.lot)
		}
	}
	stored := map[[2]string]bool{}
	var a, b string
	if err := forEachRow(ctx, tx, []any{&a, &b}, func() { stored[[2]string{a, b}] = true },
		`SELECT code, '' FROM cards WHERE code = ANY($1)
		UNION ALL SELECT l.card, l.lot_id FROM unnest($2::text[], $3::text[]) AS u(card, id)
			JOIN lots l ON l.card = u.card AND l.lot_id = u.id`, cards, lotCards, lotIDs); err != nil {
		return headOffice(fmt.Errorf("read the stored cards and lots: %w", err))
	}
	var errs []error
	for _, f := range fails {
		if !stored[[2]string{f.card, f.lot}] && len(errs) < maxRecordErrors {
			errs = append(errs, f.err)
		}
	}
	if len(errs) > 0 {
		return &RefusedImport{Err: errors.Join(errs...)}
	}
	return nil
}

// importPrograms tells the program of each card an import names, as head
// office will read it after the import (the card's own program, else its
// kind's: as cardPrograms.resolve), and each program's point scale. The file's
// cards are found through their indices sorted by code (4 bytes a card,
// not a map of codes: an import may hold millions); only programs, kinds
// and the cards of lots that are not in the file are kept by id.
type importPrograms struct {
	cards  []store.ReplicaCard
	byCode []int32 // indices of cards sorted by code
	kinds  map[string]string
	stored map[string]storedCard
	scale  map[string]int32
}

type storedCard struct{ program, kind string }

// fileCard finds card code in the file.
func (p *importPrograms) fileCard(code string) (*store.ReplicaCard, bool) {
	i, ok := slices.BinarySearchFunc(p.byCode, code, func(i int32, code string) int { return strings.Compare(p.cards[i].Code, code) })
	if !ok {
		return nil, false
	}
	return &p.cards[p.byCode[i]], true
}

// of is the program of card code ("" if none is known).
func (p *importPrograms) of(code string) string {
	c := p.stored[code]
	if f, ok := p.fileCard(code); ok {
		c = storedCard{program: f.Program, kind: f.Kind}
	}
	if c.program == "" {
		return p.kinds[c.kind]
	}
	return c.program
}

// resolvePrograms reads from head office what the file does not give: the
// cards of its lots that are not in it, and the kinds and programs those
// and its cards name (three queries at most).
func resolvePrograms(ctx context.Context, tx pgx.Tx, r *store.Replica) (*importPrograms, error) {
	cards := r.Cards
	p := &importPrograms{cards: cards, kinds: map[string]string{}, stored: map[string]storedCard{}, scale: map[string]int32{},
		byCode: sortedOrder(len(cards), func(a, b int) int { return strings.Compare(cards[a].Code, cards[b].Code) })}
	for _, x := range r.Programs {
		p.scale[x.ID] = x.PointRounding.Scale
	}
	for _, k := range r.CardKinds {
		p.kinds[k.ID] = k.Program
	}
	var lotCards []string
	for _, l := range r.Lots {
		if _, inFile := p.fileCard(l.Card); !inFile {
			if _, ok := p.stored[l.Card]; !ok {
				p.stored[l.Card] = storedCard{}
				lotCards = append(lotCards, l.Card)
			}
		}
	}
	if len(lotCards) > 0 {
		var code string
		var c storedCard
		if err := forEachRow(ctx, tx, []any{&code, &c.program, &c.kind}, func() { p.stored[code] = c },
			`SELECT code, program, kind FROM cards WHERE code = ANY($1)`, lotCards); err != nil {
			return nil, headOffice(fmt.Errorf("read the programs of the lots' cards: %w", err))
		}
	}
	askKinds := map[string]bool{}
	needKind := func(c storedCard) {
		if _, ok := p.kinds[c.kind]; !ok && c.program == "" && c.kind != "" {
			askKinds[c.kind] = true
		}
	}
	for _, c := range cards {
		needKind(storedCard{program: c.Program, kind: c.Kind})
	}
	for _, c := range p.stored {
		needKind(c)
	}
	if len(askKinds) > 0 {
		var id, program string
		if err := forEachRow(ctx, tx, []any{&id, &program}, func() { p.kinds[id] = program },
			`SELECT id, coalesce(body->>'program', '') FROM catalog WHERE section = 'card_kinds' AND id = ANY($1)`,
			slices.Collect(maps.Keys(askKinds))); err != nil {
			return nil, headOffice(fmt.Errorf("read the card kinds' programs: %w", err))
		}
	}
	askPrograms := map[string]bool{}
	needProgram := func(program string) {
		if _, ok := p.scale[program]; !ok && program != "" {
			askPrograms[program] = true
		}
	}
	for _, program := range p.kinds {
		needProgram(program)
	}
	for _, c := range cards {
		needProgram(c.Program)
	}
	for _, c := range p.stored {
		needProgram(c.program)
	}
	if len(askPrograms) > 0 {
		var id string
		var scale int32
		if err := forEachRow(ctx, tx, []any{&id, &scale}, func() { p.scale[id] = scale },
			`SELECT id, coalesce((body->'point_rounding'->>'scale')::int, 0) FROM catalog WHERE section = 'programs' AND id = ANY($1)`,
			slices.Collect(maps.Keys(askPrograms))); err != nil {
			return nil, headOffice(fmt.Errorf("read the programs' point scales: %w", err))
		}
	}
	return p, nil
}

// forEachRow runs q and calls fn after scanning each row into dest.
func forEachRow(ctx context.Context, tx pgx.Tx, dest []any, fn func(), q string, args ...any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, func() error { fn(); return nil })
	return err
}

// checkCorrectionText refuses a correction holding U+0000 in its text.
func checkCorrectionText(c Correction) error {
	for _, f := range [...]struct{ name, v string }{{"id", c.ID}, {"card", c.Card}, {"reason", c.Reason}} {
		if strings.IndexByte(f.v, 0) >= 0 {
			return refused(fmt.Errorf("correction %q of card %q: %w", c.ID, c.Card, nulRefusal(f.name)))
		}
	}
	return nil
}

// headOfficeError marks a failure of head office's own data or database
// (its catalog cannot be read, say) even where it wraps a PostgreSQL data
// exception (class 22) that would otherwise be taken for the request's
// value: the answer is 5xx, never a 422 blaming the request.
type headOfficeError struct{ err error }

func (e headOfficeError) Error() string { return e.err.Error() }
func (e headOfficeError) Unwrap() error { return e.err }

func headOffice(err error) error { return headOfficeError{err} }

// checkCatalogChanges refuses what is valid in the file but not against
// what head office holds (read in tx): a program whose points get coarser
// (a lower point_rounding.scale: lots, and tills' entries not pushed yet,
// hold finer points, and those entries would be refused as finer than the
// program counts — an accrual lost, a redemption spendable again), and a
// group whose parents lead back to it through groups stored before (the
// file alone has no cycle; every till loading afresh would refuse the
// groups and everything under them).
func checkCatalogChanges(ctx context.Context, tx pgx.Tx, r *store.Replica) error {
	var errs []error
	if len(r.Programs) > 0 {
		ids := make([]string, len(r.Programs))
		for i, p := range r.Programs {
			ids[i] = p.ID
		}
		stored := map[string]int32{}
		var id string
		var scale int32
		if err := forEachRow(ctx, tx, []any{&id, &scale}, func() { stored[id] = scale },
			`SELECT id, coalesce((body->'point_rounding'->>'scale')::int, 0) FROM catalog WHERE section = 'programs' AND id = ANY($1)`, ids); err != nil {
			return headOffice(fmt.Errorf("read the stored programs: %w", err))
		}
		for i, p := range r.Programs {
			if old, ok := stored[p.ID]; ok && p.PointRounding.Scale < old {
				errs = append(errs, &store.RecordError{Section: "programs", Index: i, Key: fmt.Sprintf("id %q", p.ID),
					Err: fmt.Errorf("point_rounding.scale %d below the %d stored: its lots and tills' entries not pushed yet hold finer points; points may only get finer (a new program for coarser ones)", p.PointRounding.Scale, old)})
			}
		}
	}
	if len(r.Groups) > 0 {
		parent := map[string]string{}
		var id, par string
		if err := forEachRow(ctx, tx, []any{&id, &par}, func() { parent[id] = par },
			`SELECT id, coalesce(body->>'parent', '') FROM catalog WHERE section = 'groups'`); err != nil {
			return headOffice(fmt.Errorf("read the stored groups: %w", err))
		}
		for _, g := range r.Groups {
			parent[g.ID] = g.Parent
		}
		for i, g := range r.Groups {
			seen := map[string]bool{g.ID: true}
			for p := g.Parent; p != ""; p = parent[p] {
				if seen[p] {
					errs = append(errs, &store.RecordError{Section: "groups", Index: i, Key: fmt.Sprintf("id %q", g.ID),
						Err: fmt.Errorf("parent %q: its parents with the stored groups lead back to %q", g.Parent, p)})
					break
				}
				seen[p] = true
			}
		}
	}
	if err := checkBarcodeOwners(ctx, tx, r, &errs); err != nil {
		return err
	}
	if err := checkCodeClashes(ctx, tx, r, &errs); err != nil {
		return err
	}
	if len(errs) > 0 {
		return &RefusedImport{Err: errors.Join(errs...)}
	}
	return nil
}

// checkBarcodeOwners adds to errs a product of r given a barcode that a
// stored product, not in r, still has: every till would scan it as
// whichever came last. Moving a barcode means sending the old product
// without it in the same import.
func checkBarcodeOwners(ctx context.Context, tx pgx.Tx, r *store.Replica, errs *[]error) error {
	owner := map[string]int{} // barcode → index in r.Products
	inFile := map[string]bool{}
	var codes []string
	for i, p := range r.Products {
		inFile[p.ID] = true
		for _, b := range p.Barcodes {
			owner[b] = i
			codes = append(codes, b)
		}
	}
	if len(codes) == 0 {
		return nil
	}
	var id, code string
	err := forEachRow(ctx, tx, []any{&id, &code}, func() {
		if i, ok := owner[code]; ok && !inFile[id] && len(*errs) < maxRecordErrors {
			*errs = append(*errs, &store.RecordError{Section: "products", Index: i, Key: fmt.Sprintf("id %q", r.Products[i].ID),
				Err: fmt.Errorf("barcode %s is product %q's: send %q without it in the same import to move it", code, id, id)})
		}
	}, `SELECT p.id, b FROM catalog p CROSS JOIN LATERAL json_array_elements_text(coalesce(p.body->'barcodes', '[]')) AS b
		WHERE p.section = 'products' AND b = ANY($1) ORDER BY p.id, b`, codes)
	if err != nil {
		return headOffice(fmt.Errorf("read the stored barcodes: %w", err))
	}
	return nil
}

// checkCodeClashes adds to errs a product of r given a barcode that is a
// card's code (in r or stored), and a card of r whose code is the barcode
// of a stored product not in r. A till classifies a scan before it looks
// anything up (docs/scanners.md): a code with a card prefix is the card, any
// other a product, so one of the two could never be scanned; and in-store
// numbers (GS1 20–29) are where both chains' numbering lives.
func checkCodeClashes(ctx context.Context, tx pgx.Tx, r *store.Replica, errs *[]error) error {
	if len(r.Products) == 0 && len(r.Cards) == 0 {
		return nil
	}
	add := func(e *store.RecordError) {
		if len(*errs) < maxRecordErrors {
			*errs = append(*errs, e)
		}
	}
	product := map[string]int{} // barcode → index in r.Products
	inFile := map[string]bool{}
	var barcodes []string
	for i, p := range r.Products {
		inFile[p.ID] = true
		for _, b := range p.Barcodes {
			product[b] = i
			barcodes = append(barcodes, b)
		}
	}
	clash := func(i int, code string) {
		add(&store.RecordError{Section: "products", Index: i, Key: fmt.Sprintf("id %q", r.Products[i].ID),
			Err: fmt.Errorf("barcode %s is a loyalty card's code: a till would take a scan of it for one or the other; give the product another barcode", code)})
	}
	reported := map[string]bool{} // barcodes of r that are codes of r's cards
	for _, c := range r.Cards {
		if i, ok := product[c.Code]; ok {
			clash(i, c.Code)
			reported[c.Code] = true
		}
	}
	if len(barcodes) > 0 {
		var code string
		if err := forEachRow(ctx, tx, []any{&code}, func() {
			if !reported[code] {
				clash(product[code], code)
			}
		}, `SELECT code FROM cards WHERE code = ANY($1) ORDER BY code`, barcodes); err != nil {
			return headOffice(fmt.Errorf("read the cards the barcodes name: %w", err))
		}
	}
	if len(r.Cards) == 0 {
		return nil
	}
	// Only the codes go along (no map of an import that may carry a
	// million cards); a clash, rare, finds its card's index by a scan.
	codes := make([]string, len(r.Cards))
	for i, c := range r.Cards {
		codes[i] = c.Code
	}
	// The stored barcodes are read once (MATERIALIZED) and joined to the
	// codes: as an IN (unnest) beside each product, the codes' hash was
	// built again for every product (1 s for 20 products and 200,000 cards).
	var id, code string
	if err := forEachRow(ctx, tx, []any{&id, &code}, func() {
		if !inFile[id] && len(*errs) < maxRecordErrors {
			i := slices.IndexFunc(r.Cards, func(c store.ReplicaCard) bool { return c.Code == code })
			add(&store.RecordError{Section: "cards", Index: i, Key: fmt.Sprintf("code %q", code),
				Err: fmt.Errorf("code %s is product %q's barcode: a till would take a scan of it for one or the other; send the product without it first", code, id)})
		}
	}, `WITH stored AS MATERIALIZED (SELECT p.id, b FROM catalog p CROSS JOIN LATERAL json_array_elements_text(coalesce(p.body->'barcodes', '[]')) AS b
			WHERE p.section = 'products')
		SELECT s.id, s.b FROM stored s JOIN unnest($1::text[]) AS k(code) ON k.code = s.b ORDER BY s.id, s.b`, codes); err != nil {
		return headOffice(fmt.Errorf("read the stored barcodes the cards' codes are: %w", err))
	}
	return nil
}
