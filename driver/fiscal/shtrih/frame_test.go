package shtrih

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"tillagent/driver/fiscal"
)

func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pwd(p uint32) []byte { return AppendLE(nil, uint64(p), 4) }

// The spec's §2 test vectors, byte for byte.
func TestSpecVectors(t *testing.T) {
	ff46 := Operation2(fiscal.Sale, fiscal.Line{Name: "Молоко", Qty: fiscal.Units(2), Price: 11249, Sum: 22498, VAT: fiscal.VAT20}, 0x01)
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"10h status pwd 30", append(CmdBytes(CmdShortStatus), pwd(30)...), "02 05 10 1E 00 00 00 0B"},
		{"FF01 FN status", append(CmdBytes(CmdFNStatus), pwd(30)...), "02 06 FF 01 1E 00 00 00 E6"},
		{"88h cancel", append(CmdBytes(CmdCancel), pwd(30)...), "02 05 88 1E 00 00 00 93"},
		{"88h answer", []byte{0x88, 0x00, 0x1E}, "02 03 88 00 1E 95"},
		{"FCh device type", CmdBytes(CmdDeviceType), "02 01 FC FD"},
		{"E0h open shift", append(CmdBytes(CmdOpenShift), pwd(30)...), "02 05 E0 1E 00 00 00 FB"},
		{"41h Z report", append(CmdBytes(CmdZReport), pwd(30)...), "02 05 41 1E 00 00 00 5A"},
		{"8Dh open sale", append(append(CmdBytes(CmdOpenReceipt), pwd(1)...), openType(fiscal.Sale)), "02 06 8D 01 00 00 00 00 8A"},
		{"FF46 item", append(append(CmdBytes(CmdOperation2), pwd(30)...), ff46...),
			"02 26 FF 46 1E 00 00 00 01 80 84 1E 00 00 00 F1 2B 00 00 00 E2 57 00 00 00 FF FF FF FF FF 01 01 04 01 CC EE EB EE EA EE 2C"},
		{"FF4D 2108", append(append(CmdBytes(CmdSendTLVToItem), pwd(30)...), TLV(2108, []byte{11})...), "02 0B FF 4D 1E 00 00 00 3C 08 01 00 0B 99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeFrame(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if want := hx(t, tc.want); !bytes.Equal(got, want) {
				t.Errorf("got  % X\nwant % X", got, want)
			}
			p, rest, err := DecodeFrame(got)
			if err != nil || !bytes.Equal(p, tc.payload) || len(rest) != 0 {
				t.Errorf("decode: % X, rest % X, %v", p, rest, err)
			}
		})
	}
}

func TestDecodeCapturedAnswers(t *testing.T) {
	p, _, err := DecodeFrame(hx(t, "02 10 10 00 1E 92 02 02 00 00 9F E5 18 01 00 92 08 00 75"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAnswer(p)
	if err != nil || a.Cmd != CmdShortStatus || a.Err != 0 {
		t.Fatalf("%+v %v", a, err)
	}
	s, err := DecodeShortStatus(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Operator != 30 || s.Mode != 2 || s.Submode != 0 || s.Flags != 0x0292 || s.PrintResult != -1 {
		t.Errorf("10h: %+v", s)
	}
	if st := s.status(); !st.ShiftOpen || st.ReceiptOpen || st.PaperOut || st.CoverOpen {
		t.Errorf("status: %v", st)
	}

	p, _, err = DecodeFrame(hx(t, "02 21 FF 01 00 03 00 00 01 00 15 07 1D 0B 1D 39 32 38 37 34 34 30 33 30 31 31 32 30 39 39 31 A9 01 00 00 68"))
	if err != nil {
		t.Fatal(err)
	}
	a, err = ParseAnswer(p)
	if err != nil || a.Cmd != CmdFNStatus {
		t.Fatalf("%+v %v", a, err)
	}
	fn, err := DecodeFNStatus(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	if fn.Serial != "9287440301120991" || fn.LastFD != 425 || !fn.ShiftOpen || fn.Phase != 3 || fn.At.Year() != 2021 || fn.At.Month() != 7 || fn.At.Day() != 29 {
		t.Errorf("FF01: %+v", fn)
	}
}

func TestFrameErrors(t *testing.T) {
	if _, err := EncodeFrame(nil); err == nil {
		t.Error("empty payload encoded")
	}
	if _, err := EncodeFrame(make([]byte, 256)); err == nil {
		t.Error("256-byte payload encoded")
	}
	f := hx(t, "02 05 10 1E 00 00 00 0B")
	bad := append([]byte(nil), f...)
	bad[len(bad)-1] ^= 1
	if _, _, err := DecodeFrame(bad); err != ErrBadLRC {
		t.Errorf("bad LRC: %v", err)
	}
	if _, _, err := DecodeFrame(f[:5]); err != ErrShortFrame {
		t.Errorf("short: %v", err)
	}
	if _, _, err := DecodeFrame(f[1:]); err != ErrNoSTX {
		t.Errorf("no STX: %v", err)
	}
}

func TestCloseReceiptLayout(t *testing.T) {
	b := CloseReceipt2(fiscal.Payments{Cash: 29990, CounterProvided: 10000}, 0, "")
	full := append(pwd(30), b...)
	// Spec §6.8 offsets count from the password.
	if got := LE(full[4:9]); got != 29990 {
		t.Errorf("payment 1 = %d", got)
	}
	if got := LE(full[79:84]); got != 10000 {
		t.Errorf("payment 16 = %d", got)
	}
	if full[115] != 1 || len(full) != 116 {
		t.Errorf("tax system byte %d, length %d", full[115], len(full))
	}
}

func TestTextEncodings(t *testing.T) {
	if got := Win1251("Молоко"); !bytes.Equal(got, hx(t, "CC EE EB EE EA EE")) {
		t.Errorf("WIN1251: % X", got)
	}
	if got := CP866("Бонусная"); !bytes.Equal(got, hx(t, "81 AE AD E3 E1 AD A0 EF")) {
		t.Errorf("CP866: % X", got)
	}
	if FromCP866(CP866("СПИСАНО 100")) != "СПИСАНО 100" || FromWin1251(append(Win1251("Чек"), 0, 'x')) != "Чек" {
		t.Error("round trip")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{"02 05 10 1E 00 00 00 0B", "02 10 10 00 1E 92 02 02 00 00 9F E5 18 01 00 92 08 00 75", "02 03 88 00 1E 95", "02 00", "02"} {
		f.Add(hx(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 {
			b[0] = STX
		}
		p, _, err := DecodeFrame(b)
		if err != nil {
			return
		}
		re, err := EncodeFrame(p)
		if err != nil || !bytes.Equal(re, b[:len(re)]) {
			t.Fatalf("round trip: % X → % X (%v)", b, re, err)
		}
		if a, err := ParseAnswer(p); err == nil {
			// Decoders must never panic on any answer data.
			DecodeShortStatus(a.Data)
			DecodeFullStatus(a.Data)
			DecodeFNStatus(a.Data)
			DecodeDocument(a.Data)
			DecodeCloseAnswer(a.Data)
		}
	})
}

func FuzzAnswerDecoders(f *testing.F) {
	f.Add(hx(f, "00 1E 92 02 02 00 00 9F E5 18 01 00 92 08 00"))
	f.Add(hx(f, "00 03 00 00 01 00 15 07 1D 0B 1D 39 32 38 37 34 34 30 33 30 31 31 32 30 39 39 31 A9 01 00 00"))
	f.Add(make([]byte, 47))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(append([]byte{0xFF, 0x01}, b...))
		if err != nil {
			return
		}
		if fn, err := DecodeFNStatus(a.Data); err == nil && len(a.Data) >= 30 && fn.LastFD != uint32(LE(a.Data[26:30])) {
			t.Fatal("last FD misread")
		}
		if s, err := DecodeShortStatus(a.Data); err == nil && s.Mode != a.Data[3] {
			t.Fatal("mode misread")
		}
		DecodeFullStatus(a.Data)
		if d, err := DecodeDocument(a.Data); err == nil && d.FD != uint32(LE(a.Data[7:11])) {
			t.Fatal("FD misread")
		}
	})
}
