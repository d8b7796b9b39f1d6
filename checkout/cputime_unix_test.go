//go:build unix

package checkout

import "syscall"

// processCPU returns the user+system CPU time of the whole process in
// nanoseconds (including GC workers). Benchmarks report it per op because
// wall-clock figures on a shared, loaded machine mostly measure waiting.
func processCPU() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
