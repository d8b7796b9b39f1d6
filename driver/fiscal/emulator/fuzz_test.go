package emulator

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"tillagent/driver/fiscal/shtrih"
)

// Any payload gets an answer that echoes its command and carries an error
// byte; the device never panics and its FFD state stays consistent.
func FuzzExecute(f *testing.F) {
	f.Add([]byte{0x10, 30, 0, 0, 0})
	f.Add([]byte{0xE0, 30, 0, 0, 0})
	f.Add([]byte{0x8D, 30, 0, 0, 0, 0})
	f.Add(append([]byte{0xFF, 0x46, 30, 0, 0, 0, 1, 0x80, 0x84, 0x1E, 0, 0, 0, 0xF1, 0x2B, 0, 0, 0, 0xE2, 0x57, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 4, 1}, shtrih.Win1251("Молоко")...))
	f.Add(append([]byte{0xFF, 0x45, 30, 0, 0, 0}, make([]byte, 112)...))
	f.Add([]byte{0xFF, 0x0C, 30, 0, 0, 0, 0x3C, 0x04, 0x04, 0x00, 0x3D, 0x04, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) == 0 {
			return
		}
		cfg := Config{Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }, SysAdminPassword: 30, AdminPassword: 29, FNSerial: "1"}
		d := newDevice(&cfg)
		d.shiftOpen = true
		for _, p := range [][]byte{{0x8D, 30, 0, 0, 0, 0}, payload, payload} {
			ans := d.execute(p, false)
			cmd, rest, err := shtrih.SplitCmd(ans)
			want, _, werr := shtrih.SplitCmd(p)
			if werr == nil && (err != nil || cmd != want || len(rest) == 0) {
				t.Fatalf("payload % X: answer % X", p, ans)
			}
		}
		for _, doc := range d.journal {
			if doc.Type != 3 {
				continue
			}
			var sum int64
			for _, it := range doc.Items {
				sum += it.T1043
			}
			if sum != doc.T1020 || doc.T1031+doc.T1081+doc.T1215+doc.T1216+doc.T1217 != doc.T1020 {
				t.Fatalf("receipt breaks FFD arithmetic: %+v", doc)
			}
		}
	})
}

// writeBuf collects what the device sends.
type writeBuf struct{ b []byte }

func (w *writeBuf) Read([]byte) (int, error)    { return 0, io.EOF }
func (w *writeBuf) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// The device's link layer on arbitrary line input: it never panics, and
// everything it sends is ACK, NAK or a well-formed answer frame.
func FuzzLink(f *testing.F) {
	f.Add([]byte{0x05, 0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B, 0x06, 0x05})
	f.Add([]byte{0x02, 0x05, 0xE0, 0x1E, 0x00, 0x00, 0x00, 0xFB, 0x15, 0x05, 0x06})
	f.Add([]byte{0xFF, 0x02, 0x00, 0x02, 0x01, 0xFC, 0xFD, 0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0C})
	f.Add([]byte{0x02, 0x05, 0x10, 0x1E})
	f.Fuzz(func(t *testing.T, in []byte) {
		e := New(Config{ByteTimeout: time.Millisecond, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
		ch := make(chan []byte, len(in)+1)
		for len(in) > 0 {
			n := min(len(in), 1+int(in[0])%9)
			ch <- in[:n]
			in = in[n:]
		}
		close(ch)
		w := &writeBuf{}
		l := &link{e: e, rw: w, in: ch, ctx: context.Background()}
		if err := l.run(); !errors.Is(err, io.EOF) {
			t.Fatalf("run: %v", err)
		}
		out := w.b
		for len(out) > 0 {
			switch out[0] {
			case shtrih.ACK, shtrih.NAK:
				out = out[1:]
				continue
			}
			p, rest, err := shtrih.DecodeFrame(out)
			if err != nil {
				t.Fatalf("device sent % X: %v", out, err)
			}
			if _, err := shtrih.ParseAnswer(p); err != nil {
				t.Fatalf("answer % X: %v", p, err)
			}
			out = rest
		}
	})
}
