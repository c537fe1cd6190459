package config

import (
	"cmp"
	"errors"
	"regexp"
	"slices"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Sentinel errors, wrapped in *Error.
var (
	// ErrUnknownKey: the key is not part of the schema (a typo, or a key of
	// another section).
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissing: a required key is not set.
	ErrMissing = errors.New("required key is missing")
)

// Error is one configuration mistake, located in its file.
type Error struct {
	File string
	// Line is 1-based; 0 when the item is not in the file (a missing
	// section).
	Line int
	// Item is the dotted key path of the item ("vip[2].address"), empty for
	// TOML syntax errors without a key.
	Item string
	Err  error
}

// Error renders FILE:LINE: ITEM: message.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Item != "" {
		s += ": " + e.Item
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error, so errors.Is(err, ErrUnknownKey)
// works.
func (e *Error) Unwrap() error { return e.Err }

// joinSorted returns the errors in file order (unlocated ones last) as one
// errors.Join, or nil.
func joinSorted(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// BurntSushi/toml reports type mismatches as plain errors; their text is
// the only place the line and key are given.
var tomlErrRE = regexp.MustCompile(`(?s)^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

// tomlError extracts line, unindexed key and message from a BurntSushi/toml
// error.
func tomlError(err error) (line int, key, msg string) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Position.Line, pe.LastKey, pe.Message
	}
	if m := tomlErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		key = m[2]
		if k, err := strconv.Unquote(`"` + m[2] + `"`); err == nil {
			key = k
		}
		return line, key, m[3]
	}
	return 0, "", err.Error()
}
