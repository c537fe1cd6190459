package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
)

// exitCode is an error that only carries the process exit code (doctor's
// 1 = warnings, 2 = failures), its output already printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func asExit(err error, ec *exitCode) bool { return errors.As(err, ec) }

type globals struct {
	socket  string
	timeout time.Duration
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "vipctl",
		Short: "Operate vipd, the anycast controller for XDP load balancers",
		Long: `vipctl talks to the vipd of this node over its unix socket (mode 0600:
run it as root). Offline commands (config check, bird-config, doctor) need no
running vipd.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", api.DefaultSocket, "vipd's API socket")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 10*time.Second, "how long to wait for vipd")
	root.AddCommand(
		statusCmd(g), drainCmd(g, true), drainCmd(g, false), vipsCmd(g), restartCmd(g),
		configCmd(), birdConfigCmd(), doctorCmd(),
	)
	return root
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show every VIP's facets (programmed, advertised, bound) with the reason and since when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := api.NewClient(g.socket).Status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd, st, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func yn(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func printStatus(cmd *cobra.Command, st api.Status, now time.Time) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "node %s  phase %s  routing %s  generation %d\n", st.Node, st.Phase, st.Routing, st.Generation)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VIP\tPROGRAMMED\tADVERTISED\tBOUND\tHEALTHY\tSERVES\tSINCE\tREASON")
	for _, v := range st.VIPs {
		adv := yn(v.Advertised)
		if v.Depreferred {
			adv = "depref"
		}
		since := "-"
		if !v.Since.IsZero() {
			since = now.Sub(v.Since).Round(time.Second).String() + " ago"
		}
		reason := v.Reason
		if v.LastError != "" {
			reason += " (last error: " + v.LastError + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Address, yn(v.Programmed), adv, yn(v.Bound),
			yn(v.Healthy), v.ServeState, since, reason)
	}
	w.Flush()
	if len(st.VIPs) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VIP\tBACKENDS (name:role)")
		for _, v := range st.VIPs {
			var b []string
			for _, be := range v.Backends {
				role := be.Role
				if be.Local {
					role += ",local"
				}
				b = append(b, be.Name+":"+role)
			}
			fmt.Fprintf(w, "%s\t%s\n", v.Address, strings.Join(b, " "))
		}
		w.Flush()
	}
	if len(st.Peers) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PEER\tSTATE\tUPTIME\tROUTES\tLAST ERROR")
		for _, p := range st.Peers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", p.Name, p.State, p.Uptime(), p.RoutesAdvertised, p.LastError)
		}
		w.Flush()
	}
	if len(st.Members) > 0 {
		fmt.Fprintln(out)
		var m []string
		for _, x := range st.Members {
			s := "down"
			if x.Up {
				s = fmt.Sprintf("up(gen %d)", x.Generation)
			}
			m = append(m, x.Name+"="+s)
		}
		fmt.Fprintf(out, "members: %s\n", strings.Join(m, " "))
	}
	if d := st.Dataplane; d != nil {
		fmt.Fprintf(out, "\ndataplane: %s (%s)", d.Interface, d.Attach)
		if d.Error != "" {
			fmt.Fprintf(out, " error: %s", d.Error)
		}
		fmt.Fprintln(out)
		var names []string
		for k, n := range d.Counters {
			if n > 0 {
				names = append(names, fmt.Sprintf("%s=%d", k, n))
			}
		}
		slices.Sort(names)
		if len(names) > 0 {
			fmt.Fprintf(out, "  %s\n", strings.Join(names, " "))
		}
	}
}

func drainCmd(g *globals, drain bool) *cobra.Command {
	var vipFlag string
	use, short := "drain", "Drain the node (withdraw, demote, wait idle, go inactive, unbind) or, with --vip, withdraw one VIP's route"
	if !drain {
		use, short = "undrain", "Reverse a drain of the node or, with --vip, of one VIP"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.DrainRequest{Node: vipFlag == ""}
			if vipFlag != "" {
				a, err := netip.ParseAddr(vipFlag)
				if err != nil {
					return fmt.Errorf("--vip %q: not an IP address", vipFlag)
				}
				req.VIP = &a
			}
			ctx, cancel := g.ctx()
			defer cancel()
			cl := api.NewClient(g.socket)
			var err error
			if drain {
				err = cl.Drain(ctx, req)
			} else {
				err = cl.Undrain(ctx, req)
			}
			if err != nil {
				return err
			}
			what := "node"
			if req.VIP != nil {
				what = req.VIP.String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s of %s started; follow it with 'vipctl status'\n", use, what)
			return nil
		},
	}
	c.Flags().StringVar(&vipFlag, "vip", "", "only this VIP")
	return c
}

func vipsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "vips",
		Short: "List the VIPs configured on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			vips, err := api.NewClient(g.socket).VIPs(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tADDRESS\tSERVICES\tCHECK")
			for _, v := range vips {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.Address, strings.Join(v.Services, ","), v.Check)
			}
			return w.Flush()
		},
	}
}

func restartCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Make vipd exit for an upgrade WITHOUT withdrawing (graceful restart keeps routes; pinned XDP keeps forwarding)",
		Long: `restart asks vipd to exit without withdrawing routes, unbinding VIPs or
detaching the XDP program. BGP peers with graceful restart keep the routes as
stale, the pinned XDP program keeps forwarding, and the next vipd (started by
your supervisor) adopts that state and re-announces. Use it for upgrades; use
'vipctl drain' (or SIGTERM) to take a node out of service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			if err := api.NewClient(g.socket).Restart(ctx); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "vipd is exiting for an upgrade; routes and forwarding stay in place")
			return nil
		},
	}
}
