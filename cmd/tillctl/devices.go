package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"go.bug.st/serial/enumerator"

	"tillagent/driver/scanner/hidscan"
)

func init() {
	register(command{Name: "devices", Summary: "list USB HID devices and serial ports (for scanner setup)", Run: runDevices})
}

func runDevices(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	sysfs := fs.String("sysfs", "/sys", "sysfs root (to tell keyboard and HID POS interfaces apart)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	listHID(os.Stdout, hidscan.SystemBus{}, *sysfs)
	fmt.Println()
	return listSerial(os.Stdout)
}

func listHID(w io.Writer, bus hidscan.Bus, sysfs string) {
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
	access := hidscan.CheckAccess(bus, "/dev/bus/usb")
	if len(infos) == 0 {
		fmt.Fprintln(w, "  none found.")
		if access != nil {
			fmt.Fprintf(w, "  %v\n", access)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VID:PID\tPATH\tIF\tKIND\tMANUFACTURER\tPRODUCT\tSERIAL")
	noStrings := false
	for _, i := range infos {
		man, prod := orDash(i.Manufacturer), orDash(i.Product)
		if i.Manufacturer == "" && i.Product == "" && i.Serial == "" {
			noStrings = true
		}
		fmt.Fprintf(tw, "  %04x:%04x\t%s\t%d\t%s\t%s\t%s\t%s\n", i.VendorID, i.ProductID, i.Path, i.Interface,
			hidscan.ProbeKind(sysfs, i.Path), man, prod, orDash(i.Serial))
	}
	tw.Flush()
	if access != nil {
		fmt.Fprintf(w, "  %v\n", access)
	} else if noStrings {
		fmt.Fprintln(w, "  Devices without strings could not be opened: no write access to /dev/bus/usb;")
		fmt.Fprintln(w, "  install deploy/udev/70-tillagent-scanners.rules and replug.")
	}
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
