package config

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestExampleClassifyIsDefault(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Classify, DefaultClassify()) {
		t.Errorf("classify in config.example.yaml differs from DefaultClassify():\n got %+v\nwant %+v", c.Classify, DefaultClassify())
	}
}

func TestClassifyAndScannerErrors(t *testing.T) {
	cases := []struct {
		name, body, wantKey string
	}{
		{"prefix digits", "classify:\n  loyalty_prefixes: [\"27a\"]\n", "classify.loyalty_prefixes[0]"},
		{"window", "classify:\n  token_window: 1s\n", "classify.token_window"},
		{"same prefixes", "classify:\n  card_qr_prefix: \"LC1:\"\n", "classify.card_qr_prefix"},
		{"gs terminator", "scanners:\n  - name: a\n    type: hid\n    vendor_id: \"0c2e\"\n    product_id: \"0b61\"\n    terminators: [\"0x1d\"]\n", "scanners[0].terminators[0]"},
		{"bad vid", "scanners:\n  - name: a\n    type: hid\n    vendor_id: \"zz\"\n    product_id: \"0b61\"\n", "scanners[0].vendor_id"},
		{"interface", "scanners:\n  - name: a\n    type: hid\n    vendor_id: \"0c2e\"\n    product_id: \"0b61\"\n    interface: 40\n", "scanners[0].interface"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.body))
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("want error naming %s, got %v", tc.wantKey, err)
			}
		})
	}
}

func TestHIDScannerConfig(t *testing.T) {
	c, err := Load(write(t, "scanners:\n  - name: a\n    type: hid\n    vendor_id: \"0c2e\"\n    product_id: \"0B61\"\n    interface: 1\n    terminators: [cr, \"0x23\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Scanners[0]
	if vid, pid := s.USBIDs(); vid != 0x0c2e || pid != 0x0b61 {
		t.Errorf("ids %04x:%04x", vid, pid)
	}
	if s.Interface == nil || *s.Interface != 1 || string(s.TerminatorBytes()) != "\r#" {
		t.Errorf("%+v", s)
	}
}

// The default card prefixes must cover every card of the demo chain; the
// check digits are the classifier's business (driver/scanner/classify).
func TestDefaultClassifyCoversDemoCards(t *testing.T) {
	data, err := os.ReadFile("../../testdata/demo/replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var replica struct {
		Cards []struct {
			Code string `yaml:"code"`
		} `yaml:"cards"`
	}
	if err := yaml.Unmarshal(data, &replica); err != nil {
		t.Fatal(err)
	}
	if len(replica.Cards) == 0 {
		t.Fatal("demo replica has no cards")
	}
	d := DefaultClassify()
	for _, c := range replica.Cards {
		prefixed := slices.ContainsFunc(d.LoyaltyPrefixes, func(p string) bool { return strings.HasPrefix(c.Code, p) })
		if !prefixed || !slices.Contains(d.LoyaltyLengths, len(c.Code)) {
			t.Errorf("demo card %s: no default prefix %v / length %v matches", c.Code, d.LoyaltyPrefixes, d.LoyaltyLengths)
		}
	}
	// Weighed goods (scale labels, prefixes 20–25) must never look like cards.
	for _, scale := range []string{"2012345012340", "2212345012345", "2512345012348"} {
		if slices.ContainsFunc(d.LoyaltyPrefixes, func(p string) bool { return strings.HasPrefix(scale, p) }) {
			t.Errorf("scale label %s matches a default card prefix %v", scale, d.LoyaltyPrefixes)
		}
	}
}
