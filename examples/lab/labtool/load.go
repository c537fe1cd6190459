package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is what load prints as JSON at the end.
type result struct {
	Connections int            `json:"connections"`
	Broken      int            `json:"broken"`
	Switched    int            `json:"switched"` // answered by another backend mid-connection
	Requests    int64          `json:"requests"`
	ByBackend   map[string]int `json:"by_backend"` // connections per first backend
	Errors      []string       `json:"errors,omitempty"`
}

// Broken is one broken connection, a JSON line of the -events file: enough
// for a test to find who was serving it (the backend that answered, and,
// from a capture at the router, the client port's path).
type Broken struct {
	Target string `json:"target"`
	// Port is the client's local port (with -ports; 0 if the kernel chose).
	Port int `json:"port"`
	// Backend is the node that answered first; empty if none did.
	Backend string `json:"backend,omitempty"`
	// Start is when the dial began, LastOK the last good answer (Start if
	// none), At when the failure was seen.
	Start  time.Time `json:"start"`
	LastOK time.Time `json:"last_ok"`
	At     time.Time `json:"at"`
	// Op is "dial", "write" or "read"; Switched is set when another
	// backend answered mid-connection (counted, not broken).
	Op       string `json:"op"`
	Error    string `json:"error"`
	Switched bool   `json:"switched,omitempty"`
}

// portRange hands out local ports round robin, so a test can name every
// connection by its client port. A port still in use (TIME_WAIT of an
// earlier connection) is skipped.
type portRange struct {
	lo, n int
	next  atomic.Int64
}

func parsePorts(s string) (*portRange, error) {
	if s == "" {
		return nil, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || hi <= lo {
		return nil, fmt.Errorf("-ports %q: want LO-HI within 1024-65535", s)
	}
	return &portRange{lo: lo, n: hi - lo + 1}, nil
}

func (p *portRange) take() int { return p.lo + int((p.next.Add(1)-1)%int64(p.n)) }

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "VIP:PORT")
	conns := fs.Int("conns", 30, "connections to keep open")
	dur := fs.Duration("duration", 20*time.Second, "how long to run")
	every := fs.Duration("interval", 100*time.Millisecond, "request interval per connection")
	life := fs.Duration("lifetime", 3*time.Second, "reconnect each connection after this long (new flows)")
	progress := fs.Duration("progress", time.Second, "progress line interval (0 = none)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	ports := fs.String("ports", "", "LO-HI: bind client ports from this range, round robin (default: the kernel picks)")
	events := fs.String("events", "", "append one JSON line per broken connection to this file")
	ready := fs.String("ready", "", "create this file once the signals are handled (a caller may send SIGUSR1 from then on)")
	fs.Parse(args)
	if *target == "" {
		return errors.New("load: -target is required")
	}
	pr, err := parsePorts(*ports)
	if err != nil {
		return err
	}
	var evw *json.Encoder
	if *events != "" {
		f, err := os.OpenFile(*events, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		evw = json.NewEncoder(f)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *dur)
	defer cancel2()
	// SIGUSR1: finish. No new connection; each open one ends cleanly after
	// its current exchange. A test sends it before taking the VIP away.
	finish := make(chan struct{})
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		select {
		case <-usr1:
			close(finish)
		case <-ctx.Done():
		}
	}()
	if *ready != "" {
		if err := os.WriteFile(*ready, nil, 0o644); err != nil {
			return err
		}
	}
	finishing := func() bool {
		select {
		case <-finish:
			return true
		default:
			return ctx.Err() != nil
		}
	}

	var (
		mu       sync.Mutex
		res      = result{ByBackend: map[string]int{}}
		requests atomic.Int64
		wg       sync.WaitGroup
	)
	report := func(b Broken) {
		mu.Lock()
		defer mu.Unlock()
		if b.Switched {
			res.Switched++
		} else {
			res.Broken++
			if len(res.Errors) < 20 {
				res.Errors = append(res.Errors, fmt.Sprintf("port %d (%s): %s: %s", b.Port, b.Backend, b.Op, b.Error))
			}
		}
		if evw != nil {
			evw.Encode(b)
		}
	}
	dial := func() (net.Conn, int, error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		if pr == nil {
			c, err := d.DialContext(ctx, "tcp", *target)
			if err != nil {
				return nil, 0, err
			}
			return c, c.LocalAddr().(*net.TCPAddr).Port, nil
		}
		for range 1000 {
			port := pr.take()
			d.LocalAddr = &net.TCPAddr{Port: port}
			c, err := d.DialContext(ctx, "tcp", *target)
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
				continue // still in TIME_WAIT from an earlier connection
			}
			return c, port, err
		}
		return nil, 0, errors.New("no free client port in -ports")
	}
	// oneConn runs one connection; false if it could not connect.
	oneConn := func() bool {
		start := time.Now()
		c, port, err := dial()
		if err != nil {
			if ctx.Err() == nil {
				report(Broken{Target: *target, Port: port, Start: start, LastOK: start, At: time.Now(), Op: "dial", Error: err.Error()})
			}
			return false
		}
		defer c.Close()
		r := bufio.NewReader(c)
		first := ""
		lastOK := start
		end := time.Now().Add(*life)
		for time.Now().Before(end) && !finishing() {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			op := "write"
			_, err := io.WriteString(c, "ping\n")
			var line string
			if err == nil {
				op = "read"
				line, err = r.ReadString('\n')
			}
			if err != nil {
				report(Broken{Target: *target, Port: port, Backend: first, Start: start, LastOK: lastOK, At: time.Now(), Op: op, Error: err.Error()})
				return true
			}
			lastOK = time.Now()
			name := strings.TrimSpace(line)
			requests.Add(1)
			if first == "" {
				first = name
				mu.Lock()
				res.Connections++
				res.ByBackend[name]++
				mu.Unlock()
			} else if name != first {
				report(Broken{Target: *target, Port: port, Backend: first, Start: start, LastOK: lastOK, At: lastOK, Op: "read", Error: "answered by " + name, Switched: true})
				first = name
			}
			select {
			case <-ctx.Done():
			case <-finish:
			case <-time.After(*every):
			}
		}
		return true
	}
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Stagger starts so connections renew at different times.
			select {
			case <-ctx.Done():
				return
			case <-finish:
				return
			case <-time.After(time.Duration(i) * *life / time.Duration(*conns)):
			}
			for !finishing() {
				if !oneConn() {
					// No route or refused at once: not a tight loop of
					// dials while the VIP is unreachable (a cold start).
					select {
					case <-ctx.Done():
					case <-finish:
					case <-time.After(*every):
					}
				}
			}
		}(i)
	}
	if *progress > 0 {
		go func() {
			t := time.NewTicker(*progress)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					mu.Lock()
					fmt.Printf("  load: %d connections, %d requests, broken %d, by backend %s\n",
						res.Connections, requests.Load(), res.Broken, fmtCounts(res.ByBackend))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	res.Requests = requests.Load()
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("load: %d connections, %d requests, %d broken, %d switched backend; new connections by backend: %s\n",
		res.Connections, res.Requests, res.Broken, res.Switched, fmtCounts(res.ByBackend))
	for _, e := range res.Errors {
		fmt.Println("  error:", e)
	}
	return nil
}

func fmtCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
