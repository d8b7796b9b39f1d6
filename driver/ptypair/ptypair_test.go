package ptypair

import (
	"testing"
	"time"

	"go.bug.st/serial"
)

// TestBytesBeforeTheDriverOpens: what the master writes before the serial
// driver opens the slave reaches the driver as written (a scanner's CR
// stays a CR).
func TestBytesBeforeTheDriverOpens(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	const scan = "2900000000018\r"
	if _, err := m.Write([]byte(scan)); err != nil {
		t.Fatal(err)
	}
	p, err := serial.Open(s.Name(), &serial.Mode{BaudRate: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetReadTimeout(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64)
	for len(got) < len(scan) {
		n, err := p.Read(buf)
		if err != nil || n == 0 {
			t.Fatalf("read %q, then %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != scan {
		t.Fatalf("the driver read %q, want %q", got, scan)
	}
}
