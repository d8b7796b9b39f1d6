package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"tillagent/sync/headoffice"
)

// retakeJournal gives head office back the journal entries in ERP's copy
// of the export (files of its pages or entries): every file is read
// before anything is written. It fails when a till's entries could not all
// be taken, or some conflict with what head office holds.
func retakeJournal(ctx context.Context, srv *headoffice.Server, files []string, out io.Writer) error {
	if len(files) == 0 {
		return errors.New("retake-journal: give the files of ERP's journal export (its pages, or an entry a line)")
	}
	// Staged on disk, in TMPDIR: months of a chain's entries do not fit
	// in memory.
	c, err := headoffice.NewJournalCopy("")
	if err != nil {
		return fmt.Errorf("retake-journal, nothing written: %w", err)
	}
	defer c.Close()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("retake-journal, nothing written: %w", err)
		}
		err = c.ReadExport(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("retake-journal %s, nothing written: %w", name, err)
		}
	}
	fmt.Fprintf(out, "read %s from %s\n", count(c.Entries(), "entry", "entries"), count(len(files), "file", "files"))
	// A line a till as it ends: the whole run is hours for a chain.
	rs, err := srv.RetakeJournal(ctx, c, func(r headoffice.Retaken) { printRetaken(out, r) })
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range rs {
		// Rejected entries are kept as head office kept them the first
		// time (applied to no card); a conflict is an entry the copy has
		// otherwise than head office, one passed over an entry lost.
		if r.Err != "" || r.Conflict > 0 || r.PassedOver > 0 {
			failed = append(failed, r.TillID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("retake-journal: not every entry of tills %s was taken (above)", strings.Join(failed, ", "))
	}
	return nil
}

// printRetaken writes what the retake did with one till's entries.
func printRetaken(out io.Writer, r headoffice.Retaken) {
	switch {
	case r.TillID == headoffice.ERPTill:
		fmt.Fprintf(out, "ERP corrections: %d given again, %d held already, %d refused\n", r.Applied, r.Duplicate, r.Rejected)
	case r.Kept > 0:
		fmt.Fprintf(out, "till %s: not known here (enrolled since the backup): %s kept, taken when it syncs with its enrolment secret or is enrolled again\n",
			r.TillID, count(r.Kept, "entry", "entries"))
	default:
		fmt.Fprintf(out, "till %s: %d entries taken back, %d held already (%d at or before its watermark), %d conflicting, %d rejected; watermark %s → %s",
			r.TillID, r.Applied, r.Held+r.Duplicate, r.Held, r.Conflict, r.Rejected, cmp.Or(r.FoldedBefore, "-"), cmp.Or(r.FoldedThrough, "-"))
		if r.PassedOver > 0 {
			fmt.Fprintf(out, "; %d at or before its watermark not held, passed over: they can never be folded (support corrects their cards)", r.PassedOver)
		}
		if r.Waiting > 0 {
			fmt.Fprintf(out, "; %d entries still wait behind a gap the copy does not fill", r.Waiting)
		}
		fmt.Fprintln(out)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(out, "  %s\n", p)
	}
	if r.Err != "" {
		fmt.Fprintf(out, "  stopped: %s\n", r.Err)
	}
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
