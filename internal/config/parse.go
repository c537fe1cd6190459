package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vipd/vipd/internal/fielderr"
)

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, the contents of the file path (used in error
// messages). On failure the error is an errors.Join of *Error, one per
// mistake, in file order; a TOML syntax error stops at the first one.
func Parse(path string, data []byte) (*Config, error) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		line, key, msg := tomlError(err)
		return nil, joinSorted([]*Error{{File: path, Line: line, Item: key, Err: errors.New(msg)}})
	}
	p := &parser{file: path, md: &md, idx: buildIndex(data)}
	cfg := p.build(&raw)
	p.unknownKeys()
	if err := joinSorted(p.errs); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parser collects the errors of one Parse.
type parser struct {
	file string
	md   *toml.MetaData
	idx  *index
	errs []*Error
	// failed holds the paths of sections that did not decode: their keys
	// are reported once, not again as unknown.
	failed []string
	// vipIdx maps an index of Config.VIPs (which leaves out VIPs that did
	// not parse) to the [[vip]] index in the file.
	vipIdx []int
}

// add records err, a fielderr error (or an errors.Join of them) whose
// paths are absolute.
func (p *parser) add(err error) {
	for _, e := range fielderr.All(err) {
		item := ""
		var fe *fielderr.Error
		if errors.As(e, &fe) {
			item, e = fe.Path, fe.Err
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: p.idx.line(item), Item: item, Err: e})
	}
}

func (p *parser) errorf(path, format string, args ...any) {
	p.add(fielderr.New(path, format, args...))
}

func (p *parser) missing(path string) {
	p.add(&fielderr.Error{Path: path, Err: ErrMissing})
}

// decode decodes the section prim (at indexed path, unindexed key) into v
// and reports a failure at the key it happened at.
func (p *parser) decode(prim *toml.Primitive, path string, v any) bool {
	err := p.md.PrimitiveDecode(*prim, v)
	if err == nil {
		return true
	}
	p.failed = append(p.failed, path)
	line, key, msg := tomlError(err)
	msg = tomlMessage(msg)
	item := path
	// key has no array indices; re-root it under the innermost table that
	// fails on its own, whose path has them.
	var data any
	if p.md.PrimitiveDecode(*prim, &data) == nil {
		at := locate(data, reflect.TypeOf(v), path)
		if rest, ok := strings.CutPrefix(key, stripIndices(at)); ok && (rest == "" || rest[0] == '.') {
			item = at + rest
		}
	}
	if item == path {
		if rest, ok := strings.CutPrefix(key, stripIndices(path)); ok && (rest == "" || rest[0] == '.') {
			item = path + rest
		}
	}
	if l, ok := p.idx.lines[item]; ok {
		line = l
	} else if line == 0 {
		line = p.idx.line(item)
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Item: item, Err: errors.New(msg)})
	return false
}

func stripIndices(path string) string {
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (p *parser) isFailed(path string) bool {
	for _, f := range p.failed {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			return true
		}
	}
	return false
}

// unknownKeys reports every key the schema did not decode, once, at its
// outermost unknown table or key.
func (p *parser) unknownKeys() {
	und := map[string]bool{}
	for _, k := range p.md.Undecoded() {
		und[k.String()] = true
	}
	topmost := func(k toml.Key) bool {
		return und[k.String()] && (len(k) < 2 || !und[k[:len(k)-1].String()])
	}
	seen := map[string]bool{}
	matched := map[string]bool{}
	for _, e := range p.idx.entries {
		if !e.isKey || !und[e.key.String()] {
			continue
		}
		matched[e.key.String()] = true
		if !topmost(e.key) || seen[e.path] || p.isFailed(e.path) {
			continue
		}
		seen[e.path] = true
		p.errs = append(p.errs, &Error{File: p.file, Line: e.line, Item: e.path, Err: unknownKey(e.key)})
	}
	// Keys the index could not place (it reads valid TOML only loosely)
	// are still reported, without a line.
	for _, k := range p.md.Undecoded() {
		if !matched[k.String()] && topmost(k) && !p.isFailed(k.String()) && !seen[k.String()] {
			seen[k.String()] = true
			p.errs = append(p.errs, &Error{File: p.file, Item: k.String(), Err: unknownKey(k)})
		}
	}
}

// addr parses a bare IP address (no prefix length, no zone). An empty s
// gives the zero Addr; required reports it missing.
func (p *parser) addr(path, s string, required bool) netip.Addr {
	if s == "" {
		if required {
			p.missing(path)
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		p.errorf(path, "%q is not an IP address", s)
	case a.Zone() != "":
		p.errorf(path, "%q has a zone; zones are not allowed here", s)
	case a.Is4In6():
		p.errorf(path, "%q is an IPv4-mapped IPv6 address; write %s", s, a.Unmap())
	default:
		return a
	}
	return netip.Addr{}
}

// addrFamily is addr that also requires IPv4 (bits 32) or IPv6 (128).
func (p *parser) addrFamily(path, s string, bits int, required bool) netip.Addr {
	a := p.addr(path, s, required)
	if a.IsValid() && a.BitLen() != bits {
		p.errorf(path, "%s is not an IPv%d address", a, map[int]int{32: 4, 128: 6}[bits])
		return netip.Addr{}
	}
	return a
}

// duration parses a positive duration, def when s is empty.
func (p *parser) duration(path, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(path, "%q is not a duration (like \"1s\" or \"500ms\")", s)
		return def
	}
	if d <= 0 {
		p.errorf(path, "%s must be positive", s)
		return def
	}
	return d
}

// addrPort parses "ip:port" with a non-zero port.
func (p *parser) addrPort(path, s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		p.errorf(path, "%q is not address:port (like \"192.0.2.11:9180\" or \"[2001:db8::11]:9180\")", s)
		return netip.AddrPort{}
	}
	return ap
}

// unknownKey is ErrUnknownKey, with the closest known key if one is near.
func unknownKey(k toml.Key) error {
	if s := suggest(k); s != "" {
		return fmt.Errorf("%w (did you mean %q?)", ErrUnknownKey, s)
	}
	return ErrUnknownKey
}
