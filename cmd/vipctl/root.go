package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/buildinfo"
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
		Version:       buildinfo.Get().String(),
	}
	root.SetVersionTemplate("vipctl {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.socket, "socket", api.DefaultSocket, "vipd's API socket")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 10*time.Second, "how long to wait for vipd")
	root.AddCommand(
		statusCmd(g), drainCmd(g, true), drainCmd(g, false), vipsCmd(g), routesCmd(g), tableCmd(g), lookupCmd(g),
		eventsCmd(g), restartCmd(g), clusterCmd(g), configCmd(g), birdConfigCmd(), birdGuardCmd(), doctorCmd(), genDocsCmd(root),
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
	}
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := g.ctx()
		defer cancel()
		st, err := api.NewClient(g.socket).Status(ctx)
		if err != nil {
			return err
		}
		if asJSON || *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), st)
		}
		printStatus(cmd, st, time.Now(), *out == outWide)
		return nil
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (same as -o json)")
	return c
}

func yn(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// drainLine says since when and by whom a drain holds, and whether this
// vipd restored it at its start.
func drainLine(d api.Drain) string {
	s := "since " + d.Since.UTC().Format(time.RFC3339)
	if d.By != "" && d.By != "vipctl" {
		s += " (" + d.By + ")"
	}
	if d.Restored {
		s += " (restored at start)"
	}
	return s
}

// advertisedWord is the ADVERTISED column: "yes" (or "depref") only when
// the claim and the routing daemon agree and a session has the route, "-"
// when both say withdrawn, otherwise the route check's word (pending,
// no-session, diverged, unknown).
func advertisedWord(v api.VIPStatus) string {
	switch v.Route {
	case "announced":
		if v.Depreferred {
			return "depref"
		}
		return "yes"
	case "withdrawn":
		return "-"
	case "":
		// A vipd that does not read the routing daemon back.
		if v.Depreferred {
			return "depref"
		}
		return yn(v.Advertised)
	}
	return v.Route
}

func printStatus(cmd *cobra.Command, st api.Status, now time.Time, wide bool) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "node %s  phase %s  routing %s  generation %d\n", st.Node, st.Phase, st.Routing, st.Generation)
	if d := st.NodeDrain; d != nil {
		fmt.Fprintf(out, "node drained %s\n", drainLine(*d))
	}
	if line := timeLeftLine(st, now); line != "" {
		fmt.Fprintln(out, line)
	}
	if r := st.LastReload; r != nil && !r.OK {
		fmt.Fprintf(out, "LAST RELOAD REFUSED at %s (the previous config keeps running): %s\n", r.At.UTC().Format(time.RFC3339), r.Error)
	}
	for _, d := range st.UnconfiguredDrains {
		fmt.Fprintf(out, "drain of %s kept (not in the config; applies if it comes back) %s\n", d.Address, drainLine(d.Drain))
	}
	if st.StateError != "" {
		fmt.Fprintf(out, "STATE DIRECTORY: %s\n", st.StateError)
	}
	if wd := st.World; !wd.ReadAt.IsZero() || wd.Error != "" {
		line := "routing daemon: "
		if wd.Error != "" {
			line += "cannot be read (" + wd.Error + "): routes unconfirmed"
		} else {
			line += fmt.Sprintf("read %s ago, %d sessions up", now.Sub(wd.ReadAt).Round(time.Second), wd.SessionsUp)
		}
		if wd.Resyncs > 0 {
			line += fmt.Sprintf(", %d resyncs", wd.Resyncs)
		}
		if wd.ResyncError != "" {
			line += " (last resync failed: " + wd.ResyncError + ")"
		}
		if len(wd.Stray) > 0 {
			var s []string
			for _, a := range wd.Stray {
				s = append(s, a.String())
			}
			line += ", exports routes of no VIP here: " + strings.Join(s, " ")
		}
		fmt.Fprintln(out, line)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if wide {
		fmt.Fprintln(w, "VIP\tCONFIGURED\tPROGRAMMED\tADVERTISED\tBOUND\tHEALTHY\tDRAINING\tHELD\tSERVES\tROUTE\tCHANGES\tERRORS\tSINCE\tREASON")
	} else {
		fmt.Fprintln(w, "VIP\tPROGRAMMED\tADVERTISED\tBOUND\tHEALTHY\tSERVES\tSINCE\tREASON")
	}
	for _, v := range st.VIPs {
		adv := advertisedWord(v)
		since := "-"
		if !v.Since.IsZero() {
			since = now.Sub(v.Since).Round(time.Second).String() + " ago"
		}
		reason := v.Reason
		if adv != "yes" && adv != "depref" && adv != "-" && v.RouteReason != "" {
			reason += " [route " + adv + ": " + v.RouteReason + "]"
		}
		if v.Drain != nil {
			reason += " (drained " + drainLine(*v.Drain) + ")"
		}
		if v.LastError != "" {
			reason += " (last error: " + v.LastError + ")"
		}
		if wide {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", v.Address, yn(v.Configured),
				yn(v.Programmed), adv, yn(v.Bound), yn(v.Healthy), yn(v.Draining), yn(v.Held != ""), v.ServeState,
				v.Route, v.Transitions, v.Errors, since, reason)
			continue
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
	printTraffic(out, st.VIPs)
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
			w := memberWord(x)
			if p, ok := memberProbe(st.Probes, x.Name); ok && p.State != "ok" && p.State != "off" {
				w += "(probe " + probeWord(p) + ")"
			}
			m = append(m, w)
		}
		fmt.Fprintf(out, "members: %s\n", strings.Join(m, " "))
	}
	if p := st.Probes; p != nil {
		if self, ok := selfProbe(p); ok {
			line := "probes: " + probesOn(p) + "; this node " + probeWord(self)
			if p.Note != "" {
				line += "; " + p.Note
			}
			fmt.Fprintln(out, line)
		}
	}
	if d := st.Dataplane; d != nil {
		fmt.Fprintf(out, "\ndataplane: %s (%s)", d.Interface, d.Attach)
		if d.Error != "" {
			fmt.Fprintf(out, " error: %s", d.Error)
		}
		fmt.Fprintln(out)
		if d.Memory != nil {
			fmt.Fprintf(out, "  %s\n", memoryLine(d.Memory))
		}
		var names []string
		for k, n := range d.Counters {
			if n > 0 || wide {
				names = append(names, fmt.Sprintf("%s=%d", k, n))
			}
		}
		slices.Sort(names)
		if len(names) > 0 {
			fmt.Fprintf(out, "  %s\n", strings.Join(names, " "))
		}
	}
}

// timeLeftLine says how long a node drain has left at most (by the timers
// of the phases it has left), or "".
func timeLeftLine(st api.Status, now time.Time) string {
	if st.DrainEndsBy.IsZero() {
		return ""
	}
	s := "drain: phase " + st.Phase
	if !st.PhaseSince.IsZero() {
		s += " for " + now.Sub(st.PhaseSince).Round(time.Second).String()
	}
	if !st.PhaseEndsBy.IsZero() {
		s += fmt.Sprintf(", this step ends within %s", max(st.PhaseEndsBy.Sub(now), 0).Round(time.Second))
	}
	return s + fmt.Sprintf(", the drain within %s (by %s)", max(st.DrainEndsBy.Sub(now), 0).Round(time.Second),
		st.DrainEndsBy.UTC().Format(time.RFC3339))
}

func drainCmd(g *globals, drain bool) *cobra.Command {
	var (
		vipFlag string
		wait    bool
		waitFor time.Duration
	)
	use, short := "drain", "Drain the node (withdraw, demote, wait idle, go inactive, unbind) or, with --vip, withdraw one VIP's route"
	if !drain {
		use, short = "undrain", "Reverse a drain of the node or, with --vip, of one VIP (also removes a kept drain of a VIP no longer configured)"
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
					return waitErr(cmd, wait, fmt.Errorf("--vip %q: not an IP address", vipFlag))
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
				return waitErr(cmd, wait, err)
			}
			what := "the node"
			if req.VIP != nil {
				what = req.VIP.String()
			}
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "%s of %s started (saved: it survives a restart); follow it with 'vipctl status' or 'vipctl drain --wait'\n", use, what)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s of %s started (saved: it survives a restart)\n", use, what)
			return waitDrained(cmd, cl, req, waitFor)
		},
	}
	c.Flags().StringVar(&vipFlag, "vip", "", "only this VIP")
	_ = c.RegisterFlagCompletionFunc("vip", completeVIPs(g, 0))
	if drain {
		c.Flags().BoolVar(&wait, "wait", false, "print each step as it happens and exit 0 once drained, 1 on timeout, 2 on error "+
			"(node: phase drained; --vip: the route withdrawn in the routing daemon, as read back)")
		c.Flags().DurationVar(&waitFor, "timeout", 10*time.Minute, "with --wait: how long to wait for the drain")
	}
	return c
}

// waitErr prints err and makes it exit 2 when waiting (the --wait exit
// codes), or returns it as is.
func waitErr(cmd *cobra.Command, wait bool, err error) error {
	if !wait {
		return err
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "vipctl:", err)
	return exitCode(2)
}

// waitPoll is how often drain --wait reads the status.
const waitPoll = 200 * time.Millisecond

// waitDrained follows a drain in the status until it is done: for the
// node, phase drained; for one VIP, its route withdrawn in the world
// (claim and routing daemon agree; with the deprefer policy, announced
// with the drain attributes). It prints each new step with the time left.
func waitDrained(cmd *cobra.Command, cl *api.Client, req api.DrainRequest, timeout time.Duration) error {
	out := cmd.OutOrStdout()
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(10*time.Second, max(time.Until(deadline), time.Second)))
		st, err := cl.Status(ctx)
		cancel()
		if err != nil {
			return waitErr(cmd, true, fmt.Errorf("following the drain: %w", err))
		}
		step, done, err := drainStep(st, req)
		if err != nil {
			return waitErr(cmd, true, err)
		}
		now := time.Now()
		left := max(deadline.Sub(now), 0).Round(time.Second)
		if step != last {
			fmt.Fprintf(out, "%s  %s (%s left)\n", now.Format("15:04:05"), step, left)
			last = step
		}
		if done {
			fmt.Fprintf(out, "%s  drained after %s\n", now.Format("15:04:05"), now.Sub(start).Round(time.Second))
			return nil
		}
		if !now.Before(deadline) {
			fmt.Fprintf(out, "%s  timed out after %s, still: %s\n", now.Format("15:04:05"), timeout, step)
			return exitCode(1)
		}
		time.Sleep(min(waitPoll, time.Until(deadline)))
	}
}

// nodePhases explain each node drain phase, in order.
var nodePhases = map[string]string{
	"active":      "active: the drain is not in effect yet",
	"withdrawing": "withdrawing: routes going away, withdraw grace",
	"draining":    "draining: published draining, waiting for idle or the drain timeout",
	"inactive":    "inactive: published inactive, table grace",
	"drained":     "drained: nothing left announced or bound",
}

// drainStep says where a drain stands in st, and whether it is done.
func drainStep(st api.Status, req api.DrainRequest) (step string, done bool, err error) {
	if req.Node {
		step, ok := nodePhases[st.Phase]
		if !ok {
			step = "phase " + st.Phase
		}
		return step, st.Phase == "drained", nil
	}
	for _, v := range st.VIPs {
		if v.Address != *req.VIP {
			continue
		}
		route := v.Route
		if route == "" { // a vipd that does not read the world back
			route = map[bool]string{true: "announced", false: "withdrawn"}[v.Advertised]
		}
		step = fmt.Sprintf("route %s (claim: %s): %s", route, claimWord(v), v.RouteReason)
		switch {
		case !v.Advertised && route == "withdrawn":
			return "route withdrawn in the routing daemon: " + v.RouteReason, true, nil
		case v.Depreferred && route == "announced":
			return "route depreferred in the routing daemon: " + v.RouteReason, true, nil
		}
		return step, false, nil
	}
	return "", false, fmt.Errorf("%s is not in vipd's status", req.VIP)
}

func claimWord(v api.VIPStatus) string {
	switch {
	case v.Depreferred:
		return "announced with the drain attributes"
	case v.Advertised:
		return "announced"
	}
	return "withdrawn"
}

func vipsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "vips",
		Short: "List the VIPs configured on this node",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := g.ctx()
		defer cancel()
		vips, err := api.NewClient(g.socket).VIPs(ctx)
		if err != nil {
			return err
		}
		if *out == outJSON {
			return writeJSON(cmd.OutOrStdout(), vips)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tADDRESS\tSERVICES\tCHECK")
		for _, v := range vips {
			check := v.Check
			// A long command check would push the table off the screen.
			if r := []rune(check); *out != outWide && len(r) > 48 {
				check = string(r[:47]) + "…"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.Address, strings.Join(v.Services, ","), check)
		}
		return w.Flush()
	}
	return c
}

func restartCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Make vipd exit for an upgrade WITHOUT withdrawing (graceful restart keeps routes; pinned XDP keeps forwarding)",
		Long: `restart asks vipd to exit without withdrawing routes, unbinding VIPs or
detaching the XDP program. BGP peers with graceful restart keep the routes as
stale, the pinned XDP program keeps forwarding, and the next vipd adopts that
state and re-announces. vipd exits with status 75, which the packaged systemd
unit restarts at once (RestartForceExitStatus=75): after installing a new
binary, 'vipctl restart' alone brings it up. Use it for upgrades; use 'vipctl
drain' (or SIGTERM, systemctl stop) to take a node out of service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			if err := api.NewClient(g.socket).Restart(ctx); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "vipd is exiting for an upgrade (exit status 75); routes and forwarding stay in place.")
			fmt.Fprintln(cmd.OutOrStdout(), "Under systemd the unit starts the installed binary at once (RestartForceExitStatus=75).")
			return nil
		},
	}
}
