// Package config loads the agent's YAML configuration through viper, applies
// TILLAGENT_* environment overrides and validates every field, naming the key
// and the file in each error.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"tillagent/internal/recordid"
)

// EnvPrefix is the prefix of environment overrides: store.path is TILLAGENT_STORE_PATH.
const EnvPrefix = "TILLAGENT"

// Config is the whole agent configuration. Every key is documented in
// config.example.yaml at the repository root.
type Config struct {
	Till     Till      `mapstructure:"till"`
	Store    Store     `mapstructure:"store"`
	Log      Log       `mapstructure:"log"`
	Printer  Printer   `mapstructure:"printer"`
	Scanners []Scanner `mapstructure:"scanners"`
	Classify Classify  `mapstructure:"classify"`
	API      API       `mapstructure:"api"`
	Receipt  Receipt   `mapstructure:"receipt"`
	Sale     Sale      `mapstructure:"sale"`
	Demo     Demo      `mapstructure:"demo"`
	Sync     Sync      `mapstructure:"sync"`

	// File is the path the configuration was read from ("" for defaults only).
	File string `mapstructure:"-"`
}

// Till identifies this till within the chain.
type Till struct {
	StoreID  string `mapstructure:"store_id"`
	TillID   string `mapstructure:"till_id"`
	Timezone string `mapstructure:"timezone"`
}

// Store is the local SQLite replica and journal.
type Store struct {
	Path        string        `mapstructure:"path"`
	BusyTimeout time.Duration `mapstructure:"busy_timeout"`
	// DemoReplica is imported when the store holds no replica yet; empty disables it.
	DemoReplica string `mapstructure:"demo_replica"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Default returns the configuration used when a key is not set anywhere.
func Default() Config {
	return Config{
		Till:    Till{StoreID: "S001", TillID: "S001-T01", Timezone: "Europe/Moscow"},
		Store:   Store{Path: "var/till.db", BusyTimeout: 5 * time.Second},
		Log:     Log{Level: "info", Format: "text"},
		Printer: DefaultPrinter(),

		Classify: DefaultClassify(),
		API:      DefaultAPI(),
		Receipt:  DefaultReceipt(),
		Sale:     DefaultSale(),
		Sync:     DefaultSync(),
	}
}

// FieldError names the key and file of a bad value.
type FieldError struct {
	File  string
	Key   string
	Value any
	Err   error
}

func (e *FieldError) Error() string {
	where := e.File
	if where == "" {
		where = "defaults"
	}
	// A value from the environment is not in the file: say where it came
	// from, or the technician searches the YAML in vain.
	if env := EnvName(e.Key); os.Getenv(env) != "" {
		where = "environment " + env + " (over " + where + ")"
	}
	return fmt.Sprintf("config %s: %s = %v: %v", where, e.Key, e.Value, e.Err)
}

// EnvName is the environment variable that overrides key: store.path is
// TILLAGENT_STORE_PATH.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func (e *FieldError) Unwrap() error { return e.Err }

// Load reads path (if not empty) over the defaults, applies environment
// overrides and validates the result. Unknown keys are errors: a typo in a
// key must not silently fall back to a default on a thousand tills.
func Load(path string) (Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	registerDefaults(v, "", reflect.ValueOf(Default()))

	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		defer f.Close()
		if err := v.ReadConfig(f); err != nil {
			return Config{}, fmt.Errorf("config %s: parse yaml: %w", path, err)
		}
	}
	var c Config
	strict := func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(strictNumbers, dc.DecodeHook)
	}
	if err := v.UnmarshalExact(&c, strict); err != nil {
		return Config{}, fmt.Errorf("config %s%s: %w", nameOr(path), envNote(), err)
	}
	c.File = path
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// strictNumbers refuses what the weak decoding would bend: a YAML number
// with a decimal point or an exponent for an integer key (max_change_kop:
// 5000.00, meant as roubles, would be 5000 kopecks: a 50 ₽ cap; 5000.7
// would be cut), and a number other than 0 or 1 for a yes/no key.
func strictNumbers(from, to reflect.Type, data any) (any, error) {
	switch k := to.Kind(); {
	case k >= reflect.Int && k <= reflect.Uint64 && (from.Kind() == reflect.Float64 || from.Kind() == reflect.Float32):
		return nil, fmt.Errorf("%v: want a whole number, written without a decimal point", data)
	case k == reflect.Bool && from.Kind() >= reflect.Int && from.Kind() <= reflect.Uint64:
		if n := fmt.Sprint(data); n != "0" && n != "1" {
			return nil, fmt.Errorf("%v: want true or false", data)
		}
	}
	return data, nil
}

// envNote names the TILLAGENT_* variables set, for an error that may be
// theirs and not the file's.
func envNote() string {
	var set []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix+"_") {
			set = append(set, name)
		}
	}
	if len(set) == 0 {
		return ""
	}
	sort.Strings(set)
	return " with environment overrides " + strings.Join(set, ", ")
}

func nameOr(p string) string {
	if p == "" {
		return "defaults/environment"
	}
	return p
}

// registerDefaults walks the struct and sets a default for every leaf key, so
// that viper's AutomaticEnv knows every key and TILLAGENT_* works for keys the
// file does not mention.
func registerDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := rv.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			registerDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: c.File, Key: key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	// Both ids travel to head office and come back in replica files (a
	// store id on checks and rules, the till id as the prefix of every
	// journal id and as the key of the replica's folded_through watermark),
	// so they must be ids the replica format accepts; a till id head office
	// cannot name would leave the till counting folded entries twice.
	for _, f := range []struct{ key, val string }{{"till.store_id", c.Till.StoreID}, {"till.till_id", c.Till.TillID}} {
		switch {
		case f.val == "":
			bad(f.key, `""`, "must not be empty")
		case !recordid.Valid(f.val):
			bad(f.key, f.val, "must be 1-64 characters of A-Z a-z 0-9 _ . : / -, starting with a letter or digit")
		}
	}
	if _, err := time.LoadLocation(c.Till.Timezone); err != nil || c.Till.Timezone == "" {
		bad("till.timezone", c.Till.Timezone, "not a known IANA time zone")
	}
	if c.Store.Path == "" {
		bad("store.path", `""`, "must not be empty")
	}
	if c.Store.BusyTimeout < 100*time.Millisecond || c.Store.BusyTimeout > time.Minute {
		bad("store.busy_timeout", c.Store.BusyTimeout, "must be between 100ms and 1m")
	}
	if c.Store.DemoReplica != "" {
		if _, err := os.Stat(c.Store.DemoReplica); err != nil {
			bad("store.demo_replica", c.Store.DemoReplica, "%v", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "must be one of debug, info, warn, error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", c.Log.Format, "must be text or json")
	}
	errs = append(errs, c.Printer.validate(c.File)...)
	for i := range c.Scanners {
		errs = append(errs, c.Scanners[i].validate(c.File, fmt.Sprintf("scanners[%d]", i))...)
	}
	errs = append(errs, c.Classify.validate(c.File)...)
	errs = append(errs, c.API.validate(c.File)...)
	errs = append(errs, c.Receipt.validate(c.File)...)
	errs = append(errs, c.Sale.validate(c.File)...)
	errs = append(errs, c.Sync.validate(c.File)...)
	return errors.Join(errs...)
}

// Location returns the store's time zone; Validate has checked it loads.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Till.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
