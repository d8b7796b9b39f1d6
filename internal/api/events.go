package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Event is one item of GET /v1/events: a classified scan, a device's health
// change or a sync state change.
type Event struct {
	Type string    `json:"type"` // scan, health, sync, printer
	At   time.Time `json:"at"`
	Data any       `json:"data"`
}

// Broker fans events out to every connected client. A client that does not
// keep up loses events silently; it never blocks the agent.
type Broker struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
	size int
}

// NewBroker returns a broker whose clients buffer size events each.
func NewBroker(size int) *Broker {
	return &Broker{subs: map[chan Event]struct{}{}, size: size}
}

// Publish sends e to every subscriber that has room.
func (b *Broker) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// Subscribe returns a channel of events and the function that ends it.
func (b *Broker) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, b.size)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

// Subscribers counts connected clients.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// events streams Server-Sent Events until the client goes away. A comment
// line every 15 s keeps proxies and dead-peer detection honest.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		WriteError(w, http.StatusInternalServerError, "agent.internal", "Внутренняя ошибка", "streaming unsupported", "")
		return
	}
	ch, cancel := s.o.Events.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": tillagent events\n\n")
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprintf(w, ": keepalive\n\n")
		case e := <-ch:
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
		}
		fl.Flush()
	}
}
