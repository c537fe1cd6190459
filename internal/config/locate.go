package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml names a failing key without array indices and with the
// line of its LAST occurrence, so a type error in neighbor[0] of two would
// point at neighbor[1]. locate finds the element that really fails by
// decoding each array-of-tables element (and sub-table) on its own.

// locate returns the indexed path, below path, of the innermost table of
// data (decoded into type t) that fails to decode on its own.
func locate(data any, t reflect.Type, path string) string {
	t = deref(t)
	m, ok := data.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return path
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		ft, ok := fieldType(t, key)
		if !ok {
			continue
		}
		switch v := m[key].(type) {
		case []map[string]any:
			if ft.Kind() != reflect.Slice {
				continue
			}
			for i, e := range v {
				if !decodesAlone(e, ft.Elem()) {
					return locate(e, ft.Elem(), fmt.Sprintf("%s.%s[%d]", path, key, i))
				}
			}
		case map[string]any:
			if !decodesAlone(v, ft) {
				return locate(v, ft, path+"."+key)
			}
		}
	}
	return path
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldType is the type of t's field tagged toml:"key".
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	for _, f := range tomlFields(t) {
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key {
			return deref(f.Type), true
		}
	}
	return nil, false
}

// tomlFields lists the fields of struct type t as TOML decodes them: the
// fields of an embedded untagged struct count as t's own.
func tomlFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Tag.Get("toml") == "" && deref(f.Type).Kind() == reflect.Struct {
			out = append(out, tomlFields(deref(f.Type))...)
			continue
		}
		out = append(out, f)
	}
	return out
}

// decodesAlone reports whether table m decodes into a new value of type t.
// When m cannot be re-encoded it answers true (no better guess).
func decodesAlone(m map[string]any, t reflect.Type) bool {
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return true
	}
	_, err := toml.Decode(b.String(), reflect.New(deref(t)).Interface())
	return err == nil
}

// typeMismatchRE matches the decoder's message for a table that is not
// one, which names Go types.
var typeMismatchRE = regexp.MustCompile(`^type mismatch for [^:]+: expected table but found (.*)$`)

// tomlMessage rewrites decoder messages that speak Go instead of TOML.
func tomlMessage(msg string) string {
	m := typeMismatchRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	found := m[1]
	switch {
	case strings.HasPrefix(found, "[]map"):
		found = "an array of tables ([[...]])"
	case strings.HasPrefix(found, "[]"):
		found = "an array"
	}
	return "must be a table ([...]), not " + found
}
