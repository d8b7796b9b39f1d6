// Package jsonkeys refuses what encoding/json lets through silently in a
// JSON document: a key given twice in one object (encoding/json keeps the
// last, so a card's points named twice would take the second) and, for a
// struct, a top-level key in another case than the field's name.
package jsonkeys

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Check reads the first JSON value of data token by token, once: a
// key twice in one object, at any depth, is an error naming it by its
// path ("cards[0].a"); so is a key of the top object that is not one of
// the JSON names of the struct v points to exactly (the first such in
// byte order). Data that is not JSON is left to the decoder to refuse.
func Check(data []byte, v any) error {
	// container is an object or array being read: its path, and for an
	// object the keys seen and whether a key comes next, for an array
	// the index of its next element.
	type container struct {
		path    string
		object  bool
		keys    map[string]bool
		wantKey bool
		next    int
	}
	var stack []*container
	var topKeys []string
	// valuePath names the value about to be read in c.
	valuePath := func(c *container, key string) string {
		if c.object {
			if c.path == "" {
				return key
			}
			return c.path + "." + key
		}
		return c.path + "[" + strconv.Itoa(c.next) + "]"
	}
	// valueDone moves c past the value just read.
	valueDone := func(c *container) {
		if c.object {
			c.wantKey = true
		} else {
			c.next++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	key := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the decoder names what is wrong
		}
		var top *container
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					break
				}
				valueDone(stack[len(stack)-1])
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return fmt.Errorf("field %q given twice: a JSON object names each field once", valuePath(top, k))
			}
			top.keys[k] = true
			if len(stack) == 1 {
				topKeys = append(topKeys, k)
			}
			key, top.wantKey = k, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			c := &container{object: tok == json.Delim('{'), wantKey: true}
			if c.object {
				c.keys = map[string]bool{}
			}
			if top != nil {
				c.path = valuePath(top, key)
			}
			stack = append(stack, c)
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			break // a scalar or an array at the top: the decoder refuses it
		}
		valueDone(stack[len(stack)-1])
	}
	return exactFieldNames(topKeys, v)
}

// exactFieldNames refuses a key (of the body's top object) that is not
// one of the struct v points to's JSON names exactly, the first in byte
// order; v not a pointer to a struct is left to the decoder.
func exactFieldNames(keys []string, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for f := range t.Elem().Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" && f.IsExported() {
			names[cmp.Or(name, f.Name)] = true
		}
	}
	for _, k := range slices.Sorted(slices.Values(keys)) {
		if names[k] {
			continue
		}
		for n := range names {
			if strings.EqualFold(n, k) {
				return fmt.Errorf("field %q: names are case-sensitive, want %q", k, n)
			}
		}
		return fmt.Errorf("unknown field %q", k)
	}
	return nil
}
