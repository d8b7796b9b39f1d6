// Package scanner is the till agent's barcode-scanner vocabulary: one Scan
// event per barcode read (exact bytes, AIM symbology, source device, time),
// stable health codes, the AIM identifier table, and the supervisor that
// keeps every configured scanner open, reopening it with backoff after an
// unplug, so that one failing device never stops the others.
//
// Transports live in sub-packages: hidscan (USB keyboard-wedge and HID POS
// through github.com/karalabe/hid) and serialscan (RS-232 and USB-CDC through
// go.bug.st/serial). What a scan means (loyalty card, signed virtual card,
// coupon, product) is decided by the classify sub-package.
package scanner
