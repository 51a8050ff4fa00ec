// Package confine builds the Landlock ruleset of a sandbox, and probes the
// kernel for what `sandlock check` reports (the hostname's namespaces
// among it). The command applies its confinement itself, between fork and
// exec: see internal/spawn.
package confine

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Protection is a Landlock protection that can be required, degraded or
// disabled by name (CLI.md's --allow-degraded and --disable).
type Protection string

// The protections, in ABI order.
const (
	ProtFS                 Protection = "fs"
	ProtFSRefer            Protection = "fs-refer"
	ProtFSTruncate         Protection = "fs-truncate"
	ProtNetTCP             Protection = "net-tcp"
	ProtFSIoctlDev         Protection = "fs-ioctl-dev"
	ProtSignalScope        Protection = "signal-scope"
	ProtAbstractUnixSocket Protection = "abstract-unix-socket-scope"
)

// ProtectionInfo describes one protection.
type ProtectionInfo struct {
	Name   Protection
	MinABI int
	What   string
	// Optional protections may be named by --allow-degraded and --disable;
	// the filesystem base cannot.
	Optional bool
}

// Protections lists every protection sandlock applies, in ABI order.
var Protections = []ProtectionInfo{
	{ProtFS, 1, "filesystem access rules", false},
	{ProtFSRefer, 2, "rename and link across directories", true},
	{ProtFSTruncate, 3, "file truncation", true},
	{ProtNetTCP, 4, "TCP bind and connect", true},
	{ProtFSIoctlDev, 5, "ioctl on device files", true},
	{ProtSignalScope, 6, "signals to processes outside the sandbox", true},
	{ProtAbstractUnixSocket, 6, "abstract unix sockets outside the sandbox", true},
}

// MinRequiredABI is the Landlock ABI that provides every protection.
const MinRequiredABI = 6

// ParseProtection validates a protection name for --allow-degraded/--disable.
func ParseProtection(s string) (Protection, error) {
	var names []string
	for _, p := range Protections {
		if p.Optional {
			if string(p.Name) == s {
				return p.Name, nil
			}
			names = append(names, string(p.Name))
		}
	}
	return "", fmt.Errorf("unknown protection (one of %s)", strings.Join(names, ", "))
}

// LandlockABI returns the kernel's Landlock ABI version, 0 when Landlock is
// unavailable.
func LandlockABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// FSRules are the filesystem paths a sandbox may use.
type FSRules struct {
	Read  []string // read and execute beneath
	Write []string // read, write, create, delete, truncate beneath
}

// LandlockSpec is what the ruleset is built from.
type LandlockSpec struct {
	FS            FSRules
	Disable       []Protection
	AllowDegraded []Protection
	// ABI overrides the kernel's Landlock ABI (for tests); 0 asks the kernel.
	ABI int
}

// Ruleset is a built Landlock ruleset, ready to be enforced on a thread.
type Ruleset struct {
	FD    int    // -1 when there is nothing to enforce
	Flags uint32 // landlock_restrict_self flags
	ABI   int
	// Applied and Degraded list the optional protections in force and those
	// skipped because the kernel lacks them (with --allow-degraded).
	Applied, Degraded []Protection
}

// Close releases the ruleset fd.
func (r *Ruleset) Close() {
	if r != nil && r.FD >= 0 {
		closeFD(r.FD)
		r.FD = -1
	}
}

// MissingProtectionError says which required protection the kernel lacks.
type MissingProtectionError struct {
	Protection Protection
	NeedABI    int
	HaveABI    int
}

func (e *MissingProtectionError) Error() string {
	if e.Protection == ProtFS {
		return fmt.Sprintf("Landlock is not available (ABI %d); sandlock needs it (see sandlock check)", e.HaveABI)
	}
	return fmt.Sprintf("protection %s needs Landlock ABI %d, the kernel has ABI %d (use --allow-degraded %s or --disable %s)",
		e.Protection, e.NeedABI, e.HaveABI, e.Protection, e.Protection)
}

// Access rights sandlock grants. Resolve-unix (ABI 9) is never handled: unix
// sockets are outside CLI.md's protections.
const (
	fsBase      = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile | ll.AccessFSReadDir | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeChar | ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo | ll.AccessFSMakeBlock | ll.AccessFSMakeSym
	fsReadDir   = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSReadDir
	fsReadFile  = ll.AccessFSExecute | ll.AccessFSReadFile
	fsFileOnly  = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
	netTCP      = ll.AccessNetBindTCP | ll.AccessNetConnectTCP
	scopeSignal = ll.ScopeSignal
	scopeUnix   = ll.ScopeAbstractUnixSocket
)

// BuildRuleset creates the Landlock ruleset for spec. A protection the kernel
// lacks is an error unless it is disabled or allowed to degrade.
func BuildRuleset(spec LandlockSpec) (*Ruleset, error) {
	abi := spec.ABI
	if abi == 0 {
		abi = LandlockABI()
	}
	disabled := map[Protection]bool{}
	for _, p := range spec.Disable {
		disabled[p] = true
	}
	degradable := map[Protection]bool{}
	for _, p := range spec.AllowDegraded {
		degradable[p] = true
	}
	rs := &Ruleset{FD: -1, ABI: abi}
	on := map[Protection]bool{}
	for _, p := range Protections {
		switch {
		case disabled[p.Name]:
		case abi >= p.MinABI:
			on[p.Name] = true
			if p.Optional {
				rs.Applied = append(rs.Applied, p.Name)
			}
		case degradable[p.Name]:
			rs.Degraded = append(rs.Degraded, p.Name)
		default:
			return nil, &MissingProtectionError{p.Name, p.MinABI, abi}
		}
	}
	var cfg landlock.Config
	cfg.HandledAccessFS = fsBase
	if on[ProtFSRefer] {
		cfg.HandledAccessFS |= ll.AccessFSRefer
	}
	if on[ProtFSTruncate] {
		cfg.HandledAccessFS |= ll.AccessFSTruncate
	}
	if on[ProtFSIoctlDev] {
		cfg.HandledAccessFS |= ll.AccessFSIoctlDev
	}
	if on[ProtNetTCP] {
		cfg.HandledAccessNet = netTCP
	}
	if on[ProtSignalScope] {
		cfg.Scoped |= scopeSignal
	}
	if on[ProtAbstractUnixSocket] {
		cfg.Scoped |= scopeUnix
	}
	var rules []landlock.Rule
	add := func(path string, dirRights, fileRights landlock.AccessFSSet) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		rights := fileRights
		if st.IsDir() {
			rights = dirRights
		}
		rules = append(rules, landlock.PathAccess(rights&cfg.HandledAccessFS, path))
		return nil
	}
	for _, p := range spec.FS.Read {
		if err := add(p, fsReadDir, fsReadFile); err != nil {
			return nil, fmt.Errorf("read path: %w", err)
		}
	}
	for _, p := range spec.FS.Write {
		if err := add(p, cfg.HandledAccessFS, fsFileOnly); err != nil {
			return nil, fmt.Errorf("write path: %w", err)
		}
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return nil, fmt.Errorf("landlock ruleset: %w", err)
	}
	if fd < 0 {
		return nil, errors.New("landlock ruleset: nothing to enforce")
	}
	rs.FD, rs.Flags = fd, flags
	sort.Slice(rs.Degraded, func(i, j int) bool { return rs.Degraded[i] < rs.Degraded[j] })
	return rs, nil
}

func closeFD(fd int) { unix.Close(fd) }
