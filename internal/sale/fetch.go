package sale

import (
	"context"
	"errors"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// ErrFetchRefused marks an error of Options.FetchCard where head office
// answered but would not send the card (a retired till, a request it does
// not take): no outage to tell the cashier of.
var ErrFetchRefused = errors.New("head office refused to send the card")

// ErrReplicaLoading marks an error of Options.FetchCard where the till's
// first load from head office has not finished.
var ErrReplicaLoading = errors.New("the till is still loading its replica from head office")

// ErrSyncBusy marks an error of Options.FetchCard where the till's sync
// cycle held the replica for longer than the fetch could wait: head
// office is up.
var ErrSyncBusy = errors.New("the till's sync cycle is importing head office's feed")

// quoteInput is the store's QuoteInput, except that a card the replica
// lacks is first asked of head office (Options.FetchCard), once per card:
// a customer of another store, on a store whose tills receive only its own
// cards, then gets loyalty as at home whenever head office answers. A card
// that still cannot be had is card.unknown, its hint saying why.
func (s *Service) quoteInput(ctx context.Context, check checkout.Check, codes []string, now time.Time) (checkout.Input, error) {
	asked := map[string]bool{}
	for {
		in, err := s.st.QuoteInput(ctx, check, codes, now)
		var uc *store.UnknownCardError
		if s.o.FetchCard == nil || !errors.As(err, &uc) || asked[uc.Code] {
			return in, err
		}
		asked[uc.Code] = true
		ferr := s.o.FetchCard(ctx, uc.Code)
		if ferr == nil {
			continue
		}
		s.log.Info("card not in the replica and not fetched from head office", "card", uc.Code, "err", ferr)
		e := engineError(err).(*Error) // card.unknown, its hint below
		switch {
		case errors.Is(ferr, store.ErrUnknownCard):
			e.Hint = "head office does not hold this card either (" + ferr.Error() + ")"
		case errors.Is(ferr, ErrFetchRefused):
			e.Hint = "head office answered but would not send the card (" + ferr.Error() + "): see `tillctl sync status`"
		case errors.Is(ferr, ErrSyncBusy):
			e.Cashier = "Карта пока не найдена: касса обменивается данными с офисом, повторите через минуту"
			e.Hint = "not in the till's replica; the till's sync cycle was importing from head office and the ask for the card could not wait for it (" + ferr.Error() + "): ask again in a moment; `tillctl sync status` shows the cycle"
		case errors.Is(ferr, ErrReplicaLoading):
			e.Cashier = "Карта пока не найдена: касса ещё загружает данные из офиса"
			e.Hint = "the till's first load from head office has not finished (" + ferr.Error() + "): ask again once it has; `tillctl sync status` shows its progress"
		default:
			e.Cashier = "Карта не найдена на кассе, а офис сейчас недоступен"
			e.Hint = "not in the till's replica; asking head office for it failed (" + ferr.Error() + "): the card is unknown until the till reaches head office"
		}
		return in, e
	}
}
