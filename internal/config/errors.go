package config

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

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

// joinSorted returns the errors in file order (unlocated ones last), of
// each kind the first GroupAfter and then one line for the rest
// (groupKinds), as one errors.Join, or nil.
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
	errs = groupKinds(errs)
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// GroupAfter is how many errors of one kind are listed one by one; the
// rest of that kind are counted in one line after them. A 2,000-VIP config
// whose VIPs all lack a check gets three lines and "and 1,997 more VIPs
// with this error", not 2,000 near-identical lines.
const GroupAfter = 3

// groupKinds keeps, of each kind of error (the same item in different
// sections of an array, with the same message up to the values in it),
// the first GroupAfter, and puts one *Error counting the others, with the
// lines they are on, right after the last one kept. The count's error
// wraps the kind's, so errors.Is still finds it.
func groupKinds(errs []*Error) []*Error {
	type kind struct {
		n         int
		first     *Error
		from, to  int // lines of the grouped ones
		countedAt int // index in out of the counting line
	}
	kinds := map[string]*kind{}
	var out []*Error
	for _, e := range errs {
		k := stripIndices(e.Item) + "\x00" + valuesMasked.ReplaceAllString(e.Err.Error(), "#")
		kd := kinds[k]
		if kd == nil {
			kd = &kind{first: e, countedAt: -1}
			kinds[k] = kd
		}
		kd.n++
		if kd.n <= GroupAfter {
			out = append(out, e)
			continue
		}
		if kd.countedAt < 0 {
			kd.countedAt = len(out)
			kd.from = e.Line
			out = append(out, nil)
		}
		if e.Line > 0 {
			if kd.from == 0 {
				kd.from = e.Line
			}
			kd.to = e.Line
		}
	}
	for _, kd := range kinds {
		if kd.countedAt < 0 {
			continue
		}
		more := kd.n - GroupAfter
		msg := fmt.Sprintf("and %s more %s with this error", thousands(more), plural(kd.first.Item, more))
		if kd.from > 0 {
			msg += fmt.Sprintf(" (lines %d-%d)", kd.from, kd.to)
		}
		out[kd.countedAt] = &Error{File: kd.first.File, Item: anyIndex.ReplaceAllString(kd.first.Item, "[*]"),
			Err: fmt.Errorf("%s: %w", msg, kd.first.Err)}
	}
	return out
}

var (
	// valuesMasked finds the values in a message (quoted strings,
	// numbers, addresses), which differ between errors of one kind.
	valuesMasked = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|[0-9A-Fa-f]*[0-9][0-9A-Fa-f.:/]*`)
	anyIndex     = regexp.MustCompile(`\[[0-9]+\]`)
)

// plural names n of what item is one of: "VIPs" for vip[2].check,
// "members" for cluster.member[1].name, else "items".
func plural(item string, n int) string {
	words := map[string][2]string{
		"vip": {"VIP", "VIPs"}, "cluster.member": {"member", "members"},
		"routing.bgp.neighbor": {"neighbor", "neighbors"},
	}
	base := item
	if i := strings.Index(item, "["); i >= 0 {
		base = item[:i]
	}
	w, ok := words[base]
	if !ok {
		w = [2]string{"item", "items"}
	}
	if n == 1 {
		return w[0]
	}
	return w[1]
}

// thousands writes n with thousands separators: 1,995.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
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
