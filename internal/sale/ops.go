package sale

import (
	"context"
	"errors"
	"sort"
	"time"

	"tillagent/checkout"
	"tillagent/driver/fiscal"
	"tillagent/internal/store"
)

// CardInfo is GET /v1/cards/{code}.
type CardInfo struct {
	Code        string             `json:"code"`
	Kind        checkout.CardKind  `json:"kind"`
	State       checkout.CardState `json:"state"`
	BlockReason string             `json:"block_reason,omitempty"`
	ProgramID   string             `json:"program_id"`
	ProgramName string             `json:"program_name,omitempty"`
	Balance     checkout.Points    `json:"balance"`
	// Spendable is what the card may spend now: 0 when it cannot spend at
	// all (CanSpend false, Reason says why).
	Spendable checkout.Points `json:"spendable"`
	// SpendableLimit names the rule that holds Spendable below the card's
	// own spendable points, if one does: head office's offline rule
	// (store.Offline*) or the program's monthly cap (monthly_cap).
	SpendableLimit string `json:"spendable_limit,omitempty"`
	CanSpend       bool   `json:"can_spend"`
	Reason         string `json:"reason,omitempty"`
	// Pending is points earned but not yet active (activation delay).
	Pending checkout.Points `json:"pending"`
	Debt    checkout.Points `json:"debt"`
	// Expiring lists active lots that lapse within the horizon, soonest first.
	Expiring     []ExpiringLot  `json:"expiring"`
	ExpiringDays int            `json:"expiring_days"`
	Tier         *Tier          `json:"tier,omitempty"`
	PurchasesAll checkout.Money `json:"purchases_all_time"`
	PurchasesPrv checkout.Money `json:"purchases_prev_month"`
}

// ExpiringLot is points that lapse soon.
type ExpiringLot struct {
	LotID     string          `json:"lot_id"`
	Points    checkout.Points `json:"points"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// Tier is the accrual percent a tiered rule gives the card now. For a
// check-sum basis it depends on the check, so only the table is named.
type Tier struct {
	Rule    string             `json:"rule"`
	Basis   checkout.TierBasis `json:"basis"`
	Amount  *checkout.Money    `json:"amount,omitempty"`
	Percent *checkout.Percent  `json:"percent,omitempty"`
}

// Card looks a card up: its state, points and tier, as the till sees them now.
func (s *Service) Card(ctx context.Context, code string) (CardInfo, error) {
	now := s.o.Clock()
	in, err := s.quoteInput(ctx, checkout.Check{ID: "lookup", StoreID: s.o.StoreID}, []string{code}, now)
	if err != nil {
		return CardInfo{}, s.storeError(ctx, err)
	}
	if len(in.Cards) != 1 {
		return CardInfo{}, newErr(NotFound, "card.unknown", "Карта не найдена", "card %s", code)
	}
	c := in.Cards[0]
	bal := store.BalanceOf(c, now) // the card as just loaded, not a second load
	info := CardInfo{Code: c.Code, Kind: c.Kind, State: c.State, BlockReason: c.BlockReason, ProgramID: c.ProgramID,
		Balance: bal.Total, Spendable: bal.Spendable, Debt: bal.Debt, ExpiringDays: s.o.ExpiringDays,
		Expiring: []ExpiringLot{}, PurchasesAll: c.PurchasesAllTime, PurchasesPrv: c.PurchasesPrevMonth}
	switch {
	case c.State == checkout.StateBlocked:
		info.Reason = "card.blocked"
	case c.State == checkout.StateIssued:
		info.Reason = "card.not_registered"
	case c.Kind == checkout.KindDiscount || c.Kind == checkout.KindReferral:
		info.Reason = "card.kind_cannot_spend"
	default:
		info.CanSpend = true
	}
	if info.CanSpend {
		if err := s.offlineSpendable(ctx, &info, c, in.Programs, now); err != nil {
			return CardInfo{}, err
		}
	}
	if info.CanSpend {
		programLimits(&info, c, in.Programs)
	}
	if !info.CanSpend {
		info.Spendable = checkout.IntPoints(0)
	}
	horizon := now.AddDate(0, 0, s.o.ExpiringDays)
	pending := checkout.IntPoints(0)
	for _, l := range c.Lots {
		if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) || !l.Remaining.IsPositive() {
			continue
		}
		if now.Before(l.ActiveFrom) {
			pending = pending.Add(l.Remaining)
			continue
		}
		if l.ExpiresAt != nil && l.ExpiresAt.Before(horizon) {
			info.Expiring = append(info.Expiring, ExpiringLot{LotID: l.ID, Points: l.Remaining, ExpiresAt: *l.ExpiresAt})
		}
	}
	sort.Slice(info.Expiring, func(i, j int) bool { return info.Expiring[i].ExpiresAt.Before(info.Expiring[j].ExpiresAt) })
	info.Pending = pending
	for _, p := range in.Programs {
		if p.ID != c.ProgramID {
			continue
		}
		info.ProgramName = p.Name
		info.Tier = tierOf(p, c)
	}
	return info, nil
}

// offlineSpendable lowers a card's spendable points to head office's
// offline cap, as a quote does (the cap cut to the program's point scale,
// as the engine cuts its limits); a cap of nothing means the card cannot
// spend now, with the rule as the reason.
func (s *Service) offlineSpendable(ctx context.Context, info *CardInfo, c checkout.Card, programs []checkout.Program, now time.Time) error {
	limit, reason, err := s.st.OfflineCap(ctx, c.Code, now, s.o.Syncs)
	if err != nil || reason == "" {
		return err
	}
	for _, p := range programs {
		if p.ID == c.ProgramID {
			limit = limit.Truncate(p.PointRounding.Scale)
		}
	}
	capped := checkout.PointsOf(limit)
	switch {
	case !capped.IsPositive():
		info.CanSpend, info.Reason, info.SpendableLimit = false, reason, reason
	case capped.Cmp(info.Spendable) < 0:
		info.Spendable, info.SpendableLimit = capped, reason
	}
	return nil
}

// programLimits applies the program's own limits that do not depend on
// the check, as the quote does (checkout): the monthly cap (what is left
// of it this month, LimitMonthlyCap), then the minimum redemption (points
// below it cannot be spent at all, LimitMinRedeem). The lookup must not
// offer what a sale would refuse.
func programLimits(info *CardInfo, c checkout.Card, programs []checkout.Program) {
	for _, p := range programs {
		if p.ID != c.ProgramID {
			continue
		}
		r := p.Redemption
		if r.MonthlyCap != nil {
			left := r.MonthlyCap.Sub(c.RedeemedThisMonth)
			if left.IsNegative() {
				left = checkout.IntPoints(0)
			}
			if left.Cmp(info.Spendable) < 0 {
				info.Spendable, info.SpendableLimit = left, checkout.LimitMonthlyCap
				if !left.IsPositive() {
					info.CanSpend, info.Reason = false, checkout.LimitMonthlyCap
				}
			}
		}
		if info.CanSpend && info.Spendable.IsPositive() && info.Spendable.Cmp(r.MinRedeem) < 0 {
			info.CanSpend, info.Reason = false, checkout.LimitMinRedeem
		}
	}
}

// tierOf reads the first tiered customer rule of the program: the level
// with the largest threshold not above the basis (as the engine does).
func tierOf(p checkout.Program, c checkout.Card) *Tier {
	for _, r := range p.Accrual {
		if r.Tiers == nil || r.For == checkout.ForAgent {
			continue
		}
		t := &Tier{Rule: p.ID + "/" + r.ID, Basis: r.Tiers.Basis}
		var amount checkout.Money
		switch r.Tiers.Basis {
		case checkout.BasisPrevMonth:
			amount = c.PurchasesPrevMonth
		case checkout.BasisAllTime:
			amount = c.PurchasesAllTime
		default:
			return t
		}
		t.Amount = &amount
		zero := checkout.MustPercent("0")
		t.Percent = &zero
		best := -1
		for i, l := range r.Tiers.Levels {
			if l.From.Cmp(amount) <= 0 && (best < 0 || l.From.Cmp(r.Tiers.Levels[best].From) > 0) {
				best = i
			}
		}
		if best >= 0 {
			pc := r.Tiers.Levels[best].Percent
			t.Percent = &pc
		}
		return t
	}
	return nil
}

var errNoPrinter = &Error{Class: Unavailable, Code: "printer.none", Cashier: "Принтер чеков не настроен",
	Hint: "set printer.type in the configuration", Err: errors.New("printer.type is none")}

// device runs a printer operation under the document lock (a report never
// interleaves with a receipt) and classifies its error.
func (s *Service) device(ctx context.Context, f func(context.Context, fiscal.Printer) error) error {
	if s.o.Printer == nil {
		return errNoPrinter
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.PrintTimeout)
	defer cancel()
	if err := f(pctx, s.o.Printer); err != nil {
		return s.printerHealth(printerError(err))
	}
	s.printerHealth(nil)
	return nil
}

// OpenShift opens the fiscal shift.
func (s *Service) OpenShift(ctx context.Context, cashier string) error {
	if err := checkCashier(cashier); err != nil {
		return err
	}
	return s.device(ctx, func(ctx context.Context, p fiscal.Printer) error { return p.OpenShift(ctx, cashier) })
}

// CloseShift prints the Z report, closing the shift.
func (s *Service) CloseShift(ctx context.Context) error {
	err := s.device(ctx, func(ctx context.Context, p fiscal.Printer) error { return p.ZReport(ctx) })
	var e *Error
	if errors.As(err, &e) && e.Code == "printer.shift_closed" {
		e.Cashier = "Смена уже закрыта"
	}
	return err
}

// XReport prints the X report.
func (s *Service) XReport(ctx context.Context) error {
	return s.device(ctx, func(ctx context.Context, p fiscal.Printer) error { return p.XReport(ctx) })
}

// ContinuePrint finishes a printout interrupted by paper out.
func (s *Service) ContinuePrint(ctx context.Context) error {
	return s.device(ctx, func(ctx context.Context, p fiscal.Printer) error { return p.ContinuePrint(ctx) })
}

// PrinterStatus is the printer's state for /v1/status.
type PrinterStatus struct {
	Configured bool         `json:"configured"`
	OK         bool         `json:"ok"`
	Error      string       `json:"error,omitempty"`
	Code       string       `json:"code,omitempty"`
	Status     *DeviceState `json:"status,omitempty"`
	LastFD     uint32       `json:"last_fd,omitempty"`
	FNWarnings byte         `json:"fn_warnings,omitempty"`
}

// DeviceState is the printer's mode in API terms.
type DeviceState struct {
	Mode            byte `json:"mode"`
	Submode         byte `json:"submode"`
	ShiftOpen       bool `json:"shift_open"`
	ShiftExpired    bool `json:"shift_expired"` // open for more than 24 h: only a Z report is possible
	ReceiptOpen     bool `json:"receipt_open"`
	PaperOut        bool `json:"paper_out"`
	CoverOpen       bool `json:"cover_open"`
	Printing        bool `json:"printing"`
	WaitingContinue bool `json:"waiting_continue"` // paper loaded: POST /v1/printer/continue
}

// Printer reads the printer state without taking the document lock (status
// must answer while a receipt prints; the driver serialises commands).
func (s *Service) Printer(ctx context.Context) PrinterStatus {
	if s.o.Printer == nil {
		return PrinterStatus{}
	}
	ps := PrinterStatus{Configured: true}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := s.o.Printer.Status(ctx)
	if err != nil {
		var e *Error
		if errors.As(printerError(err), &e) {
			ps.Code = e.Code
			s.tellPrinter(e.Code, e.Cashier)
		}
		ps.Error = err.Error()
		return ps
	}
	// What the status shows is health too: paper and cover change without
	// any command failing.
	switch {
	case st.PaperOut:
		s.tellPrinter("printer.paper_out", "Принтер чеков: "+cashierText("printer.paper_out"))
	case st.CoverOpen:
		s.tellPrinter("printer.cover_open", "Принтер чеков: "+cashierText("printer.cover_open"))
	case st.ShiftExpired:
		s.tellPrinter("printer.shift_expired", "Принтер чеков: "+cashierText("printer.shift_expired"))
	default:
		s.tellPrinter("printer.ok", "")
	}
	ps.OK = true
	ps.Status = &DeviceState{Mode: st.Mode, Submode: st.Submode, ShiftOpen: st.ShiftOpen, ShiftExpired: st.ShiftExpired,
		ReceiptOpen: st.ReceiptOpen, PaperOut: st.PaperOut, CoverOpen: st.CoverOpen, Printing: st.Printing, WaitingContinue: st.WaitingContinue}
	if fn, err := s.o.Printer.FNStatus(ctx); err == nil {
		ps.LastFD, ps.FNWarnings = fn.LastFD, byte(fn.Warnings)
	}
	return ps
}
