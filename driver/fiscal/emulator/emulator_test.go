package emulator

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"
)

// raw is a byte-level client, as an independent program would see the device.
type raw struct {
	t    *testing.T
	port serial.Port
}

func newRaw(t *testing.T, cfg Config) (*Emulator, *raw) {
	t.Helper()
	if cfg.ByteTimeout == 0 {
		cfg.ByteTimeout = 20 * time.Millisecond
	}
	e := New(cfg)
	p, err := ServePTY(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	port, err := serial.Open(p.Name, &serial.Mode{BaudRate: 115200})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	port.SetReadTimeout(300 * time.Millisecond)
	t.Cleanup(func() { port.Close(); p.Close() })
	return e, &raw{t: t, port: port}
}

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func (r *raw) send(s string) { r.port.Write(h(s)) }

// expect reads exactly len(want) bytes and compares.
func (r *raw) expect(want string) {
	r.t.Helper()
	w := h(want)
	got := make([]byte, 0, len(w))
	buf := make([]byte, 256)
	for len(got) < len(w) {
		n, err := r.port.Read(buf[:len(w)-len(got)])
		if err != nil || n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, w) {
		r.t.Fatalf("got  % X\nwant % X", got, w)
	}
}

// silent checks that nothing arrives.
func (r *raw) silent() {
	r.t.Helper()
	buf := make([]byte, 16)
	if n, _ := r.port.Read(buf); n != 0 {
		r.t.Fatalf("unexpected % X", buf[:n])
	}
}

// The handshake table of §3.2, byte for byte.
func TestHandshakeTable(t *testing.T) {
	_, r := newRaw(t, Config{})
	r.send("05")
	r.expect("15") // idle: NAK
	r.send("02 05 88 1E 00 00 00 93")
	r.expect("06 02 02 88 55 DF") // ACK, then 88h with 55h (no receipt open): CMD ERR only
	r.send("05")
	r.expect("06 02 02 88 55 DF") // pending answer repeated only after ENQ
	r.send("15")
	r.silent() // NAK: kept, not resent by itself
	r.send("06")
	r.send("05")
	r.expect("15") // ACKed: cleared
	r.send("02 05 10 1E 00 00 00 0C")
	r.expect("15") // bad LRC: NAK, not executed
	r.send("05")
	r.expect("15")
	r.send("02 05 10 1E")
	time.Sleep(60 * time.Millisecond) // incomplete: discarded silently after T_byte
	r.silent()
	r.send("FF 00 05")
	r.expect("15") // garbage before is ignored
	r.send("02 05 E0 1E 00 00 00 FB")
	r.expect("06 02 03 E0 00 1E FD") // E0h answer carries ERR, then op
	r.send("06")
}

// Answer layouts a client written against real devices parses: 10h LEN 16,
// 11h LEN 48 (legacy), FF01 LEN 33.
func TestAnswerLayouts(t *testing.T) {
	_, r := newRaw(t, Config{})
	read := func(req string) []byte {
		t.Helper()
		r.send(req)
		buf := make([]byte, 0, 64)
		tmp := make([]byte, 64)
		for {
			n, _ := r.port.Read(tmp)
			if n == 0 {
				break
			}
			buf = append(buf, tmp[:n]...)
			if len(buf) > 3 && len(buf) >= int(buf[2])+4 {
				break
			}
		}
		r.send("06")
		return buf
	}
	if a := read("02 05 10 1E 00 00 00 0B"); len(a) != 20 || a[2] != 16 || a[4] != 0 || a[5] != 30 || a[8] != 4 {
		t.Errorf("10h: % X", a)
	}
	if a := read("02 05 11 1E 00 00 00 0A"); len(a) != 52 || a[2] != 48 {
		t.Errorf("11h: % X", a)
	}
	if a := read("02 06 FF 01 1E 00 00 00 E6"); len(a) != 37 || a[2] != 33 || !bytes.Equal(a[16:32], []byte("9287440301120991")) {
		t.Errorf("FF01: % X", a)
	}
	if a := read("02 05 11 01 00 00 00 15"); a[4] != 0 || a[5] != 1 {
		t.Errorf("11h with cashier 1: % X", a)
	}
	if a := read("02 05 11 63 00 00 00 77"); a[4] != 0x4F {
		t.Errorf("11h with bad password: % X", a)
	}
}

func TestThrottlePacesOutput(t *testing.T) {
	_, r := newRaw(t, Config{Baud: 2400, Throttle: true})
	start := time.Now()
	r.send("02 05 11 1E 00 00 00 0A") // 8 bytes in, ACK + 51-byte answer out at 2400 baud = 250 ms
	buf := make([]byte, 0, 64)
	tmp := make([]byte, 64)
	for len(buf) < 52 {
		n, _ := r.port.Read(tmp)
		if n == 0 {
			break
		}
		buf = append(buf, tmp[:n]...)
	}
	if len(buf) != 52 {
		t.Fatalf("got %d bytes", len(buf))
	}
	if el := time.Since(start); el < 60*10*time.Second/2400 {
		t.Errorf("60 bytes at 2400 baud took %v", el)
	}
}

func TestJournalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	e, r := newRaw(t, Config{JournalPath: path})
	r.send("02 05 E0 1E 00 00 00 FB")
	r.expect("06 02 03 E0 00 1E FD")
	r.send("06")
	docs, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].FD != 1 || docs[0].Kind != "shift_open" || len(e.Journal()) != 1 {
		t.Errorf("journal %+v", docs)
	}
}
