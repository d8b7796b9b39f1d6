package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"go.bug.st/serial/enumerator"

	"tillagent/driver/scanner/hidscan"
	"tillagent/internal/config"
)

func init() {
	register(command{Name: "devices", Summary: "list USB HID devices and serial ports (for scanner setup)", Run: runDevices})
}

func runDevices(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	sysfs := fs.String("sysfs", "/sys", "sysfs root (to tell keyboard and HID POS interfaces apart)")
	path := fs.String("config", "config.example.yaml", "configuration whose hid scanners count as scanners, besides the udev-rule vendors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids := configuredScanners(os.Stdout, *path)
	listHID(os.Stdout, hidscan.SystemBus{}, hidscan.AccessCheck{SysfsRoot: *sysfs, Scanners: hidscan.ScannerIDs(ids...)})
	fmt.Println()
	return listSerial(os.Stdout)
}

// configuredScanners returns the USB ids of the configured hid scanners. A
// missing or broken config is only noted: listing devices is how a new
// till gets its config in the first place.
func configuredScanners(w io.Writer, path string) []hidscan.USBID {
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(w, "note: %v; only the udev-rule vendors count as scanners\n\n", err)
		return nil
	}
	var ids []hidscan.USBID
	for _, s := range c.Scanners {
		if s.Type == "hid" {
			vid, pid := s.USBIDs()
			ids = append(ids, hidscan.USBID{Vendor: vid, Product: pid})
		}
	}
	return ids
}

// listHID lists HID interfaces, marks the ones CheckAccess counts as
// scanners (SCANNER column), and says why scanners cannot be opened, if so.
func listHID(w io.Writer, bus hidscan.Bus, a hidscan.AccessCheck) {
	fmt.Fprintln(w, "USB HID devices:")
	if !bus.Supported() {
		fmt.Fprintln(w, "  unavailable: this tillctl was built without cgo, so USB HID scanners cannot be read.")
		fmt.Fprintln(w, "  Rebuild with CGO_ENABLED=1 (gcc needed), or use a serial/USB-CDC scanner.")
		return
	}
	infos, err := bus.Enumerate(0, 0)
	if err != nil {
		fmt.Fprintf(w, "  enumerate failed: %v\n", err)
		return
	}
	access := hidscan.CheckAccess(bus, a)
	if len(infos) == 0 {
		fmt.Fprintln(w, "  none found.")
		if access != nil {
			fmt.Fprintf(w, "  %v\n", access)
		}
		return
	}
	sysfs := a.SysfsRoot
	if sysfs == "" {
		sysfs = "/sys"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VID:PID\tSCANNER\tPATH\tIF\tKIND\tMANUFACTURER\tPRODUCT\tSERIAL")
	noStrings := false
	for _, i := range infos {
		isScanner := slices.ContainsFunc(a.Scanners, func(id hidscan.USBID) bool { return id.Matches(i.VendorID, i.ProductID) })
		// Other devices are root's on a set-up till; their strings are
		// rightly unreadable, so only a scanner's missing strings mean trouble.
		if isScanner && i.Manufacturer == "" && i.Product == "" && i.Serial == "" {
			noStrings = true
		}
		fmt.Fprintf(tw, "  %04x:%04x\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", i.VendorID, i.ProductID, yesDash(isScanner), i.Path, i.Interface,
			hidscan.ProbeKind(sysfs, i.Path), orDash(i.Manufacturer), orDash(i.Product), orDash(i.Serial))
	}
	tw.Flush()
	switch {
	case errors.Is(access, hidscan.ErrNoScanner):
		fmt.Fprintf(w, "  note: %v\n", access)
		fmt.Fprintln(w, "  A scanner not listed as one: put its VID:PID in the config's scanners and its vendor in the udev rules.")
	case access != nil:
		fmt.Fprintf(w, "  warning: %v\n", access)
	case noStrings:
		fmt.Fprintln(w, "  warning: a scanner without strings could not be opened; check its udev rule and replug.")
	}
}

func yesDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func listSerial(w io.Writer) error {
	fmt.Fprintln(w, "Serial ports:")
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return fmt.Errorf("list serial ports: %w", err)
	}
	if len(ports) == 0 {
		fmt.Fprintln(w, "  none found.")
		return nil
	}
	byID := stableNames("/dev/serial/by-id")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PORT\tVID:PID\tMANUFACTURER\tPRODUCT\tSERIAL\tSTABLE NAME")
	for _, p := range ports {
		ids := "-"
		if p.IsUSB {
			ids = p.VID + ":" + p.PID
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, ids, orDash(p.Manufacturer), orDash(p.Product), orDash(p.SerialNumber), orDash(byID[p.Name]))
	}
	return tw.Flush()
}

// stableNames maps /dev/ttyACM0 to its /dev/serial/by-id link, which is what
// the configuration should name (ttyACM numbers change on replug).
func stableNames(dir string) map[string]string {
	out := map[string]string{}
	links, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, l := range links {
		if t, err := filepath.EvalSymlinks(l); err == nil {
			out[t] = l
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
