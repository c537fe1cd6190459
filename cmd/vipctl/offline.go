package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/fielderr"
	"github.com/vipd/vipd/internal/hostcheck"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing/bird"
)

func configCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Work with vipd configuration files: check them, show the effective one"}
	c.AddCommand(configShowCmd(g))
	c.AddCommand(&cobra.Command{
		Use:   "check FILE...",
		Short: "Validate config files; every mistake is printed as FILE:LINE: ITEM: message",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			bad := 0
			for _, f := range files {
				cfg, err := config.Load(f)
				if err != nil {
					bad++
					for _, e := range fielderr.All(err) {
						fmt.Fprintln(cmd.ErrOrStderr(), e)
					}
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (node %s, %d VIPs, routing %s)\n", f, cfg.Node.Name, len(cfg.VIPs), cfg.Routing.Mode)
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d config files have errors", bad, len(files))
			}
			return nil
		},
	})
	return c
}

func birdConfigCmd() *cobra.Command {
	var cfgPath, out string
	var check, all, unlessRunning bool
	c := &cobra.Command{
		Use:   "bird-config",
		Short: "Generate the first BIRD config for a bird-ospf node, offline (announcing no VIP until vipd runs)",
		Long: `bird-config renders the BIRD 2 configuration vipd writes for the node (full
config or include file, as [routing.bird] mode says) with no VIP route in
it: the file to start BIRD on before vipd runs. BIRD brings up its OSPF
adjacencies and announces nothing; vipd announces each VIP once it has
programmed and bound it, by rewriting the file and reconfiguring BIRD.
--announce-all renders every configured VIP announced instead (to read, not
to start BIRD on: that draws traffic to a node that cannot serve it yet).

-o writes the file atomically with the owner and group of its directory,
mode 0640, as vipd does, so BIRD running as its own user can read it.
--unless-running leaves the file alone while a vipd holds the node's state
directory: BIRD restarting under a running vipd keeps what vipd announced,
BIRD starting at boot gets a file that announces nothing. With --check the
result is validated by the installed 'bird -p'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if cfg.Routing.Bird == nil {
				return fmt.Errorf("%s: routing.mode is %q, not bird-ospf: there is no BIRD config to generate", cfgPath, cfg.Routing.Mode)
			}
			if unlessRunning {
				if out == "" {
					return errors.New("--unless-running needs -o FILE")
				}
				held, err := statedir.Held(cfg.Node.StateDir)
				if err != nil {
					return err
				}
				if held {
					fmt.Fprintf(cmd.ErrOrStderr(), "bird-config: a vipd holds %s: %s stays as it wrote it\n", cfg.Node.StateDir, out)
					return nil
				}
			}
			var data []byte
			if all {
				data, err = bird.RenderAll(*cfg.Routing.Bird)
			} else {
				data, err = bird.Render(*cfg.Routing.Bird, nil)
			}
			if err != nil {
				return fmt.Errorf("rendering BIRD config: %w", err)
			}
			name := out
			if out == "" {
				name = "stdout"
			}
			if check {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := bird.CheckGenerated(ctx, *cfg.Routing.Bird, name, data); err != nil {
					return fmt.Errorf("the generated config does not pass bird -p: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bird -p: the generated config (%s) is valid\n", name)
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			return bird.WriteAtomic(out, data)
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", config.DefaultPath, "vipd config file")
	c.Flags().StringVarP(&out, "output", "o", "", "write to FILE (atomically, owner and group of its directory, mode 0640) instead of stdout")
	c.Flags().BoolVar(&check, "check", false, "validate the result with the installed bird -p")
	c.Flags().BoolVar(&all, "announce-all", false, "announce every configured VIP (never start BIRD on this)")
	c.Flags().BoolVar(&unlessRunning, "unless-running", false, "with -o: leave FILE alone while a vipd holds the node's state directory")
	return c
}

func doctorCmd() *cobra.Command {
	var cfgPath string
	var asJSON bool
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host for every known production incident (exit 0 pass, 1 warn, 2 fail)",
		Long: `doctor runs the host checks vipd runs at start: ip_forward on a backend,
accept_local and rp_filter, rx-vlan-offload, MTU against the switch and the
native-XDP limit, IPv6 route back to clients, the ixgbe Tx hang and i40e X722
crash conditions, bpffs/BTF/memlock/BPF helpers, the routing daemon and
peers, and the GUE trust boundary with what the network must still filter
(UDP to the GUE port from outside the cluster; spoofed member underlay
addresses). Each check prints what it saw and the exact fix.

Without a config file (the default one missing) the checks that need one are
skipped. Exit code: 0 all pass, 1 any WARN, 2 any FAIL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec hostcheck.Spec
			cfg, err := config.Load(cfgPath)
			switch {
			case err == nil:
				spec = hostcheck.SpecFor(cfg)
			case errors.Is(err, os.ErrNotExist) && !cmd.Flags().Changed("config"):
				fmt.Fprintf(cmd.ErrOrStderr(), "doctor: no config at %s: checking the host only\n", cfgPath)
			default:
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := hostcheck.Run(ctx, hostcheck.System(), spec)
			if asJSON {
				err = r.WriteJSON(cmd.OutOrStdout())
			} else {
				err = r.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if code := r.ExitCode(); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", config.DefaultPath, "vipd config file")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (same as -o json)")
	out := addOutput(c)
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		asJSON = asJSON || *out == outJSON
		return run(cmd, args)
	}
	return c
}
