//go:build !linux

package checkout

func threadCPU() (int64, bool) { return 0, false }

func lockThread() func() { return func() {} }
