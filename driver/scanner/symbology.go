package scanner

// Symbology is the small set of barcode types the agent distinguishes.
type Symbology uint8

const (
	SymUnknown Symbology = iota
	SymEAN13
	SymEAN8
	SymUPCA
	SymUPCE
	SymEANAddOn // EAN/UPC with a 2- or 5-digit add-on
	SymCode128
	SymGS1_128
	SymQR
	SymGS1QR
	SymDataMatrix
	SymGS1DataMatrix
	SymGS1DataBar
	SymITF
	SymCode39
	SymCode93
	SymCodabar
	SymPDF417
	SymAztec
	SymOther
)

var symNames = [...]string{"unknown", "ean13", "ean8", "upca", "upce", "ean-addon", "code128", "gs1-128",
	"qr", "gs1-qr", "datamatrix", "gs1-datamatrix", "gs1-databar", "itf", "code39", "code93",
	"codabar", "pdf417", "aztec", "other"}

// UnifiedPOS ScanDataType values, for UIs that speak UPOS.
var symUPOS = [...]int{0, 104, 103, 101, 102, 119, 110, 120, 204, 209, 203, 208, 131, 106, 108, 109, 107, 201, 206, 501}

func (s Symbology) String() string {
	if int(s) < len(symNames) {
		return symNames[s]
	}
	return "unknown"
}

// UPOS returns the UnifiedPOS ScanDataType number.
func (s Symbology) UPOS() int {
	if int(s) < len(symUPOS) {
		return symUPOS[s]
	}
	return 0
}

// GS1 reports whether the symbology carries GS1 element strings by definition.
func (s Symbology) GS1() bool {
	switch s {
	case SymGS1_128, SymGS1QR, SymGS1DataMatrix, SymGS1DataBar:
		return true
	}
	return false
}

// SplitAIM returns the AIM identifier at the start of data ("]E0") and the
// symbology it names, or "" and SymUnknown when data does not start with one.
// An identifier "]Z…" (no barcode data, e.g. a command reply) is returned
// with SymUnknown; callers check for it with IsReply.
func SplitAIM(data []byte) (aim string, sym Symbology) {
	if len(data) < 3 || data[0] != ']' || !isAIMChar(data[1]) || !isAIMChar(data[2]) {
		return "", SymUnknown
	}
	return string(data[:3]), AIMSymbology(string(data[:3]), len(data)-3)
}

func isAIMChar(c byte) bool { return c > 0x20 && c < 0x7F }

// IsReply reports whether an AIM identifier marks data that is no barcode.
func IsReply(aim string) bool { return len(aim) == 3 && aim[1] == 'Z' }

// AIMSymbology maps an ISO/IEC 15424 identifier to a Symbology. labelLen
// separates EAN-13 from UPC-A/UPC-E, which share "]E0".
func AIMSymbology(aim string, labelLen int) Symbology {
	if len(aim) != 3 || aim[0] != ']' {
		return SymUnknown
	}
	code, mod := aim[1], aim[2]
	switch code {
	case 'E':
		switch mod {
		case '0':
			switch labelLen {
			case 12:
				return SymUPCA
			case 8:
				return SymUPCE
			}
			return SymEAN13
		case '4':
			return SymEAN8
		case '1', '2', '3':
			return SymEANAddOn
		}
	case 'C':
		if mod == '1' {
			return SymGS1_128
		}
		return SymCode128
	case 'Q':
		if mod == '3' || mod == '4' {
			return SymGS1QR
		}
		return SymQR
	case 'd':
		if mod == '2' || mod == '5' {
			return SymGS1DataMatrix
		}
		return SymDataMatrix
	case 'e':
		return SymGS1DataBar
	case 'I':
		return SymITF
	case 'A':
		return SymCode39
	case 'G':
		return SymCode93
	case 'F':
		return SymCodabar
	case 'L':
		return SymPDF417
	case 'z':
		return SymAztec
	case 'X':
		return SymOther
	}
	return SymUnknown
}

// HoneywellCodeID maps a Honeywell Code ID character, used when a HID POS
// report carries no AIM identifier. GS1 decisions need the AIM; this is a
// fallback for display.
func HoneywellCodeID(c byte) Symbology {
	switch c {
	case 'd':
		return SymEAN13
	case 'D':
		return SymEAN8
	case 'c':
		return SymUPCA
	case 'E':
		return SymUPCE
	case 'j':
		return SymCode128
	case 'b':
		return SymCode39
	case 'i':
		return SymCode93
	case 's':
		return SymQR
	case 'w':
		return SymDataMatrix
	case 'r':
		return SymPDF417
	case 'z':
		return SymAztec
	case 'y':
		return SymGS1DataBar
	case 'e':
		return SymITF
	case 'a':
		return SymCodabar
	}
	return SymUnknown
}
