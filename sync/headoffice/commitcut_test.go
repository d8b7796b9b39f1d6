package headoffice

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestClientCancelIsNotALostConnection: a till gives up on a push (its
// request timeout) while head office's ingest waits for the till's row
// (another transaction holds it). pgx cancels the statement by closing
// the connection; the error is the request's cancellation, not a lost
// connection: head office must not count it or reset its whole pool (under
// load every till timing out would otherwise drop every connection of
// the pool).
func TestClientCancelIsNotALostConnection(t *testing.T) {
	s, hs, secret, dsn, app := namedHO(t)
	ctx := context.Background()
	admin := pgConn(t, dsn)
	holdTillRow(t, dsn)
	var lt lateTill
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	for i := 0; i < 3; i++ {
		body, _ := json.Marshal(accrual7(&lt, "2900000000018"))
		req, _ := http.NewRequest("POST", hs.URL+"/v1/till/journal", bytes.NewReader(body))
		req.SetBasicAuth("S001-T01", secret)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("push %d with the till's row held: answered %d, want the till to time out", i, resp.StatusCode)
		}
	}
	// The server side of the cancelled requests: wait until no backend of
	// head office waits on the lock any more.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("head office still waits on the lock after the tills gave up")
		}
	}
	if n := s.LostConnections(); n != 0 {
		t.Errorf("%d lost connections counted after tills cancelled their pushes, want 0 (a cancel is not a lost connection)", n)
	}
}

// commitCutter is a TCP proxy to PostgreSQL that, once armed, forwards
// the first COMMIT it sees, gives the server a moment to commit it, then
// resets the connection before the answer gets back (the write committed,
// head office does not know) and from then on answers every new
// connection FATAL 53300 "too many clients", as a PostgreSQL does that
// every client of a failed-over cluster reconnects to at once.
type commitCutter struct {
	mu    sync.Mutex
	armed bool
	busy  bool
	cut   chan struct{}
}

// newCommitCutter puts a commitCutter in front of PostgreSQL at dsn and
// returns the DSN through it.
func newCommitCutter(t *testing.T, dsn string) (*commitCutter, string) {
	p := &commitCutter{cut: make(chan struct{})}
	return p, pgProxy(t, dsn, func(c net.Conn, target string) {
		p.mu.Lock()
		busy := p.busy
		p.mu.Unlock()
		if busy {
			tooManyClients(c)
			return
		}
		p.serve(c, target)
	})
}

// tooManyClients reads the startup message and answers FATAL 53300.
func tooManyClients(c net.Conn) {
	defer c.Close()
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(n[:]))-4)
	var body []byte
	for _, f := range [][2]string{{"S", "FATAL"}, {"V", "FATAL"}, {"C", "53300"}, {"M", "sorry, too many clients already"}} {
		body = append(append(append(body, f[0]...), f[1]...), 0)
	}
	body = append(body, 0)
	msg := append([]byte{'E', 0, 0, 0, 0}, body...)
	binary.BigEndian.PutUint32(msg[1:], uint32(4+len(body)))
	c.Write(msg)
}

func (p *commitCutter) serve(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	reset := func() {
		for _, x := range []net.Conn{c, up} {
			x.(*net.TCPConn).SetLinger(0)
			x.Close()
		}
	}
	var frozen atomic.Bool // the server's answers are dropped
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 && !frozen.Load() {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hit := p.armed && bytes.Contains(buf[:n], []byte("Q\x00\x00\x00\vcommit\x00"))
			if hit {
				p.armed, p.busy = false, true
				frozen.Store(true)
			}
			p.mu.Unlock()
			if _, werr := up.Write(buf[:n]); werr != nil {
				reset()
				return
			}
			if hit {
				// The server commits; its answer never reaches head office.
				time.Sleep(200 * time.Millisecond)
				close(p.cut)
				reset()
				return
			}
		}
		if err != nil {
			up.Close()
			return
		}
	}
}

// TestCommittedCorrectionWithLostAnswerIs503: an ERP correction's COMMIT
// reaches PostgreSQL and commits, the connection is lost before the answer
// comes back (a failover), and the reconnect that retryLost makes is
// refused "too many clients" (53300: every client of the cluster
// reconnecting at once). The correction is in the journal, so the answer
// must not say "nothing written" (an ERP job believing it might book the
// points another way, twice): it is 503 "send the request again", which
// the correction's id makes safe.
func TestCommittedCorrectionWithLostAnswerIs503(t *testing.T) {
	dsn := pgtest.DSN(t)
	cutter, proxied := newCommitCutter(t, dsn)
	_, hs, _ := servedHO(t, proxied)
	cutter.mu.Lock()
	cutter.armed = true
	cutter.mu.Unlock()
	body := []byte(`{"id": "commit-cut-1", "card": "2900000000018", "points": "5", "reason": "commit answer lost"}`)
	code, data := httpCall(t, hs, "POST", "/v1/erp/corrections", body, "")
	select {
	case <-cutter.cut:
	default:
		t.Fatalf("the proxy saw no COMMIT to cut: %d %s", code, data)
	}
	var n int
	admin := pgConn(t, dsn)
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM journal WHERE id = 'ERP-commit-cut-1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the correction did not commit (%d rows): the test did not make its case (answer %d %s)", n, code, data)
	}
	if code != http.StatusServiceUnavailable || bytes.Contains(data, []byte("nothing written")) {
		t.Errorf("correction committed, its answer lost, reconnect refused 53300: answered %d %s; want 503 \"send the request again\", never \"nothing written\"", code, data)
	}
}
