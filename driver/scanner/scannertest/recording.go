// Package scannertest reads recorded scanner input from testdata/scanner:
// HID report streams (one report per line in hex) with the scans they must
// produce, for decoder tests, fake devices and `tillctl scan -replay`.
package scannertest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Step is one report, or a pause in the stream.
type Step struct {
	Report []byte
	Wait   time.Duration // a pause before the next report (report is nil)
}

// Recording is one recorded stream.
//
// File format: "# text" lines are comments, the first one the title;
// "# want: <Go-quoted string>" lines list the scans the stream must produce,
// in order; "R" is an all-zero 8-byte release report; "wait 400ms" is a
// pause; any other line is one report as hex bytes separated by spaces.
type Recording struct {
	Title string
	Want  []string
	Steps []Step
}

// Load reads a recording file.
func Load(path string) (Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return Recording{}, err
	}
	defer f.Close()
	var r Recording
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "# want:"):
			w, err := strconv.Unquote(strings.TrimSpace(strings.TrimPrefix(line, "# want:")))
			if err != nil {
				return r, fmt.Errorf("%s:%d: want: %w", path, n, err)
			}
			r.Want = append(r.Want, w)
		case strings.HasPrefix(line, "#"):
			if r.Title == "" {
				r.Title = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			}
		case line == "R":
			r.Steps = append(r.Steps, Step{Report: make([]byte, 8)})
		case strings.HasPrefix(line, "wait "):
			d, err := time.ParseDuration(strings.TrimPrefix(line, "wait "))
			if err != nil {
				return r, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			r.Steps = append(r.Steps, Step{Wait: d})
		default:
			b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
			if err != nil {
				return r, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			r.Steps = append(r.Steps, Step{Report: b})
		}
	}
	return r, sc.Err()
}

// Reports returns the reports alone, pauses dropped.
func (r Recording) Reports() [][]byte {
	var out [][]byte
	for _, s := range r.Steps {
		if s.Report != nil {
			out = append(out, s.Report)
		}
	}
	return out
}
