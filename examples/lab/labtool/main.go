// Command labtool is the namespace lab's helper: a TCP service that answers
// with the node's name, a load generator that keeps long-lived connections to
// a VIP and counts the broken ones, a pass-through XDP program for the
// router's veths (XDP_TX from a veth only reaches a peer that runs native XDP),
// the writer of the nodes' vipd configs, and a reader of what a node really
// has (lo, the pinned maps). It is a lab tool, not part of the product.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

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
	case "conf":
		err = conf(os.Args[2:])
	case "world":
		err = readWorld(os.Args[2:])
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
  labtool serve -name NAME [-listen :80,...]   answer each line with NAME
  labtool load -target VIP:PORT [flags]        long-lived connections, count broken ones
  labtool xdp-pass -iface IFACE -pin FILE      attach a pass-through native XDP program, pin its link
  labtool xdp-pass -unpin FILE                 detach it
  labtool conf -run DIR [flags]                write the nodes' vipd configs
  labtool world -pin DIR                       print lo and the pinned maps of this node as JSON
`)
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "", "name to answer with")
	listen := fs.String("listen", ":80", "listen addresses, comma separated")
	fs.Parse(args)
	errs := make(chan error, 1)
	for _, addr := range strings.Split(*listen, ",") {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		go func() { errs <- serveOn(ln, *name) }()
	}
	return <-errs
}

func serveOn(ln net.Listener, name string) error {
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
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
			}
		}()
	}
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
