package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/headoffice"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// TestRetakeJournalCommand: ERP's copy of three entries (an entry a line)
// is taken back, then again (held already); a copy with an entry otherwise
// than head office holds it fails and names it, after taking the rest; an
// ERP correction lost is given again; a till not known is kept, and taken
// when it is enrolled; no file, or a file that is
// not an export, fails before anything is written.
func TestRetakeJournalCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	if err := run(ctx, []string{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"}, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"enrol", "-dsn", dsn, "-till", "S001-T01", "-store", "S001"}, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	// accrual is the till's entry i of 10 points, after prev.
	accrual := func(i int, prev string) wire.Entry {
		id := fmt.Sprintf("S001-T01-%026d", i)
		e := wire.Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: id, CardCode: "2900000000049", Kind: store.KindAccrual,
			Points: decimal.NewFromInt(10), PurchaseKop: 10000, CreatedAt: at}}
		e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: at}}
		return e
	}
	var entries []wire.Entry
	for i := 1; i <= 5; i++ {
		prev := ""
		if i > 1 {
			prev = entries[i-2].ID
		}
		entries = append(entries, accrual(i, prev))
	}
	dir := t.TempDir()
	file := func(name string, es ...wire.Entry) string {
		var b bytes.Buffer
		for _, e := range es {
			body, ok := wire.AppendEntry(nil, e)
			if !ok {
				t.Fatalf("encode %s", e.ID)
			}
			json.NewEncoder(&b).Encode(headoffice.ExportedEntry{TillID: "S001-T01", Entry: body})
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The copy is staged in TMPDIR, and removed whatever the run did.
	scratch := t.TempDir()
	t.Setenv("TMPDIR", scratch)
	t.Cleanup(func() {
		if left, _ := os.ReadDir(scratch); len(left) != 0 {
			t.Errorf("retake-journal left %v in TMPDIR", left)
		}
	})
	var out bytes.Buffer
	retake := func(files ...string) error {
		out.Reset()
		return run(ctx, append([]string{"retake-journal", "-dsn", dsn}, files...), &out, nil)
	}

	three := file("three.ndjson", entries[:3]...)
	if err := retake(three); err != nil {
		t.Fatalf("retake: %v\n%s", err, out.String())
	}
	if want := "read 3 entries from 1 file\ntill S001-T01: 3 entries taken back, 0 held already (0 at or before its watermark), 0 conflicting, 0 rejected; watermark - → " + entries[2].ID + "\n"; out.String() != want {
		t.Fatalf("retake output:\n%s\nwant:\n%s", out.String(), want)
	}
	if err := retake(three); err != nil || !strings.Contains(out.String(), ": 0 entries taken back, 3 held already (3 at or before its watermark)") {
		t.Fatalf("retake again: %v\n%s", err, out.String())
	}

	// The fifth entry is stored as the till sent it, waiting for the
	// fourth; the copy has the fourth, and the fifth otherwise. (An entry
	// at or before the watermark is not compared: it is held.)
	srv, err := headoffice.Open(ctx, headoffice.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Ingest(ctx, &wire.Batch{TillID: "S001-T01", Entries: entries[4:]}); err != nil {
		t.Fatal(err)
	}
	other := entries[4]
	other.Points = decimal.NewFromInt(12)
	other.Lots = []store.LotChange{{LotID: other.ID, Delta: other.Points, Create: true, ActiveFrom: at}}
	err = retake(file("other.ndjson", entries[3], other))
	if err == nil || !strings.Contains(err.Error(), "tills S001-T01") ||
		!strings.Contains(out.String(), ": 1 entries taken back, 0 held already (0 at or before its watermark), 1 conflicting, 0 rejected; watermark "+entries[2].ID+" → "+entries[4].ID+"\n") ||
		!strings.Contains(out.String(), "\n  "+other.ID+": conflict") {
		t.Fatalf("retake of an entry otherwise: %v\n%s", err, out.String())
	}

	// An ERP correction in the copy is given again as ERP would send it:
	// applied once, then held.
	if _, err := srv.Correct(ctx, headoffice.Correction{ID: "sup-1", Card: "2900000000049", Points: decimal.NewFromInt(7), Reason: "goodwill"}); err != nil {
		t.Fatal(err)
	}
	var erp bytes.Buffer
	// The export shows it once no older transaction runs in the cluster
	// (other packages' tests).
	for deadline := time.Now().Add(2 * time.Minute); erp.Len() == 0; time.Sleep(20 * time.Millisecond) {
		exp, err := srv.ExportJournal(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range exp.Entries {
			if x.TillID == headoffice.ERPTill {
				json.NewEncoder(&erp).Encode(x)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ERP correction in the export: %+v", exp.Entries)
		}
	}
	if _, err := srv.DB().Exec(ctx, `DELETE FROM lots WHERE lot_id = 'ERP-sup-1'; DELETE FROM journal WHERE id = 'ERP-sup-1'`); err != nil {
		t.Fatal(err) // lost with a restore
	}
	corrections := filepath.Join(dir, "erp.ndjson")
	os.WriteFile(corrections, erp.Bytes(), 0o644)
	for _, want := range []string{"read 1 entry from 1 file\nERP corrections: 1 given again, 0 held already, 0 refused\n", "read 1 entry from 1 file\nERP corrections: 0 given again, 1 held already, 0 refused\n"} {
		if err := retake(corrections); err != nil || out.String() != want {
			t.Fatalf("retake of a correction: %v\n%s\nwant %s", err, out.String(), want)
		}
	}

	// A new store's journal went on past entries 6 and 7 before the
	// retake: they are named, and the run fails.
	restart := accrual(9, "")
	if res, err := srv.Ingest(ctx, &wire.Batch{TillID: "S001-T01", Entries: []wire.Entry{restart}}); err != nil || res.FoldedThrough != restart.ID {
		t.Fatalf("a new store's first entry: %+v, %v", res, err)
	}
	lost := []wire.Entry{accrual(6, entries[4].ID)}
	lost = append(lost, accrual(7, lost[0].ID))
	err = retake(file("passed.ndjson", lost...))
	if err == nil || !strings.Contains(err.Error(), "tills S001-T01") ||
		!strings.Contains(out.String(), ": 0 entries taken back, 0 held already (0 at or before its watermark), 0 conflicting, 0 rejected; watermark "+restart.ID+" → "+restart.ID+
			"; 2 at or before its watermark not held, passed over") || !strings.Contains(out.String(), "\n  "+lost[0].ID+": passed over: ") {
		t.Fatalf("retake of entries passed over: %v\n%s", err, out.String())
	}

	// A till head office does not know (enrolled since the backup): its
	// entries are kept, and taken when it is enrolled.
	unknown := accrual(1, "")
	unknown.ID = strings.Replace(unknown.ID, "S001-T01", "S001-T02", 1)
	unknown.CheckID, unknown.Lots[0].LotID = unknown.ID, unknown.ID
	body, _ := wire.AppendEntry(nil, unknown)
	line, _ := json.Marshal(headoffice.ExportedEntry{TillID: "S001-T02", Entry: body})
	t02 := filepath.Join(dir, "t02.ndjson")
	os.WriteFile(t02, line, 0o644)
	if err := retake(t02); err != nil || out.String() != "read 1 entry from 1 file\ntill S001-T02: not known here (enrolled since the backup): 1 entry kept, taken when it syncs with its enrolment secret or is enrolled again\n" {
		t.Fatalf("retake of a till not known: %v\n%s", err, out.String())
	}
	tills := func() string {
		t.Helper()
		var b bytes.Buffer
		if err := run(ctx, []string{"tills", "-dsn", dsn}, &b, nil); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := tills(); !strings.Contains(got, "\nentries kept by retake-journal, taken when the till syncs with its enrolment secret or is enrolled again:\n  till S001-T02: 1 entry since ") ||
		!strings.HasSuffix(got, ", not enrolled here\n") {
		t.Fatalf("tills with an entry kept:\n%s", got)
	}
	if err := run(ctx, []string{"enrol", "-dsn", dsn, "-till", "S001-T02", "-store", "S001"}, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if got := tills(); strings.Contains(got, "kept") || !strings.Contains(got, "S001-T02") {
		t.Fatalf("tills once S001-T02 is enrolled:\n%s", got)
	}
	var folded string
	if err := srv.DB().QueryRow(ctx, `SELECT folded_through FROM tills WHERE till_id = 'S001-T02'`).Scan(&folded); err != nil || folded != unknown.ID {
		t.Fatalf("till S001-T02 enrolled: folded through %q (%v), want its kept entry", folded, err)
	}

	notExport := filepath.Join(dir, "replica.json")
	os.WriteFile(notExport, []byte(`{"cards": []}`), 0o644)
	for _, files := range [][]string{nil, {filepath.Join(dir, "missing")}, {three, notExport}} {
		if err := retake(files...); err == nil || out.Len() != 0 {
			t.Errorf("retake-journal %q: %v, output %q; want an error and nothing done", files, err, out.String())
		}
	}
}
