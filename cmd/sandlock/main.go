// The Go runtime sizes GOMAXPROCS by the CPU quota of the process's cgroup
// and re-checks the quota every second. sandlock sizes nothing by a quota,
// so both are off (TestStartupGODEBUG): the supervisor's workers are not
// cut to a quota's CPUs, and no re-check runs while a sandbox does. The
// runtime still reads /proc/self/cgroup, /proc/self/mountinfo and the CPU
// controller's files once at start (to count whether the setting changes
// anything), as every Go program does, the Go floor of the benchmarks
// included; the launch is the same with or without (perf stat, 3 x 300
// runs: 2.806 ms against 2.812).

//go:debug updatemaxprocs=0
//go:debug containermaxprocs=0

// Command sandlock confines an untrusted command with Landlock, a seccomp
// filter and a user-notification supervisor. It is a drop-in for the Rust
// sandlock's command line; see README.md and `sandlock run --help`.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	// Forks run's command as the program starts (see the package).
	_ "github.com/sandlock/sandlock/internal/early"
)

// Exit codes (CLI.md).
const (
	exitUsage    = 2
	exitTimeout  = 124
	exitSandlock = 125
)

// gcPercent is the collector's setting (GOGC) while it is held off.
var gcPercent int

func init() {
	// The launch allocates a few megabytes the collector would only scan
	// for nothing: it is off from here until the command has started.
	gcPercent = debug.SetGCPercent(-1)
}

func main() {
	code := Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	// An early child the command line did not use ends with sandlock
	// (it is killed when the main thread exits): no need to wait for it.
	os.Exit(code)
}

// Main runs the CLI and returns the exit code; tests call it directly.
func Main(args []string, stdin *os.File, stdout, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdin, stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "list", "ps", "kill", "profile":
		fmt.Fprintf(stderr, "sandlock: %s: not supported yet\n", args[0])
		return exitSandlock
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-V", "--version", "version":
		fmt.Fprintln(stdout, "sandlock "+version)
		return 0
	}
	fmt.Fprintf(stderr, "sandlock: %s: unknown subcommand (see sandlock --help)\n", args[0])
	return exitUsage
}

const version = "0.1.0-go"

const usage = `sandlock: confine a command with Landlock, seccomp and a supervisor

Usage: sandlock <subcommand> [flags] [-- CMD ARGS...]

Subcommands:
  run [flags] -- CMD...   run CMD confined; exit with its status
  check                   print what this kernel supports
  list, ps, kill, profile (not supported yet)

Run 'sandlock run --help' for the flags of run.
`

// errorf prints sandlock's one-line error and returns code.
func errorf(w io.Writer, code int, format string, args ...any) int {
	msg := strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")
	// One line, whatever the values hold.
	msg = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(msg)
	fmt.Fprintln(w, "sandlock: "+msg)
	return code
}
