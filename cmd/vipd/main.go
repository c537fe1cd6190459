// Command vipd is the anycast controller of one node of a symmetric XDP
// load-balancer cluster. See the README for what it does and how to run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/buildinfo"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/fielderr"
)

const usage = `usage: vipd [-c FILE] [flags]

vipd announces this node's service VIPs to the routers, binds them on lo and
drives the XDP dataplane from one per-VIP state machine. vipctl talks to it.

Signals:
  SIGHUP    reload the config (a bad config is reported, the old one keeps running)
  SIGTERM   drain the node (withdraw, demote, wait, unbind), then exit
  SIGINT    same as SIGTERM
  SIGUSR2   exit for an upgrade WITHOUT withdrawing (same as 'vipctl restart'):
            graceful restart keeps the routes at the peers, the pinned XDP
            program keeps forwarding, the next vipd adopts both. Exit
            status 75, which the systemd unit restarts at once

Under systemd (Type=notify) vipd reports READY=1 after bring-up,
RELOADING=1/READY=1 around a reload, STOPPING=1 and each drain step in
STATUS=, and feeds WatchdogSec from its controller's event loop.

Operator drains are kept in [node] state_dir (default /var/lib/vipd) and
honoured at every start, after a crash or a reboot too.

Flags:
`

func main() {
	fs := flag.NewFlagSet("vipd", flag.ExitOnError)
	cfgPath := fs.String("c", config.DefaultPath, "config file")
	level := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	jsonLog := fs.Bool("log-json", false, "log JSON lines")
	drainWait := fs.Duration("shutdown-timeout", 5*time.Minute, "longest SIGTERM waits for the drain")
	skipChecks := fs.Bool("skip-host-checks", false, "do not run the start-up host checks (testing only)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	checkOnly := fs.Bool("check-config", false, "validate the config file and exit (0 valid, 1 errors, each as FILE:LINE: ITEM: message)")
	drained := fs.Bool("drained", false, "start the node in maintenance: record a node drain (kept until 'vipctl undrain')")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	switch {
	case *showVersion:
		fmt.Println("vipd", buildinfo.Get())
		return
	case *checkOnly:
		os.Exit(checkConfig(*cfgPath))
	}

	log := hclog.New(&hclog.LoggerOptions{
		Name: "vipd", Level: hclog.LevelFromString(*level), JSONFormat: *jsonLog, Output: os.Stderr,
	})
	opts := daemon.Options{ConfigPath: *cfgPath, Logger: log, SkipHostChecks: *skipChecks, StartDrained: *drained}
	upgrade, err := run(log, opts, *drainWait)
	switch {
	case err != nil:
		log.Error("vipd failed", "error", err)
		os.Exit(1)
	case upgrade:
		// Distinct from a stop: the unit's RestartForceExitStatus starts
		// the new binary at once.
		os.Exit(daemon.UpgradeExitStatus)
	}
}

// checkConfig validates the config file the way a start or a SIGHUP would,
// for package scripts and ExecReload guards, and returns the exit code.
func checkConfig(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		for _, e := range fielderr.All(err) {
			fmt.Fprintln(os.Stderr, e)
		}
		return 1
	}
	fmt.Printf("%s: ok (node %s, %d VIPs, routing %s)\n", path, cfg.Node.Name, len(cfg.VIPs), cfg.Routing.Mode)
	return 0
}

// run starts vipd and serves signals until it exits; upgrade says the exit
// was an upgrade exit (it returns the status daemon.UpgradeExitStatus).
func run(log hclog.Logger, opts daemon.Options, drainWait time.Duration) (upgrade bool, err error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	d, err := daemon.Start(ctx, opts)
	cancel()
	if err != nil {
		return false, err
	}
	for {
		select {
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				if err := d.Reload(); err != nil {
					log.Error("reload refused; the running config stays", "error", err)
				}
			case syscall.SIGUSR2:
				return true, d.Abandon()
			default:
				ctx, cancel := context.WithTimeout(context.Background(), drainWait)
				err := d.Shutdown(ctx)
				cancel()
				return false, err
			}
		case <-d.RestartRequested():
			return true, d.Abandon()
		case err := <-d.ControllerDone():
			if err == nil {
				err = errors.New("controller stopped")
			}
			return false, err
		}
	}
}
