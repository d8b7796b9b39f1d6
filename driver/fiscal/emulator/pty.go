package emulator

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
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
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	// Raw mode: no echo, no CR/LF translation, 8 bits. The slave stays open
	// here so the master does not see EIO while no client holds the port.
	if err := makeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("pty %s raw mode: %w", slave.Name(), err)
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

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Close stops serving and closes the pair.
func (p *PTY) Close() error {
	p.cancel()
	p.master.Close()
	p.slave.Close()
	p.wg.Wait()
	return p.err
}
