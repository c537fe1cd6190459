// Package fielderr carries configuration errors that name the item they are
// about, as a dotted key path ("routing.bgp.neighbors[1].asn"), so that the
// config loader can turn the path into file:line for the operator.
package fielderr

import (
	"errors"
	"fmt"
)

// Error is a validation error about one configuration item.
type Error struct {
	// Path is the dotted TOML key path of the item, relative to the section
	// that produced it; Prefix makes it absolute.
	Path string
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error for path with a formatted message.
func New(path, format string, args ...any) error {
	return &Error{Path: path, Err: fmt.Errorf(format, args...)}
}

// Prefix prepends prefix to the path of every *Error in err (which may be an
// errors.Join of several) and returns the result. A nil err stays nil.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Prefix(prefix, e))
		}
		return errors.Join(out...)
	}
	var fe *Error
	if errors.As(err, &fe) {
		p := prefix
		if fe.Path != "" {
			if fe.Path[0] == '[' {
				p += fe.Path
			} else {
				p += "." + fe.Path
			}
		}
		return &Error{Path: p, Err: fe.Err}
	}
	return &Error{Path: prefix, Err: err}
}

// All flattens err (an errors.Join tree or a single error) into its leaves.
func All(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, All(e)...)
		}
		return out
	}
	return []error{err}
}
