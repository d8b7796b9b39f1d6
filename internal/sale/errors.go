package sale

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/driver/fiscal/shtrih"
	"tillagent/internal/store"
)

// Class is what kind of refusal an Error is; the API maps it to a status.
type Class int

const (
	Invalid     Class = iota + 1 // the request is wrong: fix it and send again
	NotFound                     // an unknown card, sale or product
	Conflict                     // the idempotency key was used for another request, or the document is in another state
	Unavailable                  // the printer, or an unsettled sale, prevents it now: retry later with the same key
	Gone                         // the sale is older than the till keeps (sale.keep_days)
)

// Error is a refusal with a stable code, a message for the cashier (Russian)
// and the detail for the technician.
type Error struct {
	Class   Class
	Code    string // stable, e.g. "payment.short", "printer.paper_out"
	Cashier string // shown to the cashier
	Hint    string // what a technician should do, if known
	Err     error  // the detail
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code
	}
	return e.Code + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func newErr(class Class, code, cashier string, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, Cashier: cashier, Err: fmt.Errorf(format, args...)}
}

// engineError classifies an error from the store or the engine.
func engineError(err error) error {
	var e *Error
	var re *checkout.RedeemError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &re) && isOffline(re.Limit):
		return offlineRefusal(re)
	case errors.As(err, &re):
		msg := fmt.Sprintf("Можно списать не более %s баллов", re.Max)
		switch {
		case re.Limit == checkout.LimitMinRedeem:
			msg = "Списание меньше минимального по программе"
		case re.Max.IsZero():
			msg = "По этому чеку баллы списать нельзя"
		}
		return &Error{Class: Invalid, Code: "redeem.over_limit", Cashier: msg, Err: err}
	case errors.Is(err, checkout.ErrReturnExceedsSale):
		return &Error{Class: Conflict, Code: "return.exceeds_sale", Cashier: "Возврат больше, чем было продано по чеку", Err: err}
	case errors.Is(err, store.ErrUnknownCard):
		return &Error{Class: NotFound, Code: "card.unknown", Cashier: "Карта не найдена", Err: err}
	case errors.Is(err, store.ErrUnknownProduct):
		return &Error{Class: NotFound, Code: "product.unknown", Cashier: "Товар не найден в справочнике", Err: err}
	case errors.Is(err, store.ErrUnknownStore):
		return &Error{Class: Invalid, Code: "store.unknown", Cashier: "Магазин не найден в справочнике", Err: err}
	case errors.Is(err, checkout.ErrTooManyCards):
		return &Error{Class: Invalid, Code: "cards.too_many", Cashier: "На чек можно предъявить одну карту покупателя и одну карту агента", Err: err}
	case errors.Is(err, checkout.ErrCannotRedeem), errors.Is(err, checkout.ErrRedeemNotAllowed):
		return &Error{Class: Invalid, Code: "redeem.not_allowed", Cashier: "С этой карты нельзя списать баллы", Err: err}
	}
	if errors.Is(err, checkout.ErrInvalidInput) {
		return &Error{Class: Invalid, Code: "check.invalid", Cashier: "Ошибка в чеке", Err: err}
	}
	return err
}

// offlineRefusal is a redemption over one of head office's offline rules.
// The cap binds until head office has folded the till's spending, so it
// can bind between two syncs as well as while offline. The cashier is told
// which rule binds: the card's cap, the till's (all cards together), the
// till too long offline, or the first load not finished.
func offlineRefusal(re *checkout.RedeemError) *Error {
	e := &Error{Class: Invalid, Code: "redeem.offline_limit",
		Err: fmt.Errorf("redeem %s points on card %s: offline limit %s (%s)", re.Requested, re.Card, re.Max, re.Limit)}
	max := re.Max.Decimal()
	switch re.Limit {
	case store.OfflineCardCap:
		e.Cashier = fmt.Sprintf("Сейчас с этой карты можно списать не более %s: остальное станет доступно после обмена с офисом", pointsText(max))
		if !max.IsPositive() {
			e.Cashier = "С этой карты сейчас нельзя списать баллы: предел списания по карте до обмена с офисом исчерпан"
		}
		e.Hint = "head office's offline card cap: the card's redemptions on this till count against it until head office has folded them (the next sync)"
	case store.OfflineTillCap:
		e.Cashier = fmt.Sprintf("Сейчас на кассе можно списать не более %s по всем картам: остальное станет доступно после обмена с офисом", pointsText(max))
		if !max.IsPositive() {
			e.Cashier = "На кассе сейчас нельзя списать баллы: общий предел списания кассы до обмена с офисом исчерпан"
		}
		e.Hint = "head office's offline till cap: all redemptions on this till count against it until head office has folded them (the next sync; tillctl sync status)"
	case store.OfflineTooLong:
		e.Cashier = "Списать баллы сейчас нельзя: касса слишком долго без связи с офисом. Продажа без списания и начисление работают"
		e.Hint = "restore the link to head office: redemption resumes after the next feed (tillctl sync status)"
	case store.OfflineFirstLoad:
		e.Cashier = "Списать баллы пока нельзя: первая загрузка данных из офиса не завершена. Продажа без списания и начисление работают"
		e.Hint = "the first load of the replica from head office has not finished: check the link to head office (sync.url) and `tillctl sync status`"
	default:
		e.Cashier = fmt.Sprintf("Сейчас можно списать не более %s: остальное станет доступно после обмена с офисом", pointsText(max))
	}
	return e
}

// pointsText is n with "балл" in the genitive after "не более": "1 балла",
// "21 балла", "5 баллов", "11 баллов"; a fraction takes the singular
// ("1,5 балла"), written with a decimal comma.
func pointsText(n decimal.Decimal) string {
	word := "баллов"
	if !n.IsInteger() {
		word = "балла"
	} else if i := n.Abs().BigInt(); new(big.Int).Mod(i, big.NewInt(10)).Int64() == 1 && new(big.Int).Mod(i, big.NewInt(100)).Int64() != 11 {
		word = "балла"
	}
	return strings.Replace(n.String(), ".", ",", 1) + " " + word
}

// printerError classifies a printer failure; points are released by then.
// A device refusal carries the printer's health code; a link failure (no
// answer, port gone) is printer.link; anything else the driver refused
// before touching the device is the document's fault.
func printerError(err error) error {
	var de *shtrih.DeviceError
	if errors.As(err, &de) {
		return &Error{Class: Unavailable, Code: de.Health(), Cashier: "Принтер чеков: " + cashierText(de.Health()), Hint: de.Hint(), Err: err}
	}
	for _, link := range []error{shtrih.ErrNoLink, shtrih.ErrAnswerLost, shtrih.ErrTooManyNAK, shtrih.ErrBadAnswer, shtrih.ErrPortClosed,
		context.DeadlineExceeded} {
		if errors.Is(err, link) {
			return &Error{Class: Unavailable, Code: "printer.link", Cashier: "Принтер чеков не отвечает",
				Hint: "check the printer's power and cable, then retry with the same key", Err: err}
		}
	}
	return &Error{Class: Invalid, Code: "receipt.invalid", Cashier: "Чек нельзя напечатать: ошибка в данных чека", Err: err}
}

// cashierText is the cashier's wording of the printer health codes a shop
// floor meets; the rest get a generic text and the technician's detail.
func cashierText(health string) string {
	switch health {
	case "printer.paper_out":
		return "закончилась бумага, заправьте ленту"
	case "printer.cover_open":
		return "открыта крышка"
	case "printer.shift_expired":
		return "смена открыта больше 24 часов, закройте смену"
	case "printer.shift_closed":
		return "смена закрыта, откройте смену"
	case "printer.shift_open":
		return "смена уже открыта"
	case "printer.receipt_full":
		return "слишком много позиций в чеке, разделите его"
	case "printer.receipt_open":
		return "открыт незавершённый чек, повторите через минуту"
	case "printer.busy":
		return "принтер занят печатью, повторите"
	case "printer.fn_exhausted", "printer.fn_failure", "printer.fn_phase":
		return "неисправность фискального накопителя, вызовите техника"
	case "printer.clock":
		return "неверные дата и время в принтере, вызовите техника"
	case "printer.ofd_backlog":
		return "документы не переданы в ОФД, проверьте интернет у принтера"
	}
	return "отказ принтера, вызовите техника (" + health + ")"
}
