package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// herdTills is BenchmarkHerd's tills: TILLAGENT_BENCH_HERD, else 1,000.
func herdTills() int { return envCount("TILLAGENT_BENCH_HERD", 1000) }

// BenchmarkHerd: the tills of a region come back together after an
// outage, each with 1,000 entries to push (BenchmarkIngest's workload, in
// batches of TILLAGENT_BENCH_BATCH) over loopback HTTP, each as the
// till's sync loop does: a request times out after a minute (the default
// sync.request_timeout) and is sent again after 1–2 s; a 503 with
// Retry-After is sent again after the time it says. Head office takes
// MaxTillRequests at once (TILLAGENT_BENCH_HERD_LIMIT, else the default,
// twice the pool; -1: no bound, as before admission).
//
// Meanwhile another till fetches a card every 100 ms, as a cashier's
// till does for a customer of another store (POST /v1/till/cards, not
// queued: the till gives up after sync.card_fetch_timeout, 3 s).
//
// Reports entries/s from the first push to the last acknowledgement,
// timed-out requests (work rolled back and sent again), shed requests
// (503), p99 of the pushes that were answered, the card fetches' p50 and
// p99, and the heap's peak.
//
//	TILLAGENT_BENCH_BATCH=500 go test -run '^$' -bench Herd -benchtime 1x -timeout 30m ./sync/headoffice/
func BenchmarkHerd(b *testing.B) {
	ctx := context.Background()
	limit, _ := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_HERD_LIMIT"))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openHerd(b, limit)
		if _, err := s.db.Exec(ctx, `CHECKPOINT`); err != nil {
			b.Logf("no checkpoint before the run: %v", err)
		}
		seedBenchCards(b, s)
		tills := benchWorkload(b, s, herdTills())
		for i := range tills {
			tills[i].entries = nil // only the bodies are sent
		}
		hs := httptest.NewServer(s.Handler())
		hc := newHerdClient(len(tills))
		cl := hc.cl
		var mu sync.Mutex
		var lat []time.Duration
		// push sends body until head office answers it whole.
		push := func(t *benchTill, body []byte) error {
			t0 := time.Now()
			code, data := hc.do(func() *http.Request {
				req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/till/journal", bytes.NewReader(body))
				req.SetBasicAuth(t.till, t.secret)
				return req
			}, 0)
			var res wire.BatchResult
			if code != 200 || json.Unmarshal(data, &res) != nil || len(res.Results) != benchBatch {
				return &herdError{code, string(data)}
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			return nil
		}
		fetcher, err := s.Enrol(ctx, "F001-T01", "S001")
		if err != nil {
			b.Fatal(err)
		}
		var fetches []time.Duration
		stopFetch, fetched := make(chan struct{}), make(chan error, 1)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stopFetch:
					fetched <- nil
					return
				case <-tick.C:
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/till/cards",
					bytes.NewReader([]byte(`{"codes": ["`+fmt.Sprintf("31%011d", k%benchCards)+`"]}`)))
				req.SetBasicAuth("F001-T01", fetcher)
				resp, err := cl.Do(req)
				if err != nil {
					fetched <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fetched <- fmt.Errorf("card fetch: %s", resp.Status)
					return
				}
				fetches = append(fetches, time.Since(t0))
			}
		}()
		heap := sampleHeap()
		b.StartTimer()
		var wg sync.WaitGroup
		start := time.Now()
		for ti := range tills {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, body := range tills[ti].bodies {
					if err := push(&tills[ti], body); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		b.StopTimer()
		close(stopFetch)
		if err := <-fetched; err != nil {
			b.Fatal(err)
		}
		peak, _ := heap.Stop()
		hs.Close()
		n := len(tills) * benchBatches * benchBatch
		var stored, unfolded int
		if err := s.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT folded) FROM journal WHERE till_id LIKE 'B%'`).Scan(&stored, &unfolded); err != nil {
			b.Fatal(err)
		}
		if stored != n || unfolded != 0 {
			b.Fatalf("%d entries stored, %d unfolded; want %d, all folded", stored, unfolded, n)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(n)/el.Seconds(), "entries/s")
		b.ReportMetric(el.Seconds(), "herd-s")
		b.ReportMetric(float64(hc.timeouts.Load()), "timeouts")
		b.ReportMetric(float64(hc.shed.Load()), "shed")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "answered-p99-ms")
		b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MB")
		slices.Sort(fetches)
		b.ReportMetric(float64(fetches[len(fetches)/2].Milliseconds()), "fetch-p50-ms")
		b.ReportMetric(float64(fetches[len(fetches)*99/100].Milliseconds()), "fetch-p99-ms")
		s.Close()
		b.StartTimer()
	}
}

// herdClient sends as a till's sync loop does: a request that gets no
// whole answer within a minute (sync.request_timeout) goes again after
// 1–2 s, one answered 503 with Retry-After after that long.
type herdClient struct {
	cl             *http.Client
	timeouts, shed atomic.Int64
}

func newHerdClient(tills int) *herdClient {
	return &herdClient{cl: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: tills}}}
}

// do sends the request newReq makes until an answer comes whole that is
// not a 503 with Retry-After, and returns its status and body (tail > 0:
// only the body's last tail bytes).
func (h *herdClient) do(newReq func() *http.Request, tail int) (int, []byte) {
	for {
		resp, err := h.cl.Do(newReq())
		if err != nil {
			h.timeouts.Add(1)
			time.Sleep(time.Second + rand.N(time.Second))
			continue
		}
		var data []byte
		if tail > 0 {
			data, err = readTail(resp.Body, tail)
		} else {
			data, err = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
		if err != nil {
			h.timeouts.Add(1)
			continue
		}
		if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode == http.StatusServiceUnavailable && ra > 0 {
			h.shed.Add(1)
			time.Sleep(time.Duration(ra) * time.Second)
			continue
		}
		return resp.StatusCode, data
	}
}

// herdError is a push or a page answered other than with what was asked.
type herdError struct {
	Status int
	Body   string
}

func (e *herdError) Error() string { return "push: " + strconv.Itoa(e.Status) + " " + e.Body }

// BenchmarkHerdFirstLoad: tills loading their replica all at once (a
// rollout, a restore that reset every till): TILLAGENT_BENCH_HERD tills
// (else 200) each ask the first TILLAGENT_BENCH_HERD_PAGES pages (else 5)
// of 5,000 cards of the 200,000 (5 lots each) over loopback HTTP, gzip,
// one page after another, as the till's first load does: a page that
// does not come within a minute is asked again after 1–2 s, a 503 with
// Retry-After after that long. MaxTillRequests from
// TILLAGENT_BENCH_HERD_LIMIT (else the default; -1: no bound).
//
// Reports pages/s, timed-out and shed pages, the answered pages' p99, the
// heap's peak (every page being built or encoded is in it) and the share
// of pages given from the snapshot-page cache, which
// TILLAGENT_BENCH_SNAPSHOT_CACHE=-1 turns off (else its default size).
//
//	go test -run '^$' -bench HerdFirstLoad -benchtime 1x -timeout 30m ./sync/headoffice/
func BenchmarkHerdFirstLoad(b *testing.B) {
	ctx := context.Background()
	limit, _ := strconv.Atoi(os.Getenv("TILLAGENT_BENCH_HERD_LIMIT"))
	tills, pages := envCount("TILLAGENT_BENCH_HERD", 200), envCount("TILLAGENT_BENCH_HERD_PAGES", 5)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openHerd(b, limit)
		seedPollChain(b, s, 1)
		secrets := make([]string, tills)
		for t := range secrets {
			var err error
			if secrets[t], err = s.Enrol(ctx, fmt.Sprintf("L%03d-T01", t), "S001"); err != nil {
				b.Fatal(err)
			}
		}
		hs := httptest.NewServer(s.Handler())
		hc := newHerdClient(tills)
		var mu sync.Mutex
		var lat []time.Duration
		// page asks one page until it comes whole and returns its next.
		page := func(till, secret, after string) (string, error) {
			t0 := time.Now()
			code, data := hc.do(func() *http.Request {
				req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/till/feed?snapshot=1&limit=5000&after="+after, nil)
				req.SetBasicAuth(till, secret)
				return req
			}, pageTail)
			next := pageNext(data)
			if code != 200 || next == "" {
				return "", &herdError{code, string(data[:min(len(data), 200)])}
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			return next, nil
		}
		heap := sampleHeap()
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for t := range tills {
			wg.Go(func() {
				after := ""
				for range pages {
					var err error
					if after, err = page(fmt.Sprintf("L%03d-T01", t), secrets[t], after); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		b.StopTimer()
		peak, _ := heap.Stop()
		hs.Close()
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/el.Seconds(), "pages/s")
		b.ReportMetric(el.Seconds(), "herd-s")
		b.ReportMetric(float64(hc.timeouts.Load()), "timeouts")
		b.ReportMetric(float64(hc.shed.Load()), "shed")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "answered-p99-ms")
		b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MB")
		if s.pages != nil {
			b.ReportMetric(float64(s.pages.hits.Load())/float64(len(lat)), "cached/page")
			b.ReportMetric(float64(s.pages.heldBytes())/(1<<20), "cache-MB")
		}
		s.Close()
		b.StartTimer()
	}
}

// pageTail is how much of a page the herd's tills keep: its next is in
// it. Keeping whole pages, 7 MB each once unpacked, for 200 tills put
// the tills' memory in the heap's peak, which is head office's.
const pageTail = 4096

// readTail reads r to its end and returns its last n bytes (or fewer).
func readTail(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 2*n)
	have := 0
	for {
		if have == len(buf) {
			have = copy(buf, buf[n:])
		}
		k, err := r.Read(buf[have:])
		have += k
		if err == io.EOF {
			return buf[max(0, have-n):have], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// pageNext is a feed page's next, the answer's last field but reset: the
// herd's tills do not decode their pages, which a till does on its own
// machine; decoding them here took a third of the two cores the
// benchmark shares with head office.
func pageNext(data []byte) string {
	const field = `,"next":`
	i := bytes.LastIndex(data, []byte(field))
	if i < 0 {
		return ""
	}
	var next string
	if json.NewDecoder(bytes.NewReader(data[i+len(field):])).Decode(&next) != nil {
		return ""
	}
	return next
}

// openHerd is head office for a herd: MaxTillRequests limit, the
// snapshot-page cache's size from TILLAGENT_BENCH_SNAPSHOT_CACHE (-1: none).
func openHerd(b *testing.B, limit int) *Server {
	cache, _ := strconv.ParseInt(os.Getenv("TILLAGENT_BENCH_SNAPSHOT_CACHE"), 10, 64)
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(b), ERPToken: "erp-secret", Clock: func() time.Time { return demoNow },
		MaxTillRequests: limit, SnapshotCacheBytes: cache})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
