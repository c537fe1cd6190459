package monitoring

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// LiveReport is what CheckLive found in a live /metrics.
type LiveReport struct {
	// Problems break the contract: a family vipd exports that metrics.txt
	// does not list (or lists with another type or labels), a listed
	// family it does not export, an expression in the rules or the
	// dashboard naming a metric it does not export.
	Problems []string
	// Waiting are listed families a live vipd may still lack ("until:"
	// in metrics.txt), with the issue they wait for; they are not
	// problems.
	Waiting []string
	// Families counts the vipd_ families exported.
	Families int
}

// family is one metric family of an exposition.
type family struct {
	typ     string
	samples int
	labels  map[string]bool // label names seen on its samples
}

// CheckLive checks a /metrics answer (Prometheus text format) against the
// contract, and every expression of the rules and the dashboard against
// it: what the shipped monitoring names must be what a running vipd
// exports.
func CheckLive(exposition io.Reader) (LiveReport, error) {
	var rep LiveReport
	contract, err := Contract()
	if err != nil {
		return rep, err
	}
	fams, err := parseExposition(exposition)
	if err != nil {
		return rep, err
	}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	for _, name := range sortedKeys(fams) {
		if !strings.HasPrefix(name, "vipd_") {
			continue // the Go runtime's and the process's own
		}
		rep.Families++
		f := fams[name]
		m, ok := contract[name]
		if !ok {
			problem("vipd exports %s (%s), which metrics.txt does not list", name, f.typ)
			continue
		}
		if f.typ != m.Type {
			problem("%s is a %s, metrics.txt says %s", name, f.typ, m.Type)
		}
		if f.samples == 0 {
			continue // no series yet: its labels cannot be checked
		}
		got := sortedKeys(f.labels)
		want := slices.Sorted(slices.Values(m.Labels))
		if !slices.Equal(got, want) {
			problem("%s has labels %v, metrics.txt says %v", name, got, want)
		}
	}
	exported := func(name string) bool {
		f, ok := fams[name]
		return ok && f.samples > 0
	}
	for _, name := range sortedKeys(contract) {
		m := contract[name]
		switch {
		case name == "up" || exported(name):
		case m.Until != "":
			rep.Waiting = append(rep.Waiting, fmt.Sprintf("%s (until %s)", name, m.Until))
		default:
			problem("metrics.txt lists %s, which vipd does not export (no series)", name)
		}
	}
	exprs, err := Exprs()
	if err != nil {
		return rep, err
	}
	for _, where := range sortedKeys(exprs) {
		sels, err := Selectors(exprs[where])
		if err != nil {
			return rep, fmt.Errorf("%s: %w", where, err)
		}
		for _, s := range sels {
			m, ok := Family(contract, s.Name)
			switch {
			case !ok:
				problem("%s names %s, which is not in metrics.txt", where, s.Name)
			case m.Name == "up" || exported(m.Name) || m.Until != "":
			default:
				problem("%s names %s, which vipd does not export", where, s.Name)
			}
		}
	}
	return rep, nil
}

// parseExposition reads the text format: "# TYPE name type" lines and
// samples "name{l="v",...} value [timestamp]". A histogram's _bucket,
// _sum and _count samples count for the histogram (without le).
func parseExposition(r io.Reader) (map[string]*family, error) {
	fams := map[string]*family{}
	get := func(name string) *family {
		f := fams[name]
		if f == nil {
			f = &family{labels: map[string]bool{}}
			fams[name] = f
		}
		return f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: bad TYPE line %q", n, line)
			}
			get(f[0]).typ = f[1]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if f, ok := fams[base]; ok && f.typ == "histogram" {
					name = base
					delete(labels, "le")
					break
				}
			}
		}
		f := get(name)
		f.samples++
		for l := range labels {
			f.labels[l] = true
		}
	}
	return fams, sc.Err()
}

// parseSample returns a sample line's metric name and label names.
func parseSample(line string) (string, map[string]bool, error) {
	labels := map[string]bool{}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, fmt.Errorf("bad sample %q", line)
	}
	name := line[:i]
	if line[i] == ' ' {
		return name, labels, nil
	}
	s := line[i+1:]
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return name, labels, nil
		}
		eq := strings.Index(s, "=\"")
		if eq <= 0 {
			return "", nil, fmt.Errorf("bad labels in %q", line)
		}
		labels[s[:eq]] = true
		s = s[eq+2:]
		// The value: up to the first unescaped quote.
		j := 0
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' {
				j++
			}
		}
		if j >= len(s) {
			return "", nil, fmt.Errorf("unterminated label value in %q", line)
		}
		s = s[j+1:]
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
