package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/cilium/ebpf/rlimit"

	"github.com/vipd/vipd/examples/lab/world"
)

// readWorld prints what this node really has (run it in the node's
// namespace): the addresses on lo and the dataplane's pinned maps.
func readWorld(args []string) error {
	fs := flag.NewFlagSet("world", flag.ExitOnError)
	pin := fs.String("pin", "", "the node's pin directory ([dataplane] pin_path)")
	fs.Parse(args)
	if *pin == "" {
		return fmt.Errorf("world: -pin is required")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	n, err := world.Read(*pin)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(n)
}
