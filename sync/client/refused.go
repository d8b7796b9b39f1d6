package client

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// refusal is a journal entry head office refused (conflict, rejected, not
// answered). It stays pending and shown, but is sent again only once its
// back-off has passed: a conflict or a rejection is permanent until someone
// fixes head office, and re-sending it every cycle changes nothing.
// Refusals live in memory (touched only by push, under cycleMu): after a
// restart each refused entry is sent once more and its back-off starts
// anew.
type refusal struct {
	line  string    // "id status: error", as Status and the cycle's error show it
	times int       // refused in a row
	due   time.Time // not sent again before (real time: a wait, like Run's timer)
}

// refusedWait is how long an entry refused times in a row waits before it
// is sent again: RefusedRetryMin doubling per refusal, capped at
// RefusedRetryMax.
func (c *Client) refusedWait(times int) time.Duration {
	d := c.o.RefusedRetryMin
	for i := 1; i < times && d < c.o.RefusedRetryMax; i++ {
		d *= 2
	}
	return min(d, c.o.RefusedRetryMax)
}

// heldRefusals are the refused entries whose back-off has not passed at
// now: the push leaves them out (force, from SyncNow: none).
func (c *Client) heldRefusals(now time.Time, force bool) map[string]bool {
	held := map[string]bool{}
	if force {
		return held
	}
	for id, r := range c.refused {
		if now.Before(r.due) {
			held[id] = true
		}
	}
	return held
}

// refuse records that head office refused entry id (line says how) at now
// and schedules its next send.
func (c *Client) refuse(id, line string, now time.Time) {
	r := c.refused[id]
	if r == nil {
		r = &refusal{}
		c.refused[id] = r
	}
	r.line, r.times = line, r.times+1
	r.due = now.Add(c.refusedWait(r.times))
}

// showRefused puts the refused entries (sent in this push or held back)
// into Status and returns them as a *refusedError, or nil if none is left.
// fresh counts those refused in this push.
func (c *Client) showRefused(fresh int) error {
	ids := make([]string, 0, len(c.refused))
	for id := range c.refused {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a till's ids sort in journal order
	lines := make([]string, len(ids))
	var next time.Time
	for i, id := range ids {
		r := c.refused[id]
		lines[i] = r.line
		if next.IsZero() || r.due.Before(next) {
			next = r.due
		}
	}
	c.mu.Lock()
	c.st.Refused = append([]string(nil), lines[:min(len(lines), maxShownRejected)]...)
	c.st.RefusedCount = len(lines)
	c.st.RefusedRetryAt = time.Time{}
	if len(lines) > 0 {
		c.st.RefusedRetryAt = c.o.Clock().Add(max(time.Until(next), 0))
	}
	c.mu.Unlock()
	if len(lines) == 0 {
		return nil
	}
	return &refusedError{refused: lines, fresh: fresh}
}

// refusedError is head office's answer leaving entries unacknowledged
// (conflict, rejected, or not answered): the exchange itself worked.
type refusedError struct {
	refused []string // "id status: error", in journal order
	fresh   int      // of them refused in this cycle (the others were held back)
}

func (e *refusedError) Error() string {
	shown := e.refused[:min(len(e.refused), maxShownRejected)]
	more := ""
	if n := len(e.refused) - len(shown); n > 0 {
		more = fmt.Sprintf("; and %d more", n)
	}
	return fmt.Sprintf("sync push: head office refused %d entries: %s%s", len(e.refused), strings.Join(shown, "; "), more)
}
