package health

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

func TestHysteresis(t *testing.T) {
	// Results are written as a string: '+' success, '-' failure. The want
	// string has one letter per result: the level after it, upper case when
	// it changed ('U'/'u' up, 'D'/'d' down, '?' unknown).
	tests := []struct {
		name       string
		rise, fall int
		start      Level
		results    string
		want       string
	}{
		{"rise 2 from down", 2, 3, LevelDown, "++", "dU"},
		{"fall 3 from up", 2, 3, LevelUp, "---", "uuD"},
		{"failures below fall do not count", 2, 3, LevelUp, "--+--+--", "uuuuuuuu"},
		{"successes below rise do not count", 2, 3, LevelDown, "+-+-+-", "dddddd"},
		{"flapping settles", 2, 3, LevelDown, "++---++", "dUuuDdU"},
		{"rise 1 fall 1 follows each result", 1, 1, LevelDown, "+-+-", "UDUD"},
		{"unknown goes down after fall", 2, 3, LevelUnknown, "---", "??D"},
		{"unknown goes up after rise", 2, 3, LevelUnknown, "-++", "??U"},
		{"unknown reports down once", 2, 2, LevelUnknown, "-----", "?Dddd"},
		{"long runs do not overflow the count", 2, 3, LevelDown, "++++++++----", "dUuuuuuuuuDd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Hysteresis{Rise: tt.rise, Fall: tt.fall, Level: tt.start}
			var got []byte
			for _, r := range tt.results {
				changed := h.Observe(r == '+')
				c := map[Level]byte{LevelUnknown: '?', LevelDown: 'd', LevelUp: 'u'}[h.Level]
				if changed {
					c -= 'a' - 'A'
				}
				got = append(got, c)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("levels after %q (-want +got):\n%s", tt.results, diff)
			}
		})
	}
}

// TestCheckerReasons feeds a Checker a sequence of probe results and checks
// the health and reason after each, and which of them are reported.
func TestCheckerReasons(t *testing.T) {
	refused := errors.New("connect: connection refused")
	type step struct {
		Healthy bool
		Reason  string
		Changed bool
	}
	tests := []struct {
		name    string
		results []error
		want    []step
	}{
		{
			name:    "comes up after rise",
			results: []error{nil, nil, nil},
			want: []step{
				{false, "checking (1/2)", false},
				{true, "tcp 127.0.0.1:80: ok (2/2 successes)", true},
				{true, "tcp 127.0.0.1:80: ok (2/2 successes)", false},
			},
		},
		{
			name:    "failing from the start",
			results: []error{refused, refused, refused, refused},
			want: []step{
				{false, "checking (0/2): tcp 127.0.0.1:80: connect: connection refused", false},
				{false, "checking (0/2): tcp 127.0.0.1:80: connect: connection refused", false},
				{false, "checking (0/2): tcp 127.0.0.1:80: connect: connection refused", false},
				{false, "checking (0/2): tcp 127.0.0.1:80: connect: connection refused", false},
			},
		},
		{
			name:    "goes down after fall and back up after rise",
			results: []error{nil, nil, refused, refused, refused, refused, nil, nil},
			want: []step{
				{false, "checking (1/2)", false},
				{true, "tcp 127.0.0.1:80: ok (2/2 successes)", true},
				{true, "healthy, but tcp 127.0.0.1:80: connect: connection refused (1/3 failures)", false},
				{true, "healthy, but tcp 127.0.0.1:80: connect: connection refused (2/3 failures)", false},
				{false, "tcp 127.0.0.1:80: connect: connection refused (3/3 failures)", true},
				{false, "tcp 127.0.0.1:80: connect: connection refused (3/3 failures)", false},
				{false, "checking (1/2)", false},
				{true, "tcp 127.0.0.1:80: ok (2/2 successes)", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(hclog.NewNullLogger(), netip.MustParseAddr("192.0.2.1"),
				CheckConfig{Type: "tcp", Target: "127.0.0.1:80"}, func(netip.Addr, bool, string) {})
			if healthy, reason := c.Status(); healthy || reason != "checking (0/2)" {
				t.Errorf("start Status() = %v, %q; want false, \"checking (0/2)\"", healthy, reason)
			}
			var got []step
			for _, err := range tt.results {
				h, r, ch := c.observe("tcp 127.0.0.1:80", err)
				got = append(got, step{h, r, ch})
				if sh, sr := c.Status(); sh != h || sr != r {
					t.Errorf("Status() = %v, %q; observe returned %v, %q", sh, sr, h, r)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	// A real refused connect, to see the text operators will read.
	err := tcpProbe(closedPort(t))(t.Context())
	if got, want := describe(err, time.Second), "connection refused"; got != want {
		t.Errorf("describe(refused) = %q, want %q", got, want)
	}
}
