package headoffice

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
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
// User-Agent, cut to 128 bytes of valid UTF-8 without control characters).
func (s *Server) noteSeen(id, agent string) {
	if len(agent) > 128 {
		agent = agent[:128]
	}
	// Control characters (a tab would shift the columns of `headoffice
	// tills`) become spaces; a rune the cut split goes.
	agent = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(agent, ""))
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
	for id := range batch {
		ids = append(ids, id)
	}
	// In id order, so two head-office processes writing at once take the
	// rows in the same order and never deadlock.
	slices.Sort(ids)
	ats := make([]time.Time, len(ids))
	agents := make([]string, len(ids))
	for i, id := range ids {
		ats[i], agents[i] = batch[id].at, batch[id].agent
	}
	// A note from before the till's enrolment is the old box's: enrolled
	// again (by another process, whose Enrol could not drop this one's
	// notes), the new box has not been heard from.
	_, err := s.db.Exec(ctx, `INSERT INTO till_seen (till_id, last_seen_at, last_agent)
		SELECT u.* FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, at, agent)
			JOIN tills t ON t.till_id = u.id WHERE u.at >= t.enrolled_at ORDER BY 1
		ON CONFLICT (till_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, last_agent = excluded.last_agent
			WHERE till_seen.last_seen_at < excluded.last_seen_at`, ids, ats, agents)
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

// forgetSeenNote drops this process's note of till id not written yet:
// it is being enrolled again (Enrol forgets what is written of a retired
// one). A till still in service is noted again at its next request.
func (s *Server) forgetSeenNote(id string) {
	s.seen.mu.Lock()
	delete(s.seen.till, id)
	s.seen.mu.Unlock()
}
