//go:build linux

package headoffice

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuClock reads the CPU time used so far by this process and by the
// PostgreSQL cluster s talks to (its postmaster, the children it reaped and
// those running), when the cluster runs on this host and its processes can
// be read; pg is -1 otherwise.
type cpuClock struct {
	postmaster int
}

func newCPUClock(b testing.TB, s *Server) cpuClock {
	var pid int
	if err := s.db.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	// A server elsewhere may have a backend of the same pid as some
	// process here: only a postgres one counts.
	name, st, err := procStat(pid)
	if err != nil || name != "postgres" || len(st) < 2 {
		return cpuClock{postmaster: -1}
	}
	ppid, _ := strconv.Atoi(st[1])
	return cpuClock{postmaster: ppid}
}

// procStat is a process's command name and the fields of /proc/pid/stat
// after it.
func procStat(pid int) (string, []string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil, err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return s[open+1 : end], strings.Fields(s[end+1:]), nil
}

// ticksPerSecond is USER_HZ, 100 on every Linux this runs on.
const ticksPerSecond = 100

func (c cpuClock) now() (self, pg time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if c.postmaster <= 0 {
		return self, -1
	}
	var ticks int
	add := func(st []string, fields ...int) {
		for _, f := range fields {
			v, _ := strconv.Atoi(st[f])
			ticks += v
		}
	}
	pm := strconv.Itoa(c.postmaster)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		_, st, err := procStat(pid)
		if err != nil || len(st) < 15 {
			continue
		}
		switch {
		case pid == c.postmaster:
			add(st, 11, 12, 13, 14) // utime stime cutime cstime
		case st[1] == pm:
			add(st, 11, 12)
		}
	}
	return self, time.Duration(ticks) * time.Second / ticksPerSecond
}
