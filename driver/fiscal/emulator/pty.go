package emulator

import (
	"context"
	"os"
	"sync"

	"tillagent/driver/ptypair"
)

// PTY is an emulator served on the master side of a pseudo-terminal. Open
// Name with go.bug.st/serial exactly as a /dev/ttyUSB0.
type PTY struct {
	Name string

	master, slave *os.File
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	err           error
}

// ServePTY opens a pty pair and serves e on its master until Close.
func ServePTY(ctx context.Context, e *Emulator) (*PTY, error) {
	// The slave stays open here so the master does not see EIO while no
	// client holds the port.
	master, slave, err := ptypair.Open()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &PTY{Name: slave.Name(), master: master, slave: slave, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.err = e.Serve(ctx, master)
	}()
	return p, nil
}

// Close stops serving and closes the pair.
func (p *PTY) Close() error {
	p.cancel()
	p.master.Close()
	p.slave.Close()
	p.wg.Wait()
	return p.err
}
