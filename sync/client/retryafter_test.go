package client

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRetryAfterRead: delay-seconds, or an HTTP date against the answer's
// Date (the till's clock is not trusted for it); anything absent,
// unreadable or past is 0, and a day is the most taken.
func TestRetryAfterRead(t *testing.T) {
	date := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		retryAfter, date string
		want             time.Duration
	}{
		{"", "", 0},
		{"7", "", 7 * time.Second},
		{" 12 ", "", 12 * time.Second},
		{"0", "", 0},
		{"-3", "", 0},
		{"soon", "", 0},
		{"1.5", "", 0},
		{"999999999999", "", 24 * time.Hour},
		{date.Add(90 * time.Second).Format(http.TimeFormat), date.Format(http.TimeFormat), 90 * time.Second},
		{date.Add(-time.Minute).Format(http.TimeFormat), date.Format(http.TimeFormat), 0},
		{date.Add(48 * time.Hour).Format(http.TimeFormat), date.Format(http.TimeFormat), 24 * time.Hour},
	} {
		h := http.Header{}
		if c.retryAfter != "" {
			h.Set("Retry-After", c.retryAfter)
		}
		if c.date != "" {
			h.Set("Date", c.date)
		}
		if got := retryAfter(h); got != c.want {
			t.Errorf("Retry-After %q, Date %q: %v, want %v", c.retryAfter, c.date, got, c.want)
		}
	}
	// No Date: against the till's clock.
	h := http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}
	if got := retryAfter(h); got < 58*time.Minute || got > time.Hour {
		t.Errorf("an HTTP date an hour ahead, no Date: %v", got)
	}
}

// TestOverloadedKind: a 503 or a 429 that says when to come back is head
// office (or a proxy) too busy; without Retry-After, or another status,
// it is head office failing.
func TestOverloadedKind(t *testing.T) {
	for _, c := range []struct {
		status int
		after  time.Duration
		want   string
	}{
		{503, 5 * time.Second, FailOverloaded},
		{429, time.Second, FailOverloaded},
		{503, 0, FailHeadOffice},
		{500, 5 * time.Second, FailHeadOffice},
	} {
		err := fmt.Errorf("POST /v1/till/journal: %w", &AnswerError{Status: c.status, RetryAfter: c.after})
		if got := FailureKind(err); got != c.want {
			t.Errorf("%d, Retry-After %v: %s, want %s", c.status, c.after, got, c.want)
		}
	}
}
