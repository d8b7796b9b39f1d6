// Package shtrih speaks the Shtrih-M fiscal printer protocol (frame, LRC,
// ENQ/ACK/NAK handshake, commands, error codes) over any io.ReadWriter. The
// caller opens the port (go.bug.st/serial for a real device) and hands it in.
package shtrih

import (
	"errors"
	"fmt"
)

// Control bytes of the link layer.
const (
	STX byte = 0x02
	ENQ byte = 0x05
	ACK byte = 0x06
	NAK byte = 0x15
)

// Command codes. Two-byte commands are 0xFFxx.
const (
	CmdShortStatus    uint16 = 0x10
	CmdFullStatus     uint16 = 0x11
	CmdPrintLine      uint16 = 0x17
	CmdCut            uint16 = 0x25
	CmdXReport        uint16 = 0x40
	CmdZReport        uint16 = 0x41
	CmdCancel         uint16 = 0x88
	CmdRepeatDoc      uint16 = 0x8C
	CmdOpenReceipt    uint16 = 0x8D
	CmdContinuePrint  uint16 = 0xB0
	CmdOpenShift      uint16 = 0xE0
	CmdDeviceType     uint16 = 0xFC
	CmdFNStatus       uint16 = 0xFF01
	CmdFNSerial       uint16 = 0xFF02
	CmdFNCancelDoc    uint16 = 0xFF08
	CmdFindDocument   uint16 = 0xFF0A
	CmdSendTLV        uint16 = 0xFF0C
	CmdShiftParams    uint16 = 0xFF40
	CmdCloseReceipt2  uint16 = 0xFF45
	CmdOperation2     uint16 = 0xFF46
	CmdSendTLVToItem  uint16 = 0xFF4D
	CmdBeginOpenShift uint16 = 0xFF41
)

// CmdBytes is the wire form of a command code: one byte, or FF and the sub-code.
func CmdBytes(cmd uint16) []byte {
	if cmd > 0xFF {
		return []byte{byte(cmd >> 8), byte(cmd)}
	}
	return []byte{byte(cmd)}
}

// CmdName formats a command code as the spec writes it: 10h, FF46.
func CmdName(cmd uint16) string {
	if cmd > 0xFF {
		return fmt.Sprintf("%04X", cmd)
	}
	return fmt.Sprintf("%02Xh", cmd)
}

// LRC is the XOR of every byte given (the caller passes LEN, CMD and DATA).
func LRC(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// Frame errors.
var (
	ErrFrameLength = errors.New("frame payload must be 1…255 bytes")
	ErrShortFrame  = errors.New("frame incomplete")
	ErrBadLRC      = errors.New("frame LRC mismatch")
	ErrNoSTX       = errors.New("frame does not start with STX")
)

// EncodeFrame wraps payload (CMD + DATA) as STX LEN payload LRC.
func EncodeFrame(payload []byte) ([]byte, error) {
	if len(payload) < 1 || len(payload) > 255 {
		return nil, fmt.Errorf("encode frame of %d bytes: %w", len(payload), ErrFrameLength)
	}
	f := make([]byte, 0, len(payload)+3)
	f = append(f, STX, byte(len(payload)))
	f = append(f, payload...)
	return append(f, LRC(f[1:])), nil
}

// DecodeFrame parses one frame at the start of b (which must begin with STX)
// and returns its payload and the bytes after it.
func DecodeFrame(b []byte) (payload, rest []byte, err error) {
	if len(b) == 0 || b[0] != STX {
		return nil, b, ErrNoSTX
	}
	if len(b) < 2 {
		return nil, b, ErrShortFrame
	}
	n := int(b[1])
	if n == 0 {
		return nil, b[2:], ErrFrameLength
	}
	if len(b) < n+3 {
		return nil, b, ErrShortFrame
	}
	if LRC(b[1:n+2]) != b[n+2] {
		return nil, b[n+3:], ErrBadLRC
	}
	return b[2 : n+2], b[n+3:], nil
}

// SplitCmd separates the command code from the rest of a payload.
func SplitCmd(payload []byte) (cmd uint16, rest []byte, err error) {
	switch {
	case len(payload) == 0:
		return 0, nil, ErrShortFrame
	case payload[0] != 0xFF:
		return uint16(payload[0]), payload[1:], nil
	case len(payload) < 2:
		return 0, nil, ErrShortFrame
	}
	return 0xFF00 | uint16(payload[1]), payload[2:], nil
}

// Answer is a decoded answer payload: echoed command, error byte, data.
type Answer struct {
	Cmd  uint16
	Err  byte
	Data []byte
}

// ParseAnswer decodes CMD ERR DATA.
func ParseAnswer(payload []byte) (Answer, error) {
	cmd, rest, err := SplitCmd(payload)
	if err != nil {
		return Answer{}, fmt.Errorf("parse answer: %w", err)
	}
	if len(rest) < 1 {
		return Answer{}, fmt.Errorf("parse answer to %s: no error byte: %w", CmdName(cmd), ErrShortFrame)
	}
	return Answer{Cmd: cmd, Err: rest[0], Data: rest[1:]}, nil
}

// Little-endian helpers for the fixed-width fields of the protocol.

func putLE(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v)
		v >>= 8
	}
}

func getLE(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// AppendLE appends v as n little-endian bytes.
func AppendLE(b []byte, v uint64, n int) []byte {
	for i := 0; i < n; i++ {
		b = append(b, byte(v))
		v >>= 8
	}
	return b
}

// LE reads a little-endian unsigned integer.
func LE(b []byte) uint64 { return getLE(b) }
