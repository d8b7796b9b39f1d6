//go:build !linux

package headoffice

import (
	"testing"
	"time"
)

// cpuClock reads no CPU time where there is no /proc: the benchmark
// reports none.
type cpuClock struct{}

func newCPUClock(testing.TB, *Server) cpuClock { return cpuClock{} }

func (cpuClock) now() (self, pg time.Duration) { return -1, -1 }
