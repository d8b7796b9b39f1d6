//go:build tools

// Package deps pins modules that packages still being written will import, so
// go mod tidy keeps them. Remove once every module here has a real importer.
package deps
import (
 _ "github.com/spf13/viper"
 _ "github.com/shopspring/decimal"
 _ "modernc.org/sqlite"
 _ "go.bug.st/serial"
 _ "github.com/karalabe/hid"
 _ "github.com/creack/pty"
 _ "gopkg.in/yaml.v3"
 _ "golang.org/x/text/encoding/charmap"
 _ "golang.org/x/sys/unix"
)
