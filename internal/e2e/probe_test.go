package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
)

// TestLabProbeDemotes (issue 12 item 3): GUE to n2 broken while its node
// state is fine, first by a firewall dropping UDP to the GUE port on the
// way to it (nftables in both routers, the path between the nodes), then
// by its switch port's MTU lowered below the GUE size. Each time n1 and
// n3 demote n2 with the reason, n2 demotes itself (every probe of its own
// fails: the self rule), and no table in any node's kernel (the pinned
// maps, not vipd's status) has n2 as a primary; once the fault is undone
// n2 is a primary again everywhere.
func TestLabProbeDemotes(t *testing.T) {
	t0 := time.Now()
	l := startLab(t)
	t.Logf("lab up in %v", time.Since(t0).Round(time.Millisecond))
	l.waitFor("the VIP from all three nodes at both routers (ECMP)", 60*time.Second, func() bool { return l.nextHops() == 3 })
	l.waitFor("every node's probes answered", 20*time.Second, func() bool { return l.probesOK() })
	t.Logf("routes at the routers and every probe answered %v after the start", time.Since(t0).Round(time.Millisecond))
	l.checkPrimary(t, true)

	t.Run("nftables", func(t *testing.T) {
		n2 := labconf.Nodes[1]
		rule := fmt.Sprintf("add rule inet vipdprobe gue udp dport %d ip daddr %s drop", labconf.GUEPort, n2.Addr)
		rule6 := fmt.Sprintf("add rule inet vipdprobe gue udp dport %d ip6 daddr %s drop", labconf.GUEPort, n2.Addr6)
		for _, r := range labconf.Routers {
			for _, cmd := range []string{"add table inet vipdprobe", "add chain inet vipdprobe gue { type filter hook forward priority 0 ; }", rule, rule6} {
				l.mustRun(t, r.Name, append([]string{"/usr/sbin/nft"}, strings.Fields(cmd)...)...)
			}
			t.Cleanup(func() { l.exec(r.Name, "/usr/sbin/nft", "delete", "table", "inet", "vipdprobe").Run() })
		}
		t0 = time.Now()
		waitIn(t, "n2 demoted by n1 and n3 and by itself", 15*time.Second, func() bool { return l.demotedEverywhere("n2") })
		t.Logf("n2 demoted everywhere %v after the firewall went up", time.Since(t0).Round(time.Millisecond))
		l.checkPrimary(t, false)
		for _, r := range labconf.Routers {
			l.mustRun(t, r.Name, "/usr/sbin/nft", "delete", "table", "inet", "vipdprobe")
		}
		t0 = time.Now()
		waitIn(t, "n2 restored everywhere", 15*time.Second, func() bool { return l.probesOK() })
		t.Logf("n2 restored everywhere %v after the firewall went down", time.Since(t0).Round(time.Millisecond))
		l.checkPrimary(t, true)
	})

	t.Run("mtu", func(t *testing.T) {
		port := switchPort("n2")
		l.mustRun(t, "sw", "ip", "link", "set", port, "mtu", "1400")
		t.Cleanup(func() { l.exec("sw", "ip", "link", "set", port, "mtu", "1500").Run() })
		waitIn(t, "n2 demoted by n1 and n3 and by itself", 15*time.Second, func() bool { return l.demotedEverywhere("n2") })
		l.checkPrimary(t, false)
		l.mustRun(t, "sw", "ip", "link", "set", port, "mtu", "1500")
		waitIn(t, "n2 restored everywhere", 15*time.Second, func() bool { return l.probesOK() })
		l.checkPrimary(t, true)
	})
}

func (l *lab) mustRun(t *testing.T, x string, argv ...string) {
	t.Helper()
	if out, err := l.exec(x, argv...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %s: %v: %s", x, strings.Join(argv, " "), err, out)
	}
}

// probesOK: on every node, probes are on, every member's answered, and
// nobody is demoted.
func (l *lab) probesOK() bool {
	for _, n := range nodeNames {
		st, _, err := l.statusDoc(n)
		if err != nil || st.Probes == nil || !st.Probes.On || st.Probes.Note != "" {
			return false
		}
		for _, m := range st.Probes.Members {
			if m.State != "ok" || m.Demoted != "" {
				return false
			}
		}
	}
	return true
}

// demotedEverywhere: every other node demotes node with the reason, and
// node demotes itself (the self rule); nobody else is demoted.
func (l *lab) demotedEverywhere(node string) bool {
	for _, n := range nodeNames {
		st, _, err := l.statusDoc(n)
		if err != nil || st.Probes == nil {
			return false
		}
		for _, m := range st.Probes.Members {
			want := ""
			switch {
			case m.Name == node && n == node:
				want = cluster.ProbeSelfReason
			case m.Name == node:
				want = "GUE path to " + node + " failing"
			}
			if m.Demoted != want {
				return false
			}
		}
	}
	return true
}

// checkPrimary reads every node's pinned tables and checks that n2 is a
// primary in some rows of every VIP's table (want) or in none.
func (l *lab) checkPrimary(t *testing.T, want bool) {
	t.Helper()
	n2 := labconf.Nodes[1]
	// A table switch lands on the controller's next pass: give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var problems []string
		for _, n := range nodeNames {
			p, err := dataplane.ReadPinned(filepath.Join(l.run, "bpffs", n)) // lab.sh's pin paths
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: reading the pinned maps: %v", n, err))
				continue
			}
			if len(p.VIPs) == 0 {
				problems = append(problems, n+": no VIP programmed")
			}
			for _, v := range p.VIPs {
				rows := p.Tables[v.Table]
				primary := 0
				for _, r := range rows {
					if b, ok := p.Backends[r.Primary]; ok && (b.Addr == n2.Addr || b.Addr == n2.Addr6) {
						primary++
					}
				}
				if (primary > 0) != want {
					problems = append(problems, fmt.Sprintf("%s: %s: n2 primary in %d of %d rows", n, v.Addr, primary, len(rows)))
				}
				if !want && !slices.ContainsFunc(rows, func(r dataplane.Row) bool {
					b, ok := p.Backends[r.Secondary]
					return ok && (b.Addr == n2.Addr || b.Addr == n2.Addr6)
				}) {
					// Kept as a second hop: flows it holds still reach it.
					problems = append(problems, fmt.Sprintf("%s: %s: n2 not even a second hop", n, v.Addr))
				}
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			for _, n := range nodeNames {
				if st, _, err := l.statusDoc(n); err == nil {
					t.Logf("%s probes: %+v", n, probeSummary(st))
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func probeSummary(st *api.Status) []string {
	if st.Probes == nil {
		return nil
	}
	var out []string
	for _, m := range st.Probes.Members {
		out = append(out, fmt.Sprintf("%s=%s/%s", m.Name, m.State, m.Demoted))
	}
	return out
}

// waitIn is lab.waitFor for a subtest: it fails t, not the lab's test.
func waitIn(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
