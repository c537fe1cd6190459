package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
)

func clusterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster members: state, signature status, digests, generation and lag",
		Long: `cluster lists every member this node has heard of: whether it is up, the
signature status of its last document (ok, unsigned, or why the last one was
refused: forged, wrong-key, replayed, stale, ...) and the key that signed it,
its generation, how long ago its last document was accepted (lag), its
configuration digest and what differs from this node's (docs/cluster.md).
The first lines say how states travel (poll or etcd, frozen or not) and this
node's keys and digest.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := g.ctx()
		defer cancel()
		st, err := api.NewClient(g.socket).Status(ctx)
		if err != nil {
			return err
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), struct {
				Cluster *api.Cluster `json:"cluster"`
				Members []api.Member `json:"members"`
				Probes  *api.Probes  `json:"probes,omitempty"`
			}{st.Cluster, st.Members, st.Probes})
		}
		printCluster(cmd.OutOrStdout(), st, *out == outWide)
		return nil
	}
	c.AddCommand(keygenCmd())
	return c
}

func printCluster(out io.Writer, st api.Status, wide bool) {
	if c := st.Cluster; c != nil {
		state := "connected"
		switch {
		case c.Frozen:
			state = "FROZEN (member states kept as they were)"
		case !c.Connected:
			state = "disconnected"
		}
		fmt.Fprintf(out, "backend: %s, %s", c.Backend, state)
		if c.Revision != 0 {
			fmt.Fprintf(out, ", revision %d", c.Revision)
		}
		if c.Error != "" {
			fmt.Fprintf(out, " (%s)", c.Error)
		}
		fmt.Fprintln(out)
		keys := "none: publishing unsigned documents"
		if len(c.KeyIDs) > 0 {
			keys = "signing " + c.KeyIDs[0]
			if len(c.KeyIDs) > 1 {
				keys += ", also accepting " + strings.Join(c.KeyIDs[1:], ", ")
			}
		}
		if c.AllowUnsigned {
			keys += "; unsigned documents accepted (allow_unsigned)"
		}
		fmt.Fprintf(out, "keys: %s\n", keys)
		if c.Digests != nil {
			fmt.Fprintf(out, "config digest: %s", short(c.Digests.Config))
			if c.Digests.TablesAt != 0 {
				fmt.Fprintf(out, ", tables at revision %d", c.Digests.TablesAt)
			}
			fmt.Fprintln(out)
		}
	}
	if p := st.Probes; p != nil {
		if self, ok := selfProbe(p); ok {
			fmt.Fprintf(out, "probes: %s; this node %s\n", probesOn(p), probeWord(self))
		}
		if p.Note != "" {
			fmt.Fprintf(out, "probes: %s\n", p.Note)
		}
	}
	if st.Cluster != nil || st.Probes != nil {
		fmt.Fprintln(out)
	}
	w := table(out)
	if wide {
		fmt.Fprintln(w, "MEMBER\tSTATE\tSIGNATURE\tKEY\tGENERATION\tLAG\tREVISION\tCONFIG\tTABLES\tREJECTED\tMISSES\tDIFFERS\tPROBE\tLAST ERROR")
	} else {
		fmt.Fprintln(w, "MEMBER\tSTATE\tSIGNATURE\tGENERATION\tLAG\tCONFIG\tREJECTED\tDIFFERS\tPROBE")
	}
	for _, m := range st.Members {
		state := "down"
		if m.Up {
			state = "up"
		}
		if m.Up && !m.RestartUntil.IsZero() {
			state = "restarting"
		}
		sig := orDash(m.Signature)
		gen := "-"
		if m.Generation != 0 {
			gen = fmt.Sprint(m.Generation)
		}
		lag := "-"
		if !m.LastSeen.IsZero() {
			lag = (time.Duration(m.LagSeconds * float64(time.Second))).Round(10 * time.Millisecond).String()
		}
		cfg, tables := "-", "-"
		if m.Digests != nil {
			cfg = short(m.Digests.Config)
			var ts []string
			for _, a := range slices.SortedFunc(maps.Keys(m.Digests.Tables), netip.Addr.Compare) {
				ts = append(ts, a.String()+"="+short(m.Digests.Tables[a]))
			}
			if len(ts) > 0 {
				tables = strings.Join(ts, " ")
				if m.Digests.TablesAt != 0 {
					tables += fmt.Sprintf(" @%d", m.Digests.TablesAt)
				}
			}
		}
		differs := orDash(strings.Join(m.Differs, ", "))
		probe := "-"
		if p, ok := memberProbe(st.Probes, m.Name); ok {
			probe = probeWord(p)
		}
		if wide {
			rev := "-"
			if m.Revision != 0 {
				rev = fmt.Sprint(m.Revision)
			}
			lastErr := m.LastError
			if p, ok := memberProbe(st.Probes, m.Name); ok && p.LastError != "" {
				lastErr = strings.TrimPrefix(lastErr+"; ", "; ") + "probe: " + p.LastError
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, state, sig, orDash(m.KeyID), gen, lag,
				rev, cfg, tables, rejected(m.Rejected), m.Misses, differs, probe, orDash(lastErr))
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, sig, gen, lag, cfg, rejected(m.Rejected), differs, probe)
	}
	w.Flush()
}

// memberProbe is the probe view of member name.
func memberProbe(p *api.Probes, name string) (api.MemberProbe, bool) {
	if p == nil {
		return api.MemberProbe{}, false
	}
	for _, m := range p.Members {
		if m.Name == name && !m.Self {
			return m, true
		}
	}
	return api.MemberProbe{}, false
}

// selfProbe is this node's own probe view.
func selfProbe(p *api.Probes) (api.MemberProbe, bool) {
	for _, m := range p.Members {
		if m.Self {
			return m, true
		}
	}
	return api.MemberProbe{}, false
}

// probesOn is "every 1s" or "off".
func probesOn(p *api.Probes) string {
	if !p.On {
		return "off"
	}
	return "every " + (time.Duration(p.IntervalSeconds * float64(time.Second))).String()
}

// probeWord is a member's probe state: "ok 0.31ms", "failing since
// 07:40:01", "off", "pending", and the demotion reason when demoted.
func probeWord(p api.MemberProbe) string {
	s := p.State
	switch {
	case p.State == "ok" && p.RTTSeconds > 0:
		s += " " + (time.Duration(p.RTTSeconds * float64(time.Second))).Round(time.Microsecond).String()
	case p.State == "failing" && !p.Since.IsZero():
		s += " since " + p.Since.Local().Format(time.TimeOnly)
	}
	if p.Demoted != "" {
		s += " (demoted: " + p.Demoted + ")"
	}
	return s
}

// memberWord is a member in vipctl status's members line: up or down, and
// the signature status when it is not "ok".
func memberWord(m api.Member) string {
	s := "down"
	if m.Up {
		s = fmt.Sprintf("up(gen %d)", m.Generation)
	}
	if m.Up && !m.RestartUntil.IsZero() {
		s = fmt.Sprintf("up(restarting until %s)", m.RestartUntil.Local().Format(time.TimeOnly))
	}
	if m.Signature != "" && m.Signature != "ok" {
		s += "[" + m.Signature + "]"
	}
	if n := m.Rejected; len(n) > 0 {
		s += "(refused " + rejected(n) + ")"
	}
	if len(m.Differs) > 0 {
		s += "(differs: " + strings.Join(m.Differs, ", ") + ")"
	}
	return m.Name + "=" + s
}

// rejected is "forged:3 stale:1" or "-".
func rejected(r map[string]uint64) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		out = append(out, fmt.Sprintf("%s:%d", k, r[k]))
	}
	return orDash(strings.Join(out, " "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short is the first 8 hex digits of a digest, as status shows them.
func short(d string) string {
	if len(d) > 8 {
		return d[:8]
	}
	return orDash(d)
}

func keygenCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "keygen PATH",
		Short: "Write a new cluster key file (mode 0600) and print its key id",
		Long: `keygen writes a new random cluster key (32 bytes, hex) to PATH, mode 0600,
for [cluster] key_file. Copy the same file to every member. It refuses to
overwrite a file unless --force; to rotate, follow docs/cluster.md (add the new
key as the second line everywhere first).`,
		Args: cobra.ExactArgs(1),
	}
	c.Flags().BoolVar(&force, "force", false, "overwrite PATH if it exists")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		key, err := cluster.GenerateKey()
		if err != nil {
			return err
		}
		if err := writeKeyFile(args[0], cluster.FormatKeyFile(key), force); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: key id %s\n", args[0], cluster.KeyID(key))
		return nil
	}
	return c
}

// writeKeyFile writes data to path, mode 0600, atomically (a temporary
// file renamed over it), refusing to replace a file unless force.
func writeKeyFile(path string, data []byte, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("writing the key file: %s exists (--force replaces it)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing the key file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".vipd-key-*")
	if err != nil {
		return fmt.Errorf("writing the key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp makes it 0600 already; say so for the reader.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing the key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing the key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing the key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the key file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the key file: %w", err)
	}
	return nil
}
