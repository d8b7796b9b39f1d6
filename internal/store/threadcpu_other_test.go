//go:build !linux

package store

func threadCPU() (int64, bool) { return 0, false }

func lockThread() func() { return func() {} }
