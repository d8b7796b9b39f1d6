//go:build !unix

package checkout

func processCPU() (int64, bool) { return 0, false }
