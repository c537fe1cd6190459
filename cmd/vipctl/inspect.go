package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// The read-only verbs: routes, table, lookup, events, config show. Each
// listing takes -o json (the API's own JSON, for scripts) or -o wide
// (more columns); the default is a table for people.

// output is the -o flag of a listing.
type output string

const (
	outTable output = ""
	outJSON  output = "json"
	outWide  output = "wide"
)

// addOutput adds -o to c (with its completion) and returns where it lands.
func addOutput(c *cobra.Command) *output {
	o := new(output)
	c.Flags().VarP((*outputValue)(o), "output", "o", "output format: json or wide (default: a table)")
	_ = c.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"json\tthe API's JSON, for scripts", "wide\tmore columns"}, cobra.ShellCompDirectiveNoFileComp
	})
	return o
}

type outputValue output

func (v *outputValue) String() string { return string(*v) }
func (v *outputValue) Type() string   { return "json|wide" }
func (v *outputValue) Set(s string) error {
	switch output(s) {
	case outJSON, outWide:
		*v = outputValue(s)
		return nil
	}
	return fmt.Errorf("%q: want json or wide", s)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func routesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "routes",
		Short: "Show the routes each routing neighbour is sent (read back from GoBGP or BIRD) and those vipd claims",
		Long: `routes reads back from the routing daemon what it exports to each session (BGP:
each established neighbour's adj-RIB-out; BIRD: the routes of vipd's OSPF
protocols) and lists the routes vipd claims announced (bgp mode: GoBGP paths;
bird-ospf mode: the routes written to BIRD's config). A route vipd claims that
a session is not sent is what 'vipctl status' calls diverged or no-session.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := g.ctx()
		defer cancel()
		rs, err := api.NewClient(g.socket).Routes(ctx)
		if err != nil {
			return err
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), rs)
		}
		printRoutes(cmd.OutOrStdout(), rs, *out == outWide)
		return nil
	}
	return c
}

func routeWord(r api.Route) string {
	s := r.Prefix.String()
	if r.Draining {
		s += "(drain)"
	}
	return s
}

func printRoutes(out io.Writer, rs api.Routes, wide bool) {
	what := "announced by GoBGP"
	if rs.Routing == "bird-ospf" {
		what = "written to BIRD's config"
	}
	var claimed []string
	for _, r := range rs.Claimed {
		claimed = append(claimed, routeWord(r))
	}
	switch {
	case !rs.ClaimedKnown:
		fmt.Fprintf(out, "claimed (%s): not known yet\n", what)
	case len(claimed) == 0:
		fmt.Fprintf(out, "claimed (%s): none\n", what)
	default:
		fmt.Fprintf(out, "claimed (%s): %d: %s\n", what, len(claimed), strings.Join(claimed, " "))
	}
	if rs.Error != "" {
		fmt.Fprintf(out, "routing daemon: %s\n", rs.Error)
	} else if !rs.ReadAt.IsZero() {
		fmt.Fprintf(out, "read back from the routing daemon at %s\n", rs.ReadAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(out)
	w := table(out)
	if wide {
		fmt.Fprintln(w, "PEER\tSTATE\tPREFIX\tDRAINING\tMISMATCH")
		for _, s := range rs.Sessions {
			if len(s.Routes) == 0 {
				fmt.Fprintf(w, "%s\t%s\t-\t\t\n", s.Peer.Name, s.Peer.State)
			}
			for _, r := range s.Routes {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Peer.Name, s.Peer.State, r.Prefix, yn(r.Draining), r.Mismatch)
			}
		}
		w.Flush()
		return
	}
	fmt.Fprintln(w, "PEER\tSTATE\tROUTES\tPREFIXES")
	for _, s := range rs.Sessions {
		var ps []string
		for _, r := range s.Routes {
			ps = append(ps, routeWord(r))
		}
		if len(ps) > 6 {
			ps = append(ps[:5], fmt.Sprintf("and %d more (-o wide lists them)", len(ps)-5))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", s.Peer.Name, s.Peer.State, len(s.Routes), strings.Join(ps, " "))
	}
	w.Flush()
}

func tableCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "table VIP",
		Short: "Show how a VIP's forwarding table divides its 65536 rows between the cluster members",
		Long: `table lists the members in the VIP's programmed forwarding table with the rows
each one takes new flows for (primary) and the rows it is the second hop of
(second chance), as shares of the table, and each member's weight with its
share of the primaries' weights: the primaries' shares of the rows follow it
(within a point). A member that slow start is ramping up shows its weight now
and its configured weight ("25/100 (slow start)"). Every director with the
same view of the cluster has the same table.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeVIPs(g, 0),
	}
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := parseVIP(args[0])
		if err != nil {
			return err
		}
		ctx, cancel := g.ctx()
		defer cancel()
		tb, err := api.NewClient(g.socket).Table(ctx, a)
		if err != nil {
			return err
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), tb)
		}
		printTable(cmd.OutOrStdout(), tb, *out == outWide)
		return nil
	}
	return c
}

func share(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func printTable(out io.Writer, tb api.Table, wide bool) {
	if len(tb.Members) == 0 {
		fmt.Fprintf(out, "%s is not programmed on this node: there is no table\n", tb.VIP)
		return
	}
	fmt.Fprintf(out, "%s: %d rows\n", tb.VIP, tb.Rows)
	w := table(out)
	if wide {
		fmt.Fprintln(w, "MEMBER\tADDRESS\tROLE\tLOCAL\tPRIMARY ROWS\tSHARE\tSECONDARY ROWS\tSHARE\tWEIGHT\tWEIGHT SHARE")
	} else {
		fmt.Fprintln(w, "MEMBER\tROLE\tPRIMARY ROWS\tSHARE\tSECONDARY ROWS\tSHARE\tWEIGHT\tWEIGHT SHARE")
	}
	ws := weightShares(tb)
	for i, m := range tb.Members {
		if wide {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", m.Name, m.Address, m.Role, yn(m.Local),
				m.PrimaryRows, share(m.PrimaryRows, tb.Rows), m.SecondaryRows, share(m.SecondaryRows, tb.Rows), weightCell(m), ws[i])
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", m.Name, m.Role, m.PrimaryRows, share(m.PrimaryRows, tb.Rows),
			m.SecondaryRows, share(m.SecondaryRows, tb.Rows), weightCell(m), ws[i])
	}
	w.Flush()
}

// weightCell is a member's weight: "100", or "25/100 (slow start)" while
// slow start builds with less than the configured weight; "-" from a vipd
// that does not report weights.
func weightCell(m api.TableShare) string {
	switch {
	case m.EffectiveWeight == 0:
		return "-"
	case m.EffectiveWeight != m.Weight && m.Weight != 0:
		return fmt.Sprintf("%d/%d (slow start)", m.EffectiveWeight, m.Weight)
	}
	return fmt.Sprint(m.EffectiveWeight)
}

// weightShares are the members' shares of the effective weight among the
// primaries (the rows' share should be within a point of it); "-" for a
// second hop only, or without weights. With no primary at all the build
// treats every member as one, and so do the shares.
func weightShares(tb api.Table) []string {
	anyPrimary := slices.ContainsFunc(tb.Members, func(m api.TableShare) bool { return m.Role == "primary" })
	total := 0
	for _, m := range tb.Members {
		if !anyPrimary || m.Role == "primary" {
			total += m.EffectiveWeight
		}
	}
	out := make([]string, len(tb.Members))
	for i, m := range tb.Members {
		out[i] = "-"
		if total > 0 && (!anyPrimary || m.Role == "primary") {
			out[i] = share(m.EffectiveWeight, total)
		}
	}
	return out
}

func lookupCmd(g *globals) *cobra.Command {
	var port uint16
	var proto string
	c := &cobra.Command{
		Use:   "lookup VIP CLIENT[:PORT]",
		Short: "Show which node gets a flow from CLIENT to VIP (primary and second hop), as the XDP program decides",
		Long: `lookup asks vipd where its XDP program sends a flow from CLIENT (an address, or
ADDRESS:PORT, [v6]:PORT for IPv6) to the VIP: the row of the VIP's table the
program's own flow hash picks, and the primary (new connections) and
secondary (second hop for established flows the primary has no socket for)
in that row of the pinned table. The VIP's first service gives the
destination port and protocol unless --port and --protocol say otherwise.`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeVIPs(g, 0),
	}
	c.Flags().Uint16Var(&port, "port", 0, "destination port (default: the VIP's first service)")
	c.Flags().StringVar(&proto, "protocol", "", "tcp or udp (default: the VIP's first service's)")
	_ = c.RegisterFlagCompletionFunc("protocol", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"tcp", "udp"}, cobra.ShellCompDirectiveNoFileComp
	})
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := parseVIP(args[0])
		if err != nil {
			return err
		}
		client, err := parseClient(args[1])
		if err != nil {
			return err
		}
		if proto != "" && proto != "tcp" && proto != "udp" {
			return fmt.Errorf("--protocol %q: want tcp or udp", proto)
		}
		ctx, cancel := g.ctx()
		defer cancel()
		l, err := api.NewClient(g.socket).Lookup(ctx, api.LookupRequest{VIP: a, Client: client, Port: port, Protocol: proto})
		if err != nil {
			return err
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), l)
		}
		printLookup(cmd.OutOrStdout(), l, *out == outWide)
		return nil
	}
	return c
}

func parseVIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("VIP %q: not an IP address", s)
	}
	return a, nil
}

func parseClient(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 0), nil
	}
	return netip.AddrPort{}, fmt.Errorf("CLIENT %q: want ADDRESS or ADDRESS:PORT ([v6]:PORT)", s)
}

func backendWord(b api.Backend) string {
	s := b.Name
	if b.Address.IsValid() {
		s += " (" + b.Address.String() + ")"
	}
	if b.Local {
		s += ", this node"
	}
	return s
}

func printLookup(out io.Writer, l api.Lookup, wide bool) {
	fmt.Fprintf(out, "%s %s/%d from %s: row %d\n", l.VIP, l.Protocol, l.Port, l.Client, l.Row)
	fmt.Fprintf(out, "  primary    %s  new connections\n", backendWord(l.Primary))
	fmt.Fprintf(out, "  secondary  %s  second hop for flows the primary has no socket for\n", backendWord(l.Secondary))
	if wide {
		fmt.Fprintf(out, "  roles: primary is %s, secondary is %s\n", l.Primary.Role, l.Secondary.Role)
	}
}

func eventsCmd(g *globals) *cobra.Command {
	var recent int
	c := &cobra.Command{
		Use:   "events",
		Short: "Follow vipd's transitions as they happen, each with its reason (Ctrl-C to stop)",
		Long: `events streams what changes on this node as vipd's controller decides it: each
VIP's facets (programmed, advertised, bound), health, drain, hold, serve state
and route check, the node's drain phase, and cluster members going up or
down, each with the reason. --recent N first replays the last N events (at
most 256). -o json prints the API's JSON lines.`,
		Args: cobra.NoArgs,
	}
	c.Flags().IntVar(&recent, "recent", 0, "first replay the last N events (at most 256)")
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		w := cmd.OutOrStdout()
		enc := json.NewEncoder(w)
		return api.NewClient(g.socket).Events(ctx, recent, func(e api.Event) error {
			if *out == outJSON {
				return enc.Encode(e)
			}
			_, err := fmt.Fprintln(w, eventLine(e, *out == outWide))
			return err
		})
	}
	return c
}

// eventLine writes an event for people: "10:00:01.250 198.51.100.10
// advertised announced -> withdrawn: draining".
func eventLine(e api.Event, wide bool) string {
	ts := e.Time.Local().Format("15:04:05.000")
	if wide {
		ts = e.Time.UTC().Format(time.RFC3339Nano)
	}
	who := "node"
	switch e.Subject {
	case api.SubjectVIP:
		who = e.VIP.String()
	case api.SubjectMember:
		who = "member " + e.Member
	}
	s := fmt.Sprintf("%s %s %s", ts, who, e.What)
	switch {
	case e.From == "" && e.To != "":
		s += " " + e.To
	case e.To == "" && e.From != "":
		s += " (was " + e.From + ")"
	default:
		s += " " + e.From + " -> " + e.To
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func configShowCmd(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "show",
		Short: "Print the effective config (every default filled in, passwords redacted): vipd's running one, or FILE's with -c",
		Long: `show prints the configuration vipd runs, as TOML, with every default filled in
and passwords redacted: what vipd actually uses, which can differ from the
file on disk after a refused reload. With -c FILE it renders that file
offline instead, as vipd would run it (no vipd needed).`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringVarP(&file, "config", "c", "", "render this file offline instead of asking vipd")
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var ec api.EffectiveConfig
		if file != "" {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			data, err := cfg.Effective(true)
			if err != nil {
				return err
			}
			ec = api.EffectiveConfig{File: file, TOML: string(data)}
		} else {
			ctx, cancel := g.ctx()
			defer cancel()
			var err error
			if ec, err = api.NewClient(g.socket).Config(ctx); err != nil {
				return err
			}
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), ec)
		}
		if *out == outWide && !ec.Loaded.IsZero() {
			fmt.Fprintf(cmd.OutOrStdout(), "# loaded %s\n", ec.Loaded.UTC().Format(time.RFC3339))
		}
		_, err := io.WriteString(cmd.OutOrStdout(), ec.TOML)
		return err
	}
	return c
}

// completeVIPs completes argument n with the VIPs vipd serves, or, when
// vipd does not answer, those of the default config file.
func completeVIPs(g *globals, n int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) != n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if vips, err := api.NewClient(g.socket).VIPs(ctx); err == nil {
			for _, v := range vips {
				out = append(out, v.Address.String()+"\t"+v.Name)
			}
		} else if cfg, err := config.Load(config.DefaultPath); err == nil {
			for _, v := range cfg.VIPs {
				out = append(out, v.Addr.String()+"\t"+v.Name)
			}
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
