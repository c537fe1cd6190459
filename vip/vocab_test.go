package vip

import (
	"encoding"
	"testing"
)

// word is a vocabulary type: parsed from, printed as and marshaled to one
// word.
type word interface {
	String() string
	encoding.TextMarshaler
}

func TestVocabulary(t *testing.T) {
	parseDrain := func(s string) (word, error) { return ParseDrainPolicy(s) }
	parsePhase := func(s string) (word, error) { return ParsePhase(s) }
	parseRole := func(s string) (word, error) { return ParseBackendRole(s) }
	parseService := func(s string) (word, error) { return ParseService(s) }
	tests := []struct {
		parse   func(string) (word, error)
		in      string
		want    word
		wantErr bool
	}{
		{parseDrain, "withdraw", DrainWithdraw, false},
		{parseDrain, "deprefer", DrainDeprefer, false},
		{parseDrain, "", nil, true},
		{parseDrain, "Withdraw", nil, true},
		{parsePhase, "active", PhaseActive, false},
		{parsePhase, "withdrawing", PhaseWithdrawing, false},
		{parsePhase, "draining", PhaseDraining, false},
		{parsePhase, "inactive", PhaseInactive, false},
		{parsePhase, "drained", PhaseDrained, false},
		{parsePhase, "idle", nil, true},
		{parseRole, "primary", RolePrimary, false},
		{parseRole, "secondary", RoleSecondary, false},
		{parseRole, "0", nil, true},
		{parseService, "tcp/80", Service{Proto: ProtoTCP, Port: 80}, false},
		{parseService, "udp/*", Service{Proto: ProtoUDP}, false},
		{parseService, "udp/65535", Service{Proto: ProtoUDP, Port: 65535}, false},
		{parseService, "tcp/0", nil, true},
		{parseService, "tcp/65536", nil, true},
		{parseService, "sctp/80", nil, true},
		{parseService, "tcp:80", nil, true},
		{parseService, "tcp/http", nil, true},
	}
	for _, tt := range tests {
		got, err := tt.parse(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parsing %q = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parsing %q = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		b, err := got.MarshalText()
		if err != nil || string(b) != tt.in || got.String() != tt.in {
			t.Errorf("%q: MarshalText = %q, %v; String = %q", tt.in, b, err, got.String())
		}
	}
}

func TestVocabularyUnmarshal(t *testing.T) {
	var d DrainPolicy
	var p Phase
	var r BackendRole
	var s Service
	for _, tc := range []struct {
		u  encoding.TextUnmarshaler
		in string
	}{
		{&d, "deprefer"},
		{&p, "drained"},
		{&r, "secondary"},
		{&s, "udp/53"},
	} {
		if err := tc.u.UnmarshalText([]byte(tc.in)); err != nil {
			t.Errorf("UnmarshalText(%q): %v", tc.in, err)
		}
		if err := tc.u.UnmarshalText([]byte("nonsense")); err == nil {
			t.Errorf("UnmarshalText(nonsense) into %T succeeded", tc.u)
		}
	}
	if d != DrainDeprefer || p != PhaseDrained || r != RoleSecondary || s != (Service{Proto: ProtoUDP, Port: 53}) {
		t.Errorf("unmarshaled %v %v %v %v", d, p, r, s)
	}
	// Values outside the vocabulary do not marshal.
	for _, w := range []word{DrainPolicy(5), Phase("x"), BackendRole(5), Service{Proto: 1}} {
		if _, err := w.MarshalText(); err == nil {
			t.Errorf("%T %v marshaled", w, w)
		}
	}
	if s := (Service{Proto: 1, Port: 7}).String(); s != "1/7" {
		t.Errorf("a non-TCP/UDP service prints %q", s)
	}
}
