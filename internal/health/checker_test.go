package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

var testVIP = netip.MustParseAddr("192.0.2.10")

type checkReport struct {
	Healthy bool
	Reason  string
}

// startChecker runs a Checker for cfg until the test ends and returns it and
// its reports. Cleanup cancels it and fails the test if Run does not return.
func startChecker(t *testing.T, cfg CheckConfig) (*Checker, <-chan checkReport) {
	t.Helper()
	reports := make(chan checkReport, 100)
	c := NewChecker(hclog.NewNullLogger(), testVIP, cfg, func(v netip.Addr, healthy bool, reason string) {
		if v != testVIP {
			t.Errorf("report for %v, want %v", v, testVIP)
		}
		reports <- checkReport{healthy, reason}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Checker.Run did not return after cancel")
		}
	})
	return c, reports
}

func nextReport(t *testing.T, reports <-chan checkReport) checkReport {
	t.Helper()
	select {
	case r := <-reports:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no report within 10s")
		return checkReport{}
	}
}

// waitStatus waits until the checker's Status satisfies ok.
func waitStatus(t *testing.T, c *Checker, what string, ok func(healthy bool, reason string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, r := c.Status()
		if ok(h, r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status() = %v, %q: still not %s after 10s", h, r, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fast timings for live checks: short, but with a timeout generous enough
// for a loaded CI machine running -race.
func fast(cfg CheckConfig) CheckConfig {
	cfg.Interval = 30 * time.Millisecond
	if cfg.Timeout == 0 {
		cfg.Timeout = 25 * time.Millisecond
	}
	return cfg
}

func TestCheckerTCP(t *testing.T) {
	checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	// No Accept: the kernel completes the handshake from the backlog, which
	// is what a connect check sees of a live service.

	// Not fast(): a check starved of the CPU past its timeout reports
	// "timed out" instead of "connection refused", and at a load of 25
	// (2 cores, -race) 25 ms went by 2 times in 400 runs. A connect to
	// 127.0.0.1 answers at once, so a long timeout costs nothing here;
	// the interval it needs costs about two seconds.
	_, reports := startChecker(t, CheckConfig{Type: "tcp", Target: addr, Interval: 500 * time.Millisecond, Timeout: 450 * time.Millisecond})
	want := []checkReport{
		{false, "checking (0/2)"},
		{true, "tcp " + addr + ": ok (2/2 successes)"},
	}
	got := []checkReport{nextReport(t, reports), nextReport(t, reports)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("reports while listening (-want +got):\n%s", diff)
	}

	ln.Close()
	if diff := cmp.Diff(checkReport{false, "tcp " + addr + ": connection refused (3/3 failures)"}, nextReport(t, reports)); diff != "" {
		t.Errorf("report after close (-want +got):\n%s", diff)
	}
}

func TestCheckerHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/404", http.NotFound)
	mux.HandleFunc("/redirect-once", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/redirect-loop", http.StatusFound) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		// Far more than the check reads: it must not wait for the end.
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path        string
		wantHealthy bool
		wantReason  string // prefix of the reason once settled
	}{
		{"/ok", true, "http GET " + srv.URL + "/ok: ok (2/2 successes)"},
		{"/204", true, "http GET " + srv.URL + "/204: ok"},
		{"/redirect-once", true, "http GET " + srv.URL + "/redirect-once: ok"},
		{"/huge", true, "http GET " + srv.URL + "/huge: ok"},
		{"/503", false, "checking (0/2): http GET " + srv.URL + "/503: status 503 Service Unavailable"},
		{"/404", false, "checking (0/2): http GET " + srv.URL + "/404: status 404 Not Found"},
		{"/redirect-loop", false, "checking (0/2): http GET " + srv.URL + "/redirect-loop: stopped after 3 redirects"},
		{"/hang", false, "checking (0/2): http GET " + srv.URL + "/hang: timed out after 25ms"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c, _ := startChecker(t, fast(CheckConfig{Type: "http", URL: srv.URL + tt.path}))
			waitStatus(t, c, fmt.Sprintf("healthy=%v with reason %q", tt.wantHealthy, tt.wantReason),
				func(h bool, r string) bool { return h == tt.wantHealthy && strings.HasPrefix(r, tt.wantReason) })
		})
	}
}

func TestCheckerHTTPRefused(t *testing.T) {
	addr := closedPort(t)
	c, _ := startChecker(t, fast(CheckConfig{Type: "http", URL: "http://" + addr + "/"}))
	want := "checking (0/2): http GET http://" + addr + "/: connection refused"
	waitStatus(t, c, want, func(h bool, r string) bool { return !h && r == want })
}

func TestCheckerCommand(t *testing.T) {
	tests := []struct {
		name        string
		argv        []string
		timeout     time.Duration
		wantHealthy bool
		wantReason  string
	}{
		{"true", []string{"true"}, 0, true, "command true: ok (2/2 successes)"},
		{"false", []string{"false"}, 0, false, "checking (0/2): command false: exit status 1"},
		{"exit code and output tail", []string{"sh", "-c", "echo starting; echo 'backend  gone' >&2; exit 3"}, 0, false,
			"checking (0/2): command sh: exit status 3: starting backend gone"},
		{"long output keeps the tail", []string{"sh", "-c", "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; exit 1"}, 0, false,
			"checking (0/2): command sh: exit status 1: "},
		{"killed at timeout", []string{"sleep", "10"}, 50 * time.Millisecond, false, "checking (0/2): command sleep: timed out after 50ms"},
		{"grandchild killed at timeout", []string{"sh", "-c", "sleep 10; echo never"}, 50 * time.Millisecond, false, "checking (0/2): command sh: timed out after 50ms"},
		{"missing binary", []string{"/nonexistent/check"}, 0, false, "checking (0/2): command /nonexistent/check: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := CheckConfig{Type: "command", Command: tt.argv, Timeout: tt.timeout}
			cfg = fast(cfg)
			if tt.timeout > 0 {
				cfg.Interval = 2 * tt.timeout
			} else {
				cfg.Timeout = 2 * time.Second // fork+exec under -race can be slow
				cfg.Interval = 3 * time.Second
			}
			if tt.wantHealthy {
				cfg.Rise = 2
				// Long enough for fork+exec of true on a starved CPU
				// (25 ms timed out at load 18+), short enough for two.
				cfg.Interval = 300 * time.Millisecond
				cfg.Timeout = 250 * time.Millisecond
			}
			c, _ := startChecker(t, cfg)
			waitStatus(t, c, fmt.Sprintf("healthy=%v with reason %q", tt.wantHealthy, tt.wantReason),
				func(h bool, r string) bool { return h == tt.wantHealthy && strings.HasPrefix(r, tt.wantReason) })
		})
	}
}

func TestCheckerCommandTail(t *testing.T) {
	err := commandProbe([]string{"sh", "-c", "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; exit 1"})(t.Context())
	got := describe(err, time.Second)
	if !strings.HasPrefix(got, "exit status 1: ") || !strings.HasSuffix(got, "line 98 line 99") || len(got) > outputTail+len("exit status 1: ") {
		t.Errorf("describe(long output) = %q: want the exit status and the last %d bytes on one line", got, outputTail)
	}
}

// At timeout the whole process group dies, not just the command: a check
// script's children must not pile up when the script hangs.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := commandProbe([]string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"})(ctx)
	if got := describe(err, 200*time.Millisecond); got != "timed out after 200ms" {
		t.Errorf("describe(err) = %q, want \"timed out after 200ms\"", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("reading the grandchild's pid: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	// Killed and reparented, the grandchild is gone or at most a zombie
	// waiting for its new parent to reap it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return // gone
		}
		// state is the field after the parenthesised command name
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild sleep (pid %s) still running after the check timed out: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckerNone(t *testing.T) {
	_, reports := startChecker(t, CheckConfig{Type: "none"})
	if diff := cmp.Diff(checkReport{true, "no check"}, nextReport(t, reports)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestCheckerInvalid(t *testing.T) {
	_, reports := startChecker(t, CheckConfig{Type: "icmp"})
	got := nextReport(t, reports)
	if got.Healthy || !strings.HasPrefix(got.Reason, `invalid check: type: unknown check type "icmp"`) {
		t.Errorf("report = %+v, want unhealthy with the validation error", got)
	}
}

// Reports are only sent on changes: a steady service produces exactly the
// start report and the up report, however many checks run.
func TestCheckerReportsOnlyChanges(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// fall is out of reach, so a connect slowed down by a loaded machine
	// cannot make a real change: any further report is a spurious one.
	cfg := CheckConfig{Type: "tcp", Target: ln.Addr().String(), Interval: 10 * time.Millisecond, Timeout: 9 * time.Millisecond, Rise: 1, Fall: 1000}
	_, reports := startChecker(t, cfg)
	nextReport(t, reports) // start
	if r := nextReport(t, reports); !r.Healthy {
		t.Fatalf("second report %+v, want healthy", r)
	}
	time.Sleep(20 * cfg.Interval)
	select {
	case r := <-reports:
		t.Errorf("unexpected report %+v while the service stayed up", r)
	default:
	}
}
