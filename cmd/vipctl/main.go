// Command vipctl is the operator's client for vipd: status, drain, undrain,
// config checks, BIRD config generation and host checks (doctor).
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "vipctl:", err)
		os.Exit(1)
	}
}
