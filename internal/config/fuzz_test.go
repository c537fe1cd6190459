package config

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
)

// FuzzParse: Parse never panics; it returns either a config that keeps the
// loader's invariants (and parses the same again) or only *Error values
// located inside the input.
func FuzzParse(f *testing.F) {
	for _, file := range exampleFiles(f) {
		f.Add(readFile(f, file))
	}
	f.Add([]byte(base))
	f.Add([]byte("a = { b = [ { c = '''x\n''' }, \"\"\"y\\\n\"\"\" ] }\n[[x.y]]\n[x.y.z]\n'q.r'.\"s\" = 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("config and error both returned")
			}
			maxLine := bytes.Count(data, []byte("\n")) + 1
			for _, e := range unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("%v is not a *Error", e)
				}
				if ce.File != "f.toml" || ce.Line < 0 || ce.Line > maxLine {
					t.Fatalf("%v: bad location (file has %d lines)", e, maxLine)
				}
			}
			return
		}
		checkInvariants(t, cfg)
		again, err := Parse("f.toml", data)
		if err != nil {
			t.Fatalf("second Parse failed: %v", err)
		}
		if diff := cmp.Diff(cfg, again, cmpAddrs...); diff != "" {
			t.Fatalf("Parse is not deterministic (-first +second):\n%s", diff)
		}
	})
}

// checkInvariants asserts what every successfully loaded Config guarantees
// to the rest of vipd.
func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	me, ok := c.Member(c.Node.Name)
	if !ok {
		t.Fatalf("node %q is not a member", c.Node.Name)
	}
	if me.UnderlayV4 != c.Node.UnderlayV4 || me.UnderlayV6 != c.Node.UnderlayV6 {
		t.Fatalf("node underlay %v/%v differs from its member %+v", c.Node.UnderlayV4, c.Node.UnderlayV6, me)
	}
	if !c.Node.RouterID.Is4() {
		t.Fatalf("router id %v", c.Node.RouterID)
	}
	seen := map[string]bool{}
	for _, m := range c.Cluster.Members {
		if m.Name == "" || seen[m.Name] {
			t.Fatalf("member name %q empty or duplicate", m.Name)
		}
		seen[m.Name] = true
		if m.StateURL.Scheme != "http" && m.StateURL.Scheme != "https" {
			t.Fatalf("member %s state url %v", m.Name, m.StateURL.String())
		}
	}
	vips := map[any]bool{}
	for _, v := range c.VIPs {
		if !v.Addr.IsValid() || vips[v.Addr] || v.Addr.Zone() != "" || v.Addr.Is4In6() {
			t.Fatalf("VIP %v invalid or duplicate", v.Addr)
		}
		vips[v.Addr] = true
		if len(v.Services) == 0 {
			t.Fatalf("VIP %v has no services", v.Addr)
		}
		for _, s := range v.Services {
			if s.Proto != 6 && s.Proto != 17 {
				t.Fatalf("VIP %v service %+v", v.Addr, s)
			}
		}
		for _, m := range c.Cluster.Members {
			if !m.Underlay(v.Addr).IsValid() {
				t.Fatalf("VIP %v: member %s has no underlay of its family", v.Addr, m.Name)
			}
		}
	}
	switch c.Routing.Mode {
	case routing.ModeBGP:
		if c.Routing.BGP == nil || c.Routing.Bird != nil || len(c.Routing.BGP.VIPs) != len(c.VIPs) {
			t.Fatalf("routing %+v does not match mode bgp", c.Routing)
		}
	case routing.ModeBirdOSPF:
		if c.Routing.Bird == nil || c.Routing.BGP != nil || len(c.Routing.Bird.VIPs) != len(c.VIPs) {
			t.Fatalf("routing %+v does not match mode bird-ospf", c.Routing)
		}
	default:
		t.Fatalf("routing mode %q", c.Routing.Mode)
	}
	if c.Dataplane.Interface == "" || c.Dataplane.GUEPort == 0 || !filepath.IsAbs(c.Dataplane.PinPath) {
		t.Fatalf("dataplane %+v", c.Dataplane)
	}
	switch c.Dataplane.Attach {
	case dataplane.AttachNative, dataplane.AttachGeneric, dataplane.AttachAuto:
	default:
		t.Fatalf("attach %q", c.Dataplane.Attach)
	}
	if c.Routing.Drain != vip.DrainWithdraw && c.Routing.Drain != vip.DrainDeprefer {
		t.Fatalf("drain policy %v", c.Routing.Drain)
	}
	tm, cl := c.Timers, c.Cluster
	if tm.WithdrawGrace <= 0 || tm.TableGrace <= 0 || tm.DrainTimeout <= 0 || tm.RemoveTimeout <= 0 ||
		tm.VerifyInterval <= 0 || tm.VerifySettle <= 0 ||
		cl.PollInterval <= 0 || cl.PollTimeout <= 0 || cl.PollTimeout >= cl.PollInterval || cl.Rise < 1 || cl.Fall < 1 {
		t.Fatalf("timers %+v, cluster %+v", tm, cl)
	}
	if !filepath.IsAbs(c.API.Socket) || !c.API.StateListen.IsValid() {
		t.Fatalf("api %+v", c.API)
	}
}

// FuzzIndex: the position index never panics or hangs, whatever the input
// (Parse only feeds it valid TOML, but it must not depend on that).
func FuzzIndex(f *testing.F) {
	for _, file := range exampleFiles(f) {
		f.Add(readFile(f, file))
	}
	f.Add([]byte("x = \"\"\"\\"))
	f.Add([]byte("[[a]]\n[a.b]\nc = [1, [2, {d = '''\n'''}]]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := buildIndex(data)
		maxLine := bytes.Count(data, []byte("\n")) + 1
		for _, e := range x.entries {
			if e.line < 1 || e.line > maxLine {
				t.Fatalf("%s at line %d of %d", e.path, e.line, maxLine)
			}
		}
	})
}
