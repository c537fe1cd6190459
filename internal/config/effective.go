package config

import (
	"encoding"
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/routing"
)

// Effective renders the configuration as vipd.toml the way vipd runs it:
// every default filled in, the routing mode's sections only (vipctl config
// show). Read back with Parse it gives the same configuration. With redact,
// secrets (BGP and OSPF passwords) are written "<redacted>".
//
// The keys come from the raw schema (raw.go) by Go field name, and from
// the toml tags of the sections the routing and health packages own, so a
// field added to Config without a key to write it under is an error here
// (and TestEffectiveRoundTrip fails) rather than silently missing.
func (c *Config) Effective(redact bool) ([]byte, error) {
	e := &emitter{redact: redact}
	fmt.Fprintf(&e.b, "# %s as vipd runs it, every default filled in.\n", c.File)
	cfg := c.withDefaults()
	e.table("node", reflect.ValueOf(cfg.Node))
	e.table("cluster", reflect.ValueOf(cfg.Cluster))
	for _, v := range cfg.VIPs {
		e.vip(v, cfg.Routing.Mode)
	}
	e.routing(cfg.Routing)
	e.table("dataplane", reflect.ValueOf(cfg.Dataplane))
	e.table("timers", reflect.ValueOf(cfg.Timers))
	e.table("api", reflect.ValueOf(cfg.API))
	if e.err != nil {
		return nil, e.err
	}
	return []byte(e.b.String()), nil
}

// withDefaults returns a copy of c with the defaults its sections apply
// lazily filled in.
func (c *Config) withDefaults() Config {
	cfg := *c
	cfg.VIPs = append([]VIP(nil), c.VIPs...)
	for i := range cfg.VIPs {
		v := &cfg.VIPs[i]
		v.Check = v.Check.WithDefaults()
		v.OSPF = v.OSPF.WithDefaults()
	}
	if b := c.Routing.BGP; b != nil {
		n := b.WithDefaults()
		cfg.Routing.BGP = &n
	}
	if b := c.Routing.Bird; b != nil {
		n := b.WithDefaults()
		cfg.Routing.Bird = &n
	}
	return cfg
}

// rawOf maps each Config section type to the raw type that holds its keys.
var rawOf = map[reflect.Type]reflect.Type{
	reflect.TypeFor[Node]():      reflect.TypeFor[rawNode](),
	reflect.TypeFor[Cluster]():   reflect.TypeFor[rawCluster](),
	reflect.TypeFor[Member]():    reflect.TypeFor[rawMember](),
	reflect.TypeFor[Etcd]():      reflect.TypeFor[rawEtcd](),
	reflect.TypeFor[VIP]():       reflect.TypeFor[rawVIP](),
	reflect.TypeFor[Dataplane](): reflect.TypeFor[rawDataplane](),
	reflect.TypeFor[Timers]():    reflect.TypeFor[rawTimers](),
	reflect.TypeFor[API]():       reflect.TypeFor[rawAPI](),
}

// renamed are the typed fields whose raw field has another Go name.
var renamed = map[string]string{"VIP.Addr": "Address"}

// secretKeys are written "<redacted>" when redacting.
var secretKeys = map[string]bool{"password": true}

type emitter struct {
	b      strings.Builder
	redact bool
	err    error
}

func (e *emitter) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("rendering the effective config: "+format, args...)
	}
}

// key returns the TOML key of field f of struct type t ("" to skip).
func (e *emitter) key(t reflect.Type, f reflect.StructField) string {
	if raw, ok := rawOf[t]; ok {
		name := f.Name
		if r, ok := renamed[t.Name()+"."+f.Name]; ok {
			name = r
		}
		rf, ok := raw.FieldByName(name)
		if !ok {
			e.fail("%s.%s has no key in the schema", t.Name(), f.Name)
			return ""
		}
		return tagName(rf)
	}
	tag := tagName(f)
	if tag == "" {
		e.fail("%s.%s has no toml key", t.Name(), f.Name)
	}
	return tag
}

// unset: an empty string or list, which reads back the same when left
// out (and is noise in a check of another type). A list whose absence
// means "the default" ([node] client_prefixes: a pointer in the raw
// schema) is written even when empty.
func (e *emitter) unset(t reflect.Type, f reflect.StructField, v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return v.Len() == 0
	case reflect.Slice:
		if v.Len() > 0 {
			return false
		}
		if raw, ok := rawOf[t]; ok {
			if rf, ok := raw.FieldByName(f.Name); ok && rf.Type.Kind() == reflect.Pointer {
				return false
			}
		}
		return true
	}
	return false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// table writes [path] with v's fields: scalars first (TOML wants a table's
// own keys before its subtables), then subtables and arrays of tables.
func (e *emitter) table(path string, v reflect.Value) {
	e.header("["+path+"]", v, nil)
	e.body(path, v, nil)
}

// header writes a table header and v's scalar keys (plus extra, written
// first).
func (e *emitter) header(h string, v reflect.Value, extra func()) {
	fmt.Fprintf(&e.b, "\n%s\n", h)
	if extra != nil {
		extra()
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || tagName(f) == "-" {
			continue
		}
		fv := v.Field(i)
		if !isScalar(f.Type) && !isScalarSlice(f.Type) {
			continue
		}
		k := e.key(t, f)
		if k == "" || e.unset(t, f, fv) {
			continue
		}
		if s, ok := e.value(fv); ok {
			if e.redact && secretKeys[k] && s != `""` {
				s = `"<redacted>"`
			}
			fmt.Fprintf(&e.b, "%s = %s\n", k, s)
		}
	}
}

// body writes v's subtables and arrays of tables under path.
func (e *emitter) body(path string, v reflect.Value, skip map[string]bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || tagName(f) == "-" || skip[f.Name] || isScalar(f.Type) || isScalarSlice(f.Type) {
			continue
		}
		k := e.key(t, f)
		if k == "" {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Pointer:
			if !fv.IsNil() {
				e.table(path+"."+k, fv.Elem())
			}
		case fv.Kind() == reflect.Struct:
			e.table(path+"."+k, fv)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			for j := range fv.Len() {
				e.header("[["+path+"."+k+"]]", fv.Index(j), nil)
				e.body(path+"."+k, fv.Index(j), nil)
			}
		default:
			e.fail("%s.%s: cannot write a %s", path, k, fv.Type())
		}
	}
}

// vip writes one [[vip]] with the routing mode's attributes only.
func (e *emitter) vip(v VIP, mode routing.Mode) {
	rv := reflect.ValueOf(v)
	e.header("[[vip]]", rv, nil)
	skip := map[string]bool{"BGP": true, "OSPF": true}
	e.body("vip", rv, skip)
	switch mode {
	case routing.ModeBGP:
		e.table("vip.bgp", reflect.ValueOf(v.BGP))
	case routing.ModeBirdOSPF:
		e.table("vip.ospf", reflect.ValueOf(v.OSPF))
	}
}

// routing writes [routing] and the mode's section, with the drain policy
// in it (where the file has it).
func (e *emitter) routing(r Routing) {
	fmt.Fprintf(&e.b, "\n[routing]\nmode = %s\n", quote(r.Mode.String()))
	drain := func() {
		s, _ := e.value(reflect.ValueOf(r.Drain))
		fmt.Fprintf(&e.b, "drain = %s\n", s)
	}
	switch {
	case r.BGP != nil:
		v := reflect.ValueOf(*r.BGP)
		e.header("[routing.bgp]", v, drain)
		e.body("routing.bgp", v, nil)
	case r.Bird != nil:
		v := reflect.ValueOf(*r.Bird)
		e.header("[routing.bird]", v, drain)
		e.body("routing.bird", v, nil)
	}
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	durationType  = reflect.TypeFor[time.Duration]()
	urlType       = reflect.TypeFor[url.URL]()
	addrType      = reflect.TypeFor[netip.Addr]()
	addrPortType  = reflect.TypeFor[netip.AddrPort]()
	prefixType    = reflect.TypeFor[netip.Prefix]()
)

func isScalar(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType || t == urlType || t.Implements(textMarshaler):
		return true
	case t.Kind() == reflect.Struct:
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float64:
		return true
	}
	return false
}

func isScalarSlice(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && isScalar(t.Elem())
}

// value writes v as a TOML value; ok is false for a value left out (a nil
// pointer, an unset address: the key's absence is its meaning).
func (e *emitter) value(v reflect.Value) (string, bool) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	switch t := v.Type(); {
	case t == addrType || t == addrPortType || t == prefixType:
		if !v.MethodByName("IsValid").Call(nil)[0].Bool() {
			return "", false
		}
		return quote(fmt.Sprint(v.Interface())), true
	case t == durationType:
		return quote(time.Duration(v.Int()).String()), true
	case t == urlType:
		u := v.Interface().(url.URL)
		if u == (url.URL{}) {
			return "", false
		}
		return quote(u.String()), true
	case t.Kind() == reflect.Slice:
		parts := make([]string, 0, v.Len())
		for i := range v.Len() {
			s, ok := e.value(v.Index(i))
			if ok {
				parts = append(parts, s)
			}
		}
		return "[" + strings.Join(parts, ", ") + "]", true
	case t.Implements(textMarshaler):
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			// A zero mode or policy: not set.
			return "", false
		}
		return quote(string(b)), true
	}
	switch v.Kind() {
	case reflect.String:
		return quote(v.String()), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	}
	e.fail("cannot write a %s", v.Type())
	return "", false
}

// quote writes a TOML basic string: Go's escapes would use \x, which
// TOML lacks.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
