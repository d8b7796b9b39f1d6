package emulator

import (
	"hash/fnv"
	"math/bits"
	"time"

	"tillagent/driver/fiscal/shtrih"
)

// Error bytes the emulator answers with (spec §8; where the spec marks a code
// [uncertain], the choice is noted).
const (
	eNoData        = 0x08
	eFNState       = 0x02
	eParams        = 0x33
	eUnsupported   = 0x37
	eShiftOpen     = 0x3C
	eShiftClosed   = 0x3D // also for 41h with the shift closed [uncertain: 73h on some models]
	ePayments      = 0x45
	eTotalOverflow = 0x48
	eWrongType     = 0x49
	eReceiptOpen   = 0x4A
	eBufferFull    = 0x4B
	eCashless      = 0x4D
	eShiftExpired  = 0x4E
	ePassword      = 0x4F
	eBusy          = 0x50
	eReceiptClosed = 0x55 // also for 88h without a receipt [uncertain]
	eNoRepeat      = 0x56
	eContinue      = 0x58
	ePaper         = 0x6B
	eZeroTotal     = 0x8E
	maxItems       = 200
)

// vat1199 maps the FF46 tax byte to tag 1199 (both vendor tables for 7/107).
var vat1199 = map[byte]byte{0x01: 1, 0x02: 2, 0x04: 5, 0x08: 6, 0x10: 3, 0x20: 4, 0x81: 7, 0x82: 8, 0x84: 9, 0x88: 10, 0x90: 10}

type receipt struct {
	docType  byte // 8Dh type 0…3
	doc      Doc
	operator byte
}

type device struct {
	cfg *Config

	shiftOpen, expired bool
	shiftNo            uint16
	receiptNo          uint16 // receipts in the shift
	receipt            *receipt
	shiftTags          *Doc // FF41 started: tags for the shift-open report

	paper         bool
	submode       byte // 0, 1 passive paper-out, 2 active, 3 waiting B0h, 5 printing
	printingUntil time.Time
	cover         bool

	lastFD   uint32
	docs     map[uint32]int // FD → index in journal
	journal  []Doc
	dirty    bool
	warnings byte
	docNo    uint16 // through document number (11h)
}

func newDevice(cfg *Config) device {
	d := device{cfg: cfg, paper: true, lastFD: cfg.LastFD, docs: map[uint32]int{}}
	for _, doc := range cfg.Journal {
		d.journal = append(d.journal, doc)
		d.docs[doc.FD] = len(d.journal) - 1
		d.lastFD = max(d.lastFD, doc.FD)
		d.docNo++
		d.shiftNo = max(d.shiftNo, doc.Shift)
		switch doc.Kind {
		case "shift_open":
			d.shiftOpen, d.receiptNo = true, 0
		case "shift_close":
			d.shiftOpen = false
		case "receipt":
			d.receiptNo = max(d.receiptNo, doc.Number)
		}
	}
	return d
}

func (d *device) powerCut() {
	// Printing stops; a half-printed document waits for continue after power-up.
	if d.submode == 5 {
		d.submode = 0
	}
}

func (d *device) paperOut(active bool) {
	d.paper = false
	if active {
		d.submode = 2
	} else if d.submode == 0 || d.submode == 5 {
		d.submode = 1
	}
}

func (d *device) loadPaper() {
	d.paper = true
	switch d.submode {
	case 2:
		d.submode = 3
	case 1:
		d.submode = 0
	}
}

func (d *device) mode() byte {
	switch {
	case d.receipt != nil:
		return 8 | d.receipt.docType<<4
	case d.shiftOpen && d.expired:
		return 3
	case d.shiftOpen:
		return 2
	}
	return 4
}

func (d *device) curSubmode() byte {
	if d.submode == 5 && !time.Now().Before(d.printingUntil) {
		d.submode = 0
	}
	return d.submode
}

func (d *device) flags() uint16 {
	f := uint16(1<<0 | 1<<1 | 1<<6 | 1<<9) // rolls present, levers down
	if d.paper {
		f |= 1 << 7
	}
	if d.cover {
		f |= 1 << 10
	}
	return f
}

// operator resolves an operator password: cashiers 1–28, admin 29, sysadmin 30.
func (d *device) operator(pwd uint32) (byte, bool) {
	switch {
	case pwd == d.cfg.SysAdminPassword:
		return 30, true
	case pwd == d.cfg.AdminPassword:
		return 29, true
	case pwd >= 1 && pwd <= 28:
		return byte(pwd), true
	}
	return 0, false
}

type class int

const (
	anyOperator class = iota
	admin
	sysadmin
	noPassword
)

// command table: password class, allowed data lengths after the password,
// whether it prints (paper needed, blocked while printing).
type spec struct {
	class          class
	minLen, maxLen int
	prints         bool
}

var commands = map[uint16]spec{
	shtrih.CmdShortStatus:    {anyOperator, 0, 0, false},
	shtrih.CmdFullStatus:     {anyOperator, 0, 0, false},
	shtrih.CmdPrintLine:      {anyOperator, 2, 201, true},
	shtrih.CmdCut:            {anyOperator, 1, 1, true},
	shtrih.CmdXReport:        {admin, 0, 0, true},
	shtrih.CmdZReport:        {admin, 0, 0, true},
	shtrih.CmdCancel:         {anyOperator, 0, 0, true},
	shtrih.CmdRepeatDoc:      {anyOperator, 0, 0, true},
	shtrih.CmdOpenReceipt:    {anyOperator, 1, 1, true},
	shtrih.CmdContinuePrint:  {anyOperator, 0, 0, false},
	shtrih.CmdOpenShift:      {anyOperator, 0, 0, true},
	shtrih.CmdDeviceType:     {noPassword, 0, 0, false},
	shtrih.CmdFNStatus:       {sysadmin, 0, 0, false},
	shtrih.CmdFNSerial:       {sysadmin, 0, 0, false},
	shtrih.CmdFNCancelDoc:    {sysadmin, 0, 0, false},
	shtrih.CmdFindDocument:   {sysadmin, 4, 4, false},
	shtrih.CmdSendTLV:        {sysadmin, 4, 250, false},
	shtrih.CmdShiftParams:    {sysadmin, 0, 0, false},
	shtrih.CmdBeginOpenShift: {sysadmin, 0, 0, false},
	shtrih.CmdCloseReceipt2:  {sysadmin, 112, 176, true},
	shtrih.CmdOperation2:     {anyOperator, 26, 154, true},
	shtrih.CmdSendTLVToItem:  {sysadmin, 4, 250, false},
}

// queries work in every submode.
var queries = map[uint16]bool{shtrih.CmdShortStatus: true, shtrih.CmdFullStatus: true, shtrih.CmdDeviceType: true,
	shtrih.CmdFNStatus: true, shtrih.CmdFNSerial: true, shtrih.CmdFindDocument: true, shtrih.CmdShiftParams: true}

// execute runs one command payload and returns the answer payload.
// paperRunsOut: the paper ends while this command prints (fault).
func (d *device) execute(payload []byte, paperRunsOut bool) []byte {
	cmd, data, err := shtrih.SplitCmd(payload)
	answer := func(code byte, rest ...byte) []byte {
		return append(append(shtrih.CmdBytes(cmd), code), rest...)
	}
	if err != nil {
		return []byte{payload[0], eUnsupported}
	}
	sp, ok := commands[cmd]
	if !ok {
		return answer(eUnsupported)
	}
	var op byte
	if sp.class != noPassword {
		if len(data) < 4 {
			return answer(eParams)
		}
		pwd := uint32(shtrih.LE(data[:4]))
		data = data[4:]
		switch sp.class {
		case sysadmin:
			if pwd != d.cfg.SysAdminPassword {
				return answer(ePassword)
			}
			op = 30
		case admin:
			if pwd != d.cfg.SysAdminPassword && pwd != d.cfg.AdminPassword {
				return answer(ePassword)
			}
			op, _ = d.operator(pwd)
		default:
			if op, ok = d.operator(pwd); !ok {
				return answer(ePassword)
			}
		}
	}
	if len(data) < sp.minLen || len(data) > sp.maxLen {
		return answer(eParams)
	}
	if !queries[cmd] {
		switch d.curSubmode() {
		case 5:
			return answer(eBusy)
		case 3:
			if cmd != shtrih.CmdContinuePrint {
				return answer(eContinue)
			}
		case 1, 2:
			if sp.prints || cmd == shtrih.CmdContinuePrint {
				return answer(ePaper)
			}
		}
	}
	docs := len(d.journal)
	code, rest := d.run(cmd, op, data)
	if code == 0 && sp.prints {
		if paperRunsOut {
			d.paperOut(true)
			if len(d.journal) > docs {
				d.journal[len(d.journal)-1].Printed = false // fiscalised, paper copy unfinished
			}
		} else if d.cfg.PrintTime > 0 {
			d.submode, d.printingUntil = 5, time.Now().Add(d.cfg.PrintTime)
		}
	}
	return answer(code, rest...)
}

func (d *device) now() time.Time { return d.cfg.Now() }

func fnDateTime(t time.Time) []byte {
	return []byte{byte(t.Year() % 100), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute())}
}

// fiscalSign is a stand-in for the FN's crypto: deterministic per document.
func fiscalSign(serial string, fd uint32, total int64, at time.Time) uint32 {
	h := fnv.New32a()
	h.Write([]byte(serial))
	h.Write(shtrih.AppendLE(nil, uint64(fd), 4))
	h.Write(shtrih.AppendLE(nil, uint64(total), 8))
	h.Write(shtrih.AppendLE(nil, uint64(at.Unix()), 8))
	return h.Sum32()
}

// addDoc registers a fiscal document in the FN and the journal.
func (d *device) addDoc(doc Doc) Doc {
	d.lastFD++
	d.docNo++
	doc.FD = d.lastFD
	doc.At = d.now().Truncate(time.Minute)
	doc.Shift = d.shiftNo
	doc.FP = fiscalSign(d.cfg.FNSerial, doc.FD, doc.T1020, doc.At)
	doc.Printed = d.paper
	d.journal = append(d.journal, doc)
	d.docs[doc.FD] = len(d.journal) - 1
	d.dirty = true
	return doc
}

func (d *device) flushJournal() {
	if !d.dirty || d.cfg.JournalPath == "" {
		return
	}
	if err := writeJournal(d.cfg.JournalPath, d.journal); err != nil {
		d.cfg.Logger.Error("write journal", "path", d.cfg.JournalPath, "err", err)
		return
	}
	d.dirty = false
}

func (d *device) run(cmd uint16, op byte, data []byte) (byte, []byte) {
	switch cmd {
	case shtrih.CmdShortStatus:
		ops := 0
		if d.receipt != nil {
			ops = len(d.receipt.doc.Items)
		}
		b := []byte{op}
		b = shtrih.AppendLE(b, uint64(d.flags()), 2)
		// battery and power raw values; legacy FP/EKLZ bytes opaque; 3 reserved.
		b = append(b, d.mode(), d.curSubmode(), byte(ops), 0x9F, 0xE5, 0, 0, byte(ops>>8), 0, 0, 0)
		return 0, b
	case shtrih.CmdFullStatus:
		return 0, d.fullStatus(op)
	case shtrih.CmdPrintLine:
		if d.receipt != nil {
			d.receipt.doc.Text = append(d.receipt.doc.Text, shtrih.FromWin1251(data[1:]))
		}
		return 0, []byte{op}
	case shtrih.CmdCut:
		return 0, []byte{op}
	case shtrih.CmdXReport:
		if d.receipt != nil {
			return eReceiptOpen, nil
		}
		return 0, []byte{op}
	case shtrih.CmdZReport:
		switch {
		case d.receipt != nil:
			return eReceiptOpen, nil
		case !d.shiftOpen:
			return eShiftClosed, nil
		}
		d.addDoc(Doc{Type: 5, Kind: "shift_close"})
		d.shiftOpen, d.expired, d.receiptNo = false, false, 0
		return 0, []byte{op}
	case shtrih.CmdCancel:
		if d.receipt == nil {
			return eReceiptClosed, nil
		}
		d.receipt = nil
		return 0, []byte{op}
	case shtrih.CmdFNCancelDoc:
		if d.receipt == nil {
			return eFNState, nil
		}
		d.receipt = nil
		return 0, nil
	case shtrih.CmdRepeatDoc:
		for i := len(d.journal) - 1; i >= 0; i-- {
			if d.journal[i].Type == 3 {
				d.journal[i].Reprints++
				d.journal[i].Printed = true
				d.dirty = true
				return 0, []byte{op}
			}
		}
		return eNoRepeat, nil
	case shtrih.CmdOpenReceipt:
		if data[0] > 3 {
			return eParams, nil
		}
		if code := d.canOpenReceipt(); code != 0 {
			return code, nil
		}
		d.openReceipt(data[0], op)
		return 0, []byte{op}
	case shtrih.CmdContinuePrint:
		if d.submode == 3 {
			d.submode = 0
			for i := range d.journal {
				d.journal[i].Printed = true
			}
			d.dirty = true
		}
		return 0, []byte{op}
	case shtrih.CmdOpenShift:
		switch {
		case d.receipt != nil:
			return eReceiptOpen, nil
		case d.shiftOpen:
			return eShiftOpen, nil // [uncertain: 73h on some models]
		}
		d.shiftNo++
		doc := Doc{Type: 2, Kind: "shift_open"}
		if d.shiftTags != nil {
			doc.T1021, doc.Tags = d.shiftTags.T1021, d.shiftTags.Tags
			d.shiftTags = nil
		}
		d.shiftOpen, d.expired = true, false
		d.addDoc(doc)
		return 0, []byte{op}
	case shtrih.CmdDeviceType:
		name := shtrih.Win1251("ШТРИХ-М-01Ф (эмулятор)")
		return 0, append([]byte{0, 0, 1, 12, 0, 0}, name...)
	case shtrih.CmdFNStatus:
		return 0, d.fnStatus()
	case shtrih.CmdFNSerial:
		return 0, []byte(d.cfg.FNSerial)
	case shtrih.CmdFindDocument:
		i, ok := d.docs[uint32(shtrih.LE(data))]
		if !ok {
			return eNoData, nil
		}
		doc := &d.journal[i]
		b := []byte{doc.Type, 0}
		b = append(b, fnDateTime(doc.At)...)
		b = shtrih.AppendLE(b, uint64(doc.FD), 4)
		b = shtrih.AppendLE(b, uint64(doc.FP), 4)
		if doc.Type == 3 {
			b = append(b, doc.T1054)
			b = shtrih.AppendLE(b, uint64(doc.T1020), 5)
		}
		return 0, b
	case shtrih.CmdShiftParams:
		st := byte(0)
		if d.shiftOpen {
			st = 1
		}
		b := []byte{st}
		b = shtrih.AppendLE(b, uint64(d.shiftNo), 2)
		return 0, shtrih.AppendLE(b, uint64(d.receiptNo+1), 2)
	case shtrih.CmdBeginOpenShift:
		if d.shiftOpen {
			return eShiftOpen, nil
		}
		d.shiftTags = &Doc{}
		return 0, nil
	case shtrih.CmdSendTLV:
		var target *Doc
		switch {
		case d.receipt != nil:
			target = &d.receipt.doc
		case d.shiftTags != nil:
			target = d.shiftTags
		default:
			return eFNState, nil
		}
		if !applyTLV(target, data) {
			return eParams, nil
		}
		return 0, nil
	case shtrih.CmdSendTLVToItem:
		if d.receipt == nil || len(d.receipt.doc.Items) == 0 {
			return eFNState, nil
		}
		it := &d.receipt.doc.Items[len(d.receipt.doc.Items)-1]
		ok := walkTLV(data, func(tag uint16, v []byte) bool {
			if tag == 2108 && len(v) == 1 {
				it.T2108 = v[0]
			}
			return true
		})
		if !ok {
			return eParams, nil
		}
		return 0, nil
	case shtrih.CmdOperation2:
		return d.operation(op, data)
	case shtrih.CmdCloseReceipt2:
		return d.closeReceipt(data)
	}
	return eUnsupported, nil
}

func (d *device) canOpenReceipt() byte {
	switch {
	case d.receipt != nil:
		return eReceiptOpen
	case !d.shiftOpen:
		return eShiftClosed
	case d.expired:
		return eShiftExpired
	}
	return 0
}

func (d *device) openReceipt(docType, op byte) {
	// 8Dh type → tag 1054: 0→1, 2→2, 1→3, 3→4 (§6.5).
	kind := [4]byte{1, 3, 2, 4}[docType]
	d.receipt = &receipt{docType: docType, operator: op, doc: Doc{Type: 3, Kind: "receipt", T1054: kind}}
}

func (d *device) operation(op byte, b []byte) (byte, []byte) {
	kind := b[0]
	if kind < 1 || kind > 4 {
		return eParams, nil
	}
	if d.receipt == nil {
		// A third-party driver sends FF46 directly: the first line opens the receipt.
		if code := d.canOpenReceipt(); code != 0 {
			return code, nil
		}
		d.openReceipt([5]byte{0, 0, 2, 1, 3}[kind], op)
	}
	r := d.receipt
	if r.doc.T1054 != kind {
		return eWrongType, nil
	}
	if len(r.doc.Items) >= maxItems {
		return eBufferFull, nil
	}
	qty := int64(shtrih.LE(b[1:7]))
	price := int64(shtrih.LE(b[7:12]))
	sumRaw := shtrih.LE(b[12:17])
	vat, ok := vat1199[b[22]]
	if !ok || qty == 0 || price > 9_999_999_999 {
		return eParams, nil
	}
	// price × quantity in millionths of a kopeck needs up to 82 bits.
	ph, pl := bits.Mul64(uint64(price), uint64(qty))
	var sum int64
	if sumRaw == 0xFF_FFFF_FFFF {
		// Sum "not given": price × quantity rounded half-up.
		lo, carry := bits.Add64(pl, 500_000, 0)
		if ph+carry >= 1_000_000 {
			return 0x60, nil // multiplication overflow
		}
		q, _ := bits.Div64(ph+carry, lo, 1_000_000)
		sum = int64(q)
	} else {
		sum = int64(sumRaw)
		sh, sl := bits.Mul64(uint64(sum), 1_000_000)
		dl, borrow := bits.Sub64(pl, sl, 0)
		dh, _ := bits.Sub64(ph, sh, borrow)
		if ph < sh || ph == sh && pl < sl {
			dl, borrow = bits.Sub64(sl, pl, 0)
			dh, _ = bits.Sub64(sh, ph, borrow)
		}
		if dh != 0 || dl > 1_000_000 {
			return eParams, nil // 1043 must be 1079 × 1023 ± 1 kop
		}
	}
	if sum > 9_999_999_999 {
		return 0x60, nil
	}
	var total int64
	for _, it := range r.doc.Items {
		total += it.T1043
	}
	if total+sum > 9_999_999_999 {
		return eTotalOverflow, nil
	}
	dept := b[23]
	if dept > 16 && dept != 255 {
		return 0x63, nil
	}
	r.doc.Items = append(r.doc.Items, Item{T1030: shtrih.FromWin1251(b[26:]), T1023: qty, T1079: price, T1043: sum,
		T1199: vat, Dept: dept, T1214: b[24], T1212: b[25]})
	return 0, nil
}

func (d *device) closeReceipt(b []byte) (byte, []byte) {
	if d.receipt == nil {
		return eReceiptClosed, nil
	}
	r := d.receipt
	var pay [16]int64
	for i := range pay {
		pay[i] = int64(shtrih.LE(b[i*5 : i*5+5]))
	}
	var total int64
	for _, it := range r.doc.Items {
		total += it.T1043
	}
	if len(r.doc.Items) == 0 {
		return eFNState, nil
	}
	var cashless int64
	for _, p := range pay[1:13] {
		cashless += p
	}
	nonCash := cashless + pay[13] + pay[14] + pay[15]
	switch {
	case nonCash > total:
		return eCashless, nil
	case nonCash+pay[0] < total:
		return ePayments, nil
	case total == 0 && d.cfg.DenyZeroReceipt:
		return eZeroTotal, nil
	}
	taxSys := b[111] // offsets here are after the password: spec offset − 4
	if taxSys == 0 || taxSys&(taxSys-1) != 0 {
		return eParams, nil // exactly one bit
	}
	cash := total - nonCash
	doc := r.doc
	doc.T1020, doc.T1031, doc.T1081 = total, cash, cashless
	doc.T1215, doc.T1216, doc.T1217 = pay[13], pay[14], pay[15]
	doc.Change = pay[0] - cash
	doc.T1055 = taxSys
	d.receiptNo++
	doc.Number = d.receiptNo
	if t := shtrih.FromWin1251(b[112:]); t != "" {
		doc.Text = append(doc.Text, t)
	}
	doc = d.addDoc(doc)
	d.receipt = nil
	a := shtrih.AppendLE(nil, uint64(doc.Change), 5)
	a = shtrih.AppendLE(a, uint64(doc.FD), 4)
	return 0, shtrih.AppendLE(a, uint64(doc.FP), 4)
}

func (d *device) fnStatus() []byte {
	cur, shift := byte(0), byte(0)
	if d.receipt != nil {
		cur = 0x04
	}
	if d.shiftOpen {
		shift = 1
	}
	b := []byte{0x03, cur, 0, shift, d.warnings}
	b = append(b, fnDateTime(d.now())...)
	sn := make([]byte, 16)
	copy(sn, d.cfg.FNSerial)
	b = append(b, sn...)
	return shtrih.AppendLE(b, uint64(d.lastFD), 4)
}

// fullStatus is the legacy 46-byte 11h layout (§6.3), which clients parse.
func (d *device) fullStatus(op byte) []byte {
	t := d.now()
	b := []byte{op, '0', '1'}                    // firmware version "01"
	b = shtrih.AppendLE(b, 25, 2)                // build
	b = append(b, 24, 6, 21)                     // firmware date
	b = append(b, 1)                             // number in hall
	b = shtrih.AppendLE(b, uint64(d.docNo), 2)   // document through-number
	b = shtrih.AppendLE(b, uint64(d.flags()), 2) //
	b = append(b, d.mode(), d.curSubmode(), 0)   // mode, submode, port
	b = append(b, '0', '1', 0, 0, 1, 1, 21)      // legacy FP version, build, date
	b = append(b, byte(t.Day()), byte(t.Month()), byte(t.Year()%100))
	b = append(b, byte(t.Hour()), byte(t.Minute()), byte(t.Second()))
	b = append(b, 0)                                // legacy FP flags
	b = shtrih.AppendLE(b, uint64(d.cfg.Serial), 4) //
	last := d.shiftNo
	if d.shiftOpen {
		last--
	}
	b = shtrih.AppendLE(b, uint64(last), 2)
	b = shtrih.AppendLE(b, 0, 2) // legacy free FP records
	b = append(b, 1, 0)          // registrations done / left
	return shtrih.AppendLE(b, d.cfg.INN, 6)
}

// walkTLV calls f for each TLV in b; false if b is malformed.
func walkTLV(b []byte, f func(tag uint16, v []byte) bool) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		tag, n := uint16(shtrih.LE(b[:2])), int(shtrih.LE(b[2:4]))
		if len(b) < 4+n {
			return false
		}
		if !f(tag, b[4:4+n]) {
			return false
		}
		b = b[4+n:]
	}
	return true
}

// applyTLV stores document-level tags (strings in CP866).
func applyTLV(doc *Doc, b []byte) bool {
	return walkTLV(b, func(tag uint16, v []byte) bool {
		switch tag {
		case 1021:
			doc.T1021 = shtrih.FromCP866(v)
		case 1203:
			doc.T1203 = shtrih.FromCP866(v)
		case 1008:
			doc.T1008 = shtrih.FromCP866(v)
		case 1084:
			u := &UserReq{}
			ok := walkTLV(v, func(t uint16, w []byte) bool {
				switch t {
				case 1085:
					u.Name = shtrih.FromCP866(w)
					return len(w) <= 64
				case 1086:
					u.Value = shtrih.FromCP866(w)
					return len(w) <= 256
				}
				return false
			})
			if !ok || u.Name == "" {
				return false
			}
			doc.T1084 = u
		default:
			doc.Tags = append(doc.Tags, RawTag{Tag: tag, Value: append([]byte(nil), v...)})
		}
		return true
	})
}
