package shtrih_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// refillWhenOut loads paper once it has run out, as a cashier would; a
// fixed delay would race the receipt on a loaded machine.
func refillWhenOut(em *emulator.Emulator) {
	for deadline := time.Now().Add(10 * time.Second); em.PaperPresent() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the driver sees the paper out first
	em.LoadPaper()
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
		go refillWhenOut(r.em)
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
		go refillWhenOut(r.em)
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
		if !errors.As(err, &se) || se.Health != "printer.cover_open" || !errors.Is(err, shtrih.ErrCoverOpen) {
			t.Fatalf("got %v", err)
		}
		if health, hint, ok := shtrih.Explain(err); !ok || health != "printer.cover_open" || hint == "" {
			t.Errorf("explain: %q %q %v", health, hint, ok)
		}
		if j := r.em.Journal(); len(j) != 1 {
			t.Errorf("a receipt reached the device with the cover open: %d documents", len(j))
		}
		r.em.SetCover(false)
		if _, err := r.drv.PrintReceipt(ctx, rc("a"), nil); err != nil {
			t.Fatal(err)
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
	t.Run("TagTooLongRefusedBeforeTheDevice", func(t *testing.T) {
		r := newRig(t, rigOpts{})
		openShift(t, r)
		long := rc("long")
		long.Loyalty = &fiscal.UserRequisite{Name: "Бонусная карта", Value: strings.Repeat("б", 240)}
		saved := false
		_, err := r.drv.PrintReceipt(ctx, long, func(context.Context, fiscal.Checkpoint) error { saved = true; return nil })
		if err == nil || !strings.Contains(err.Error(), "tag 1084") || saved {
			t.Fatalf("got %v, checkpoint saved %v", err, saved)
		}
		if st, _ := r.drv.Status(ctx); st.ReceiptOpen {
			t.Error("a receipt was opened")
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
	t.Run("Clock", func(t *testing.T) {
		// The device's wall time, in whatever zone it keeps, read as UTC.
		at := time.Date(2026, 11, 23, 15, 4, 5, 0, time.Local)
		r := newRig(t, rigOpts{emu: emulator.Config{Now: func() time.Time { return at }}})
		got, err := r.drv.Clock(ctx)
		if want := time.Date(2026, 11, 23, 15, 4, 5, 0, time.UTC); err != nil || !got.Equal(want) {
			t.Errorf("clock: %v, %v; want %v", got, err, want)
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

// Every error code of §8 is a typed error with a stable health code and a
// hint; link failures are explained too.
func TestEveryErrorCodeExplained(t *testing.T) {
	spec := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x14, 0x16, 0x17, 0x20,
		0x2F, 0x30, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3C, 0x3D, 0x45, 0x46, 0x48, 0x49, 0x4A, 0x4B,
		0x4D, 0x4E, 0x4F, 0x50, 0x55, 0x56, 0x58, 0x59, 0x5E, 0x5F, 0x60, 0x61, 0x62, 0x63, 0x6B, 0x6C, 0x71,
		0x72, 0x73, 0x74, 0x75, 0x77, 0x7E, 0x8E, 0x90, 0x91, 0x92, 0x94, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5,
		0xC0, 0xC4, 0xC8}
	for _, code := range spec {
		err := fmt.Errorf("wrapped: %w", &shtrih.DeviceError{Op: "print receipt r1", Port: "/dev/ttyS0", Cmd: shtrih.CmdCloseReceipt2, Code: code})
		health, hint, ok := shtrih.Explain(err)
		if !ok || hint == "" || health == "" || health == "printer.error" || !strings.HasPrefix(health, "printer.") {
			t.Errorf("%02Xh: health %q hint %q", code, health, hint)
		}
		if msg := err.Error(); strings.Contains(msg, "unknown device error") || !strings.Contains(msg, "print receipt r1 on /dev/ttyS0") ||
			!strings.Contains(msg, fmt.Sprintf("%02Xh", code)) {
			t.Errorf("%02Xh: %s", code, msg)
		}
		if c, ok := shtrih.CodeOf(err); !ok || c != code {
			t.Errorf("%02Xh: CodeOf %02X %v", code, c, ok)
		}
	}
	// A code the table lacks still has a health code and a hint.
	if health, hint, _ := shtrih.Explain(&shtrih.DeviceError{Code: 0xEE}); health != "printer.error" || hint == "" {
		t.Errorf("unknown code: %q %q", health, hint)
	}
	for err, want := range map[error]string{
		fmt.Errorf("x: %w (%w)", shtrih.ErrAnswerLost, errors.New("t")): "printer.answer_lost",
		fmt.Errorf("x: %w", shtrih.ErrNoLink):                           "printer.no_link",
		fmt.Errorf("x: %w", shtrih.ErrPortClosed):                       "printer.port",
	} {
		if health, hint, ok := shtrih.Explain(err); !ok || health != want || hint == "" {
			t.Errorf("%v: %q %q", err, health, hint)
		}
	}
	if _, _, ok := shtrih.Explain(context.Canceled); ok {
		t.Error("context.Canceled explained as a printer error")
	}
}

func TestFNWarningsHaveCodes(t *testing.T) {
	all := fiscal.FNWarnings(0x0F).List()
	seen := map[string]bool{}
	for _, w := range all {
		if !strings.HasPrefix(w.Health, "printer.") || w.Hint == "" || seen[w.Health] {
			t.Errorf("warning %+v", w)
		}
		seen[w.Health] = true
	}
	if len(all) != 4 || len(fiscal.FNWarnings(0).List()) != 0 {
		t.Errorf("%d warnings for 0x0F", len(all))
	}
	if got := fiscal.FNWarnings(fiscal.FNMemoryFull).List(); len(got) != 1 || got[0].Health != "printer.fn_memory_full" {
		t.Errorf("memory full: %+v", got)
	}
}
