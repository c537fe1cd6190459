// Package monitoring owns what vipd ships for Prometheus and Grafana: the
// alert rules (vipd-alerts.yml, with promtool tests), the dashboard
// (vipd-dashboard.json) and the metric contract (metrics.txt) both are
// written against. It embeds the three files and reads the metric names out
// of every expression, so tests (here, and in phase 2 against a live
// /metrics in the lab) can prove that nothing names a metric vipd does not
// export.
package monitoring

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	//go:embed vipd-alerts.yml
	rulesFile []byte
	//go:embed vipd-dashboard.json
	dashboardFile []byte
	//go:embed metrics.txt
	contractFile []byte
)

// Metric is one family of the contract.
type Metric struct {
	Name string
	// Type is "counter", "gauge" or "histogram".
	Type string
	// Labels are the family's own labels, without the target labels
	// Prometheus adds (job, instance).
	Labels []string
	// Until names the issue whose part exports the family, while a live
	// vipd may still lack it ("issue-12"); empty for every family vipd
	// exports today.
	Until string
}

// Contract returns the metric families vipd exports, by name.
func Contract() (map[string]Metric, error) {
	out := map[string]Metric{}
	for i, line := range strings.Split(string(contractFile), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("metrics.txt:%d: want NAME TYPE LABELS [until:ISSUE], got %q", i+1, line)
		}
		m := Metric{Name: f[0], Type: f[1]}
		if len(f) == 4 {
			until, ok := strings.CutPrefix(f[3], "until:")
			if !ok || until == "" {
				return nil, fmt.Errorf("metrics.txt:%d: fourth column %q, want until:ISSUE", i+1, f[3])
			}
			m.Until = until
		}
		if f[2] != "-" {
			m.Labels = strings.Split(f[2], ",")
		}
		if _, dup := out[m.Name]; dup {
			return nil, fmt.Errorf("metrics.txt:%d: %s listed twice", i+1, m.Name)
		}
		out[m.Name] = m
	}
	return out, nil
}

// Family returns the contract family a series name belongs to: the name
// itself, or for a histogram's _bucket, _sum and _count series the
// histogram.
func Family(contract map[string]Metric, series string) (Metric, bool) {
	if m, ok := contract[series]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if m, ok := contract[base]; ok && m.Type == "histogram" {
				return m, true
			}
		}
	}
	return Metric{}, false
}

// Rule is one alerting rule of vipd-alerts.yml.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Rules returns the alerting rules vipd ships.
func Rules() ([]Rule, error) {
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rulesFile, &doc); err != nil {
		return nil, fmt.Errorf("parsing vipd-alerts.yml: %w", err)
	}
	var out []Rule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// Panel is one dashboard panel with its queries.
type Panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// Dashboard is the part of vipd-dashboard.json the checks read.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// LoadDashboard returns the dashboard vipd ships.
func LoadDashboard() (Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(dashboardFile, &d); err != nil {
		return d, fmt.Errorf("parsing vipd-dashboard.json: %w", err)
	}
	return d, nil
}

// Exprs returns every PromQL expression vipd ships, keyed by where it is
// ("rule VipdDown", "panel 7 Traffic per VIP", "variable vip").
func Exprs() (map[string]string, error) {
	rules, err := Rules()
	if err != nil {
		return nil, err
	}
	d, err := LoadDashboard()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rules {
		out["rule "+r.Alert] = r.Expr
	}
	for _, p := range d.Panels {
		for i, t := range p.Targets {
			out[fmt.Sprintf("panel %d %q target %d", p.ID, p.Title, i)] = t.Expr
		}
	}
	for _, v := range d.Templating.List {
		if e, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			// label_values(SELECTOR, LABEL): the selector is PromQL.
			if i := strings.LastIndex(e, ","); i > 0 {
				out["variable "+v.Name] = e[:i]
			}
		}
	}
	return out, nil
}

// Selector is one metric named in an expression, with the labels its
// matchers name.
type Selector struct {
	Name   string
	Labels []string
}

// ErrSyntax: an expression the lexer does not understand. The lexer knows
// the PromQL the shipped files use, and refuses the rest rather than guess.
var ErrSyntax = errors.New("unsupported PromQL syntax")

// keywords that are followed by a label list in parentheses.
var labelListWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// operatorWords are PromQL words that are neither metrics nor functions.
var operatorWords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan"}

// Selectors returns the metrics an expression reads, in order of
// appearance. Functions and aggregations (a word before "("), label lists
// (by, on, ...), ranges and strings are not metrics.
func Selectors(expr string) ([]Selector, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	var out []Selector
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tokPunct && t.text == "[":
			j := slices.IndexFunc(toks[i:], func(x token) bool { return x.kind == tokPunct && x.text == "]" })
			if j < 0 {
				return nil, fmt.Errorf("%w: unclosed [ in %q", ErrSyntax, expr)
			}
			i += j
		case t.kind == tokPunct && t.text == "{":
			return nil, fmt.Errorf("%w: a selector without a metric name in %q", ErrSyntax, expr)
		case t.kind != tokIdent:
		case slices.Contains(labelListWords, t.text):
			if i+1 < len(toks) && toks[i+1].text == "(" {
				j := slices.IndexFunc(toks[i+1:], func(x token) bool { return x.text == ")" })
				if j < 0 {
					return nil, fmt.Errorf("%w: unclosed label list in %q", ErrSyntax, expr)
				}
				i += 1 + j
			}
		case slices.Contains(operatorWords, strings.ToLower(t.text)):
		case i+1 < len(toks) && (toks[i+1].text == "(" || toks[i+1].text == "by" || toks[i+1].text == "without"):
			// A function, or an aggregation ("sum by (vip) (...)").
		default:
			s := Selector{Name: t.text}
			if i+1 < len(toks) && toks[i+1].text == "{" {
				j := i + 2
				for ; j < len(toks) && toks[j].text != "}"; j++ {
					if toks[j].kind == tokIdent && j+1 < len(toks) && toks[j+1].kind == tokOp {
						s.Labels = append(s.Labels, toks[j].text)
					}
				}
				if j == len(toks) {
					return nil, fmt.Errorf("%w: unclosed { in %q", ErrSyntax, expr)
				}
				i = j
			}
			out = append(out, s)
		}
	}
	return out, nil
}

type tokKind int

const (
	tokIdent tokKind = iota
	tokNumber
	tokString
	tokPunct // ( ) { } [ ] ,
	tokOp    // = != =~ !~ == > < >= <= + - * / % ^
)

type token struct {
	kind tokKind
	text string
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// lex splits a PromQL expression into tokens. Grafana's $variables may
// appear inside ranges ([$__rate_interval]) and strings only.
func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string in %q", ErrSyntax, s)
			}
			out = append(out, token{tokString, s[i : j+1]})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (isIdentChar(s[j]) || s[j] == '.' ||
				((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{tokNumber, s[i:j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			out = append(out, token{tokIdent, s[i:j]})
			i = j
		case c == '$':
			// A Grafana variable: only inside a range, which Selectors skips.
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			out = append(out, token{tokNumber, s[i:j]})
			i = j
		case strings.IndexByte("(){}[],", c) >= 0:
			out = append(out, token{tokPunct, string(c)})
			i++
		case strings.IndexByte("=!<>~+-*/%^", c) >= 0:
			j := i + 1
			for j < len(s) && strings.IndexByte("=~", s[j]) >= 0 {
				j++
			}
			out = append(out, token{tokOp, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected %q in %q", ErrSyntax, c, s)
		}
	}
	return out, nil
}
