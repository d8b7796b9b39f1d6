// Package sale is the till's sale flow: it prices a check against the
// current state, prints the fiscal receipt with the bonus tags and commits
// the journal with the fiscal document number, so that each fiscalised sale
// is journaled exactly once and nothing that was not fiscalised is. A crash
// at any step is settled from the printer's own record before new work.
package sale

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tillagent/checkout"
	"tillagent/driver/fiscal"
	"tillagent/internal/store"
)

// Options configure a Service.
type Options struct {
	Store   *store.Store
	Printer fiscal.Printer // nil: no printer, sales are refused
	StoreID string
	TillID  string
	Receipt ReceiptOptions
	// PrintTimeout bounds one receipt on the device, however the client
	// that asked for it behaves (default 2 min).
	PrintTimeout time.Duration
	// ExpiringDays is the horizon of "expiring soon" in card lookups (default 30).
	ExpiringDays int
	Clock        func() time.Time
	Logger       *slog.Logger
	// Observe, if set, is told of every finished or failed document (metrics).
	Observe func(kind store.DocKind, outcome string)
	// OnPrinter, if set, is told when the printer's health changes: its
	// refusal or link code, or "printer.ok" after a success.
	OnPrinter func(code, detail string)
	// MaxChange caps the change of a cash payment (sale.max_change_kop):
	// more is a mistyped tendered amount. 0: no cap.
	MaxChange fiscal.Money
	// CashRefundOfCard lets refund "cash" pay back in cash what a card
	// paid (sale.cash_refund_of_card); off, that part must go to the card.
	CashRefundOfCard bool
	// Syncs: the till syncs with head office (sync.enabled). Until a feed
	// has brought head office's offline rules it redeems nothing
	// (store.OfflineFirstLoad), and a store without a replica is waiting
	// for its first load. Off (the standalone demo), there are no offline
	// rules unless a feed saved some.
	Syncs bool
	// AfterRedeem, if set, is called (it must not block) after a sale
	// that spent points is journaled: the agent then pushes at once, so
	// that head office folds it and the offline caps, which count this
	// till's redemptions it has not folded, free up without waiting for
	// the sync interval.
	AfterRedeem func()
	// FetchCard, if set, is asked for a card the replica lacks (sync:
	// head office sends it, and the card is then in the store); an error
	// wrapping store.ErrUnknownCard means head office does not hold it
	// either, one wrapping ErrFetchRefused that head office would not send
	// it; any other, that head office could not be asked. The caller
	// bounds how long it may take.
	FetchCard func(ctx context.Context, code string) error
	// KeepDocs is how long a finished sale stays whole (sale.keep_days):
	// Run prunes older ones (Prune). 0 keeps every document.
	KeepDocs time.Duration
}

// Service runs sales and returns. It is safe for concurrent use; documents
// are processed one at a time (the till has one printer, and the points a
// sale spends must stay reserved until its journal commits).
type Service struct {
	o       Options
	st      *store.Store
	log     *slog.Logger
	mu      sync.Mutex
	settled atomic.Bool
	kick    chan struct{} // wakes Run to settle

	healthMu sync.Mutex
	health   string // last printer code told to OnPrinter
}

// printerHealth tells OnPrinter about a change: err is a printer outcome
// (nil: the printer did what it was asked).
func (s *Service) printerHealth(err error) error {
	code, detail := "printer.ok", ""
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !strings.HasPrefix(e.Code, "printer.") {
			return err
		}
		code, detail = e.Code, e.Cashier
	}
	s.tellPrinter(code, detail)
	return err
}

// tellPrinter tells OnPrinter a health code if it changed.
func (s *Service) tellPrinter(code, detail string) {
	s.healthMu.Lock()
	changed := code != s.health
	s.health = code
	s.healthMu.Unlock()
	if changed {
		s.o.OnPrinter(code, detail)
	}
}

// New returns a service. Call Settle before taking sales.
func New(o Options) *Service {
	if o.PrintTimeout == 0 {
		o.PrintTimeout = 2 * time.Minute
	}
	if o.ExpiringDays == 0 {
		o.ExpiringDays = 30
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observe == nil {
		o.Observe = func(store.DocKind, string) {}
	}
	if o.OnPrinter == nil {
		o.OnPrinter = func(string, string) {}
	}
	return &Service{o: o, st: o.Store, log: o.Logger, kick: make(chan struct{}, 1)}
}

// unsettle marks a document's outcome unknown and wakes Run to settle it.
func (s *Service) unsettle() {
	s.settled.Store(false)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// clockMarkEvery is how often Run records the clock for the offline age
// (store.MarkClock): a clock set back later makes the age look at most
// this much younger.
const clockMarkEvery = time.Minute

// Run settles, in the background, whatever is unsettled: at start (a crash
// left a pending document) and whenever a printer answer was lost, retrying
// with backoff (0.5 s up to 10 s) until the printer tells. Meanwhile it
// records the clock for the offline age every clockMarkEvery, and prunes
// documents past Options.KeepDocs (keepDocs). It returns when ctx ends.
func (s *Service) Run(ctx context.Context) {
	wait := 500 * time.Millisecond
	mark := time.NewTicker(clockMarkEvery)
	defer mark.Stop()
	go s.keepDocs(ctx)
	for {
		if !s.settled.Load() {
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := s.Settle(sctx)
			cancel()
			if err == nil {
				s.log.Info("unfinished documents settled")
				wait = 500 * time.Millisecond
				continue
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("unfinished documents wait for the printer", "err", err, "retry_in", wait)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-s.kick:
				t.Stop()
			}
			wait = min(wait*2, 10*time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-mark.C:
			s.MarkPrinterClock(ctx)
		}
	}
}

// markClock records the clock for the offline age, with the printer's own
// clock read at now (zero: not read); a failure only logs: the age is then
// measured from the marks and entries already recorded.
func (s *Service) markClock(ctx context.Context, now, printer time.Time) {
	if err := s.st.MarkPrinterClock(ctx, now, printer); err != nil && ctx.Err() == nil {
		s.log.Warn("record the clock for the offline age", "err", err)
	}
}

// printerClock is a printer that can read its own clock (shtrih.Driver).
type printerClock interface {
	Clock(ctx context.Context) (time.Time, error)
}

// MarkPrinterClock is markClock with the printer's own clock, when the
// printer has one and answers within a few seconds: it keeps running while
// the agent is stopped, so the offline age counts that time even when the
// till's clock was set back meanwhile (store.MarkPrinterClock). The agent
// calls it once before it serves, Run once a minute; a sale does not wait
// for the printer.
func (s *Service) MarkPrinterClock(ctx context.Context) {
	now := s.o.Clock()
	at, err := s.printerNow(ctx)
	if err != nil {
		s.log.Debug("read the printer's clock for the offline age", "err", err)
		at = time.Time{}
	}
	s.markClock(ctx, now, at)
}

// printerNow reads the printer's own clock, waiting a few seconds at
// most; zero and no error when the printer has no clock to read.
func (s *Service) printerNow(ctx context.Context) (time.Time, error) {
	pc, ok := s.o.Printer.(printerClock)
	if !ok {
		return time.Time{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pc.Clock(ctx)
}

// Drain waits for the document being printed, if any: the agent calls it
// on shutdown before it closes the printer port.
func (s *Service) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
}

// Settled reports whether every document left by a crash or a lost printer
// answer has been settled.
func (s *Service) Settled() bool { return s.settled.Load() }

// QuoteRequest is a check and the cards presented on it.
type QuoteRequest struct {
	Check      checkout.Check   `json:"check"`
	Cards      []string         `json:"cards,omitempty"`
	Redeem     *checkout.Points `json:"redeem,omitempty"`
	RedeemCard string           `json:"redeem_card,omitempty"`
}

// Payments are what the buyer pays with money. Cash may exceed what is due
// (the printer gives change); electronic may not.
type Payments struct {
	Cash       checkout.Money `json:"cash,omitzero"`
	Electronic checkout.Money `json:"electronic,omitzero"`
}

// SaleRequest is POST /v1/sales.
type SaleRequest struct {
	QuoteRequest
	IdempotencyKey string   `json:"idempotency_key"`
	Payments       Payments `json:"payments"`
	Cashier        string   `json:"cashier,omitempty"`
}

// ReturnRequest is POST /v1/sales/{id}/returns.
type ReturnRequest struct {
	IdempotencyKey string `json:"idempotency_key"`
	// Lines returned; empty means everything not yet returned.
	Lines []checkout.ReturnLine `json:"lines,omitempty"`
	// Refund is how the money goes back: cash or electronic; empty: the way
	// the sale was paid (to the card first, up to what it paid, the rest in
	// cash). Cash never pays back a card's part unless CashRefundOfCard.
	Refund  string `json:"refund,omitempty"`
	Cashier string `json:"cashier,omitempty"`
}

// Fiscal is what the printer gave the document.
type Fiscal struct {
	FD           uint32 `json:"fd"`
	FP           uint32 `json:"fp"`
	Kind         string `json:"kind"`
	Total        string `json:"total"`
	Change       string `json:"change"`
	PrintPending bool   `json:"print_pending,omitempty"` // fiscalised; the paper copy waits for paper
}

// CardBalance is a card's points after the document. Spendable is 0 on a
// card that cannot spend (issued, blocked, discount or referral).
type CardBalance struct {
	Code      string          `json:"code"`
	Balance   checkout.Points `json:"balance"`
	Spendable checkout.Points `json:"spendable"`
	Debt      checkout.Points `json:"debt"`
	CanSpend  bool            `json:"can_spend"`
}

// SaleAnswer is the answer to a sale; a retry with the same key gets the
// same bytes.
type SaleAnswer struct {
	SaleID  string          `json:"sale_id"`
	Fiscal  Fiscal          `json:"fiscal"`
	Receipt ReceiptView     `json:"receipt"`
	Quote   checkout.Result `json:"quote"`
	Cards   []CardBalance   `json:"cards"`
	Journal []string        `json:"journal"`
}

// ReturnAnswer is the answer to a return.
type ReturnAnswer struct {
	ReturnID string                `json:"return_id"`
	SaleID   string                `json:"sale_id"`
	Fiscal   Fiscal                `json:"fiscal"`
	Receipt  ReceiptView           `json:"receipt"`
	Return   checkout.ReturnResult `json:"return"`
	Cards    []CardBalance         `json:"cards"`
	Journal  []string              `json:"journal"`
}

// saleRecord is what a sale document keeps: the check as priced (product
// attributes filled) and the engine's result, so that returns and recovery
// never need the replica's current state of the products.
type saleRecord struct {
	Check    checkout.Check  `json:"check"`
	Result   checkout.Result `json:"result"`
	Payments fiscal.Payments `json:"payments"`
}

type returnRecord struct {
	Return checkout.ReturnResult `json:"return"`
	Refund fiscal.Payments       `json:"refund"`
}

// Quote prices a check without changing anything.
func (s *Service) Quote(ctx context.Context, req QuoteRequest) (checkout.Result, error) {
	_, res, err := s.quote(ctx, req)
	return res, err
}

func (s *Service) quote(ctx context.Context, req QuoteRequest) (checkout.Input, checkout.Result, error) {
	if req.Check.StoreID == "" {
		req.Check.StoreID = s.o.StoreID
	}
	if req.Check.StoreID != s.o.StoreID {
		return checkout.Input{}, checkout.Result{}, newErr(Invalid, "check.wrong_store", "Чек другого магазина",
			"check %s: store %q, this till is in %q", req.Check.ID, req.Check.StoreID, s.o.StoreID)
	}
	if len(req.Check.Lines) == 0 {
		return checkout.Input{}, checkout.Result{}, newErr(Invalid, "check.empty", "В чеке нет позиций", "check %s has no lines", req.Check.ID)
	}
	now := s.o.Clock()
	in, err := s.quoteInput(ctx, req.Check, req.Cards, now)
	if err != nil {
		return in, checkout.Result{}, s.storeError(ctx, err)
	}
	if err := wholePieces(in.Check.Lines, nil); err != nil {
		return in, checkout.Result{}, err
	}
	// Head office's offline caps go into the engine as limits of the
	// cards, so the quote's maximum is what a sale may really spend and
	// the minimum and all-or-nothing rules apply to it.
	for i := range in.Cards {
		if err := s.offlineCaps(ctx, &in.Cards[i], now); err != nil {
			return in, checkout.Result{}, err
		}
	}
	in.Redeem, in.RedeemCard = req.Redeem, req.RedeemCard
	res, err := checkout.Quote(in)
	if err != nil {
		return in, res, engineError(err)
	}
	return in, res, nil
}

// offlineCaps puts head office's offline cap on a card that may spend
// (docs/replica.md, "Offline rules"): per card, per till, maximum offline
// age, and nothing before the first feed on a till that syncs.
func (s *Service) offlineCaps(ctx context.Context, c *checkout.Card, now time.Time) error {
	if c.Kind != checkout.KindBonus && c.Kind != checkout.KindCombined {
		return nil
	}
	limit, reason, err := s.st.OfflineCap(ctx, c.Code, now, s.o.Syncs)
	if err != nil || reason == "" {
		return err
	}
	c.RedeemCaps = append(c.RedeemCaps, checkout.LimitValue{Code: reason, Points: checkout.PointsOf(limit)})
	return nil
}

// isOffline reports whether a limit code is one of head office's offline rules.
func isOffline(limit string) bool {
	switch limit {
	case store.OfflineCardCap, store.OfflineTillCap, store.OfflineTooLong, store.OfflineFirstLoad:
		return true
	}
	return false
}

// storeError is engineError, except that an unknown store on a till whose
// store holds no replica at all means the replica is not loaded yet: on a
// till that syncs, its first load from head office has not finished.
func (s *Service) storeError(ctx context.Context, err error) error {
	if !errors.Is(err, store.ErrUnknownStore) {
		return engineError(err)
	}
	if has, herr := s.st.HasReplica(ctx); herr != nil || has {
		return engineError(err)
	}
	if s.o.Syncs {
		return &Error{Class: Unavailable, Code: "replica.not_loaded",
			Cashier: "Справочники ещё не загружены из офиса (первая загрузка не завершена): продажа пока невозможна",
			Hint:    "the first load of the replica from head office is pending or in progress: check the link to head office (sync.url) and `tillctl sync status`",
			Err:     fmt.Errorf("store %s holds no replica yet: the first load from head office has not finished", s.st.Path())}
	}
	return &Error{Class: Unavailable, Code: "replica.not_loaded",
		Cashier: "На кассе не загружены справочники: продажа невозможна, вызовите техника",
		Hint:    "import a replica with `tillctl replica import FILE`, or enable sync to load it from head office",
		Err:     fmt.Errorf("store %s holds no replica", s.st.Path())}
}

// wholePieces refuses a fractional quantity of a product sold by the
// piece: half a bottle can be neither sold nor returned. qty, if set, gives
// the quantity per line number (a return); else the lines' own.
func wholePieces(lines []checkout.Line, qty map[int]checkout.Qty) error {
	for _, l := range lines {
		q := l.Qty
		if qty != nil {
			var ok bool
			if q, ok = qty[l.No]; !ok {
				continue
			}
		}
		if !q.Decimal().Shift(6).IsInteger() {
			return newErr(Invalid, "check.qty_precision", "Количество с точностью до 0,000001",
				"line %d: quantity %s has more than 6 decimals (the receipt carries millionths)", l.No, q)
		}
		if checkout.UnitOrDefault(l.Unit) == "pcs" && !q.Decimal().IsInteger() {
			return newErr(Invalid, "check.fractional_piece", fmt.Sprintf("Товар «%s» продаётся поштучно: количество должно быть целым", l.Name),
				"line %d: product %s is sold by the piece, quantity %s", l.No, l.ProductID, q)
		}
	}
	return nil
}

// requestSHA fingerprints a request without its idempotency key: a retry
// must send the same body, and a reused key with another body is refused.
func requestSHA(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// docID derives a document id from the idempotency key, so that a retried
// request names the same document whatever the client sent as check id.
func (s *Service) docID(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.o.TillID + "-" + prefix + hex.EncodeToString(sum[:8])
}

func checkKey(key string) error {
	if strings.TrimSpace(key) == "" || len(key) > 200 {
		return newErr(Invalid, "request.idempotency_key", "Ошибка кассовой программы: нет ключа операции",
			"idempotency_key is required (1…200 characters; also accepted as the Idempotency-Key header)")
	}
	return nil
}

// begin takes the document lock and makes sure no earlier document is
// unsettled. The caller must call s.mu.Unlock.
func (s *Service) begin(ctx context.Context) error {
	s.mu.Lock()
	if s.settled.Load() {
		return nil
	}
	if err := s.settleLocked(ctx); err != nil {
		s.mu.Unlock()
		return &Error{Class: Unavailable, Code: "sale.unsettled", Cashier: "Предыдущий чек не завершён: проверьте принтер",
			Hint: "the printer must answer so that the agent can tell whether the last receipt was fiscalised", Err: err}
	}
	return nil
}

// once runs do for a new key under the document lock, or answers a key
// already used (replayed reports which): the lock is taken only when the
// key is new or its document is being printed right now.
func (s *Service) once(ctx context.Context, key, sha string, do func() ([]byte, error)) ([]byte, bool, error) {
	if b, done, err := s.replayed(ctx, key, sha, false); done {
		return b, err == nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, false, err
	}
	defer s.mu.Unlock()
	if b, done, err := s.replayed(ctx, key, sha, true); done {
		return b, err == nil, err
	}
	b, err := do()
	return b, false, err
}

// replayed answers a request whose key is already used (done reports
// that it did): the stored answer, a conflict for another body, or "still
// pending". A finished key is answered without the document lock, so a
// retry never waits for the printer.
//
// Without the lock (locked false), a pending document is not an answer
// yet: it may be printing right now (a double click), so the caller waits
// for the lock and asks again.
func (s *Service) replayed(ctx context.Context, key, sha string, locked bool) (answer []byte, done bool, err error) {
	d, err := s.st.DocByKey(ctx, key)
	switch {
	case errors.Is(err, store.ErrNoDoc):
		return nil, false, nil
	case err != nil:
		return nil, true, err
	case d.RequestSHA != sha:
		return nil, true, newErr(Conflict, "idempotency.conflict", "Ошибка кассовой программы: ключ операции уже использован",
			"idempotency key %q was used for another request (document %s)", d.IdemKey, d.ID)
	case d.State != store.DocDone && !locked:
		return nil, false, nil
	case d.State != store.DocDone:
		return nil, true, newErr(Unavailable, "sale.unsettled", "Чек ещё не завершён: проверьте принтер и повторите",
			"document %s is still pending", d.ID)
	case d.PrunedMS != 0:
		return nil, true, s.notKept(d)
	}
	return d.Answer, true, nil
}

// checkCashier refuses a cashier name the FN cannot take (tag 1021: at
// most 64 characters, printable).
func checkCashier(name string) error {
	if n := len([]rune(name)); n > 64 {
		return newErr(Invalid, "cashier.invalid", "Имя кассира длиннее 64 символов", "cashier: %d characters, tag 1021 takes 64", n)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7F {
			return newErr(Invalid, "cashier.invalid", "Недопустимые символы в имени кассира", "cashier: control character %U", r)
		}
	}
	return nil
}

// Sale prices, prints and journals a check. It returns the answer as JSON
// (the same bytes for a retried key) and whether it was a replay.
func (s *Service) Sale(ctx context.Context, req SaleRequest) ([]byte, bool, error) {
	if err := checkKey(req.IdempotencyKey); err != nil {
		return nil, false, err
	}
	if err := checkCashier(req.Cashier); err != nil {
		return nil, false, err
	}
	key := req.IdempotencyKey
	// The agent names the check (docID), so the UI's check id is not part
	// of the request: a UI that renumbers a retried check is still retrying.
	req.IdempotencyKey, req.Check.ID = "", ""
	sha := requestSHA(req)
	return s.once(ctx, key, sha, func() ([]byte, error) { return s.sale(ctx, key, sha, req) })
}

// sale runs under the document lock for a key not used before.
func (s *Service) sale(ctx context.Context, key, sha string, req SaleRequest) ([]byte, error) {
	id := s.docID("C", key)
	req.Check.ID = id
	if req.Redeem != nil && req.Redeem.IsPositive() {
		s.markClock(ctx, s.o.Clock(), time.Time{}) // the offline age must not go back if the clock does later
	}
	in, res, err := s.quote(ctx, req.QuoteRequest)
	if err != nil {
		return nil, err
	}
	money, err := s.payments(res, req.Payments)
	if err != nil {
		return nil, err
	}
	r, err := SaleReceipt(in.Check, res, money, s.o.Receipt, req.Cashier)
	if err != nil {
		return nil, newErr(Invalid, "receipt.invalid", "Чек нельзя напечатать", "%v", err)
	}
	rec, _ := json.Marshal(saleRecord{Check: in.Check, Result: res, Payments: money})
	b, err := s.print(ctx, store.Doc{ID: id, Kind: store.DocSale, IdemKey: key, RequestSHA: sha, Result: rec}, r)
	if err == nil && res.Redemption != nil && res.Redemption.Requested.IsPositive() && s.o.AfterRedeem != nil {
		s.o.AfterRedeem()
	}
	return b, err
}

// payments checks that money covers what is due after points.
func (s *Service) payments(res checkout.Result, p Payments) (fiscal.Payments, error) {
	cash, err := moneyOf(p.Cash, "payments.cash")
	if err != nil {
		return fiscal.Payments{}, newErr(Invalid, "payment.invalid", "Неверная сумма оплаты", "%v", err)
	}
	el, err := moneyOf(p.Electronic, "payments.electronic")
	if err != nil {
		return fiscal.Payments{}, newErr(Invalid, "payment.invalid", "Неверная сумма оплаты", "%v", err)
	}
	due := kop(res.Payable)
	if el > due {
		return fiscal.Payments{}, newErr(Invalid, "payment.electronic_over", "Безналичная оплата больше суммы к оплате",
			"electronic %s over the payable %s (only cash may exceed it)", el, due)
	}
	if cash+el < due {
		return fiscal.Payments{}, newErr(Invalid, "payment.short", fmt.Sprintf("Недостаточно оплаты: к оплате %s, внесено %s", due, cash+el),
			"payments %s less than the payable %s", cash+el, due)
	}
	if err := s.changeCap(cash+el-due, cash, due); err != nil {
		return fiscal.Payments{}, err
	}
	return fiscal.Payments{Cash: cash, Electronic: el}, nil
}

// changeCap refuses change over MaxChange: nobody needs more change than
// one banknote, so it is a mistyped tendered amount, and the receipt must
// not print it (the drawer holds no such sum).
func (s *Service) changeCap(change, cash, due fiscal.Money) error {
	if s.o.MaxChange <= 0 || change <= s.o.MaxChange {
		return nil
	}
	return &Error{Class: Invalid, Code: "payment.change_over",
		Cashier: fmt.Sprintf("Сдача %s больше допустимой (%s): проверьте сумму, полученную от покупателя", change, s.o.MaxChange),
		Hint:    "a mistyped tendered amount; sale.max_change_kop sets the cap (0: none)",
		Err:     fmt.Errorf("cash %s for the payable %s gives change %s over sale.max_change_kop %d", cash, due, change, int64(s.o.MaxChange))}
}

// print runs one document through the printer: pending document, checkpoint,
// receipt, journal, done. On a refusal nothing of the document remains.
func (s *Service) print(ctx context.Context, d store.Doc, r fiscal.Receipt) ([]byte, error) {
	if s.o.Printer == nil {
		return nil, errNoPrinter
	}
	var err error
	if d.Receipt, err = json.Marshal(r); err != nil {
		return nil, err
	}
	if _, err := s.st.BeginDoc(ctx, d); err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.Kind, d.ID, err)
	}
	// The receipt runs to its end even if the client goes away: a receipt
	// abandoned half-way helps nobody.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.PrintTimeout)
	defer cancel()
	saved := false
	res, err := s.o.Printer.PrintReceipt(pctx, r, func(ctx context.Context, cp fiscal.Checkpoint) error {
		b, err := json.Marshal(cp)
		if err != nil {
			return err
		}
		if err := s.st.SaveCheckpoint(ctx, d.ID, b); err != nil {
			return err
		}
		saved = true
		d.Checkpoint = b
		return nil
	})
	if err == nil {
		s.printerHealth(nil)
		b, err := s.complete(pctx, d, r, res)
		if err != nil {
			s.unsettle() // fiscalised but not journaled: Settle finishes it
		}
		return b, err
	}
	if !saved {
		s.drop(pctx, d, err)
		return nil, s.printerHealth(printerError(err))
	}
	var cp fiscal.Checkpoint
	_ = json.Unmarshal(d.Checkpoint, &cp)
	dec, rerr := s.o.Printer.Resolve(pctx, cp)
	if rerr != nil {
		// Unknown: the document stays pending and blocks new work until
		// the printer tells (Settle).
		s.unsettle()
		s.log.Error("receipt outcome unknown", "doc", d.ID, "err", err, "resolve_err", rerr)
		s.o.Observe(d.Kind, "unknown")
		return nil, s.printerHealth(&Error{Class: Unavailable, Code: "printer.unknown_outcome", Cashier: "Принтер не ответил: чек будет проверен, повторите позже",
			Hint: "restore the printer link; the agent settles the receipt from the printer's record before the next sale", Err: fmt.Errorf("%w (resolve: %v)", err, rerr)})
	}
	if dec.Outcome == fiscal.Fiscalised {
		s.log.Warn("receipt fiscalised despite the error", "doc", d.ID, "fd", dec.FD, "err", err)
		b, err := s.complete(pctx, d, r, fiscal.Result{FD: dec.FD, FP: dec.FP, Change: change(r)})
		if err != nil {
			s.unsettle()
		}
		return b, err
	}
	s.drop(pctx, d, err)
	return nil, s.printerHealth(printerError(err))
}

// change is what the printer returns to a buyer who tendered r's cash.
func change(r fiscal.Receipt) fiscal.Money {
	a, err := r.Amounts()
	if err != nil {
		return 0
	}
	return a.Change
}

func (s *Service) drop(ctx context.Context, d store.Doc, cause error) {
	s.o.Observe(d.Kind, "refused")
	if err := s.st.DropDoc(ctx, d.ID); err != nil {
		// The document stays pending; Settle drops it once the printer confirms.
		s.unsettle()
		s.log.Error("drop refused document", "doc", d.ID, "err", err)
		return
	}
	s.log.Warn("document refused by the printer, nothing recorded", "doc", d.ID, "kind", d.Kind, "err", cause)
}

// complete journals a fiscalised document and marks it done. Both steps
// are idempotent, so Settle can run it again after a crash between them.
func (s *Service) complete(ctx context.Context, d store.Doc, r fiscal.Receipt, res fiscal.Result) ([]byte, error) {
	fis := Fiscal{FD: res.FD, FP: res.FP, Kind: r.Kind.String(), Total: r.Total().String(), Change: res.Change.String(), PrintPending: res.PrintPending}
	var answer any
	switch d.Kind {
	case store.DocSale:
		var rec saleRecord
		if err := json.Unmarshal(d.Result, &rec); err != nil {
			return nil, fmt.Errorf("sale %s: stored record: %w", d.ID, err)
		}
		ids, err := s.st.RecordFiscalSale(ctx, rec.Result, res.FD, res.FP)
		if errors.Is(err, store.ErrCheckConflict) {
			return nil, s.twice(ctx, d, res, err)
		}
		if err != nil {
			return nil, fmt.Errorf("journal sale %s (FD %d): %w", d.ID, res.FD, err)
		}
		a := SaleAnswer{SaleID: d.ID, Fiscal: fis, Receipt: View(r), Quote: rec.Result, Journal: nonNil(ids)}
		a.Cards, err = s.balances(ctx, cardCodes(rec.Result.Cards))
		if err != nil {
			return nil, err
		}
		answer = a
	case store.DocReturn:
		var rec returnRecord
		if err := json.Unmarshal(d.Result, &rec); err != nil {
			return nil, fmt.Errorf("return %s: stored record: %w", d.ID, err)
		}
		orig, err := s.saleOf(ctx, d.OriginalID)
		if err != nil {
			return nil, err
		}
		ids, err := s.st.RecordFiscalReturn(ctx, d.ID, orig.Result, rec.Return, res.FD, res.FP)
		if errors.Is(err, store.ErrCheckConflict) {
			return nil, s.twice(ctx, d, res, err)
		}
		if err != nil {
			return nil, fmt.Errorf("journal return %s (FD %d): %w", d.ID, res.FD, err)
		}
		a := ReturnAnswer{ReturnID: d.ID, SaleID: d.OriginalID, Fiscal: fis, Receipt: View(r), Return: rec.Return, Journal: nonNil(ids)}
		var codes []string
		for _, c := range rec.Return.Cards {
			codes = append(codes, c.Code)
		}
		if a.Cards, err = s.balances(ctx, codes); err != nil {
			return nil, err
		}
		answer = a
	}
	b, err := json.Marshal(answer)
	if err != nil {
		return nil, err
	}
	if err := s.st.FinishDoc(ctx, d.ID, res.FD, res.FP, b); err != nil {
		return nil, err
	}
	s.o.Observe(d.Kind, "done")
	s.log.Info("document fiscalised and journaled", "doc", d.ID, "kind", d.Kind, "fd", res.FD, "total", fis.Total)
	return b, nil
}

// twice closes a document whose receipt the printer fiscalised while the
// journal already holds the document under another receipt: only a printer
// that lost its fiscal memory can cause it. The journal keeps the first
// receipt's effects (points are never counted twice); the document is
// finished with this receipt's number so that nothing waits on it for
// ever, and the technician is told to issue a correction.
func (s *Service) twice(ctx context.Context, d store.Doc, res fiscal.Result, cause error) error {
	s.log.Error("document fiscalised twice: issue a correction receipt for the second", "doc", d.ID, "fd", res.FD, "err", cause)
	s.o.Observe(d.Kind, "fiscalised_twice")
	answer, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "sale.fiscalised_twice",
		"message": "Чек пробит повторно: вызовите техника для чека коррекции",
		"detail":  fmt.Sprintf("document %s fiscalised again as FD %d; the journal keeps the first receipt", d.ID, res.FD)}})
	if err := s.st.FinishDoc(ctx, d.ID, res.FD, res.FP, answer); err != nil {
		return err
	}
	return &Error{Class: Conflict, Code: "sale.fiscalised_twice", Cashier: "Чек пробит повторно: вызовите техника для чека коррекции",
		Hint: "the printer had lost its fiscal memory; issue a correction receipt for FD " + fmt.Sprint(res.FD), Err: cause}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func cardCodes(cs []checkout.CardResult) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Code)
	}
	return out
}

func (s *Service) balances(ctx context.Context, codes []string) ([]CardBalance, error) {
	out := []CardBalance{}
	for _, c := range codes {
		info, err := s.Card(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, CardBalance{Code: c, Balance: info.Balance, Spendable: info.Spendable, Debt: info.Debt, CanSpend: info.CanSpend})
	}
	return out, nil
}

func (s *Service) saleOf(ctx context.Context, id string) (saleRecord, error) {
	d, err := s.st.DocByID(ctx, id)
	if errors.Is(err, store.ErrNoDoc) || (err == nil && (d.Kind != store.DocSale || d.State != store.DocDone)) {
		return saleRecord{}, newErr(NotFound, "sale.unknown", "Чек продажи не найден", "no fiscalised sale %q on this till", id)
	}
	if err != nil {
		return saleRecord{}, err
	}
	if d.PrunedMS != 0 {
		return saleRecord{}, s.notKept(d)
	}
	var rec saleRecord
	if err := json.Unmarshal(d.Result, &rec); err != nil {
		return rec, fmt.Errorf("sale %s: stored record: %w", id, err)
	}
	return rec, nil
}

// Return prints a sale-return receipt against a fiscalised sale and
// journals the reversal.
func (s *Service) Return(ctx context.Context, saleID string, req ReturnRequest) ([]byte, bool, error) {
	if err := checkKey(req.IdempotencyKey); err != nil {
		return nil, false, err
	}
	if err := checkCashier(req.Cashier); err != nil {
		return nil, false, err
	}
	key := req.IdempotencyKey
	req.IdempotencyKey = ""
	sha := requestSHA(struct {
		Sale string
		ReturnRequest
	}{saleID, req})
	return s.once(ctx, key, sha, func() ([]byte, error) { return s.ret(ctx, key, sha, saleID, req) })
}

// ret runs under the document lock for a key not used before.
func (s *Service) ret(ctx context.Context, key, sha, saleID string, req ReturnRequest) ([]byte, error) {
	orig, err := s.saleOf(ctx, saleID)
	if err != nil {
		return nil, err
	}
	prev, refunded, err := s.returned(ctx, saleID)
	if err != nil {
		return nil, err
	}
	lines := req.Lines
	if len(lines) == 0 {
		for _, l := range orig.Result.Lines {
			if left := l.Qty.Sub(prev[l.No].Qty); left.IsPositive() {
				lines = append(lines, checkout.ReturnLine{No: l.No, Qty: left})
			}
		}
		if len(lines) == 0 {
			return nil, newErr(Conflict, "return.nothing_left", "По этому чеку всё уже возвращено", "sale %s is fully returned", saleID)
		}
	}
	asked := map[int]checkout.Qty{}
	for _, l := range lines {
		asked[l.No] = asked[l.No].Add(l.Qty)
	}
	if err := wholePieces(orig.Check.Lines, asked); err != nil {
		return nil, err
	}
	ri, err := s.st.ReturnInput(ctx, orig.Result, s.o.Clock())
	if err != nil {
		return nil, engineError(err)
	}
	ri.Lines = lines
	for no, p := range prev {
		ri.Previous = append(ri.Previous, checkout.ReturnLine{No: no, Qty: p.Qty})
	}
	rr, err := checkout.Return(ri)
	if err != nil {
		return nil, engineError(err)
	}
	refund, err := refundPayments(kop(rr.Refund), unrefunded(orig, refunded), req.Refund, s.o.CashRefundOfCard)
	if err != nil {
		return nil, err
	}
	id := s.docID("R", key)
	r, err := ReturnReceipt(id, orig.Check, orig.Result, rr, prev, refund, s.o.Receipt, req.Cashier)
	if err != nil {
		return nil, newErr(Invalid, "receipt.invalid", "Чек возврата нельзя напечатать", "%v", err)
	}
	rec, _ := json.Marshal(returnRecord{Return: rr, Refund: refund})
	return s.print(ctx, store.Doc{ID: id, Kind: store.DocReturn, IdemKey: key, RequestSHA: sha, OriginalID: saleID, Result: rec}, r)
}

// returned sums what the sale's finished returns took back: per line, and
// the money they gave back, in cash and to the card.
func (s *Service) returned(ctx context.Context, saleID string) (map[int]Returned, fiscal.Payments, error) {
	docs, err := s.st.ReturnsOf(ctx, saleID)
	if err != nil {
		return nil, fiscal.Payments{}, fmt.Errorf("returns of sale %s: %w", saleID, err)
	}
	out := map[int]Returned{}
	var back fiscal.Payments
	for _, d := range docs {
		var rec returnRecord
		if err := json.Unmarshal(d.Result, &rec); err != nil {
			return nil, fiscal.Payments{}, fmt.Errorf("return %s: stored record: %w", d.ID, err)
		}
		for _, l := range rec.Return.Lines {
			r := out[l.No]
			r.Qty, r.Restored = r.Qty.Add(l.Qty), r.Restored.Add(l.RestoredPoints)
			out[l.No] = r
		}
		back.Cash += rec.Refund.Cash
		back.Electronic += rec.Refund.Electronic
	}
	return out, back, nil
}

// unrefunded is what the sale's buyer paid in cash (net of change) and by
// card that earlier returns have not given back.
func unrefunded(orig saleRecord, back fiscal.Payments) fiscal.Payments {
	card := orig.Payments.Electronic
	cash := kop(orig.Result.Payable) - card
	return fiscal.Payments{Cash: max(cash-back.Cash, 0), Electronic: max(card-back.Electronic, 0)}
}

// refundPayments splits a refund of m the way the sale was paid (left is
// what is not yet refunded): back to the card first, up to what the card
// paid, the rest in cash. "electronic" pays it all to the card, which may
// not exceed what the card paid. "cash" pays it all in cash, which may not
// take in a card's part unless cardToCash: in a Russian store a card
// payment goes back to the card, through the bank terminal.
func refundPayments(m fiscal.Money, left fiscal.Payments, how string, cardToCash bool) (fiscal.Payments, error) {
	switch how {
	case "":
		e := min(m, left.Electronic)
		return fiscal.Payments{Electronic: e, Cash: m - e}, nil
	case "cash":
		if card := min(m-left.Cash, left.Electronic); card > 0 && !cardToCash {
			return fiscal.Payments{}, &Error{Class: Invalid, Code: "return.refund_to_card",
				Cashier: fmt.Sprintf("Оплата картой возвращается на карту: %s из возврата оплачено картой. Выберите возврат на карту", card),
				Hint:    "send refund electronic, or no refund (the card first, the rest in cash); sale.cash_refund_of_card allows cash",
				Err:     fmt.Errorf("refund %s in cash: %s of it was paid by card (cash not yet refunded %s), and sale.cash_refund_of_card is off", m, card, left.Cash)}
		}
		return fiscal.Payments{Cash: m}, nil
	case "electronic":
		if m > left.Electronic {
			return fiscal.Payments{}, newErr(Invalid, "return.refund", "На карту можно вернуть не больше, чем было оплачено картой",
				"refund %s to the card: the card paid %s not yet refunded", m, left.Electronic)
		}
		return fiscal.Payments{Electronic: m}, nil
	}
	return fiscal.Payments{}, newErr(Invalid, "return.refund", "Неверный способ возврата денег", "refund %q: want cash or electronic", how)
}

// Settle settles every pending document from the printer's own record: a
// fiscalised one is journaled (once: the recorders are idempotent), any
// other is dropped. Until it succeeds the service refuses new documents.
func (s *Service) Settle(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settleLocked(ctx)
}

func (s *Service) settleLocked(ctx context.Context) error {
	docs, err := s.st.PendingDocs(ctx)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if d.Checkpoint == nil {
			// Nothing was sent to the printer for it.
			if err := s.st.DropDoc(ctx, d.ID); err != nil {
				return err
			}
			s.log.Info("settled: never printed", "doc", d.ID)
			continue
		}
		if s.o.Printer == nil {
			return fmt.Errorf("document %s is pending and no printer is configured to settle it", d.ID)
		}
		var cp fiscal.Checkpoint
		if err := json.Unmarshal(d.Checkpoint, &cp); err != nil {
			return fmt.Errorf("document %s: stored checkpoint: %w", d.ID, err)
		}
		var r fiscal.Receipt
		if err := json.Unmarshal(d.Receipt, &r); err != nil {
			return fmt.Errorf("document %s: stored receipt: %w", d.ID, err)
		}
		dec, err := s.o.Printer.Resolve(ctx, cp)
		if err != nil {
			return fmt.Errorf("settle document %s: %w", d.ID, err)
		}
		if dec.Outcome != fiscal.Fiscalised {
			if err := s.st.DropDoc(ctx, d.ID); err != nil {
				return err
			}
			s.log.Warn("settled: not fiscalised, dropped", "doc", d.ID, "outcome", dec.Outcome)
			continue
		}
		if _, err := s.complete(ctx, d, r, fiscal.Result{FD: dec.FD, FP: dec.FP, Change: change(r)}); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == "sale.fiscalised_twice" {
				continue // finished and reported; it must not block the till
			}
			return err
		}
		s.log.Warn("settled: fiscalised before the interruption, journaled", "doc", d.ID, "fd", dec.FD)
	}
	s.settled.Store(true)
	return nil
}
