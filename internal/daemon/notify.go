package daemon

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/vip"
)

// What vipd tells its service manager (systemd's sd_notify protocol, the
// unit's Type=notify and WatchdogSec): READY=1 once bring-up is done,
// RELOADING=1 then READY=1 around a reload, STOPPING=1 and a STATUS= line
// per drain step at SIGTERM, and WATCHDOG=1 each time the controller's
// event loop is seen to complete a pass. Outside systemd (no
// NOTIFY_SOCKET) nothing is sent.

// UpgradeExitStatus is vipd's exit status after an upgrade exit (SIGUSR2,
// vipctl restart): EX_TEMPFAIL, "try again". The unit lists it in
// RestartForceExitStatus, so systemd starts the new binary at once and
// the next vipd adopts what this one left in place; SuccessExitStatus
// keeps it from counting as a failure.
const UpgradeExitStatus = 75

// notifier sends sd_notify messages. Safe for concurrent use (each message
// is one datagram).
type notifier struct {
	log hclog.Logger
	// watchdog is WATCHDOG_USEC: systemd kills vipd when no WATCHDOG=1
	// arrives for that long (0: no watchdog).
	watchdog time.Duration
}

func newNotifier(log hclog.Logger) *notifier {
	n := &notifier{log: log}
	w, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the watchdog settings systemd passed", "error", err)
	}
	n.watchdog = w
	return n
}

// send sends one message of state lines ("READY=1", "STATUS=...").
func (n *notifier) send(lines ...string) {
	sent, err := sd.SdNotify(false, strings.Join(lines, "\n"))
	if err != nil {
		n.log.Warn("telling systemd", "message", strings.Join(lines, " "), "error", err)
	} else if sent {
		n.log.Trace("told systemd", "message", strings.Join(lines, " "))
	}
}

func sdStatus(format string, args ...any) string {
	// One line: systemd shows STATUS= as is in 'systemctl status'.
	return "STATUS=" + strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
}

// reloading is RELOADING=1 with the monotonic time systemd (>= 253) wants
// next to it.
func reloading() []string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return []string{sd.SdNotifyReloading, fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000)}
}

// feedWatchdog keeps systemd's watchdog fed for as long as the controller's
// event loop runs: every interval/4 it asks the loop for a pass (a no-op
// event) and sends WATCHDOG=1 only once a pass has completed. A loop
// wedged inside a pass (a side effect that never returns, a deadlock)
// completes none, the feeding stops, and after WatchdogSec systemd kills
// vipd with SIGABRT (a goroutine dump in the journal) and restarts it; the
// pinned XDP program keeps forwarding meanwhile.
func (d *Daemon) feedWatchdog(interval time.Duration) {
	every := max(interval/4, 10*time.Millisecond)
	warned := false
	for {
		passed := d.watch.nextPass()
		d.pingLoop()
		select {
		case <-d.ctx.Done():
			return
		case <-passed:
		case <-time.After(interval / 2):
			d.log.Error("the controller's event loop has not completed a pass; the systemd watchdog is no longer fed",
				"waited", interval/2, "watchdog", interval)
			warned = true
			select {
			case <-d.ctx.Done():
				return
			case <-passed:
			}
		}
		if warned {
			d.log.Info("the controller's event loop completes passes again; feeding the watchdog")
			warned = false
		}
		d.notify.send(sd.SdNotifyWatchdog)
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// pingLoop queues an event that changes nothing, so that the loop runs a
// pass: lifting a hold of the zero address, which nothing ever holds. (Not
// the drains again: during a SIGTERM drain the controller's node drain is
// the shutdown's, not the state directory's.)
func (d *Daemon) pingLoop() {
	d.ctrl.Release(netip.Addr{})
}

// stopSteps tells systemd each step of the SIGTERM drain until done is
// closed.
func (d *Daemon) stopSteps(done <-chan struct{}) {
	last := ""
	for {
		passed := d.watch.nextPass()
		line := d.stepLine()
		if line != last {
			d.notify.send(sdStatus("%s", line))
			last = line
		}
		select {
		case <-done:
			return
		case <-passed:
		case <-time.After(time.Second): // time left moves on
		}
	}
}

// stepLine is the STATUS= line of a node drain: its phase and time left.
func (d *Daemon) stepLine() string {
	cfg := d.config()
	phase, since := d.watch.phase()
	ends, drainEnds := phaseEnds(phase, since, cfg.Timers.WithdrawGrace, cfg.Timers.DrainTimeout, cfg.Timers.TableGrace)
	switch {
	case phase == vip.PhaseDrained:
		return "drained: closing the routing sessions"
	case drainEnds.IsZero():
		return fmt.Sprintf("draining before exit: %s", phase)
	}
	left := max(time.Until(drainEnds), 0).Round(time.Second)
	phaseLeft := max(time.Until(ends), 0).Round(time.Second)
	return fmt.Sprintf("draining before exit: %s (%s left in this step, at most %s in all)", phaseHints[phase], phaseLeft, left)
}

// phaseHints say what each drain step does.
var phaseHints = map[vip.Phase]string{
	vip.PhaseActive:      "starting the drain",
	vip.PhaseWithdrawing: "withdrawing routes, withdraw grace",
	vip.PhaseDraining:    "published draining, waiting for idle or the drain timeout",
	vip.PhaseInactive:    "published inactive, table grace before unbinding",
	vip.PhaseDrained:     "drained",
}

// phaseEnds returns when a node drain phase that began at since ends at
// the latest by its timer, and when the whole drain does if every later
// phase takes its full timer. Zero for active and drained.
func phaseEnds(p vip.Phase, since time.Time, withdraw, drain, table time.Duration) (phase, all time.Time) {
	if since.IsZero() {
		return time.Time{}, time.Time{}
	}
	steps := []struct {
		p vip.Phase
		d time.Duration
	}{{vip.PhaseWithdrawing, withdraw}, {vip.PhaseDraining, drain}, {vip.PhaseInactive, table}}
	for i, s := range steps {
		if s.p != p {
			continue
		}
		phase = since.Add(s.d)
		all = phase
		for _, later := range steps[i+1:] {
			all = all.Add(later.d)
		}
		return phase, all
	}
	return time.Time{}, time.Time{}
}
