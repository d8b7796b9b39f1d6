package headoffice

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// edgeOldCardPrograms is the join ingestion ran per batch before the
// programs were resolved in Go (2b2965b's sqlCardPrograms, copied here so
// the reference does not move with the code): the program of each card
// of the batch ($1) and of its till's ($2) unfolded entries that head
// office knows.
const edgeOldCardPrograms = `WITH k AS MATERIALIZED (SELECT id, body->>'program' AS program FROM catalog WHERE section = 'card_kinds'),
		p AS MATERIALIZED (SELECT id, coalesce((body->'point_rounding'->>'scale')::int, 0) AS scale,
			coalesce(body->'negative_balance'->>'mode', '') AS mode, coalesce(body->'negative_balance'->>'limit', '0') AS lim
			FROM catalog WHERE section = 'programs')
		SELECT c.code, p.id, p.scale, p.mode, p.lim
		FROM cards c
		LEFT JOIN k ON k.id = c.kind
		JOIN p ON p.id = coalesce(nullif(c.program, ''), k.program)
		WHERE c.code IN (SELECT unnest($1::text[]) UNION SELECT card_code FROM journal WHERE till_id = $2 AND NOT folded)`

// edgeOldScanPrograms is 2b2965b's scanPrograms: rows of (code, program,
// scale, mode, limit) into the cards' program, scale and debt policy.
func edgeOldScanPrograms(rows pgx.Rows, out map[string]*cardState) error {
	for rows.Next() {
		var code, program, mode, limit string
		var scale int32
		if err := rows.Scan(&code, &program, &scale, &mode, &limit); err != nil {
			return fmt.Errorf("read the cards' programs: %w", err)
		}
		c := out[code]
		if c == nil {
			continue
		}
		c.program, c.scale = program, scale
		if mode == string(checkout.NegativeAllow) {
			continue
		}
		p := &debtPolicy{program: program, mode: mode, keep: decimal.Zero}
		if mode == "" {
			p.mode = string(checkout.NegativeForbid)
		}
		if mode == string(checkout.NegativeLimit) {
			l, err := decimal.NewFromString(limit)
			if err != nil {
				return fmt.Errorf("program %s: negative_balance limit %q: %w", program, limit, err)
			}
			p.keep = l
		}
		c.policy = p
	}
	return rows.Err()
}

// edgeResolved is what ingestion knows of a card's program.
func edgeResolved(c *cardState) string {
	if c == nil {
		return "no card"
	}
	pol := "none"
	if c.policy != nil {
		pol = fmt.Sprintf("%s/%s/keep %s", c.policy.program, c.policy.mode, c.policy.keep)
	}
	return fmt.Sprintf("program %q scale %d policy %s", c.program, c.scale, pol)
}

// edgeBothResolutions locks codes as ingestion does and resolves their
// programs both ways, in one transaction: this build's (sqlPrograms,
// cardPrograms.resolve) and the old join's. It returns each card's
// resolution and the errors.
func edgeBothResolutions(t *testing.T, s *Server, codes []string, till string) (now, old map[string]string, errNow, errOld error) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	cards := map[string]*cardState{}
	rows, err := tx.Query(ctx, sqlLockIngestCards, codes, till)
	if err != nil {
		t.Fatal(err)
	}
	if err := scanCards(rows, cards); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	oldCards := map[string]*cardState{}
	for code := range cards {
		oldCards[code] = &cardState{Code: code}
	}
	var programs cardPrograms
	if rows, err = tx.Query(ctx, sqlPrograms); err != nil {
		t.Fatal(err)
	}
	if err := programs.scan(rows); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	errNow = programs.resolve(cards)
	if rows, err = tx.Query(ctx, edgeOldCardPrograms, codes, till); err != nil {
		t.Fatal(err)
	}
	errOld = edgeOldScanPrograms(rows, oldCards)
	rows.Close()
	now, old = map[string]string{}, map[string]string{}
	for _, code := range codes {
		now[code], old[code] = edgeResolved(cards[code]), edgeResolved(oldCards[code])
	}
	for code := range cards {
		now[code], old[code] = edgeResolved(cards[code]), edgeResolved(oldCards[code])
	}
	return now, old, errNow, errOld
}

// TestProgramsResolveAsTheJoin: cards of every combination of own
// program (none, known, allow, without a policy, unknown to head office,
// a numeric id) and kind (with a program, with a null, empty, numeric or
// missing program, pointing to a program head office lacks, unknown),
// under programs of every policy shape (forbid, allow, limit with a
// string, a number or no limit, deduct_refund, no negative_balance, an
// empty or null one, scales set or not): ingestion's Go resolution gives
// every card the program, scale and policy the old join gave it, and the
// cards of the till's unfolded entries too. A limit that is not a number
// is an error both ways.
func TestProgramsResolveAsTheJoin(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	programs := map[string]string{
		"QA-FORBID":   `{"id":"QA-FORBID","negative_balance":{"mode":"forbid"},"point_rounding":{"scale":2}}`,
		"QA-NOPOL":    `{"id":"QA-NOPOL"}`,
		"QA-EMPTYPOL": `{"negative_balance":{},"point_rounding":{}}`,
		"QA-NULLS":    `{"negative_balance":null,"point_rounding":null}`,
		"QA-LIMIT":    `{"negative_balance":{"mode":"limit","limit":"150.5"},"point_rounding":{"scale":1,"mode":"half_up"}}`,
		"QA-LIMITNUM": `{"negative_balance":{"mode":"limit","limit":20}}`,
		"QA-LIMIT0":   `{"negative_balance":{"mode":"limit"}}`,
		"QA-ALLOW":    `{"negative_balance":{"mode":"allow","limit":"5"},"point_rounding":{"scale":3}}`,
		"QA-DEDUCT":   `{"negative_balance":{"mode":"deduct_refund"}}`,
		"5":           `{"negative_balance":{"mode":"limit","limit":"7"}}`,
	}
	kinds := map[string]string{
		"qa-k-forbid": `{"program":"QA-FORBID"}`, "qa-k-allow": `{"program":"QA-ALLOW"}`, "qa-k-limit": `{"program":"QA-LIMIT"}`,
		"qa-k-nopol": `{"program":"QA-NOPOL"}`, "qa-k-null": `{"program":null}`, "qa-k-none": `{}`, "qa-k-empty": `{"program":""}`,
		"qa-k-gone": `{"program":"QA-GONE"}`, "qa-k-num": `{"program":5}`, "qa-k-limit0": `{"program":"QA-LIMIT0"}`,
	}
	for id, body := range programs {
		if _, err := s.db.Exec(ctx, `INSERT INTO catalog (section, id, body) VALUES ('programs', $1, $2::json)`, id, body); err != nil {
			t.Fatal(err)
		}
	}
	for id, body := range kinds {
		if _, err := s.db.Exec(ctx, `INSERT INTO catalog (section, id, body) VALUES ('card_kinds', $1, $2::json)`, id, body); err != nil {
			t.Fatal(err)
		}
	}
	owns := []string{"", "QA-LIMIT", "QA-ALLOW", "QA-NOPOL", "QA-GONE", "BONUS", "5", "QA-EMPTYPOL", "QA-NULLS", "QA-DEDUCT", "QA-LIMITNUM"}
	kindIDs := []string{"bonus", "discount", "qa-k-unknown"}
	for id := range kinds {
		kindIDs = append(kindIDs, id)
	}
	var codes []string
	for i, own := range owns {
		for j, kind := range kindIDs {
			code := fmt.Sprintf("QA%02d%02d", i, j)
			if _, err := s.db.Exec(ctx, `INSERT INTO cards (code, kind, program, state) VALUES ($1, $2, $3, 'active')`, code, kind, own); err != nil {
				t.Fatal(err)
			}
			codes = append(codes, code)
		}
	}
	// Half of them reach ingestion as the cards of the till's unfolded
	// entries, not of the batch.
	for i, code := range codes[:len(codes)/2] {
		if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded)
			VALUES ($1, 'S001-T01', 'S001-T01-gap', $2, 'accrual', 1, '{}', '\x00', false)`, fmt.Sprintf("S001-T01-%026d", i+1), code); err != nil {
			t.Fatal(err)
		}
	}
	batch := append(codes[len(codes)/2:], "QA-UNKNOWN-CARD")
	now, old, errNow, errOld := edgeBothResolutions(t, s, batch, "S001-T01")
	if errNow != nil || errOld != nil {
		t.Fatalf("errors: now %v, old %v", errNow, errOld)
	}
	resolved, kept := 0, 0
	for _, code := range append(codes, "QA-UNKNOWN-CARD") {
		if testing.Verbose() {
			t.Logf("%s: %s", code, now[code])
		}
		if now[code] != old[code] {
			var kind, own string
			s.db.QueryRow(ctx, `SELECT kind, program FROM cards WHERE code = $1`, code).Scan(&kind, &own)
			t.Errorf("card %s (own program %q, kind %q): %s, the join gave %s", code, own, kind, now[code], old[code])
		}
		if strings.Contains(now[code], "policy none") {
			kept++
		} else {
			resolved++
		}
	}
	if resolved < 50 || kept < 20 {
		t.Errorf("%d cards with a policy, %d without: the combinations are not exercised", resolved, kept)
	}
	// A limit that is no number: both refuse the batch of a card under it.
	if _, err := s.db.Exec(ctx, `UPDATE catalog SET body = '{"negative_balance":{"mode":"limit","limit":"abc"}}' WHERE section = 'programs' AND id = 'QA-LIMIT'`); err != nil {
		t.Fatal(err)
	}
	_, _, errNow, errOld = edgeBothResolutions(t, s, []string{"QA0100"}, "S001-T01")
	if errNow == nil || errOld == nil {
		t.Errorf("a limit of \"abc\": now %v, old %v; want both to fail", errNow, errOld)
	}
}

// edgePolicyTill is head office logging into log, with the demo, program
// QA-P (BONUS's rules, negative balance forbid, whole points) and kind
// qa-k of it, cards edgeCard (with lot M1 of 300) and edgeProbe of kind qa-k,
// and till S001-T01.
func edgePolicyTill(t *testing.T, log *syncBuffer) *Server {
	t.Helper()
	s := openLogged(t, log)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	edgeImportProgram(t, s, "QA-P", checkout.NegativeBalancePolicy{Mode: checkout.NegativeForbid}, 0)
	if _, err := s.Import(ctx, &store.Replica{Version: 1,
		CardKinds: []store.ReplicaCardKind{{ID: "qa-k", Name: "QA", Kind: checkout.KindBonus, Program: "QA-P"}},
		Cards:     edgeCards("qa-k", ""),
		Lots:      []store.ReplicaLot{lot(edgeCard, "M1", "300", demoNow.Add(-48*time.Hour), nil)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	return s
}

// edgeCard is the card whose double spends test the policy; edgeProbe, under
// the same program, the one whose fractional accruals test the scale (its
// lots never count toward edgeCard's balance).
const edgeCard, edgeProbe = "3400000000101", "3400000000102"

// edgeCards is edgeCard and edgeProbe, of kind, with program their own.
func edgeCards(kind, program string) []store.ReplicaCard {
	return []store.ReplicaCard{{Code: edgeCard, Kind: kind, Program: program, State: checkout.StateActive},
		{Code: edgeProbe, Kind: kind, Program: program, State: checkout.StateActive}}
}

// edgeImportProgram imports (or re-imports) program id as the demo's BONUS
// with policy m and points of scale decimal places.
func edgeImportProgram(t *testing.T, s *Server, id string, m checkout.NegativeBalancePolicy, scale int32) {
	t.Helper()
	p := demoReplica(t).Programs[0]
	p.ID, p.Promotions, p.NegativeBalance = id, nil, m
	p.PointRounding.Scale = scale
	if _, err := s.Import(context.Background(), &store.Replica{Version: 1, Programs: []checkout.Program{p}}); err != nil {
		t.Fatal(err)
	}
}

// edgeWriteOffs is the write-offs of entry id: "program/mode/points", joined.
func edgeWriteOffs(t *testing.T, s *Server, id string) string {
	t.Helper()
	rows, err := s.db.Query(context.Background(), `SELECT program || '/' || mode || '/' || points::text FROM debt_writeoffs WHERE entry_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(ws, ",")
}

func edgeDebt(t *testing.T, s *Server, card string) decimal.Decimal {
	t.Helper()
	var d string
	if err := s.db.QueryRow(context.Background(), `SELECT debt::text FROM cards WHERE code = $1`, card).Scan(&d); err != nil {
		t.Fatal(err)
	}
	return dec(d)
}

// edgeAddLot imports lot id of 300 for card, accrued two days ago.
func edgeAddLot(t *testing.T, s *Server, card, id string) {
	t.Helper()
	if _, err := s.Import(context.Background(), &store.Replica{Version: 1, Lots: []store.ReplicaLot{lot(card, id, "300", demoNow.Add(-48*time.Hour), nil)}}); err != nil {
		t.Fatal(err)
	}
}

// TestIngestFollowsERPProgramChanges: between a till's batches ERP
// changes the card's program's negative-balance policy (forbid, then a
// limit of 100), moves the card to a program of its own (allow), back to
// its kind's, and the kind to another program; the database is left with
// the kind pointing to a program head office lacks. Each batch's double
// spend follows the policy in force when it is folded: written off under
// forbid (all of it) and limit (above 100, named after the program and
// mode), kept under allow and under an unknown program. The program's
// point scale in force decides which fractional accruals are logged as
// finer than the program counts.
func TestIngestFollowsERPProgramChanges(t *testing.T) {
	var log syncBuffer
	s := edgePolicyTill(t, &log)
	ctx := context.Background()
	var lt lateTill
	half := func() store.Entry {
		return store.Entry{CheckID: "", CardCode: edgeProbe, Kind: store.KindAccrual, Points: dec("0.5"), PurchaseKop: 100, CreatedAt: demoNow,
			Lots: []store.LotChange{{Delta: dec("0.5"), Create: true, ActiveFrom: demoNow}}}
	}
	finer := func(b *wire.Batch) bool { return strings.Contains(log.String(), b.Entries[len(b.Entries)-1].ID) }
	push := func(b *wire.Batch) { t.Helper(); mustApply(t, s, b) }

	// Forbid, whole points: the 200 overdrawn written off; 0.5 is finer.
	b1 := lt.batch(spendFrom(edgeCard, "M1", "a", "250"), spendFrom(edgeCard, "M1", "b", "250"), half())
	push(b1)
	if w := edgeWriteOffs(t, s, b1.Entries[1].ID); w != "QA-P/forbid/200" {
		t.Errorf("forbid: write-offs %q, want QA-P/forbid/200", w)
	}
	if d := edgeDebt(t, s, edgeCard); !d.IsZero() {
		t.Errorf("forbid: debt %s, want 0", d)
	}
	if !finer(b1) {
		t.Errorf("0.5 points on a program of whole points not logged")
	}

	// The same program now lets the card keep 100, and counts tenths.
	edgeImportProgram(t, s, "QA-P", checkout.NegativeBalancePolicy{Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("100")}, 1)
	edgeAddLot(t, s, edgeCard, "M2")
	b2 := lt.batch(spendFrom(edgeCard, "M2", "c", "250"), spendFrom(edgeCard, "M2", "d", "250"), half())
	push(b2)
	if w := edgeWriteOffs(t, s, b2.Entries[1].ID); w != "QA-P/limit/100" {
		t.Errorf("limit 100: write-offs %q, want QA-P/limit/100", w)
	}
	if d := edgeDebt(t, s, edgeCard); !d.Equal(dec("100")) {
		t.Errorf("limit 100: debt %s, want 100", d)
	}
	if finer(b2) {
		t.Errorf("0.5 points logged as finer than a program of tenths")
	}

	// The card moved to a program of its own that allows any debt, of
	// whole points (its kind's program is still the limit of 100).
	edgeImportProgram(t, s, "QA-ALLOW", checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, 0)
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Cards: edgeCards("qa-k", "QA-ALLOW")}); err != nil {
		t.Fatal(err)
	}
	edgeAddLot(t, s, edgeCard, "M3")
	before := edgeDebt(t, s, edgeCard)
	b3 := lt.batch(spendFrom(edgeCard, "M3", "e", "250"), spendFrom(edgeCard, "M3", "f", "250"), half())
	push(b3)
	for _, e := range b3.Entries {
		if w := edgeWriteOffs(t, s, e.ID); w != "" {
			t.Errorf("allow (the card's own program): entry %s wrote off %q", e.ID, w)
		}
	}
	if d := edgeDebt(t, s, edgeCard); !d.GreaterThan(before) {
		t.Errorf("allow: debt %s, not above the %s before", d, before)
	}
	if !finer(b3) {
		t.Errorf("0.5 points on the card's own program of whole points not logged")
	}

	// Back to its kind's program, the kind moved to a forbidding one.
	edgeImportProgram(t, s, "QA-F2", checkout.NegativeBalancePolicy{}, 2)
	if _, err := s.Import(ctx, &store.Replica{Version: 1,
		CardKinds: []store.ReplicaCardKind{{ID: "qa-k", Name: "QA", Kind: checkout.KindBonus, Program: "QA-F2"}},
		Cards:     edgeCards("qa-k", "")}); err != nil {
		t.Fatal(err)
	}
	edgeAddLot(t, s, edgeCard, "M4")
	b4 := lt.batch(spendFrom(edgeCard, "M4", "g", "250"), spendFrom(edgeCard, "M4", "h", "250"), half())
	push(b4)
	if w := edgeWriteOffs(t, s, b4.Entries[1].ID); !strings.HasPrefix(w, "QA-F2/forbid/") {
		t.Errorf("the kind's new program (no policy: forbid): write-offs %q, want QA-F2/forbid/…", w)
	}
	if finer(b4) {
		t.Errorf("0.5 points logged as finer than a program of hundredths")
	}

	// The kind pointing to a program head office does not have (ERP
	// refuses it; a restored or hand-edited database): no policy, no
	// scale, as the join had it.
	if _, err := s.db.Exec(ctx, `UPDATE catalog SET body = json_build_object('id', 'qa-k', 'name', 'QA', 'kind', 'bonus', 'program', 'QA-GONE')
		WHERE section = 'card_kinds' AND id = 'qa-k'`); err != nil {
		t.Fatal(err)
	}
	edgeAddLot(t, s, edgeCard, "M5")
	before = edgeDebt(t, s, edgeCard)
	b5 := lt.batch(spendFrom(edgeCard, "M5", "i", "250"), spendFrom(edgeCard, "M5", "j", "250"), half())
	push(b5)
	for _, e := range b5.Entries {
		if w := edgeWriteOffs(t, s, e.ID); w != "" {
			t.Errorf("a program head office lacks: entry %s wrote off %q", e.ID, w)
		}
	}
	if d := edgeDebt(t, s, edgeCard); !d.GreaterThan(before) {
		t.Errorf("a program head office lacks: debt %s, not above the %s before", d, before)
	}
	if finer(b5) {
		t.Errorf("0.5 points logged as finer than a program head office lacks")
	}
}

// TestUnknownCardBesideAPolicy: a batch naming a card head office does
// not know next to a double spend on a card under forbid: the unknown
// card's entry is applied (kept, folded into nothing) and the known card's
// overdraft still written off.
func TestUnknownCardBesideAPolicy(t *testing.T) {
	var log syncBuffer
	s := edgePolicyTill(t, &log)
	var lt lateTill
	unknown := store.Entry{CardCode: "3499999999999", Kind: store.KindAccrual, Points: dec("5"), PurchaseKop: 500, CreatedAt: demoNow,
		Lots: []store.LotChange{{Delta: dec("5"), Create: true, ActiveFrom: demoNow}}}
	b := lt.batch(unknown, spendFrom(edgeCard, "M1", "a", "250"), spendFrom(edgeCard, "M1", "b", "250"))
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "applied,applied,applied" || res.FoldedThrough != b.Entries[2].ID {
		t.Fatalf("%s through %s, want all applied through %s", got, res.FoldedThrough, b.Entries[2].ID)
	}
	if w := edgeWriteOffs(t, s, b.Entries[2].ID); w != "QA-P/forbid/200" {
		t.Errorf("write-offs %q, want QA-P/forbid/200", w)
	}
}
