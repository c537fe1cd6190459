package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml v1.6 keeps key positions private (MetaData.keyInfo) and
// only reports them in its own decode errors, keyed without array indices.
// So the loader indexes the document itself: one pass over (already
// syntax-checked) TOML that records the line of every table header, key and
// array element under its indexed path ("vip[2].check.type").

// keyPos is one key (or array element) of the document.
type keyPos struct {
	path  string   // indexed path: "cluster.member[1].name"
	key   toml.Key // the same key without indices, as MetaData names it
	line  int
	isKey bool // false for array elements
}

// index maps indexed key paths to the line they are defined on.
type index struct {
	lines   map[string]int
	entries []keyPos
}

// line returns the line of path, or of its nearest ancestor that has one,
// or 0.
func (x *index) line(path string) int {
	for path != "" {
		if l, ok := x.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[n]" from path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// scanner walks a TOML document. It is written for valid TOML (the decoder
// has accepted the document before the index is built) but must terminate
// and never panic on anything.
type scanner struct {
	s    string
	i    int
	line int
	aot  map[string]int // indexed path of an array of tables -> elements seen
	x    *index
}

func buildIndex(data []byte) *index {
	sc := &scanner{s: string(data), line: 1, aot: map[string]int{}, x: &index{lines: map[string]int{}}}
	sc.document()
	return sc.x
}

func (sc *scanner) peek(off int) byte {
	if sc.i+off < len(sc.s) {
		return sc.s[sc.i+off]
	}
	return 0
}

// rest is the unscanned input.
func (sc *scanner) rest() string {
	if sc.i >= len(sc.s) {
		return ""
	}
	return sc.s[sc.i:]
}

func (sc *scanner) record(path string, key toml.Key, line int, isKey bool) {
	if path == "" {
		return
	}
	if _, ok := sc.x.lines[path]; !ok {
		sc.x.lines[path] = line
	}
	sc.x.entries = append(sc.x.entries, keyPos{path: path, key: key, line: line, isKey: isKey})
}

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t' || sc.s[sc.i] == '\r') {
		sc.i++
	}
}

// skipBlank skips spaces, newlines and comments.
func (sc *scanner) skipBlank() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r':
			sc.i++
		case '\n':
			sc.line++
			sc.i++
		case '#':
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *scanner) skipComment() {
	for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
		sc.i++
	}
}

func (sc *scanner) document() {
	var (
		table    string   // indexed path of the current table
		tableKey toml.Key // the same without indices
	)
	for sc.i < len(sc.s) {
		start := sc.i
		sc.skipBlank()
		if sc.i >= len(sc.s) {
			return
		}
		line := sc.line
		if sc.s[sc.i] == '[' {
			array := sc.peek(1) == '['
			if array {
				sc.i += 2
			} else {
				sc.i++
			}
			segs := sc.key()
			table, tableKey = sc.resolve(segs, array)
			sc.record(table, tableKey, line, true)
			for sc.i < len(sc.s) && sc.s[sc.i] == ']' {
				sc.i++
			}
		} else {
			segs := sc.key()
			if len(segs) > 0 {
				sc.keyValue(table, tableKey, segs, line)
			}
		}
		if sc.i == start {
			sc.i++ // not TOML: never stall
		}
	}
}

// keyValue records a `a.b.c = value` line below table and scans the value.
func (sc *scanner) keyValue(table string, tableKey toml.Key, segs []string, line int) {
	path, key := table, append(toml.Key{}, tableKey...)
	for _, seg := range segs {
		path = joinPath(path, seg)
		key = append(key, seg)
		sc.record(path, append(toml.Key{}, key...), line, true)
	}
	sc.skipSpace()
	if sc.peek(0) != '=' {
		return
	}
	sc.i++
	sc.value(path, key)
}

// resolve turns a table header's key into an indexed path, counting the
// elements of arrays of tables.
func (sc *scanner) resolve(segs []string, array bool) (string, toml.Key) {
	cur := ""
	for j, seg := range segs {
		cur = joinPath(cur, seg)
		if j == len(segs)-1 && array {
			n := sc.aot[cur]
			sc.aot[cur] = n + 1
			cur += "[" + strconv.Itoa(n) + "]"
		} else if n, ok := sc.aot[cur]; ok && n > 0 {
			cur += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return cur, toml.Key(segs)
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// key scans a dotted key and returns its segments.
func (sc *scanner) key() []string {
	var segs []string
	for {
		sc.skipSpace()
		switch c := sc.peek(0); {
		case c == '"':
			raw := sc.basicString()
			if s, err := strconv.Unquote(raw); err == nil {
				segs = append(segs, s)
			} else {
				segs = append(segs, strings.Trim(raw, `"`))
			}
		case c == '\'':
			segs = append(segs, strings.Trim(sc.literalString(), "'"))
		case isBare(c):
			start := sc.i
			for sc.i < len(sc.s) && isBare(sc.s[sc.i]) {
				sc.i++
			}
			segs = append(segs, sc.s[start:sc.i])
		default:
			return segs
		}
		sc.skipSpace()
		if sc.peek(0) != '.' {
			return segs
		}
		sc.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// basicString scans a one-line "..." string and returns it with its quotes.
func (sc *scanner) basicString() string {
	start := sc.i
	sc.i++
	for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
		switch sc.s[sc.i] {
		case '\\':
			sc.i += 2
			continue
		case '"':
			sc.i++
			return sc.s[start:sc.i]
		}
		sc.i++
	}
	if sc.i > len(sc.s) {
		sc.i = len(sc.s)
	}
	return sc.s[start:sc.i]
}

// literalString scans a one-line '...' string.
func (sc *scanner) literalString() string {
	start := sc.i
	sc.i++
	for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
		if sc.s[sc.i] == '\'' {
			sc.i++
			return sc.s[start:sc.i]
		}
		sc.i++
	}
	return sc.s[start:sc.i]
}

// multiline scans a multi-line string (either quote kind), counting its
// newlines.
func (sc *scanner) multiline(delim string) {
	sc.i += 3
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '\n':
			sc.line++
		case c == '\\' && delim == `"""`:
			if sc.peek(1) == '\n' {
				sc.line++
			}
			sc.i += 2
			continue
		case strings.HasPrefix(sc.rest(), delim):
			sc.i += 3
			// Up to two more quotes belong to the content.
			for k := 0; k < 2 && sc.i < len(sc.s) && sc.s[sc.i] == delim[0]; k++ {
				sc.i++
			}
			return
		}
		sc.i++
	}
}

// value scans one value of key path; arrays and inline tables record their
// elements and keys.
func (sc *scanner) value(path string, key toml.Key) {
	sc.skipSpace()
	switch c := sc.peek(0); {
	case strings.HasPrefix(sc.rest(), `"""`):
		sc.multiline(`"""`)
	case strings.HasPrefix(sc.rest(), `'''`):
		sc.multiline(`'''`)
	case c == '"':
		sc.basicString()
	case c == '\'':
		sc.literalString()
	case c == '[':
		sc.i++
		for n := 0; sc.i < len(sc.s); n++ {
			sc.skipBlank()
			if sc.peek(0) == ']' || sc.i >= len(sc.s) {
				sc.i++
				return
			}
			start := sc.i
			elem := path + "[" + strconv.Itoa(n) + "]"
			sc.record(elem, key, sc.line, false)
			sc.value(elem, key)
			sc.skipBlank()
			if sc.peek(0) == ',' {
				sc.i++
			}
			if sc.i == start {
				sc.i++
			}
		}
	case c == '{':
		sc.i++
		for sc.i < len(sc.s) {
			sc.skipBlank()
			if sc.peek(0) == '}' || sc.i >= len(sc.s) {
				sc.i++
				return
			}
			start := sc.i
			line := sc.line
			if segs := sc.key(); len(segs) > 0 {
				sc.keyValue(path, key, segs, line)
			}
			sc.skipBlank()
			if sc.peek(0) == ',' {
				sc.i++
			}
			if sc.i == start {
				sc.i++
			}
		}
	default:
		for sc.i < len(sc.s) && !strings.ContainsRune(",]}\n#", rune(sc.s[sc.i])) {
			sc.i++
		}
	}
}
