package fiscal

import (
	"context"
	"fmt"
	"time"
)

// Printer is what the agent needs from a fiscal printer. Every method blocks
// until the device answered or ctx ends; device refusals come back as the
// driver's typed error (see shtrih.DeviceError), never as a bare string.
type Printer interface {
	// Status reads the device state (shift, open document, paper, cover).
	Status(ctx context.Context) (Status, error)
	// FNStatus reads the fiscal storage: phase, last FD, warnings.
	FNStatus(ctx context.Context) (FNStatus, error)
	// OpenShift opens the shift; cashier may be empty.
	OpenShift(ctx context.Context, cashier string) error
	// PrintReceipt fiscalises r. save is called with the checkpoint before
	// the first command that changes the device; if save fails nothing is sent.
	// On any error after save, the outcome is unknown: call Resolve with the
	// saved checkpoint before doing anything else with this receipt.
	PrintReceipt(ctx context.Context, r Receipt, save func(context.Context, Checkpoint) error) (Result, error)
	// Resolve decides, after an error or a power loss, what became of the
	// receipt of cp. An open receipt is cancelled before it returns.
	Resolve(ctx context.Context, cp Checkpoint) (Decision, error)
	// CancelReceipt annuls the open receipt (no error if none is open).
	CancelReceipt(ctx context.Context) error
	XReport(ctx context.Context) error
	ZReport(ctx context.Context) error
	// ContinuePrint finishes a printout interrupted by a paper-out.
	ContinuePrint(ctx context.Context) error
	// PrintText prints non-fiscal lines (outside a receipt).
	PrintText(ctx context.Context, lines []string) error
}

// Status is the device state in protocol-free terms.
type Status struct {
	Mode, Submode   byte // raw protocol values, for technicians
	ShiftOpen       bool
	ShiftExpired    bool // open for more than 24 h: only a Z report is possible
	ReceiptOpen     bool
	PaperOut        bool
	CoverOpen       bool
	Printing        bool
	WaitingContinue bool // paper was refilled; the printout waits for ContinuePrint
	Operator        byte
}

func (s Status) String() string {
	shift := "closed"
	switch {
	case s.ShiftExpired:
		shift = "open > 24 h"
	case s.ShiftOpen:
		shift = "open"
	}
	return fmt.Sprintf("mode %d.%d, shift %s, receipt open %v, paper out %v, cover open %v, printing %v, waiting continue %v",
		s.Mode, s.Submode, shift, s.ReceiptOpen, s.PaperOut, s.CoverOpen, s.Printing, s.WaitingContinue)
}

// FNStatus is the fiscal storage state.
type FNStatus struct {
	Phase       byte // bit 0 configured, 1 fiscal mode, 2 closed, 3 archive sent
	Document    byte // current document: 0 none, 4 receipt, …
	ShiftOpen   bool
	Warnings    FNWarnings
	Serial      string
	LastFD      uint32
	At          time.Time
	HasDocument bool // document data received
}

// FNWarnings are the FN warning bits.
type FNWarnings byte

// FN warning bits.
const (
	FNReplaceUrgent FNWarnings = 1 << 0 // crypto module must be replaced within 3 days
	FNResourceLow   FNWarnings = 1 << 1 // crypto resource < 30 days
	FNMemoryFull    FNWarnings = 1 << 2 // FN memory ≥ 90 %
	FNOFDTimeout    FNWarnings = 1 << 3 // OFD answer timeout
)

// FNWarning is one warning bit with a stable health code for the UI and a
// hint for the technician.
type FNWarning struct {
	Bit    FNWarnings
	Health string
	Hint   string
}

var fnWarnings = []FNWarning{
	{FNReplaceUrgent, "printer.fn_replace_urgent", "replace the FN within 3 days: the printer stops fiscalising after that"},
	{FNResourceLow, "printer.fn_resource_low", "FN crypto resource under 30 days: order a replacement FN"},
	{FNMemoryFull, "printer.fn_memory_full", "FN memory 90 % full: check that documents reach the OFD, plan an FN replacement"},
	{FNOFDTimeout, "printer.ofd_timeout", "the OFD does not answer: check the printer's internet connection and OFD settings"},
}

// List returns the warnings that are set, in bit order.
func (w FNWarnings) List() []FNWarning {
	var out []FNWarning
	for _, fw := range fnWarnings {
		if w&fw.Bit != 0 {
			out = append(out, fw)
		}
	}
	return out
}

// Checkpoint is what the journal stores before a receipt touches the device,
// so that Resolve can tell after a power loss whether it was fiscalised.
type Checkpoint struct {
	ReceiptID string
	LastFD    uint32 // last fiscal document number before this receipt
	Kind      Kind
	Total     Money
}

// Result is a fiscalised receipt.
type Result struct {
	FD     uint32 // fiscal document number
	FP     uint32 // fiscal sign, printed as a decimal number
	Change Money
	// PrintPending: fiscalised, but the paper copy is not finished (paper out);
	// ContinuePrint after loading paper.
	PrintPending bool
}

// Outcome is what Resolve found.
type Outcome int

const (
	// Fiscalised: the receipt was closed in the FN; record FD/FP, never print it again.
	Fiscalised Outcome = iota + 1
	// OpenCancelled: the receipt was still open and has been annulled; register it again.
	OpenCancelled
	// NeverStarted: the device has no trace of it; register it again.
	NeverStarted
)

func (o Outcome) String() string {
	switch o {
	case Fiscalised:
		return "fiscalised"
	case OpenCancelled:
		return "open, cancelled"
	case NeverStarted:
		return "never started"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Decision is Resolve's answer.
type Decision struct {
	Outcome Outcome
	FD, FP  uint32 // set when Fiscalised
}
