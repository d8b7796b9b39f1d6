package headoffice

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timeKey is where a page of a list in (time, id) order ends, for lists
// whose time is set once per row (an entry's received_at, a conflict's
// first_seen): a walk through the pages then sees each row that was
// there when it began exactly once.
type timeKey struct {
	at time.Time // zero: from the list's start
	id string
}

// String is the key as a page's next: the time in Unix microseconds
// (what PostgreSQL keeps, so the time reads back equal), "_", the id.
func (k timeKey) String() string {
	return strconv.FormatInt(k.at.UnixMicro(), 10) + "_" + k.id
}

// parseTimeKey reads the page key given as the query parameter param.
func parseTimeKey(op, param, v string) (timeKey, error) {
	if v == "" {
		return timeKey{}, nil
	}
	us, id, ok := strings.Cut(v, "_")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || n <= 0 || id == "" {
		return timeKey{}, badRequest(fmt.Errorf("%s: %s %q is not a page's next (MICROSECONDS_ID)", op, param, v))
	}
	return timeKey{at: time.UnixMicro(n).UTC(), id: id}, nil
}

// atOrNil is the key's time for a query, nil for the list's start.
func (k timeKey) atOrNil() *time.Time {
	if k.at.IsZero() {
		return nil
	}
	return &k.at
}
