package emulator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Doc is one fiscal document of the electronic journal, tags keyed by number
// where the FFD gives one, so tests read it back like an OFD export.
type Doc struct {
	FD       uint32    `json:"fd"`
	FP       uint32    `json:"fp"`
	Type     byte      `json:"type"` // FF0A document type: 2 shift open, 3 receipt, 5 shift close
	Kind     string    `json:"kind"` // "receipt", "shift_open", "shift_close"
	Shift    uint16    `json:"shift"`
	Number   uint16    `json:"number,omitempty"` // receipt number within the shift
	At       time.Time `json:"at"`
	T1054    byte      `json:"1054,omitempty"`
	T1055    byte      `json:"1055,omitempty"`
	T1020    int64     `json:"1020"`
	T1031    int64     `json:"1031,omitempty"`
	T1081    int64     `json:"1081,omitempty"`
	T1215    int64     `json:"1215,omitempty"`
	T1216    int64     `json:"1216,omitempty"`
	T1217    int64     `json:"1217,omitempty"`
	Change   int64     `json:"change,omitempty"`
	T1021    string    `json:"1021,omitempty"`
	T1203    string    `json:"1203,omitempty"`
	T1008    string    `json:"1008,omitempty"`
	T1084    *UserReq  `json:"1084,omitempty"`
	Items    []Item    `json:"1059,omitempty"`
	Text     []string  `json:"text,omitempty"` // non-fiscal lines printed inside the document
	Tags     []RawTag  `json:"other_tags,omitempty"`
	Printed  bool      `json:"printed"` // paper copy finished
	Reprints int       `json:"reprints,omitempty"`
}

// UserReq is tag 1084.
type UserReq struct {
	Name  string `json:"1085"`
	Value string `json:"1086"`
}

// Item is STLV 1059.
type Item struct {
	T1030 string `json:"1030"`
	T1023 int64  `json:"1023"` // millionths
	T1079 int64  `json:"1079"`
	T1043 int64  `json:"1043"`
	T1199 byte   `json:"1199"`
	T1214 byte   `json:"1214"`
	T1212 byte   `json:"1212"`
	T2108 byte   `json:"2108"`
	Dept  byte   `json:"department"`
}

// RawTag is a tag the emulator stores without interpreting.
type RawTag struct {
	Tag   uint16 `json:"tag"`
	Value []byte `json:"value"`
}

// ReadJournal loads a journal written by the emulator.
func ReadJournal(path string) ([]Doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []Doc
	return docs, json.Unmarshal(b, &docs)
}

func writeJournal(path string, docs []Doc) error {
	b, err := json.MarshalIndent(docs, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
