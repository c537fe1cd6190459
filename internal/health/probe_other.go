//go:build !unix

package health

import "os/exec"

// killGroup keeps exec's default: kill the command itself at timeout.
func killGroup(*exec.Cmd) {}
