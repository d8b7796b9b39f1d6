package shtrih_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
)

// receipt builds a receipt whose id is printed, so the journal can be matched.
func receipt(t testing.TB, id string, mode fiscal.BonusMode, redeemed []fiscal.Money) fiscal.Receipt {
	t.Helper()
	lines := basket()
	var points fiscal.Money
	for _, r := range redeemed {
		points += r
	}
	r, err := fiscal.BuildReceipt(fiscal.BonusCheck{ID: id, Lines: lines, Redeemed: redeemed, Mode: mode,
		Money:   fiscal.Payments{Cash: 39990 - points},
		Loyalty: &fiscal.LoyaltyInfo{Card: "1234567", Spent: decimal.NewFromInt(int64(points / 100)), Balance: decimal.NewFromInt(7)}})
	if err != nil {
		t.Fatal(err)
	}
	r.Text = append([]string{"ID " + id}, r.Text...)
	return r
}

func idOf(d emulator.Doc) string {
	for _, s := range d.Text {
		if strings.HasPrefix(s, "ID ") {
			return strings.TrimPrefix(s, "ID ")
		}
	}
	return ""
}

// fiscalise prints r until it is fiscalised exactly once, resolving after
// every failure as the journal would. It returns the FD the caller records.
func fiscalise(ctx context.Context, t testing.TB, p fiscal.Printer, r fiscal.Receipt) (uint32, []fiscal.Outcome) {
	t.Helper()
	var outcomes []fiscal.Outcome
	for attempt := 0; attempt < 50; attempt++ {
		var cp *fiscal.Checkpoint
		res, err := p.PrintReceipt(ctx, r, func(_ context.Context, c fiscal.Checkpoint) error { cp = &c; return nil })
		if err == nil {
			return res.FD, outcomes
		}
		if cp == nil {
			time.Sleep(20 * time.Millisecond)
			continue // nothing reached the device that could fiscalise
		}
		var dec fiscal.Decision
		for try := 0; ; try++ {
			if dec, err = p.Resolve(ctx, *cp); err == nil {
				break
			}
			if try > 50 {
				t.Fatalf("%s: resolve: %v", r.ID, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		outcomes = append(outcomes, dec.Outcome)
		if dec.Outcome == fiscal.Fiscalised {
			return dec.FD, outcomes
		}
	}
	t.Fatalf("%s: not fiscalised after 50 attempts", r.ID)
	return 0, nil
}

func openShift(t testing.TB, r *rig) {
	t.Helper()
	if err := r.drv.OpenShift(ctxT(t), ""); err != nil {
		t.Fatal(err)
	}
}

// Each link fault on each receipt command recovers per protocol: one
// receipt, printed once, with its FD returned. (Power cuts surface as
// ErrNoLink/ErrAnswerLost and are resolved: TestPowerCutEachStep; paper
// and device states surface as typed errors: TestErrorPaths.)
func TestFaultMatrixRecovers(t *testing.T) {
	kinds := map[string]emulator.Fault{
		"nak":              {Kind: emulator.FaultNAK},
		"silence":          {Kind: emulator.FaultSilence},
		"drop_ack":         {Kind: emulator.FaultDropACK},
		"lose_answer":      {Kind: emulator.FaultLoseAnswer},
		"bad_lrc":          {Kind: emulator.FaultBadLRC},
		"drop_answer_byte": {Kind: emulator.FaultDropAnswerByte},
		"drop_frame_byte":  {Kind: emulator.FaultDropFrameByte},
		"short_delay":      {Kind: emulator.FaultDelay, Delay: 100 * time.Millisecond},
		"long_delay":       {Kind: emulator.FaultDelay, Delay: 500 * time.Millisecond},
		"busy":             {Kind: emulator.FaultBusy},
	}
	cmds := []uint16{shtrih.CmdShortStatus, shtrih.CmdFNStatus, shtrih.CmdOpenReceipt, shtrih.CmdSendTLV, shtrih.CmdPrintLine, shtrih.CmdOperation2, shtrih.CmdCloseReceipt2}
	r := newRig(t, rigOpts{})
	openShift(t, r)
	ctx := ctxT(t)
	n := 0
	for name, f := range kinds {
		for _, cmd := range cmds {
			n++
			id := fmt.Sprintf("%s@%s", name, shtrih.CmdName(cmd))
			f.Cmd = cmd
			r.em.Inject(f)
			rc := receipt(t, id, fiscal.DiscountMode, []fiscal.Money{100, 0})
			rc.Payments.Cash += 1000 // change due: a duplicated line would not be caught by 45h
			res, err := r.drv.PrintReceipt(ctx, rc, nil)
			if err != nil {
				t.Errorf("%s: %v", id, err)
				if _, err := r.drv.Resolve(ctx, fiscal.Checkpoint{LastFD: r.em.LastFD()}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			j := r.em.Journal()
			last := j[len(j)-1]
			if idOf(last) != id || last.FD != res.FD || last.FP != res.FP || len(last.Items) != 2 {
				t.Errorf("%s: result %+v, journal FD %d %q", id, res, last.FD, idOf(last))
			}
			checkFFD(t, last)
		}
	}
	if got := len(r.em.Journal()); got != n+1 {
		t.Errorf("journal has %d documents, want %d", got, n+1)
	}
}

// A device that answers ENQ late makes its NAKs arrive one exchange late. A
// late NAK right after a frame must not make the driver rewrite the frame:
// the device is executing it, and a rewrite would register the line twice.
func TestLateNAKDoesNotDuplicate(t *testing.T) {
	// With AlwaysENQ every command starts with one ENQ: 10h, FF01, 8Dh, FF0C,
	// 4 × 17h, FF46, FF46, FF45, 10h.
	for _, step := range []struct {
		name string
		enq  int
	}{{"8Dh", 2}, {"FF0C", 3}, {"FF46", 8}, {"FF46#2", 9}, {"FF45", 10}} {
		t.Run(step.name, func(t *testing.T) {
			r := newRig(t, rigOpts{drv: shtrih.Options{AlwaysENQ: true}})
			openShift(t, r)
			r.em.Inject(emulator.Fault{Kind: emulator.FaultSlowENQ, Skip: step.enq, Delay: 80 * time.Millisecond})
			ctx := ctxT(t)
			rc := receipt(t, "late", fiscal.DiscountMode, nil)
			rc.Payments.Cash = 100000 // change due: a duplicated line would not be caught by 45h
			fd, outcomes := fiscalise(ctx, t, r.drv, rc)
			if len(outcomes) != 0 {
				t.Errorf("needed resolve: %v", outcomes)
			}
			n := 0
			for _, d := range r.em.Journal() {
				if d.Kind == "receipt" {
					n++
					checkFFD(t, d)
					if d.FD != fd || len(d.Items) != 2 {
						t.Errorf("receipt FD %d (recorded %d), %d items", d.FD, fd, len(d.Items))
					}
				}
			}
			if n != 1 {
				t.Errorf("%d receipts", n)
			}
		})
	}
}

// A power cut at each step of a receipt (before the device executes the
// command, after it executed but before the answer, and half-way through
// the answer), then the agent reconnects with a fresh driver: Resolve
// decides right every time, and registering again ends with the receipt in
// the FN exactly once.
func TestPowerCutEachStep(t *testing.T) {
	const (
		before = emulator.FaultPowerCutBefore
		after  = emulator.FaultPowerCutAfter
		mid    = emulator.FaultPowerCutMidAnswer
	)
	// The receipt's commands: 10h, FF01 (checkpoint), 8Dh, FF0C, 5 × 17h,
	// FF46, FF46, FF4D (measure of line 2), FF45, then 10h while printing.
	steps := []struct {
		cmd   uint16
		skip  int
		kind  emulator.FaultKind
		want  fiscal.Outcome // 0: the checkpoint was never saved
		saved bool
	}{
		{shtrih.CmdShortStatus, 0, before, 0, false},
		{shtrih.CmdShortStatus, 0, after, 0, false},
		{shtrih.CmdFNStatus, 0, before, 0, false},
		{shtrih.CmdFNStatus, 0, after, 0, false},
		{shtrih.CmdOpenReceipt, 0, before, fiscal.NeverStarted, true},
		{shtrih.CmdOpenReceipt, 0, after, fiscal.OpenCancelled, true},
		{shtrih.CmdOpenReceipt, 0, mid, fiscal.OpenCancelled, true},
		{shtrih.CmdSendTLV, 0, before, fiscal.OpenCancelled, true},
		{shtrih.CmdSendTLV, 0, after, fiscal.OpenCancelled, true},
		{shtrih.CmdPrintLine, 0, before, fiscal.OpenCancelled, true},
		{shtrih.CmdPrintLine, 4, after, fiscal.OpenCancelled, true},
		{shtrih.CmdOperation2, 0, before, fiscal.OpenCancelled, true},
		{shtrih.CmdOperation2, 0, after, fiscal.OpenCancelled, true},
		{shtrih.CmdOperation2, 1, mid, fiscal.OpenCancelled, true},
		{shtrih.CmdSendTLVToItem, 0, before, fiscal.OpenCancelled, true},
		{shtrih.CmdSendTLVToItem, 0, after, fiscal.OpenCancelled, true},
		{shtrih.CmdCloseReceipt2, 0, before, fiscal.OpenCancelled, true},
		{shtrih.CmdCloseReceipt2, 0, after, fiscal.Fiscalised, true},
		{shtrih.CmdCloseReceipt2, 0, mid, fiscal.Fiscalised, true},
		{shtrih.CmdShortStatus, 1, before, fiscal.Fiscalised, true}, // while waiting for the print: the result is returned
		{shtrih.CmdShortStatus, 1, after, fiscal.Fiscalised, true},
	}
	kinds := map[emulator.FaultKind]string{before: "before", after: "after", mid: "mid-answer"}
	for _, s := range steps {
		name := fmt.Sprintf("%s#%d/%s", shtrih.CmdName(s.cmd), s.skip, kinds[s.kind])
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOpts{drv: shtrih.Options{AnswerTimeout: 100 * time.Millisecond}})
			openShift(t, r)
			ctx := ctxT(t)
			rc := receipt(t, "pc", fiscal.CounterProvisionMode, []fiscal.Money{500, 0})
			rc.Lines[1].Measure = 11
			r.em.Inject(emulator.Fault{Kind: s.kind, Cmd: s.cmd, Skip: s.skip})
			var cp *fiscal.Checkpoint
			res, err := r.drv.PrintReceipt(ctx, rc, func(_ context.Context, c fiscal.Checkpoint) error { cp = &c; return nil })
			if (cp != nil) != s.saved {
				t.Fatalf("checkpoint saved = %v, want %v (%v)", cp != nil, s.saved, err)
			}
			r.em.PowerOn()
			r.reconnect(t)
			receipts := func() []emulator.Doc {
				var out []emulator.Doc
				for _, d := range r.em.Journal() {
					if d.Kind == "receipt" {
						out = append(out, d)
					}
				}
				return out
			}
			var recorded uint32
			switch {
			case s.cmd == shtrih.CmdShortStatus && s.skip == 1:
				// The cut hits the status poll after FF45: fiscalised, and
				// PrintReceipt still returns FD and FP (the print is pending).
				if err != nil || res.FD == 0 || !res.PrintPending {
					t.Fatalf("got %+v, %v", res, err)
				}
				recorded = res.FD
			case err == nil:
				t.Fatalf("print succeeded through a power cut: %+v", res)
			case !errors.Is(err, shtrih.ErrNoLink) && !errors.Is(err, shtrih.ErrAnswerLost):
				t.Fatalf("error is not a link error: %v", err)
			case !s.saved:
				// Nothing that could fiscalise reached the device.
				if n := len(receipts()); n != 0 {
					t.Fatalf("%d receipts without a checkpoint", n)
				}
				if st, err := r.drv.Status(ctx); err != nil || st.ReceiptOpen {
					t.Fatalf("status after the cut: %v, %v", st, err)
				}
			default:
				dec, err := r.drv.Resolve(ctx, *cp)
				if err != nil {
					t.Fatal(err)
				}
				if dec.Outcome != s.want {
					t.Fatalf("decision %v, want %v", dec.Outcome, s.want)
				}
				if st, err := r.drv.Status(ctx); err != nil || st.ReceiptOpen {
					t.Fatalf("receipt still open after resolve: %v, %v", st, err)
				}
				if s.want == fiscal.Fiscalised {
					j := receipts()
					if len(j) != 1 || j[0].FD != dec.FD || j[0].FP != dec.FP || idOf(j[0]) != "pc" {
						t.Fatalf("decision %+v, journal %+v", dec, j)
					}
					recorded = dec.FD
				} else if n := len(receipts()); n != 0 {
					t.Fatalf("decision %v but %d receipts in the FN", dec.Outcome, n)
				}
			}
			if recorded == 0 {
				// Register again, as the journal would.
				recorded, _ = fiscalise(ctx, t, r.drv, rc)
			}
			j := receipts()
			if len(j) != 1 || j[0].FD != recorded || len(j[0].Items) != 2 || j[0].Items[1].T2108 != 11 || j[0].T1217 != 500 {
				t.Fatalf("journal %+v, recorded FD %d", j, recorded)
			}
			checkFFD(t, j[0])
		})
	}
}

// Across many receipts with random faults (bytes dropped both ways, bad LRC,
// NAK, silence, lost answers, delays, power cuts) no receipt is fiscalised
// twice or lost. TILLAGENT_SOAK=1 runs 1 000.
func TestRandomFaultsNoDoubleNoLoss(t *testing.T) {
	n := 200
	if os.Getenv("TILLAGENT_SOAK") != "" {
		n = 1000
	} else if testing.Short() {
		n = 40
	}
	// Short timeouts keep each fault cheap; the host T_byte stays well above
	// the device's so an incomplete frame is discarded before the host asks.
	r := newRig(t, rigOpts{drv: shtrih.Options{AnswerTimeout: 100 * time.Millisecond, ByteTimeout: 40 * time.Millisecond},
		emu: emulator.Config{Seed: 7, ByteTimeout: 10 * time.Millisecond}})
	openShift(t, r)
	r.em.SetRandom(emulator.Random{DropIn: 0.0005, DropOut: 0.0005, BadLRC: 0.01, NAK: 0.01, Silence: 0.005,
		LoseAnswer: 0.01, Delay: 0.01, DelayFor: 150 * time.Millisecond, PowerCut: 0.006, PowerOffFor: 80 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(3, 4))
	recorded := map[string]uint32{}
	want := map[string]fiscal.Receipt{}
	outcomes := map[fiscal.Outcome]int{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("R%04d", i)
		var red []fiscal.Money
		switch rng.IntN(3) {
		case 1:
			red = []fiscal.Money{fiscal.Money(rng.IntN(30001)), fiscal.Money(rng.IntN(9991))}
		case 2:
			red = []fiscal.Money{30000, 9990}
		}
		if rng.IntN(20) == 0 {
			// Power lost right after the FN closed the receipt: the hardest case.
			r.em.Inject(emulator.Fault{Kind: emulator.FaultPowerCutAfter, Cmd: shtrih.CmdCloseReceipt2, PowerOffFor: 100 * time.Millisecond})
		}
		rc := receipt(t, id, fiscal.BonusMode(rng.IntN(2)), red)
		if rc.Total() > 0 {
			// Change due on most receipts, so a line registered twice would
			// not be stopped by 45h: it must not happen at all.
			rc.Payments.Cash += fiscal.Money(rng.IntN(500))
		}
		want[id] = rc
		fd, outs := fiscalise(ctx, t, r.drv, rc)
		recorded[id] = fd
		for _, o := range outs {
			outcomes[o]++
		}
	}
	r.em.SetRandom(emulator.Random{})
	seen := map[string]int{}
	for _, d := range r.em.Journal() {
		if d.Kind != "receipt" {
			continue
		}
		id := idOf(d)
		seen[id]++
		if recorded[id] != d.FD {
			t.Errorf("%s: journal FD %d, recorded %d", id, d.FD, recorded[id])
		}
		if w := want[id]; len(d.Items) != len(w.Lines) || d.T1020 != int64(w.Total()) || d.T1217 != int64(w.Payments.CounterProvided) {
			t.Errorf("%s: journal %d items, 1020 %d, 1217 %d; receipt %d lines, total %s, 1217 %s",
				id, len(d.Items), d.T1020, d.T1217, len(w.Lines), w.Total(), w.Payments.CounterProvided)
		}
		checkFFD(t, d)
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprintf("R%04d", i); seen[id] != 1 {
			t.Errorf("%s fiscalised %d times", id, seen[id])
		}
	}
	t.Logf("%d receipts, resolve outcomes %v", n, outcomes)
}

// Paper running out under each printing command of a receipt, with no
// PaperWait: the receipt either closes with its print pending or fails with
// the typed paper-out error; after a refill, Resolve and a second attempt
// leave it in the FN exactly once.
func TestPaperOutEachCommand(t *testing.T) {
	for _, cmd := range []uint16{shtrih.CmdOpenReceipt, shtrih.CmdPrintLine, shtrih.CmdOperation2, shtrih.CmdCloseReceipt2} {
		t.Run(shtrih.CmdName(cmd), func(t *testing.T) {
			r := newRig(t, rigOpts{})
			openShift(t, r)
			ctx := ctxT(t)
			rc := receipt(t, "paper", fiscal.DiscountMode, []fiscal.Money{700, 0})
			r.em.Inject(emulator.Fault{Kind: emulator.FaultPaperOut, Cmd: cmd})
			var cp *fiscal.Checkpoint
			res, err := r.drv.PrintReceipt(ctx, rc, func(_ context.Context, c fiscal.Checkpoint) error { cp = &c; return nil })
			recorded := res.FD
			switch {
			case cmd == shtrih.CmdCloseReceipt2:
				if err != nil || !res.PrintPending || res.FD == 0 {
					t.Fatalf("got %+v, %v", res, err)
				}
			case !errors.Is(err, shtrih.ErrPaperOut):
				t.Fatalf("got %v, want the paper-out error", err)
			}
			if health, hint, _ := shtrih.Explain(err); err != nil && (health != "printer.paper_out" || hint != "load paper") {
				t.Errorf("explain: %q %q", health, hint)
			}
			r.em.LoadPaper()
			if err != nil {
				dec, err := r.drv.Resolve(ctx, *cp)
				if err != nil || dec.Outcome != fiscal.OpenCancelled {
					t.Fatalf("resolve: %+v %v", dec, err)
				}
				recorded, _ = fiscalise(ctx, t, r.drv, rc)
			} else if err := r.drv.ContinuePrint(ctx); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, d := range r.em.Journal() {
				if d.Kind == "receipt" {
					n++
					if d.FD != recorded || !d.Printed {
						t.Errorf("FD %d (recorded %d), printed %v", d.FD, recorded, d.Printed)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d receipts", n)
			}
		})
	}
}
