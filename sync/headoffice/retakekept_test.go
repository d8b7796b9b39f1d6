package headoffice

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"tillagent/sync/wire"
)

// TestRetakeKeepsTheEntriesOfATillNotKnown: head office B was restored
// from a backup taken before till S001-T09 was enrolled, so it has no row
// for it. retake-journal keeps the till's entries of ERP's copy (run twice:
// kept once), a maintenance run leaves them while the till is unknown, and
// enrolling the till takes them: B then holds A's chain folded through its
// last entry, and A's balances. Admitted by another process (its row
// written there), the next maintenance run takes them; a run whose
// delete of the kept rows fails does not count them, the one after does.
func TestRetakeKeepsTheEntriesOfATillNotKnown(t *testing.T) {
	ctx := context.Background()
	a, entries := ingestFixture(t)
	if res, err := a.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil || res.FoldedThrough != entries[6].ID {
		t.Fatalf("head office A: %+v, %v", res, err)
	}
	export := exportPages(t, a, 3, len(entries))
	want := readIngestState(t, a)

	unknown := func(t *testing.T) *Server {
		b, _ := ingestFixture(t)
		if _, err := b.db.Exec(ctx, `DELETE FROM tills WHERE till_id = 'S001-T09'`); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r := retake(t, b, journalCopy(t, export), "S001-T09")[0]
			if r.Kept != len(entries) || r.Err != "" || r.Applied+r.Duplicate+r.Held != 0 {
				t.Fatalf("retake of a till not known: %+v; want its %d entries kept", r, len(entries))
			}
		}
		if k, err := b.KeptTills(ctx); err != nil || len(k) != 1 || k[0].TillID != "S001-T09" || k[0].Entries != len(entries) || k[0].Enrolled || k[0].KeptAt.IsZero() {
			t.Fatalf("tills with entries kept: %+v, %v; want S001-T09's %d, not enrolled", k, err, len(entries))
		}
		return b
	}
	taken := func(t *testing.T, b *Server) {
		t.Helper()
		if got := readIngestState(t, b); got.journal != want.journal || got.folded != want.folded || got.lots != want.lots || got.watermark != want.watermark {
			t.Fatalf("head office B: %+v, want A's %+v", got, want)
		}
		if k, err := b.KeptTills(ctx); err != nil || len(k) != 0 {
			t.Errorf("tills with entries kept once taken: %+v, %v", k, err)
		}
		for _, c := range []string{"3300000000001", "3300000000002", "3300000000003"} {
			if ga, gb := balanceOf(t, a, c), balanceOf(t, b, c); ga != gb {
				t.Errorf("card %s: %s at B, %s at A", c, gb, ga)
			}
		}
	}

	t.Run("enrolled", func(t *testing.T) {
		b := unknown(t)
		if st, err := b.Maintain(ctx); err != nil || st.KeptTaken != 0 {
			t.Fatalf("maintenance while the till is unknown: %+v, %v; want nothing taken", st, err)
		}
		if n := count(t, b, `SELECT count(*) FROM journal`); n != 0 {
			t.Fatalf("%d entries in the journal before the till is enrolled", n)
		}
		if _, err := b.Enrol(ctx, "S001-T09", "S001"); err != nil {
			t.Fatal(err)
		}
		taken(t, b)
	})
	t.Run("take fails", func(t *testing.T) {
		b := unknown(t)
		injectFault(t, b, "journal", "BEFORE INSERT", "STATEMENT")
		if _, err := b.Enrol(ctx, "S001-T09", "S001"); err != nil {
			t.Fatalf("enrol while the take fails: %v; want the till enrolled, the take left for later", err)
		}
		erp := erpHTTP(t, b)
		code, data := erp("GET", "/v1/erp/reports/retake-kept", "")
		var k []KeptTill
		if code != 200 || json.Unmarshal([]byte(data), &k) != nil || len(k) != 1 || !k[0].Enrolled || k[0].Entries != len(entries) {
			t.Fatalf("kept report after a failed take: %d %s; want S001-T09's %d entries, enrolled", code, data, len(entries))
		}
		if st, err := b.Maintain(ctx); err == nil || !strings.Contains(err.Error(), "injected fault") || st.KeptTaken != 0 {
			t.Fatalf("maintenance while the take fails: %+v, %v; want the failure, nothing taken", st, err)
		}
		if _, err := b.db.Exec(ctx, `DROP TRIGGER fail_journal ON journal`); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Maintain(ctx); err != nil || st.KeptTaken != len(entries) {
			t.Fatalf("maintenance once the fault is gone: %+v, %v; want the %d entries taken", st, err, len(entries))
		}
		taken(t, b)
		if code, data := erp("GET", "/v1/erp/reports/retake-kept", ""); code != 200 || data != "[]\n" {
			t.Fatalf("kept report once taken: %d %q, want []", code, data)
		}
	})
	t.Run("admitted elsewhere", func(t *testing.T) {
		b := unknown(t)
		if _, err := b.db.Exec(ctx, `INSERT INTO tills (till_id, store_id, secret_sha256, enrolled_at) VALUES ('S001-T09', 'S001', '\x00', now())`); err != nil {
			t.Fatal(err)
		}
		if k, err := b.KeptTills(ctx); err != nil || len(k) != 1 || !k[0].Enrolled {
			t.Fatalf("tills with entries kept: %+v, %v; want S001-T09's, enrolled", k, err)
		}
		if st, err := b.Maintain(ctx); err != nil || st.KeptTaken != len(entries) {
			t.Fatalf("maintenance once the till is known: %+v, %v; want its %d entries taken", st, err, len(entries))
		}
		taken(t, b)
		if st, err := b.Maintain(ctx); err != nil || st.KeptTaken != 0 {
			t.Fatalf("the next maintenance: %+v, %v; want nothing left to take", st, err)
		}
	})
	// The entries are ingested but their kept rows stay (the delete
	// fails): the run that takes them again, as duplicates, and deletes
	// them counts them; the failed one does not, so they count once.
	t.Run("delete fails", func(t *testing.T) {
		b := unknown(t)
		if _, err := b.db.Exec(ctx, `INSERT INTO tills (till_id, store_id, secret_sha256, enrolled_at) VALUES ('S001-T09', 'S001', '\x00', now())`); err != nil {
			t.Fatal(err)
		}
		injectFault(t, b, "retake_kept", "BEFORE DELETE", "STATEMENT")
		if st, err := b.Maintain(ctx); err == nil || !strings.Contains(err.Error(), "injected fault") || st.KeptTaken != 0 {
			t.Fatalf("maintenance while the delete fails: %+v, %v; want the failure, nothing counted", st, err)
		}
		if _, err := b.db.Exec(ctx, `DROP TRIGGER fail_retake_kept ON retake_kept`); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Maintain(ctx); err != nil || st.KeptTaken != len(entries) {
			t.Fatalf("maintenance once the delete works: %+v, %v; want the %d entries counted once", st, err, len(entries))
		}
		taken(t, b)
	})
}
