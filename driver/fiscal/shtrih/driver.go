package shtrih

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"tillagent/driver/fiscal"
)

// Options configure a Driver. Zero values take the defaults noted.
type Options struct {
	Password      uint32        // operator password, default 30
	AdminPassword uint32        // system administrator password, default 30
	ByteTimeout   time.Duration // T_byte, default 150 ms
	Baud          int           // line speed; lengthens the ACK wait for long frames. 0: unknown
	// Timeouts per command code override the vendor table (§3.1).
	Timeouts map[uint16]time.Duration
	// AnswerTimeout overrides every command's answer timeout when set (tests).
	AnswerTimeout time.Duration
	// VATCodes maps tag 1199 values to the FF46 tax byte; nil uses the vendor table.
	VATCodes map[fiscal.VAT]byte
	// BusyWait is the pause before polling again while the device prints (300 ms).
	BusyWait time.Duration
	// PaperWait is how long PrintReceipt waits for paper after a receipt was
	// fiscalised before returning Result.PrintPending (default 0: do not wait).
	PaperWait time.Duration
	// RetryPause is the pause after an ENQ got no reply (default 100 ms, §3.1).
	RetryPause time.Duration
	// AlwaysENQ sends ENQ before every command. By default ENQ is skipped
	// when the previous exchange ended cleanly (the device cannot hold an
	// answer then); every retry still asks with ENQ first.
	AlwaysENQ bool
	Logger    *slog.Logger
}

// DefaultVATCodes is the vendor driver's FF46 tax byte table (§6.7).
var DefaultVATCodes = map[fiscal.VAT]byte{
	fiscal.VAT20: 0x01, fiscal.VAT10: 0x02, fiscal.VAT0: 0x04, fiscal.VATNone: 0x08,
	fiscal.VAT20_120: 0x10, fiscal.VAT10_110: 0x20, fiscal.VAT5: 0x81, fiscal.VAT7: 0x82,
	fiscal.VAT5_105: 0x84, fiscal.VAT7_107: 0x88,
}

var vendorTimeouts = map[uint16]time.Duration{
	CmdShortStatus: 3 * time.Second, CmdFullStatus: 3 * time.Second,
	CmdXReport: 30 * time.Second, CmdZReport: 65 * time.Second,
	CmdOpenShift: 120 * time.Second, 0x16: 60 * time.Second,
}

// Driver is a Shtrih-M printer on one port. Safe for concurrent use: it
// serialises commands.
type Driver struct {
	mu   sync.Mutex
	c    *conn
	port string
	o    Options
}

var _ fiscal.Printer = (*Driver)(nil)

// New starts a driver on rw (an opened serial port). port names it in errors.
// The driver reads rw from its own goroutine until rw returns an error, so
// close the port to stop it.
func New(rw io.ReadWriter, port string, o Options) *Driver {
	if o.Password == 0 {
		o.Password = 30
	}
	if o.AdminPassword == 0 {
		o.AdminPassword = 30
	}
	if o.ByteTimeout == 0 {
		o.ByteTimeout = 150 * time.Millisecond
	}
	if o.VATCodes == nil {
		o.VATCodes = DefaultVATCodes
	}
	if o.BusyWait == 0 {
		o.BusyWait = 300 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	d := &Driver{port: port, o: o}
	d.c = newConn(rw, port, o.ByteTimeout, o.Baud, o.Logger.With("device", "printer", "port", port))
	d.c.alwaysENQ = o.AlwaysENQ
	if o.RetryPause > 0 {
		d.c.retryPause = o.RetryPause
	}
	return d
}

func (d *Driver) String() string { return "Shtrih-M printer on " + d.port }

// WireBytes returns the bytes written and read so far (for the benchmark).
func (d *Driver) WireBytes() (written, read int64) { return d.c.written.Load(), d.c.read.Load() }

func (d *Driver) timeout(cmd uint16) time.Duration {
	if d.o.AnswerTimeout > 0 {
		return d.o.AnswerTimeout
	}
	if t, ok := d.o.Timeouts[cmd]; ok {
		return t
	}
	if t, ok := vendorTimeouts[cmd]; ok {
		return t
	}
	return 30 * time.Second
}

// Do sends a command with the given password and data and returns the answer
// data after the error byte. A non-zero error byte is a *DeviceError. A busy
// device (50h) is waited for: the command was not executed, so it is resent.
func (d *Driver) Do(ctx context.Context, op string, cmd uint16, pwd uint32, data []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.do(ctx, op, cmd, pwd, data)
}

func (d *Driver) do(ctx context.Context, op string, cmd uint16, pwd uint32, data []byte) ([]byte, error) {
	payload := CmdBytes(cmd)
	if cmd != CmdDeviceType {
		payload = AppendLE(payload, uint64(pwd), 4)
	}
	payload = append(payload, data...)
	for busy := 0; ; busy++ {
		ans, err := d.c.exchange(ctx, payload, d.timeout(cmd))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		// 50h, 58h and 6Bh refuse the command without executing it, so it
		// is safe to send again once the printer is ready.
		if ans.Err == 0x50 && busy < 100 {
			if err := sleepCtx(ctx, d.o.BusyWait); err != nil {
				return nil, err
			}
			continue
		}
		if (ans.Err == 0x58 || ans.Err == 0x6B && d.o.PaperWait > 0) && busy < 100 && cmd != CmdContinuePrint {
			st, err := d.waitReady(ctx, d.o.PaperWait)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if st.Submode == 0 {
				continue
			}
		}
		if ans.Err != 0 {
			return nil, &DeviceError{Op: op, Port: d.port, Cmd: cmd, Code: ans.Err}
		}
		return ans.Data, nil
	}
}

// ShortStatus is the decoded 10h answer.
type ShortStatus struct {
	Operator    byte
	Flags       uint16
	Mode        byte
	Submode     byte
	Operations  uint16
	Battery     byte
	Power       byte
	PrintResult int // -1 when the model does not report it
}

// DecodeShortStatus decodes 10h answer data (after ERR). It accepts the
// 14-byte legacy layout and the 15-byte one with the print result.
func DecodeShortStatus(b []byte) (ShortStatus, error) {
	if len(b) < 14 {
		return ShortStatus{}, fmt.Errorf("10h answer of %d bytes: %w", len(b), ErrBadAnswer)
	}
	s := ShortStatus{Operator: b[0], Flags: uint16(LE(b[1:3])), Mode: b[3], Submode: b[4],
		Operations: uint16(b[5]) | uint16(b[10])<<8, Battery: b[6], Power: b[7], PrintResult: -1}
	if len(b) >= 15 {
		s.PrintResult = int(b[14])
	}
	return s, nil
}

// Flag bits of §5.3.
const (
	FlagReceiptRoll    = 1 << 1
	FlagReceiptOptical = 1 << 7
	FlagReceiptLever   = 1 << 9
	FlagCoverOpen      = 1 << 10
)

func (s ShortStatus) status() fiscal.Status {
	m := s.Mode & 0x0F
	return fiscal.Status{
		Mode: s.Mode, Submode: s.Submode, Operator: s.Operator,
		ShiftOpen:       m == 2 || m == 3 || m == 8,
		ShiftExpired:    m == 3,
		ReceiptOpen:     m == 8,
		PaperOut:        s.Submode == 1 || s.Submode == 2 || s.Flags&FlagReceiptOptical == 0,
		CoverOpen:       s.Flags&FlagCoverOpen != 0,
		Printing:        s.Submode == 4 || s.Submode == 5,
		WaitingContinue: s.Submode == 3,
	}
}

func (d *Driver) shortStatus(ctx context.Context) (ShortStatus, error) {
	b, err := d.do(ctx, "read status", CmdShortStatus, d.o.Password, nil)
	if err != nil {
		return ShortStatus{}, err
	}
	return DecodeShortStatus(b)
}

// Status implements fiscal.Printer.
func (d *Driver) Status(ctx context.Context) (fiscal.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.shortStatus(ctx)
	return s.status(), err
}

// FullStatus is the part of the 11h answer technicians look at.
type FullStatus struct {
	Firmware    string
	Build       uint16
	Document    uint16
	Flags       uint16
	Mode        byte
	Submode     byte
	Date        time.Time
	Serial      uint32
	LastShift   uint16
	INN         uint64
	SerialHigh  uint16
	HasSerialHi bool
}

// DecodeFullStatus decodes the legacy 11h layout (§6.3, 47 bytes after CMD).
func DecodeFullStatus(b []byte) (FullStatus, error) {
	if len(b) < 46 {
		return FullStatus{}, fmt.Errorf("11h answer of %d bytes: %w", len(b), ErrBadAnswer)
	}
	// b starts after ERR: spec offset k is b[k-1].
	at := func(off, n int) []byte { return b[off-1 : off-1+n] }
	f := FullStatus{Firmware: FromWin1251(at(2, 2)), Build: uint16(LE(at(4, 2))), Document: uint16(LE(at(10, 2))),
		Flags: uint16(LE(at(12, 2))), Mode: at(14, 1)[0], Submode: at(15, 1)[0],
		Serial: uint32(LE(at(31, 4))), LastShift: uint16(LE(at(35, 2))), INN: LE(at(41, 6))}
	dt, tm := at(24, 3), at(27, 3)
	f.Date = time.Date(2000+int(dt[2]), time.Month(dt[1]), int(dt[0]), int(tm[0]), int(tm[1]), int(tm[2]), 0, time.Local)
	if len(b) >= 48 {
		f.SerialHigh, f.HasSerialHi = uint16(LE(at(47, 2))), true
	}
	return f, nil
}

// FullStatus reads 11h.
func (d *Driver) FullStatus(ctx context.Context) (FullStatus, error) {
	b, err := d.Do(ctx, "read full status", CmdFullStatus, d.o.Password, nil)
	if err != nil {
		return FullStatus{}, err
	}
	return DecodeFullStatus(b)
}

// Clock reads the device's own clock (11h): its wall time, which has no
// zone, read as UTC. The agent uses it as a stopwatch for the offline age
// (store.MarkPrinterClock), so only differences between readings count.
func (d *Driver) Clock(ctx context.Context) (time.Time, error) {
	f, err := d.FullStatus(ctx)
	if err != nil {
		return time.Time{}, err
	}
	t := f.Date
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC), nil
}

// DecodeFNStatus decodes the FF01 answer data (after ERR).
func DecodeFNStatus(b []byte) (fiscal.FNStatus, error) {
	if len(b) < 30 {
		return fiscal.FNStatus{}, fmt.Errorf("FF01 answer of %d bytes: %w", len(b), ErrBadAnswer)
	}
	return fiscal.FNStatus{
		Phase: b[0], Document: b[1], HasDocument: b[2] == 1, ShiftOpen: b[3] == 1,
		Warnings: fiscal.FNWarnings(b[4]), At: fnTime(b[5:10]),
		Serial: string(trimNUL(b[10:26])), LastFD: uint32(LE(b[26:30])),
	}, nil
}

func fnTime(b []byte) time.Time {
	return time.Date(2000+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), 0, 0, time.Local)
}

func (d *Driver) fnStatus(ctx context.Context) (fiscal.FNStatus, error) {
	b, err := d.do(ctx, "read FN status", CmdFNStatus, d.o.AdminPassword, nil)
	if err != nil {
		return fiscal.FNStatus{}, err
	}
	return DecodeFNStatus(b)
}

// FNStatus implements fiscal.Printer.
func (d *Driver) FNStatus(ctx context.Context) (fiscal.FNStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fnStatus(ctx)
}

// Document is the FF0A answer.
type Document struct {
	Type      byte // 3 = receipt
	Ticket    bool
	At        time.Time
	FD, FP    uint32
	Operation byte // receipts: 1–4
	Total     fiscal.Money
}

// DecodeDocument decodes the FF0A answer data (after ERR).
func DecodeDocument(b []byte) (Document, error) {
	if len(b) < 15 {
		return Document{}, fmt.Errorf("FF0A answer of %d bytes: %w", len(b), ErrBadAnswer)
	}
	doc := Document{Type: b[0], Ticket: b[1] == 1, At: fnTime(b[2:7]), FD: uint32(LE(b[7:11])), FP: uint32(LE(b[11:15]))}
	if len(b) >= 21 {
		doc.Operation, doc.Total = b[15], fiscal.Money(LE(b[16:21]))
	}
	return doc, nil
}

// FindDocument reads FF0A for FD number fd. A missing document is ErrNoDocument.
func (d *Driver) FindDocument(ctx context.Context, fd uint32) (Document, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.findDocument(ctx, fd)
}

func (d *Driver) findDocument(ctx context.Context, fd uint32) (Document, error) {
	b, err := d.do(ctx, fmt.Sprintf("find document %d", fd), CmdFindDocument, d.o.AdminPassword, AppendLE(nil, uint64(fd), 4))
	if err != nil {
		return Document{}, err
	}
	return DecodeDocument(b)
}

// waitReady polls 10h while the device prints, sends B0h when it waits for
// continue-print, and returns the status once it is idle. Paper out returns
// the status with PaperOut set after paperWait.
func (d *Driver) waitReady(ctx context.Context, paperWait time.Duration) (ShortStatus, error) {
	deadline := time.Now().Add(paperWait)
	for {
		s, err := d.shortStatus(ctx)
		if err != nil {
			return s, err
		}
		switch s.Submode {
		case 0:
			return s, nil
		case 3:
			if _, err := d.do(ctx, "continue print", CmdContinuePrint, d.o.Password, nil); err != nil {
				return s, err
			}
			continue
		case 1, 2:
			if time.Now().After(deadline) {
				return s, nil
			}
		}
		if err := sleepCtx(ctx, d.o.BusyWait); err != nil {
			return s, err
		}
	}
}

// OpenShift implements fiscal.Printer: FF41, cashier (1021) by FF0C, E0h.
func (d *Driver) OpenShift(ctx context.Context, cashier string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cashier != "" {
		if _, err := d.do(ctx, "begin shift open", CmdBeginOpenShift, d.o.AdminPassword, nil); err != nil {
			return err
		}
		if _, err := d.do(ctx, "send cashier", CmdSendTLV, d.o.AdminPassword, TLV(1021, CP866(cashier))); err != nil {
			return err
		}
	}
	_, err := d.do(ctx, "open shift", CmdOpenShift, d.o.Password, nil)
	return err
}

// XReport implements fiscal.Printer.
func (d *Driver) XReport(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.do(ctx, "X report", CmdXReport, d.o.AdminPassword, nil); err != nil {
		return err
	}
	_, err := d.waitReady(ctx, d.o.PaperWait)
	return err
}

// ZReport implements fiscal.Printer.
func (d *Driver) ZReport(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.do(ctx, "Z report", CmdZReport, d.o.AdminPassword, nil); err != nil {
		return err
	}
	_, err := d.waitReady(ctx, d.o.PaperWait)
	return err
}

// ContinuePrint implements fiscal.Printer.
func (d *Driver) ContinuePrint(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.do(ctx, "continue print", CmdContinuePrint, d.o.Password, nil)
	return err
}

// RepeatLastDocument prints a copy of the last closed receipt (8Ch), for a
// paper copy lost to a jam or a power cut; nothing is fiscalised again.
func (d *Driver) RepeatLastDocument(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.do(ctx, "repeat last document", CmdRepeatDoc, d.o.Password, nil); err != nil {
		return err
	}
	_, err := d.waitReady(ctx, d.o.PaperWait)
	return err
}

// CancelReceipt implements fiscal.Printer: 88h if a receipt is open.
func (d *Driver) CancelReceipt(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.shortStatus(ctx)
	if err != nil {
		return err
	}
	if s.Mode&0x0F != 8 {
		return nil
	}
	_, err = d.do(ctx, "cancel receipt", CmdCancel, d.o.Password, nil)
	return err
}

// PrintText implements fiscal.Printer.
func (d *Driver) PrintText(ctx context.Context, lines []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range lines {
		if err := d.printLine(ctx, l); err != nil {
			return err
		}
	}
	_, err := d.waitReady(ctx, d.o.PaperWait)
	return err
}

// printLine is 17h on the receipt roll, text padded to 40 bytes.
func (d *Driver) printLine(ctx context.Context, s string) error {
	t := Win1251(s)
	if len(t) > 40 {
		t = t[:40]
	}
	data := append([]byte{0x02}, t...)
	data = append(data, make([]byte, 40-len(t))...)
	_, err := d.do(ctx, "print line", CmdPrintLine, d.o.Password, data)
	return err
}

// TLV encodes one tag (2-byte LE tag, 2-byte LE length, value).
func TLV(tag uint16, v []byte) []byte {
	b := AppendLE(nil, uint64(tag), 2)
	b = AppendLE(b, uint64(len(v)), 2)
	return append(b, v...)
}

// Operation2 encodes FF46 data after the password (§6.7).
func Operation2(kind fiscal.Kind, l fiscal.Line, vat byte) []byte {
	b := []byte{byte(kind)}
	b = AppendLE(b, uint64(l.Qty), 6)
	b = AppendLE(b, uint64(l.Price), 5)
	b = AppendLE(b, uint64(l.Sum), 5)
	b = append(b, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF) // VAT amount: the device computes it
	dept, method, subject := l.Department, l.Method, l.Subject
	if dept == 0 {
		dept = 1
	}
	if method == 0 {
		method = fiscal.MethodFullPayment
	}
	if subject == 0 {
		subject = fiscal.SubjectGoods
	}
	b = append(b, vat, dept, method, subject)
	name := Win1251(l.Name)
	if len(name) > 128 {
		name = name[:128]
	}
	return append(b, name...)
}

// CloseReceipt2 encodes FF45 data after the password (§6.8).
func CloseReceipt2(p fiscal.Payments, taxSystem byte, text string) []byte {
	var b []byte
	b = AppendLE(b, uint64(p.Cash), 5)
	b = AppendLE(b, uint64(p.Electronic), 5)
	b = append(b, make([]byte, 5*11)...) // payments 3…13
	b = AppendLE(b, uint64(p.Prepayment), 5)
	b = AppendLE(b, uint64(p.Postpayment), 5)
	b = AppendLE(b, uint64(p.CounterProvided), 5)
	b = append(b, 0)                    // rounding
	b = append(b, make([]byte, 5*6)...) // tax sums: the device computes them
	b = append(b, 1<<taxSystem)
	t := Win1251(text)
	if len(t) > 64 {
		t = t[:64]
	}
	return append(b, t...)
}

// CloseAnswer is the FF45 answer.
type CloseAnswer struct {
	Change fiscal.Money
	FD, FP uint32
}

// DecodeCloseAnswer decodes FF45 answer data (after ERR).
func DecodeCloseAnswer(b []byte) (CloseAnswer, error) {
	if len(b) < 13 {
		return CloseAnswer{}, fmt.Errorf("FF45 answer of %d bytes: %w", len(b), ErrBadAnswer)
	}
	return CloseAnswer{Change: fiscal.Money(LE(b[0:5])), FD: uint32(LE(b[5:9])), FP: uint32(LE(b[9:13]))}, nil
}

// openType maps the receipt kind to the 8Dh document type (§6.5).
func openType(k fiscal.Kind) byte {
	switch k {
	case fiscal.SaleReturn:
		return 2
	case fiscal.Buy:
		return 1
	case fiscal.BuyReturn:
		return 3
	}
	return 0
}

// PrintReceipt implements fiscal.Printer:
// 10h → FF01 (checkpoint) → 8Dh → FF0C tags → 17h text → FF46 [FF4D] … → FF45 → wait for print.
func (d *Driver) PrintReceipt(ctx context.Context, r fiscal.Receipt, save func(context.Context, fiscal.Checkpoint) error) (fiscal.Result, error) {
	if err := r.Validate(); err != nil {
		return fiscal.Result{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	op := "print receipt " + r.ID
	st, err := d.waitReady(ctx, 0)
	if err != nil {
		return fiscal.Result{}, err
	}
	s := st.status()
	switch {
	case s.PaperOut:
		return fiscal.Result{}, &DeviceError{Op: op, Port: d.port, Cmd: CmdShortStatus, Code: 0x6B}
	case s.CoverOpen:
		return fiscal.Result{}, &StateError{Op: op, Port: d.port, Health: "printer.cover_open", Msg: "cover open: close it"}
	case s.ReceiptOpen:
		return fiscal.Result{}, &DeviceError{Op: op, Port: d.port, Cmd: CmdShortStatus, Code: 0x4A}
	case s.ShiftExpired:
		return fiscal.Result{}, &DeviceError{Op: op, Port: d.port, Cmd: CmdShortStatus, Code: 0x4E}
	case !s.ShiftOpen:
		return fiscal.Result{}, &DeviceError{Op: op, Port: d.port, Cmd: CmdShortStatus, Code: 0x3D}
	}
	vat := make([]byte, len(r.Lines))
	for i, l := range r.Lines {
		v, ok := d.o.VATCodes[l.VAT]
		if !ok {
			return fiscal.Result{}, fmt.Errorf("%s: line %d: no tax byte for VAT %d", op, i+1, l.VAT)
		}
		vat[i] = v
	}
	// Receipt tags, checked before anything reaches the device: a tag over
	// 250 bytes would need FF32/FF33/FF64, and a refusal after 8Dh leaves
	// an open receipt behind.
	var tlv []byte
	for _, t := range []struct {
		tag uint16
		v   []byte
	}{{1021, CP866(r.Cashier)}, {1203, CP866(r.CashierINN)}, {1008, CP866(r.BuyerContact)}} {
		if len(t.v) > 0 {
			tlv = append(tlv, TLV(t.tag, t.v)...)
		}
	}
	if r.Loyalty != nil {
		inner := append(TLV(1085, CP866(r.Loyalty.Name)), TLV(1086, CP866(r.Loyalty.Value))...)
		tlv = append(tlv, TLV(1084, inner)...)
	}
	for rest := tlv; len(rest) > 0; {
		n := 4 + int(LE(rest[2:4]))
		if n > 250 {
			return fiscal.Result{}, fmt.Errorf("%s: tag %d is %d bytes; FF0C takes 250 (longer tags need FF32/FF33/FF64, not supported)", op, LE(rest[:2]), n)
		}
		rest = rest[n:]
	}
	fn, err := d.fnStatus(ctx)
	if err != nil {
		return fiscal.Result{}, err
	}
	cp := fiscal.Checkpoint{ReceiptID: r.ID, LastFD: fn.LastFD, Kind: r.Kind, Total: r.Total()}
	if save != nil {
		if err := save(ctx, cp); err != nil {
			return fiscal.Result{}, fmt.Errorf("%s: save checkpoint: %w", op, err)
		}
	}
	if _, err := d.do(ctx, op+": open", CmdOpenReceipt, d.o.Password, []byte{openType(r.Kind)}); err != nil {
		return fiscal.Result{}, err
	}
	for len(tlv) > 0 {
		// FF0C takes ≤ 250 bytes; split on whole TLVs.
		n := 0
		for n < len(tlv) {
			l := 4 + int(LE(tlv[n+2:n+4]))
			if n+l > 250 && n > 0 {
				break
			}
			n += l
		}
		if _, err := d.do(ctx, op+": send tags", CmdSendTLV, d.o.AdminPassword, tlv[:n]); err != nil {
			return fiscal.Result{}, err
		}
		tlv = tlv[n:]
	}
	for _, t := range r.Text {
		if err := d.printLine(ctx, t); err != nil {
			return fiscal.Result{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	for i, l := range r.Lines {
		if _, err := d.do(ctx, fmt.Sprintf("%s: line %d", op, i+1), CmdOperation2, d.o.Password, Operation2(r.Kind, l, vat[i])); err != nil {
			return fiscal.Result{}, err
		}
		if l.Measure != 0 {
			if _, err := d.do(ctx, fmt.Sprintf("%s: line %d measure", op, i+1), CmdSendTLVToItem, d.o.AdminPassword, TLV(2108, []byte{l.Measure})); err != nil {
				return fiscal.Result{}, err
			}
		}
	}
	b, err := d.do(ctx, op+": close", CmdCloseReceipt2, d.o.AdminPassword, CloseReceipt2(r.Payments, r.TaxSystem, ""))
	if err != nil {
		return fiscal.Result{}, err
	}
	ca, err := DecodeCloseAnswer(b)
	if err != nil {
		return fiscal.Result{}, fmt.Errorf("%s: %w", op, err)
	}
	res := fiscal.Result{FD: ca.FD, FP: ca.FP, Change: ca.Change}
	// The receipt is fiscalised: from here on an error must not hide FD/FP.
	st, err = d.waitReady(ctx, d.o.PaperWait)
	if err != nil || st.Submode != 0 {
		res.PrintPending = true
		d.o.Logger.Warn("receipt fiscalised, printout not finished", "port", d.port, "receipt", r.ID, "fd", res.FD, "submode", st.Submode, "err", err)
	}
	return res, nil
}

// Resolve implements fiscal.Printer (§9): a receipt whose FD came after the
// checkpoint and matches its kind and total was fiscalised; an open receipt
// is cancelled; otherwise it never started.
func (d *Driver) Resolve(ctx context.Context, cp fiscal.Checkpoint) (fiscal.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	op := "resolve receipt " + cp.ReceiptID
	fn, err := d.fnStatus(ctx)
	if err != nil {
		return fiscal.Decision{}, fmt.Errorf("%s: %w", op, err)
	}
	if fn.LastFD > cp.LastFD {
		// Documents after the checkpoint: only our receipt can be among them
		// (the driver is serialised), but check type, kind and total anyway.
		for fd := cp.LastFD + 1; fd <= fn.LastFD; fd++ {
			doc, err := d.findDocument(ctx, fd)
			if errors.Is(err, ErrNoDocument) {
				continue
			}
			if err != nil {
				return fiscal.Decision{}, fmt.Errorf("%s: %w", op, err)
			}
			if doc.Type == 3 && doc.Operation == byte(cp.Kind) && doc.Total == cp.Total {
				if _, err := d.waitReady(ctx, 0); err != nil {
					return fiscal.Decision{}, fmt.Errorf("%s: %w", op, err)
				}
				return fiscal.Decision{Outcome: fiscal.Fiscalised, FD: doc.FD, FP: doc.FP}, nil
			}
		}
	}
	st, err := d.shortStatus(ctx)
	if err != nil {
		return fiscal.Decision{}, fmt.Errorf("%s: %w", op, err)
	}
	if st.Mode&0x0F == 8 {
		if _, err := d.do(ctx, op+": cancel", CmdCancel, d.o.Password, nil); err != nil {
			return fiscal.Decision{}, err
		}
		return fiscal.Decision{Outcome: fiscal.OpenCancelled}, nil
	}
	if fn.Document == 0x04 {
		// Only the FN holds the open receipt.
		if _, err := d.do(ctx, op+": cancel in FN", CmdFNCancelDoc, d.o.AdminPassword, nil); err != nil {
			return fiscal.Decision{}, err
		}
		return fiscal.Decision{Outcome: fiscal.OpenCancelled}, nil
	}
	return fiscal.Decision{Outcome: fiscal.NeverStarted}, nil
}
