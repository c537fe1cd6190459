//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// killGroup makes the command the leader of its own process group and kills
// the whole group at timeout, so a shell script's children die with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
