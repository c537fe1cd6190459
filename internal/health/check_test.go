package health

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/internal/fielderr"
)

// fieldErrs flattens a Validate error into "path: message" strings, sorted,
// and fails if any leaf is not a fielderr error.
func fieldErrs(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range fielderr.All(err) {
		var fe *fielderr.Error
		if !errors.As(e, &fe) {
			t.Errorf("error %q is not a *fielderr.Error", e)
			continue
		}
		out = append(out, fe.Path)
	}
	sort.Strings(out)
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       CheckConfig
		wantPaths []string // key paths of the errors, sorted
	}{
		{"tcp ok", CheckConfig{Type: "tcp", Target: "127.0.0.1:80"}, nil},
		{"tcp ipv6 ok", CheckConfig{Type: "tcp", Target: "[::1]:8080"}, nil},
		{"tcp name ok", CheckConfig{Type: "tcp", Target: "localhost:80"}, nil},
		{"http ok", CheckConfig{Type: "http", URL: "http://127.0.0.1:8080/healthz"}, nil},
		{"https ok", CheckConfig{Type: "http", URL: "https://localhost/"}, nil},
		{"command ok", CheckConfig{Type: "command", Command: []string{"/bin/true"}}, nil},
		{"none ok", CheckConfig{Type: "none"}, nil},
		{"all timings ok", CheckConfig{Type: "none", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1}, nil},

		{"missing type", CheckConfig{}, []string{"type"}},
		{"unknown type", CheckConfig{Type: "icmp"}, []string{"type"}},
		{"tcp missing target", CheckConfig{Type: "tcp"}, []string{"target"}},
		{"tcp no port", CheckConfig{Type: "tcp", Target: "127.0.0.1"}, []string{"target"}},
		{"tcp bad port", CheckConfig{Type: "tcp", Target: "127.0.0.1:http"}, []string{"target"}},
		{"tcp port 0", CheckConfig{Type: "tcp", Target: "127.0.0.1:0"}, []string{"target"}},
		{"tcp port too big", CheckConfig{Type: "tcp", Target: "127.0.0.1:65536"}, []string{"target"}},
		{"tcp no host", CheckConfig{Type: "tcp", Target: ":80"}, []string{"target"}},
		{"http missing url", CheckConfig{Type: "http"}, []string{"url"}},
		{"http bad scheme", CheckConfig{Type: "http", URL: "ftp://x/"}, []string{"url"}},
		{"http no host", CheckConfig{Type: "http", URL: "http:///x"}, []string{"url"}},
		{"http unparsable", CheckConfig{Type: "http", URL: "http://[::1/"}, []string{"url"}},
		{"command missing", CheckConfig{Type: "command"}, []string{"command"}},
		{"command empty argv0", CheckConfig{Type: "command", Command: []string{""}}, []string{"command"}},
		{"field of another type", CheckConfig{Type: "tcp", Target: "127.0.0.1:80", URL: "http://x/"}, []string{"url"}},
		{"none with command", CheckConfig{Type: "none", Command: []string{"true"}}, []string{"command"}},
		{"timeout equals interval", CheckConfig{Type: "none", Interval: time.Second, Timeout: time.Second}, []string{"timeout"}},
		{"timeout above default interval", CheckConfig{Type: "none", Timeout: 3 * time.Second}, []string{"timeout"}},
		{"negative interval", CheckConfig{Type: "none", Interval: -time.Second}, []string{"interval"}},
		{"negative timeout", CheckConfig{Type: "none", Timeout: -time.Second}, []string{"timeout"}},
		{"negative rise", CheckConfig{Type: "none", Rise: -1}, []string{"rise"}},
		{"negative fall", CheckConfig{Type: "none", Fall: -2}, []string{"fall"}},
		{"several at once", CheckConfig{Type: "tcp", Rise: -1, Fall: -1}, []string{"fall", "rise", "target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if diff := cmp.Diff(tt.wantPaths, fieldErrs(t, err)); diff != "" {
				t.Errorf("Validate() error paths (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// The key path must survive the config loader's prefixing.
func TestValidatePrefixedPath(t *testing.T) {
	cfg := CheckConfig{Type: "tcp"}
	err := fielderr.Prefix("vips[0].check", cfg.Validate())
	if got, want := err.Error(), `vips[0].check.target: missing: a tcp check needs target = "host:port"`; got != want {
		t.Errorf("prefixed error = %q, want %q", got, want)
	}
}

func TestWithDefaults(t *testing.T) {
	got := CheckConfig{Type: "none"}.WithDefaults()
	want := CheckConfig{Type: "none", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults() (-want +got):\n%s", diff)
	}
	set := CheckConfig{Type: "none", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 5}
	if diff := cmp.Diff(set, set.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults() changed set fields (-want +got):\n%s", diff)
	}
}
