package headoffice

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Head office notes when each till was last heard from, in memory, and
// writes it every seenFlush: a poll writes nothing to the database, and a
// thousand tills polling every 30 s cost one UPDATE a flush. Several
// head-office processes each write their own; the latest wins. What a
// crash loses is the last seenFlush of it, which the tills' next requests
// bring back.

// seenFlush is how often the last-seen times are written.
const seenFlush = 30 * time.Second

type seenAt struct {
	at    time.Time
	agent string
}

type seenLog struct {
	mu   sync.Mutex
	till map[string]seenAt
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// noteSeen records that till id was heard from now, by agent (its
// User-Agent, cut to 128 bytes of valid UTF-8 without U+0000).
func (s *Server) noteSeen(id, agent string) {
	if len(agent) > 128 {
		agent = agent[:128]
	}
	agent = strings.ToValidUTF8(strings.ReplaceAll(agent, "\x00", ""), "") // also a rune the cut split
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	if s.seen.till == nil {
		s.seen.till = map[string]seenAt{}
	}
	s.seen.till[id] = seenAt{at: time.Now(), agent: agent}
}

// flushSeen writes the last-seen times noted since the last flush; on
// failure they are kept for the next one.
func (s *Server) flushSeen(ctx context.Context) error {
	s.seen.mu.Lock()
	batch := s.seen.till
	s.seen.till = nil
	s.seen.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]string, 0, len(batch))
	ats := make([]time.Time, 0, len(batch))
	agents := make([]string, 0, len(batch))
	for id, v := range batch {
		ids, ats, agents = append(ids, id), append(ats, v.at), append(agents, v.agent)
	}
	_, err := s.db.Exec(ctx, `UPDATE tills t SET last_seen_at = u.at, last_agent = u.agent
		FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, at, agent)
		WHERE t.till_id = u.id AND (t.last_seen_at IS NULL OR t.last_seen_at < u.at)`, ids, ats, agents)
	if err != nil {
		s.seen.mu.Lock()
		if s.seen.till == nil {
			s.seen.till = map[string]seenAt{}
		}
		for id, v := range batch {
			if cur, ok := s.seen.till[id]; !ok || cur.at.Before(v.at) {
				s.seen.till[id] = v
			}
		}
		s.seen.mu.Unlock()
		return fmt.Errorf("write when the tills were last heard from: %w", err)
	}
	return nil
}

// startSeen writes the last-seen times every seenFlush until stopSeen.
func (s *Server) startSeen() {
	s.seen.stop, s.seen.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.seen.done)
		t := time.NewTicker(seenFlush)
		defer t.Stop()
		for {
			select {
			case <-s.seen.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := s.flushSeen(ctx); err != nil {
					s.log.Warn("tills last seen", "err", err)
				}
				cancel()
			}
		}
	}()
}

// stopSeen ends the flushing and writes what is left (once: Close may be
// called twice).
func (s *Server) stopSeen() {
	if s.seen.stop == nil {
		return
	}
	s.seen.once.Do(func() {
		close(s.seen.stop)
		<-s.seen.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.flushSeen(ctx); err != nil {
			s.log.Warn("tills last seen", "err", err)
		}
	})
}
