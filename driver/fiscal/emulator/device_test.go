package emulator

import (
	"testing"
	"time"

	"tillagent/driver/fiscal/shtrih"
)

// req builds a command payload: code, password, data.
func req(cmd uint16, pwd uint32, data ...byte) []byte {
	b := shtrih.CmdBytes(cmd)
	b = shtrih.AppendLE(b, uint64(pwd), 4)
	return append(b, data...)
}

// item is FF46 data after the password.
func item(op byte, qty, price, sum uint64, vat, dept byte) []byte {
	b := []byte{op}
	b = shtrih.AppendLE(b, qty, 6)
	b = shtrih.AppendLE(b, price, 5)
	b = shtrih.AppendLE(b, sum, 5)
	b = append(b, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, vat, dept, 4, 1)
	return append(b, "Milk"...)
}

// closeData is FF45 data after the password: payments 1–16, tax system bits.
func closeData(pay map[int]uint64, tax byte) []byte {
	var b []byte
	for i := 1; i <= 16; i++ {
		b = shtrih.AppendLE(b, pay[i], 5)
	}
	b = append(b, 0)
	b = append(b, make([]byte, 30)...)
	return append(b, tax)
}

func testDevice(cfg Config) *device {
	cfg.SysAdminPassword, cfg.AdminPassword = 30, 29
	cfg.FNSerial = "9287440301120991"
	cfg.Now = func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) }
	d := newDevice(&cfg)
	return &d
}

// codeOf executes one payload and returns the error byte of its answer,
// checking the answer echoes the command.
func (d *device) codeOf(t *testing.T, p []byte) byte {
	t.Helper()
	ans := d.execute(p, false)
	cmd, rest, err := shtrih.SplitCmd(ans)
	want, _, _ := shtrih.SplitCmd(p)
	if err != nil || cmd != want || len(rest) == 0 {
		t.Fatalf("payload % X: answer % X", p, ans)
	}
	return rest[0]
}

// Every command out of state gets the §8 code a real device answers (the
// [uncertain] ones as chosen in device.go), and changes nothing.
func TestOutOfStateCommands(t *testing.T) {
	var (
		openShift   = req(shtrih.CmdOpenShift, 30)
		openSale    = req(shtrih.CmdOpenReceipt, 30, 0)
		milk        = req(shtrih.CmdOperation2, 30, item(1, 2_000_000, 11249, 22498, 0x01, 1)...)
		cashClose   = req(shtrih.CmdCloseReceipt2, 30, closeData(map[int]uint64{1: 22498}, 1)...)
		fnStatus    = req(shtrih.CmdFNStatus, 30)
		shortStat   = req(shtrih.CmdShortStatus, 30)
		printLine   = req(shtrih.CmdPrintLine, 30, append([]byte{2}, make([]byte, 40)...)...)
		fullReceipt = make([][]byte, 0, 202)
	)
	fullReceipt = append(fullReceipt, openShift, openSale)
	for range maxItems {
		fullReceipt = append(fullReceipt, req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 100, 100, 0x01, 1)...))
	}
	cases := []struct {
		name  string
		cfg   Config
		state func(*device)
		steps [][]byte // all but the last must succeed
		want  byte
	}{
		{"8Dh shift closed", Config{}, nil, [][]byte{openSale}, 0x3D},
		{"8Dh receipt open", Config{}, nil, [][]byte{openShift, openSale, openSale}, 0x4A},
		{"8Dh bad type", Config{}, nil, [][]byte{openShift, req(shtrih.CmdOpenReceipt, 30, 4)}, 0x33},
		{"8Dh shift over 24 h", Config{}, func(d *device) { d.shiftOpen, d.expired = true, true }, [][]byte{openSale}, 0x4E},
		{"FF46 opening a receipt, shift over 24 h", Config{}, func(d *device) { d.shiftOpen, d.expired = true, true }, [][]byte{milk}, 0x4E},
		{"E0h shift open", Config{}, nil, [][]byte{openShift, openShift}, 0x3C},
		{"E0h receipt open", Config{}, nil, [][]byte{openShift, openSale, openShift}, 0x4A},
		{"FF41 shift open", Config{}, nil, [][]byte{openShift, req(shtrih.CmdBeginOpenShift, 30)}, 0x3C},
		{"41h shift closed", Config{}, nil, [][]byte{req(shtrih.CmdZReport, 30)}, 0x3D},
		{"41h receipt open", Config{}, nil, [][]byte{openShift, openSale, req(shtrih.CmdZReport, 30)}, 0x4A},
		{"40h receipt open", Config{}, nil, [][]byte{openShift, openSale, req(shtrih.CmdXReport, 30)}, 0x4A},
		{"88h no receipt", Config{}, nil, [][]byte{openShift, req(shtrih.CmdCancel, 30)}, 0x55},
		{"FF08 no document", Config{}, nil, [][]byte{openShift, req(shtrih.CmdFNCancelDoc, 30)}, 0x02},
		{"FF45 no receipt", Config{}, nil, [][]byte{openShift, cashClose}, 0x55},
		{"FF45 no lines", Config{}, nil, [][]byte{openShift, openSale, cashClose}, 0x02},
		{"FF45 payments below total", Config{}, nil, [][]byte{openShift, openSale, milk,
			req(shtrih.CmdCloseReceipt2, 30, closeData(map[int]uint64{1: 22497}, 1)...)}, 0x45},
		{"FF45 cashless above total", Config{}, nil, [][]byte{openShift, openSale, milk,
			req(shtrih.CmdCloseReceipt2, 30, closeData(map[int]uint64{2: 22000, 16: 1000}, 1)...)}, 0x4D},
		{"FF45 two tax systems", Config{}, nil, [][]byte{openShift, openSale, milk,
			req(shtrih.CmdCloseReceipt2, 30, closeData(map[int]uint64{1: 22498}, 3)...)}, 0x33},
		{"FF45 zero receipt denied", Config{DenyZeroReceipt: true}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 0, 0, 0x01, 1)...),
			req(shtrih.CmdCloseReceipt2, 30, closeData(nil, 1)...)}, 0x8E},
		{"FF46 return line in a sale", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(2, 1_000_000, 100, 100, 0x01, 1)...)}, 0x49},
		{"FF46 sum 2 kop off price × qty", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 2_000_000, 11249, 22500, 0x01, 1)...)}, 0x33},
		{"FF46 unknown VAT byte", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 100, 100, 0x03, 1)...)}, 0x33},
		{"FF46 department 17", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 100, 100, 0x01, 17)...)}, 0x63},
		{"FF46 price × qty overflows", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 1<<48-1, 9_999_999_999, 0xFF_FFFF_FFFF, 0x01, 1)...)}, 0x60},
		{"FF46 receipt total overflows", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 9_999_999_999, 9_999_999_999, 0x01, 1)...),
			req(shtrih.CmdOperation2, 30, item(1, 1_000_000, 1, 1, 0x01, 1)...)}, 0x48},
		{"FF46 line 201", Config{}, nil, append(fullReceipt, milk), 0x4B},
		{"FF4D before any line", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdSendTLVToItem, 30, 0x3C, 0x08, 0x01, 0x00, 0x0B)}, 0x02},
		{"FF0C outside a document", Config{}, nil, [][]byte{openShift,
			req(shtrih.CmdSendTLV, 30, 0xFD, 0x03, 0x01, 0x00, 'x')}, 0x02},
		{"FF0C truncated TLV", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdSendTLV, 30, 0xFD, 0x03, 0x05, 0x00, 'x')}, 0x33},
		{"FF0C 1085 over 64 bytes", Config{}, nil, [][]byte{openShift, openSale,
			req(shtrih.CmdSendTLV, 30, append([]byte{0x3C, 0x04, 69, 0x00, 0x3D, 0x04, 65, 0x00}, make([]byte, 65)...)...)}, 0x33},
		{"FF0A no such FD", Config{}, nil, [][]byte{req(shtrih.CmdFindDocument, 30, 9, 0, 0, 0)}, 0x08},
		{"FF01 cashier password", Config{}, nil, [][]byte{req(shtrih.CmdFNStatus, 1)}, 0x4F},
		{"FF45 admin (29) instead of sysadmin", Config{}, nil, [][]byte{openShift, openSale, milk,
			req(shtrih.CmdCloseReceipt2, 29, closeData(map[int]uint64{1: 22498}, 1)...)}, 0x4F},
		{"40h cashier password", Config{}, nil, [][]byte{openShift, req(shtrih.CmdXReport, 5)}, 0x4F},
		{"10h unknown password", Config{}, nil, [][]byte{req(shtrih.CmdShortStatus, 99)}, 0x4F},
		{"10h with data", Config{}, nil, [][]byte{req(shtrih.CmdShortStatus, 30, 0)}, 0x33},
		{"16h unsupported", Config{}, nil, [][]byte{req(0x16, 30)}, 0x37},
		{"17h waiting for continue", Config{}, func(d *device) { d.submode = 3 }, [][]byte{printLine}, 0x58},
		{"8Dh paper out", Config{}, func(d *device) { d.shiftOpen = true; d.paperOut(false) }, [][]byte{openSale}, 0x6B},
		{"B0h paper out", Config{}, func(d *device) { d.paperOut(true) }, [][]byte{req(shtrih.CmdContinuePrint, 30)}, 0x6B},
		{"8Dh while printing", Config{}, func(d *device) {
			d.shiftOpen, d.submode, d.printingUntil = true, 5, time.Now().Add(time.Hour)
		}, [][]byte{openSale}, 0x50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := testDevice(tc.cfg)
			if tc.state != nil {
				tc.state(d)
			}
			last := tc.steps[len(tc.steps)-1]
			for i, p := range tc.steps[:len(tc.steps)-1] {
				if got := d.codeOf(t, p); got != 0 {
					t.Fatalf("setup step %d % X: %02Xh", i, p, got)
				}
			}
			docs, fd, mode := len(d.journal), d.lastFD, d.mode()
			if got := d.codeOf(t, last); got != tc.want {
				t.Errorf("error %02Xh, want %02Xh", got, tc.want)
			}
			if len(d.journal) != docs || d.lastFD != fd || d.mode() != mode {
				t.Errorf("refused command changed the device: %d docs (was %d), FD %d (was %d), mode %02X (was %02X)",
					len(d.journal), docs, d.lastFD, fd, d.mode(), mode)
			}
		})
	}
	// Queries answer in every state.
	d := testDevice(Config{})
	d.paperOut(true)
	for _, p := range [][]byte{shortStat, fnStatus, req(shtrih.CmdFullStatus, 30)} {
		if got := d.codeOf(t, p); got != 0 {
			t.Errorf("% X with paper out: %02Xh", p, got)
		}
	}
	// Z with the shift over 24 h is the way out, so it is allowed.
	d = testDevice(Config{})
	d.shiftOpen, d.expired = true, true
	if got := d.codeOf(t, req(shtrih.CmdZReport, 30)); got != 0 || d.mode() != 4 {
		t.Errorf("Z in mode 3: %02Xh, mode %d", got, d.mode())
	}
}
