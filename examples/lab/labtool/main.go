// Command labtool is the namespace lab's helper: a TCP service that answers
// with the node's name, a load generator that keeps long-lived connections to
// a VIP and counts the broken ones, and a pass-through XDP program for the
// router's veths (XDP_TX from a veth only reaches a peer that runs native XDP).
// It is a lab tool, not part of the product.
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "xdp-pass":
		err = xdpPass(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  labtool serve -name NAME [-listen :80]       answer each line with NAME
  labtool load -target VIP:PORT [flags]        long-lived connections, count broken ones
  labtool xdp-pass -iface IFACE -pin FILE      attach a pass-through native XDP program, pin its link
  labtool xdp-pass -unpin FILE                 detach it
`)
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "", "name to answer with")
	listen := fs.String("listen", ":80", "listen address")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				if _, err := io.WriteString(c, *name+"\n"); err != nil {
					return
				}
			}
		}()
	}
}

// result is what load prints as JSON at the end.
type result struct {
	Connections int            `json:"connections"`
	Broken      int            `json:"broken"`
	Switched    int            `json:"switched"` // answered by another backend mid-connection
	Requests    int64          `json:"requests"`
	ByBackend   map[string]int `json:"by_backend"` // connections per first backend
	Errors      []string       `json:"errors,omitempty"`
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "VIP:PORT")
	conns := fs.Int("conns", 30, "connections to keep open")
	dur := fs.Duration("duration", 20*time.Second, "how long to run")
	every := fs.Duration("interval", 100*time.Millisecond, "request interval per connection")
	life := fs.Duration("lifetime", 3*time.Second, "reconnect each connection after this long (new flows)")
	progress := fs.Duration("progress", time.Second, "progress line interval (0 = none)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Parse(args)
	if *target == "" {
		return errors.New("load: -target is required")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *dur)
	defer cancel2()

	var (
		mu       sync.Mutex
		res      = result{ByBackend: map[string]int{}}
		requests atomic.Int64
		wg       sync.WaitGroup
	)
	fail := func(msg string) {
		mu.Lock()
		res.Broken++
		if len(res.Errors) < 20 {
			res.Errors = append(res.Errors, msg)
		}
		mu.Unlock()
	}
	oneConn := func(id int) {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", *target)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Sprintf("conn %d: dial: %v", id, err))
			}
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		first := ""
		end := time.Now().Add(*life)
		for time.Now().Before(end) && ctx.Err() == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				fail(fmt.Sprintf("conn %d (%s): write: %v", id, first, err))
				return
			}
			line, err := r.ReadString('\n')
			if err != nil {
				fail(fmt.Sprintf("conn %d (%s): read: %v", id, first, err))
				return
			}
			name := strings.TrimSpace(line)
			requests.Add(1)
			if first == "" {
				first = name
				mu.Lock()
				res.Connections++
				res.ByBackend[name]++
				mu.Unlock()
			} else if name != first {
				mu.Lock()
				res.Switched++
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(*every):
			}
		}
	}
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Stagger starts so connections renew at different times.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * *life / time.Duration(*conns)):
			}
			for n := 0; ctx.Err() == nil; n++ {
				oneConn(i*100000 + n)
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

func xdpPass(args []string) error {
	fs := flag.NewFlagSet("xdp-pass", flag.ExitOnError)
	iface := fs.String("iface", "", "interface")
	pin := fs.String("pin", "", "bpffs path to pin the link at")
	unpin := fs.String("unpin", "", "pinned link to detach and remove")
	fs.Parse(args)
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	if *unpin != "" {
		l, err := link.LoadPinnedLink(*unpin, nil)
		if err != nil {
			return err
		}
		defer l.Close()
		return l.Unpin()
	}
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("loading pass program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", *iface, err)
	}
	defer l.Close()
	return l.Pin(*pin)
}
