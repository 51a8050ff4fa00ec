package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sandlock/sandlock/internal/confine"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stdout, "Usage: sandlock check\n\nPrint what this kernel supports; exit 1 if sandlock cannot run here.")
			return 0
		}
		return errorf(stderr, exitUsage, "check: %s: unexpected argument", args[0])
	}
	r := confine.Probe()
	yes := func(b bool) string {
		if b {
			return "available"
		}
		return "missing"
	}
	errs := func(err error) string {
		if err == nil {
			return "available"
		}
		return "missing (" + err.Error() + ")"
	}
	fmt.Fprintf(stdout, "Landlock:           ABI %d (this build needs %d for every protection)\n", r.LandlockABI, confine.MinRequiredABI)
	for _, p := range r.Protections {
		fmt.Fprintf(stdout, "  %-28s %s (ABI %d+): %s\n", p.Name, yes(p.Available), p.MinABI, p.What)
	}
	fmt.Fprintf(stdout, "Seccomp filter:     %s\n", yes(r.SeccompFilter))
	fmt.Fprintf(stdout, "User notification:  %s\n", yes(r.UserNotif))
	fmt.Fprintf(stdout, "  WAIT_KILLABLE_RECV %s (5.19+)\n", yes(r.WaitKillableRecv))
	fmt.Fprintf(stdout, "  SYNC_WAKE_UP       %s (6.6+; cheaper notifications, see README)\n", yes(r.SyncWakeUp))
	fmt.Fprintf(stdout, "io_uring:           %s\n", errs(r.IOUring))
	fmt.Fprintf(stdout, "pidfd:              %s\n", errs(r.Pidfd))
	host := "namespaces (uname and opens answered by the kernel)"
	if err := confine.ProbeVirtualHostname(); err != nil {
		host = "supervisor, every open notified (namespaces: " + err.Error() + ")"
	}
	fmt.Fprintf(stdout, "Hostname:           %s\n", host)
	arch := "supported"
	if !r.ArchSupported {
		arch = "NOT supported"
	}
	fmt.Fprintf(stdout, "Platform:           %s (%s), running as uid %d\n", r.Arch, arch, os.Geteuid())
	if !r.OK() {
		fmt.Fprintln(stdout, "Status:             sandlock cannot run here with its default (strict) policy")
		return 1
	}
	fmt.Fprintln(stdout, "Status:             OK")
	return 0
}
