package shtrih_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
)

func wantCode(t *testing.T, err error, code byte) *shtrih.DeviceError {
	t.Helper()
	var de *shtrih.DeviceError
	if !errors.As(err, &de) || de.Code != code {
		t.Fatalf("error %v, want device error %02Xh", err, code)
	}
	if de.Hint() == "" && code != 0x08 {
		t.Errorf("%02Xh has no hint", code)
	}
	if !errors.Is(err, &shtrih.DeviceError{Code: code}) {
		t.Errorf("errors.Is does not match code %02Xh", code)
	}
	return de
}

func TestErrorPaths(t *testing.T) {
	ctx := ctxT(t)
	rc := func(id string) fiscal.Receipt { return receipt(t, id, fiscal.DiscountMode, nil) }

	t.Run("WrongPassword", func(t *testing.T) {
		r := newRig(t, rigOpts{drv: shtrih.Options{Password: 31, AdminPassword: 77}})
		_, err := r.drv.Status(ctx)
		wantCode(t, err, 0x4F)
		de := wantCode(t, r.drv.OpenShift(ctx, "x"), 0x4F)
		if de.Health() != "printer.password" || !errors.Is(err, shtrih.ErrPassword) {
			t.Errorf("health %q", de.Health())
		}
	})
	t.Run("ShiftClosed", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		_, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		wantCode(t, err, 0x3D)
		wantCode(t, r.drv.ZReport(ctx), 0x3D)
		openShift(t, r)
		wantCode(t, r.drv.OpenShift(ctx, ""), 0x3C)
	})
	t.Run("ShiftOver24h", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		r.em.ExpireShift()
		st, _ := r.drv.Status(ctx)
		if !st.ShiftExpired || st.Mode != 3 {
			t.Errorf("status %v", st)
		}
		_, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		if !errors.Is(err, shtrih.ErrShiftExpired) {
			t.Fatalf("got %v", err)
		}
		_, err = r.drv.Do(ctx, "open receipt", shtrih.CmdOpenReceipt, 30, []byte{0})
		wantCode(t, err, 0x4E)
		if err := r.drv.ZReport(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PaperOutBeforeReceipt", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		r.em.PaperOut()
		_, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		de := wantCode(t, err, 0x6B)
		if !de.Transient() || de.Health() != "printer.paper_out" {
			t.Errorf("paper out: transient %v health %q", de.Transient(), de.Health())
		}
		_, err = r.drv.Do(ctx, "print line", shtrih.CmdPrintLine, 30, append([]byte{2}, make([]byte, 40)...))
		wantCode(t, err, 0x6B)
		r.em.LoadPaper()
		if _, err := r.drv.PrintReceipt(ctx, rc("a"), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PaperRunsOutDuringClose", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		r.em.Inject(emulator.Fault{Kind: emulator.FaultPaperOut, Cmd: shtrih.CmdCloseReceipt2})
		res, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		if err != nil || !res.PrintPending || res.FD == 0 {
			t.Fatalf("got %+v, %v", res, err)
		}
		st, _ := r.drv.Status(ctx)
		if !st.PaperOut || st.Submode != 2 {
			t.Errorf("status %v", st)
		}
		_, err = r.drv.PrintReceipt(ctx, rc("b"), nil)
		wantCode(t, err, 0x6B)
		r.em.LoadPaper()
		if st, _ := r.drv.Status(ctx); !st.WaitingContinue {
			t.Errorf("after refill: %v", st)
		}
		if j := r.em.Journal(); j[len(j)-1].Printed {
			t.Error("receipt printed before continue")
		}
		if err := r.drv.ContinuePrint(ctx); err != nil {
			t.Fatal(err)
		}
		if j := r.em.Journal(); !j[len(j)-1].Printed {
			t.Error("receipt not printed after continue")
		}
		if _, err := r.drv.PrintReceipt(ctx, rc("b"), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("WaitingContinueIsContinued", func(t *testing.T) {
		// A command refused with 58h gets B0h and is sent again.
		r := newRig(t, rigOpts{})
		openShift(t, r)
		r.em.Inject(emulator.Fault{Kind: emulator.FaultPaperOut, Cmd: shtrih.CmdXReport})
		if err := r.drv.XReport(ctx); err != nil {
			t.Fatal(err)
		}
		r.em.LoadPaper()
		if _, err := r.drv.Do(ctx, "open receipt", shtrih.CmdOpenReceipt, 30, []byte{0}); err != nil {
			t.Fatal(err)
		}
		if st, _ := r.drv.Status(ctx); !st.ReceiptOpen || st.Submode != 0 {
			t.Errorf("status %v", st)
		}
	})
	t.Run("PaperWaitThenContinue", func(t *testing.T) {
		// With PaperWait the driver polls; paper is loaded meanwhile and it sends B0h itself.
		r := newRig(t, rigOpts{drv: shtrih.Options{PaperWait: 5 * time.Second}})
		openShift(t, r)
		r.em.Inject(emulator.Fault{Kind: emulator.FaultPaperOut, Cmd: shtrih.CmdCloseReceipt2})
		go func() {
			time.Sleep(100 * time.Millisecond)
			r.em.LoadPaper()
		}()
		res, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		if err != nil || res.PrintPending {
			t.Fatalf("got %+v, %v", res, err)
		}
		if st, _ := r.drv.Status(ctx); st.Submode != 0 {
			t.Errorf("status %v", st)
		}
	})
	t.Run("PaperOutMidReceipt", func(t *testing.T) {
		// Paper ends while a line prints; with PaperWait the driver waits for
		// the refill, continues the printout and finishes the same receipt.
		r := newRig(t, rigOpts{drv: shtrih.Options{PaperWait: 5 * time.Second}})
		openShift(t, r)
		r.em.Inject(emulator.Fault{Kind: emulator.FaultPaperOut, Cmd: shtrih.CmdOperation2})
		go func() {
			time.Sleep(100 * time.Millisecond)
			r.em.LoadPaper()
		}()
		res, err := r.drv.PrintReceipt(ctx, rc("mid"), nil)
		if err != nil || res.PrintPending {
			t.Fatalf("got %+v, %v", res, err)
		}
		j := r.em.Journal()
		last := j[len(j)-1]
		if len(j) != 2 || len(last.Items) != 2 || idOf(last) != "mid" {
			t.Errorf("journal: %d docs, last %+v", len(j), last)
		}
		checkFFD(t, last)
	})
	t.Run("CoverOpen", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		r.em.SetCover(true)
		_, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		var se *shtrih.StateError
		if !errors.As(err, &se) || se.Health != "printer.cover_open" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ReceiptOpen", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		if _, err := r.drv.Do(ctx, "open receipt", shtrih.CmdOpenReceipt, 30, []byte{0}); err != nil {
			t.Fatal(err)
		}
		_, err := r.drv.PrintReceipt(ctx, rc("a"), nil)
		wantCode(t, err, 0x4A)
		wantCode(t, r.drv.ZReport(ctx), 0x4A)
		if fn, _ := r.drv.FNStatus(ctx); fn.Document != 4 {
			t.Errorf("FN current document %d", fn.Document)
		}
		if err := r.drv.CancelReceipt(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = r.drv.Do(ctx, "cancel", shtrih.CmdCancel, 30, nil)
		wantCode(t, err, 0x55)
		if err := r.drv.CancelReceipt(ctx); err != nil {
			t.Errorf("cancel without receipt: %v", err)
		}
	})
	t.Run("Busy", func(t *testing.T) {
		r := newRig(t, rigOpts{emu: emulator.Config{PrintTime: 30 * time.Millisecond}})
		openShift(t, r)
		// Every printing command leaves the device printing for a while; the
		// driver waits out 50h and submode 5.
		for _, id := range []string{"a", "b"} {
			if _, err := r.drv.PrintReceipt(ctx, rc(id), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.drv.XReport(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ZeroReceiptDenied", func(t *testing.T) {
		r := newRig(t, rigOpts{emu: emulator.Config{DenyZeroReceipt: true}})
		openShift(t, r)
		var cp fiscal.Checkpoint
		_, err := r.drv.PrintReceipt(ctx, receipt(t, "z", fiscal.DiscountMode, []fiscal.Money{30000, 9990}), func(_ context.Context, c fiscal.Checkpoint) error { cp = c; return nil })
		wantCode(t, err, 0x8E)
		dec, err := r.drv.Resolve(ctx, cp)
		if err != nil || dec.Outcome != fiscal.OpenCancelled {
			t.Errorf("resolve: %+v %v", dec, err)
		}
	})
	t.Run("FNWarningsAndDocuments", func(t *testing.T) {
		r := newRig(t, rigOpts{emu: emulator.Config{LastFD: 424}})
		r.em.SetFNWarnings(0x05)
		fn, err := r.drv.FNStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fn.LastFD != 424 || fn.Warnings&fiscal.FNReplaceUrgent == 0 || fn.Warnings&fiscal.FNMemoryFull == 0 || fn.Serial != "9287440301120991" {
			t.Errorf("FN status %+v", fn)
		}
		_, err = r.drv.FindDocument(ctx, 999)
		if !errors.Is(err, shtrih.ErrNoDocument) {
			t.Errorf("missing FD: %v", err)
		}
		openShift(t, r)
		doc, err := r.drv.FindDocument(ctx, 425)
		if err != nil || doc.Type != 2 || doc.FD != 425 {
			t.Errorf("shift-open FD: %+v %v", doc, err)
		}
	})
	t.Run("UnsupportedAndBadLength", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		_, err := r.drv.Do(ctx, "tech reset", 0x16, 30, nil)
		wantCode(t, err, 0x37)
		_, err = r.drv.Do(ctx, "open receipt", shtrih.CmdOpenReceipt, 30, nil)
		wantCode(t, err, 0x33)
	})
	t.Run("FullStatusLegacyLayout", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		fs, err := r.drv.FullStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fs.Serial != 12345678 || fs.INN != 7701234567 || fs.Mode != 4 || fs.Firmware != "01" || fs.HasSerialHi {
			t.Errorf("11h: %+v", fs)
		}
	})
	t.Run("PortClosed", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		r.port.Close()
		if _, err := r.drv.Status(ctx); !errors.Is(err, shtrih.ErrPortClosed) && !errors.Is(err, shtrih.ErrNoLink) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("ContextCancelled", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		r.em.PowerCut(0)
		c, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if _, err := r.drv.Status(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v", err)
		}
	})
}
