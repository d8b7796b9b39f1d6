package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Keep is how many recent events the broker keeps, so that a till UI whose
// EventSource reconnects (a network blip, the agent busy) gets the scans it
// missed: a few minutes of a busy till.
const Keep = 256

// retryMillis is the reconnect delay the stream asks EventSource for: the
// browser's default (about 3 s) is long for a cashier holding a card.
const retryMillis = 1000

// Event is one item of GET /v1/events: a classified scan, a device's health
// change or a sync state change, or (per connection, never published) a gap.
type Event struct {
	// ID is "<boot>-<seq>": boot names the agent process, seq counts its
	// events from 1. It is also the SSE id, which EventSource sends back as
	// Last-Event-ID when it reconnects.
	ID   string    `json:"id"`
	Type string    `json:"type"` // scan, health, sync, printer; gap
	At   time.Time `json:"at"`
	Data any       `json:"data"`
}

// Gap reasons: why a resuming client cannot be given every event after the
// id it asked for.
const (
	GapRestarted = "restarted" // the id is from another agent process
	GapTooOld    = "too_old"   // events after it are no longer kept
	GapUnknown   = "unknown"   // not an id this process gave out
)

// GapData is the data of a gap event: the client missed events and must
// read the state again (GET /v1/status); the kept events follow it.
type GapData struct {
	Reason      string `json:"reason"`
	LastEventID string `json:"last_event_id"`
	// Boot names the agent process now serving the stream.
	Boot string `json:"boot"`
}

// Broker fans events out to every connected client and keeps the last Keep
// of them for clients that reconnect. Publish never waits for a client: one
// whose buffer is full is dropped from the fan-out (its channel closed), and
// its stream catches up from the kept events.
type Broker struct {
	mu   sync.Mutex
	boot string
	seq  uint64  // of the last event published
	kept []Event // the last keep events, oldest first, seqs contiguous
	keep int     // Keep; tests lower it
	subs map[chan Event]struct{}
	size int
}

// NewBroker returns a broker whose clients buffer size events each. Its
// boot id is random, so two processes (a restart) never share ids.
func NewBroker(size int) *Broker {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return &Broker{boot: hex.EncodeToString(b[:]), keep: Keep, subs: map[chan Event]struct{}{}, size: max(size, 1)}
}

// Boot names this broker's process in its event ids.
func (b *Broker) Boot() string { return b.boot }

func (b *Broker) id(seq uint64) string { return b.boot + "-" + strconv.FormatUint(seq, 10) }

// Publish gives e the next id, keeps it and sends it to every subscriber
// that has room; a subscriber that has none is dropped, never waited for.
func (b *Broker) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.ID = b.id(b.seq)
	if len(b.kept) == b.keep {
		copy(b.kept, b.kept[1:])
		b.kept = b.kept[:b.keep-1]
	}
	b.kept = append(b.kept, e)
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Subscription is what a client gets: an optional gap, the kept events it
// missed, then the live ones on C, none lost or doubled between them.
type Subscription struct {
	// Gap, if set, says that events were missed; Backlog is then every
	// kept event.
	Gap *Event
	// Backlog is the kept events after the id asked for, oldest first.
	Backlog []Event
	// C carries the events published after Backlog. It is closed when the
	// client fell behind; Subscribe again after the last event read.
	C <-chan Event
	// From is the id just before the first event of Backlog (or of C when
	// Backlog is empty): where a new subscription resumes if none was read.
	From string
	end  func()
}

// Close ends the subscription.
func (s *Subscription) Close() { s.end() }

// Subscribe returns the kept events after the id after and subscribes to
// the ones that follow, under one lock. after "" means live events only.
// An id of another process, older than the kept events or never given
// out gives a gap event first and then every kept event: for another
// process the old process's events are gone and every event this one kept
// happened after the client lost the old stream.
func (b *Broker) Subscribe(after string) *Subscription {
	ch := make(chan Event, b.size)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[ch] = struct{}{}
	sub := &Subscription{C: ch, end: func() {
		b.mu.Lock()
		delete(b.subs, ch) // Publish may have dropped it already
		b.mu.Unlock()
	}}
	oldest := b.seq - uint64(len(b.kept)) + 1 // seq of kept[0]
	if after == "" {
		sub.From = b.id(b.seq)
		return sub
	}
	seq, reason := b.position(after, oldest)
	if reason != "" {
		sub.From = b.id(oldest - 1)
		sub.Gap = &Event{ID: sub.From, Type: "gap", At: time.Now(), Data: GapData{Reason: reason, LastEventID: after, Boot: b.boot}}
		sub.Backlog = append([]Event(nil), b.kept...)
		return sub
	}
	sub.From = after
	sub.Backlog = append([]Event(nil), b.kept[seq+1-oldest:]...)
	return sub
}

// position reads a Last-Event-ID: the seq to resume after, or why it
// cannot be resumed. Called with b.mu held.
func (b *Broker) position(id string, oldest uint64) (uint64, string) {
	boot, n, ok := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(n, 10, 64)
	_, herr := hex.DecodeString(boot)
	switch {
	case !ok || err != nil || herr != nil || len(boot) != len(b.boot):
		return 0, GapUnknown
	case boot != b.boot:
		return 0, GapRestarted
	case seq > b.seq:
		return 0, GapUnknown
	case seq+1 < oldest:
		return 0, GapTooOld
	}
	return seq, ""
}

// Subscribers counts connected clients.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// lastEventID is where the client resumes: the Last-Event-ID header that
// EventSource sends on reconnect, else the last_event_id query parameter
// for clients that cannot set headers. The header wins: an EventSource
// opened with the parameter keeps it in its URL on every reconnect.
func lastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return strings.TrimSpace(id)
	}
	return strings.TrimSpace(r.URL.Query().Get("last_event_id"))
}

// events streams Server-Sent Events until the client goes away: a gap if
// the asked id cannot be resumed, the kept events after it, then live
// ones. A comment line every 15 s keeps proxies and dead-peer detection
// honest.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		WriteError(w, http.StatusInternalServerError, "agent.internal", "Внутренняя ошибка", "streaming unsupported", "")
		return
	}
	after := lastEventID(r)
	sub := s.o.Events.Subscribe(after)
	defer func() { sub.Close() }() // sub is replaced when the client falls behind
	if after != "" && sub.Gap == nil {
		s.o.Metrics.Add("tillagent_event_resumes_total", 1, "reason", "resumed")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\n: tillagent events\n\n", retryMillis)
	last := sub.From
	if err := s.replay(w, sub, &last); err != nil {
		return
	}
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprintf(w, ": keepalive\n\n"); err != nil {
				return
			}
		case e, ok := <-sub.C:
			if !ok {
				// The client fell behind and Publish dropped it rather
				// than wait: catch up from the kept events.
				sub.Close()
				sub = s.o.Events.Subscribe(last)
				s.o.Metrics.Add("tillagent_event_resumes_total", 1, "reason", "behind")
				if err := s.replay(w, sub, &last); err != nil {
					return
				}
				break
			}
			if err := writeEvent(w, e); err != nil {
				return
			}
			last = e.ID
		}
		fl.Flush()
	}
}

// replay writes a subscription's gap and backlog; last follows the ids sent.
func (s *Server) replay(w http.ResponseWriter, sub *Subscription, last *string) error {
	if sub.Gap != nil {
		s.o.Metrics.Add("tillagent_event_resumes_total", 1, "reason", sub.Gap.Data.(GapData).Reason)
		if err := writeEvent(w, *sub.Gap); err != nil {
			return err
		}
		*last = sub.Gap.ID
	}
	for _, e := range sub.Backlog {
		if err := writeEvent(w, e); err != nil {
			return err
		}
		*last = e.ID
	}
	return nil
}

// writeEvent writes one event in SSE framing; data is one line of JSON.
// The event line comes first (field order is free in SSE) so that a
// client reading line prefixes sees the type before anything else. Data
// that cannot be marshalled is replaced by the error: a kept event that
// failed would otherwise end every resumed stream at the same place.
func writeEvent(w http.ResponseWriter, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		e.Data = map[string]string{"error": fmt.Sprintf("event %s: marshal: %v", e.ID, err)}
		b, _ = json.Marshal(e)
	}
	if _, err := fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", e.Type, e.ID, b); err != nil {
		return fmt.Errorf("event %s: write: %w", e.ID, err)
	}
	return nil
}
