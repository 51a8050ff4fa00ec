// Command gofloor starts a command and waits for it, and does nothing else:
// the floor of any launcher written in Go (the runtime's start included),
// against which the benchmark harness measures sandlock's launch.
package main

import (
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Exit(127)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	os.Exit(ws.ExitStatus())
}
