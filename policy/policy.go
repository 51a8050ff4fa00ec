// Package policy is the value that describes a sandbox — what it may read
// and write, its limits, its environment — together with the parsers that
// turn command-line and profile text into it. Validation happens here,
// before anything starts; package sandbox runs a validated Policy.
package policy

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
)

// DefaultMaxProcesses is the process limit when none is given (CLI.md).
const DefaultMaxProcesses = 64

// Policy describes one sandbox. The zero value plus a command is valid: no
// filesystem access at all, default limits.
type Policy struct {
	// FSRead are paths readable and executable beneath; FSWrite are paths
	// readable, writable, creatable, removable beneath.
	FSRead, FSWrite []string
	// Cwd is the command's working directory; "" keeps sandlock's.
	Cwd string
	// Env is the command's whole environment ("KEY=VALUE"). Nil means
	// sandlock's own environment.
	Env []string
	// Name is the sandbox's name and the hostname seen inside; "" picks
	// sandbox-<pid>-<n>.
	Name string

	// MaxProcesses limits concurrent processes (threads excluded); 0 means
	// DefaultMaxProcesses.
	MaxProcesses int
	// MaxMemory limits writable memory of the whole sandbox in bytes; 0 is
	// unlimited.
	MaxMemory int64
	// MaxOpenFiles sets RLIMIT_NOFILE; 0 keeps sandlock's.
	MaxOpenFiles int
	// CPUPercent throttles the sandbox to this share of one CPU period (1-100); 0 is
	// unthrottled.
	CPUPercent int
	// CPUCores pins the sandbox to these CPUs.
	CPUCores []int
	// NumCPUs is how many CPUs the sandbox sees (and may use); 0 is all.
	NumCPUs int
	// Timeout kills the whole sandbox after this long; 0 is none.
	Timeout time.Duration

	// ExtraDenySyscalls are syscall names failed with EPERM.
	ExtraDenySyscalls []string
	// ExtraAllowSyscalls are groups taken out of the deny list ("sysv_ipc").
	ExtraAllowSyscalls []string
	// AllowDegraded names Landlock protections the sandbox may run without
	// when the kernel lacks them; Disable names protections not to apply.
	AllowDegraded, Disable []string

	// NoSupervisor applies Landlock and a kernel-only deny filter and runs
	// the command without a supervisor (no limits).
	NoSupervisor bool
	// Interactive keeps the terminal: the command runs in the foreground
	// process group of sandlock's terminal.
	Interactive bool
}

// Error is a validation error naming the flag and the value at fault.
type Error struct {
	Flag  string // e.g. "--fs-read"
	Value string
	Err   error
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Flag, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Flag, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func bad(flag, value string, format string, args ...any) *Error {
	return &Error{Flag: flag, Value: value, Err: fmt.Errorf(format, args...)}
}

// Validate checks p and returns the first problem as an *Error. It checks
// that paths exist, so it depends on the filesystem.
func (p *Policy) Validate() error {
	for _, f := range []struct {
		flag  string
		paths []string
	}{{"--fs-read", p.FSRead}, {"--fs-write", p.FSWrite}} {
		for _, path := range f.paths {
			if err := checkPath(path); err != nil {
				return bad(f.flag, path, "%v", err)
			}
		}
	}
	if p.Cwd != "" {
		st, err := os.Stat(p.Cwd)
		if err != nil {
			return bad("--cwd", p.Cwd, "%v", pathErr(err))
		}
		if !st.IsDir() {
			return bad("--cwd", p.Cwd, "not a directory")
		}
	}
	for _, kv := range p.Env {
		if _, _, err := ParseEnv(kv); err != nil {
			return bad("--env", kv, "%v", err)
		}
	}
	if p.Name != "" {
		if err := ValidateName(p.Name); err != nil {
			return bad("--name", p.Name, "%v", err)
		}
	}
	switch {
	case p.MaxProcesses < 0:
		return bad("--max-processes", fmt.Sprint(p.MaxProcesses), "must be at least 1")
	case p.MaxMemory < 0:
		return bad("--max-memory", fmt.Sprint(p.MaxMemory), "must be positive")
	case p.MaxOpenFiles < 0:
		return bad("--max-open-files", fmt.Sprint(p.MaxOpenFiles), "must be at least 1")
	case p.CPUPercent < 0 || p.CPUPercent > 100:
		return bad("--cpu", fmt.Sprint(p.CPUPercent), "must be between 1 and 100")
	case p.NumCPUs < 0:
		return bad("--num-cpus", fmt.Sprint(p.NumCPUs), "must be at least 1")
	case p.Timeout < 0:
		return bad("--timeout", p.Timeout.String(), "must be positive")
	}
	if len(p.CPUCores) > 0 {
		var avail unix.CPUSet
		if err := unix.SchedGetaffinity(0, &avail); err != nil {
			return bad("--cpu-cores", fmt.Sprint(p.CPUCores[0]), "%v", err)
		}
		for _, c := range p.CPUCores {
			if c < 0 || c >= 1024 || !avail.IsSet(c) {
				return bad("--cpu-cores", fmt.Sprint(c), "no such CPU (available: %s)", cpuList(&avail))
			}
		}
	}
	for _, n := range p.ExtraDenySyscalls {
		if err := bpfprog.ValidateSyscallName(n); err != nil {
			return bad("--extra-deny-syscall", n, "%v", err)
		}
	}
	for _, g := range p.ExtraAllowSyscalls {
		if _, ok := bpfprog.AllowGroups[g]; !ok {
			return bad("--extra-allow-syscall", g, "unknown group (known: %s)", strings.Join(allowGroups(), ", "))
		}
	}
	for _, f := range []struct {
		flag  string
		names []string
	}{{"--allow-degraded", p.AllowDegraded}, {"--disable", p.Disable}} {
		for _, n := range f.names {
			if err := ValidateProtection(n); err != nil {
				return bad(f.flag, n, "%v", err)
			}
		}
	}
	if p.NoSupervisor {
		if flag := p.SupervisorFlag(); flag != "" {
			return &Error{Flag: "--no-supervisor", Err: fmt.Errorf("--no-supervisor is incompatible with: %s", flag)}
		}
	}
	return nil
}

// SupervisorFlag names a set option that needs the supervisor ("" if
// none).
func (p *Policy) SupervisorFlag() string {
	switch {
	case p.MaxMemory > 0:
		return "--max-memory"
	case p.MaxProcesses > 0:
		return "--max-processes"
	case p.CPUPercent > 0:
		return "--cpu"
	case p.NumCPUs > 0:
		return "--num-cpus"
	case p.Name != "":
		return "--name"
	}
	return ""
}

func checkPath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if !filepath.IsAbs(path) {
		return errors.New("must be an absolute path")
	}
	if _, err := os.Stat(path); err != nil {
		return pathErr(err)
	}
	return nil
}

// pathErr turns an *os.PathError into its bare cause ("no such file or
// directory"), the path being printed already.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Protections are the names --allow-degraded and --disable accept.
var Protections = []string{"fs-refer", "fs-truncate", "net-tcp", "fs-ioctl-dev", "signal-scope", "abstract-unix-socket-scope"}

// ValidateProtection checks a protection name.
func ValidateProtection(n string) error {
	for _, p := range Protections {
		if p == n {
			return nil
		}
	}
	return fmt.Errorf("unknown protection (one of %s)", strings.Join(Protections, ", "))
}

func allowGroups() []string {
	var g []string
	for k := range bpfprog.AllowGroups {
		g = append(g, k)
	}
	sort.Strings(g)
	return g
}

// EffectiveMaxProcesses returns the process limit in force.
func (p *Policy) EffectiveMaxProcesses() int {
	if p.MaxProcesses == 0 {
		return DefaultMaxProcesses
	}
	return p.MaxProcesses
}

// cpuList formats set as a CPU list ("0-3,6").
func cpuList(set *unix.CPUSet) string {
	var parts []string
	for c := 0; c < 1024; c++ {
		if !set.IsSet(c) {
			continue
		}
		e := c
		for e+1 < 1024 && set.IsSet(e+1) {
			e++
		}
		if e == c {
			parts = append(parts, fmt.Sprint(c))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", c, e))
		}
		c = e
	}
	return strings.Join(parts, ",")
}
