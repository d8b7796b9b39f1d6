package store

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time the calling OS thread has used, in
// nanoseconds (CLOCK_THREAD_CPUTIME_ID). With the goroutine locked to its
// thread, the difference around an operation is the time it actually ran
// (GC assists included, background GC workers on other threads not),
// which wall-clock latency on a shared machine mixes with waiting for a
// core.
func threadCPU() (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}

func lockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
