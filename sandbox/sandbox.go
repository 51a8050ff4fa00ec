// Package sandbox runs a command under a policy.Policy: Landlock, the
// seccomp filter and, unless the policy says otherwise, the supervisor that
// enforces process and memory limits. It is the public Go API that
// cmd/sandlock is a thin layer over.
//
// How the command starts. The command is confined before its first
// instruction — capabilities dropped, no_new_privs, its Landlock domain, the
// filter with its user-notification listener — and no thread of sandlock
// is: sandlock stays outside the command's Landlock domain, and the
// supervisor unconfined. The command is forked with vfork, and the child
// confines itself between fork and exec, then hands its listener back over
// a socket (package spawn): no thread of the calling program is confined
// or waits on the supervisor, and no second Go runtime starts. A host
// program's sandboxes are forked from one thread kept for the purpose (the
// commands' parent-death signal follows the thread that forked them);
// sandlock's CLI forks from its main goroutine's (Options.InProcess).
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/confine"
	"github.com/sandlock/sandlock/internal/spawn"
	"github.com/sandlock/sandlock/internal/sys"
	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/supervisor"
	"golang.org/x/sys/unix"
)

// Command is what runs inside the sandbox.
type Command struct {
	// Path is the program; without a '/' it is looked up in the PATH of
	// the sandbox's environment.
	Path string
	// Args is argv, Args[0] included; empty means []string{Path}.
	Args []string
	// Stdin, Stdout and Stderr are the command's descriptors 0, 1 and 2;
	// nil connects /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Options are run-time choices that are not part of the policy.
type Options struct {
	// Stats collects supervisor statistics (Result.Stats).
	Stats bool
	// UseRing makes the supervisor poll the listener through io_uring
	// rather than block in NOTIF_RECV (see README, Performance).
	UseRing bool
	// Workers is the number of receiving goroutines; 0 picks 1.
	Workers int
	// Events receives messages meant for the user (a memory kill); nil
	// drops them. It may be called from any goroutine.
	Events func(Event)
	// ExitAfterWait says the caller exits as soon as Wait returns (as the
	// CLI does): the supervisor's goroutines and descriptors are then left
	// to the process exit instead of being released in the background.
	// Every sandboxed process is still killed and reaped by Wait.
	ExitAfterWait bool
	// InProcess forks the command from the calling goroutine's thread
	// instead of the thread the package keeps for it (a hand-off less), and
	// makes the whole process non-dumpable (defence in depth: only
	// CAP_SYS_PTRACE can inspect it). sandlock's CLI uses it. The command's
	// parent-death signal (SIGKILL) follows the thread that forked it, as
	// with syscall.ForkExec's Pdeathsig: Go ends a thread only when a
	// goroutine exits locked to it (runtime.LockOSThread without
	// UnlockOSThread), which a program using InProcess must not do, or a
	// sandbox could be killed with that thread.
	InProcess bool
	// HostnameBySupervisor keeps the hostname's virtualization in the
	// supervisor (uname and every open notified) where the command could
	// instead get namespaces of its own (as root; see package spawn). For
	// tests of that path.
	HostnameBySupervisor bool
}

// Event is something the user should hear about while the sandbox runs.
type Event struct {
	// MemoryKill is set when a process was killed for exceeding the
	// memory limit.
	MemoryKill *MemoryKill
}

// MemoryKill describes a process killed by the memory limit.
type MemoryKill struct {
	Pid   int
	Comm  string
	Limit int64
}

func (m MemoryKill) String() string {
	return fmt.Sprintf("memory limit %s exceeded by pid %d (%s)", policy.FormatSize(m.Limit), m.Pid, m.Comm)
}

// Result is how a sandbox ended.
type Result struct {
	// ExitCode is the command's status as a shell reports it: its exit
	// code, or 128+N after death by signal N.
	ExitCode int
	// Signal is the signal that killed the command, 0 if it exited.
	Signal syscall.Signal
	// TimedOut is set when the policy's timeout killed the sandbox.
	TimedOut bool
	// Stats are the supervisor's statistics (Options.Stats).
	Stats *supervisor.Report
}

// ExecError reports that the command could not be executed inside the
// sandbox. Err is the errno of execve: ENOENT means not found (a shell's
// 127), anything else not executable (126).
type ExecError struct {
	Path string
	Err  error
}

func (e *ExecError) Error() string {
	if errors.Is(e.Err, unix.ENOENT) {
		return e.Path + ": command not found"
	}
	return fmt.Sprintf("%s: cannot execute: %v", e.Path, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode returns the status a shell gives this failure: 127 or 126.
func (e *ExecError) ExitCode() int {
	if errors.Is(e.Err, unix.ENOENT) {
		return 127
	}
	return 126
}

// Sandbox is a running sandbox.
type Sandbox struct {
	policy *policy.Policy
	opts   Options
	name   string
	pid    int
	pidfd  int
	sup    *supervisor.Supervisor
	dog    atomic.Pointer[watchdog]
	armed  bool // the command ran in an early child armed before it (tests)

	stopOnce    sync.Once
	cleaned     chan struct{} // closed once cleanup has released everything
	waited      chan struct{} // closed once the command has been waited for
	cleanupOnce sync.Once
	timedOut    atomic.Bool
	timer       *time.Timer
	waitOnce    sync.Once
	result      *Result
	waitErr     error
}

var seq atomic.Int64

// filterOptions gives the filter p asks for.
func filterOptions(p *policy.Policy) bpfprog.Options {
	bo := bpfprog.Options{
		ExtraDeny:  p.ExtraDenySyscalls,
		ExtraAllow: p.ExtraAllowSyscalls,
	}
	if !p.NoSupervisor {
		bo.Notify = bpfprog.NotifyProcesses | bpfprog.NotifySignals | bpfprog.NotifyHostname
		if p.MaxMemory > 0 {
			bo.Notify |= bpfprog.NotifyMemory
		}
	}
	return bo
}

// filters returns the sandbox's filters: with the hostname virtualized by
// the supervisor, and by namespaces (nil when neither the policy nor the
// options let the namespaces do it).
func (sb *Sandbox) filters(arch *bpfprog.Arch) (filters, nsFilters [][]unix.SockFilter, err error) {
	if filters, err = bpfprog.Filters(arch, filterOptions(sb.policy)); err != nil {
		return nil, nil, err
	}
	if !sb.opts.HostnameBySupervisor {
		if nsFilters, err = namespaceFilters(arch, sb.policy); err != nil {
			return nil, nil, err
		}
	}
	return filters, nsFilters, nil
}

// armable reports whether an early child may be armed for cmd under p
// (spawn.Early.Arm): with a supervisor and the hostname's namespaces,
// sandlock's own filters (a syscall denied by name could be one the child
// makes after them), and the command's descriptors 0, 1 and 2 its own
// (the armed child works in sandlock's descriptor table until its exec).
func armable(p *policy.Policy, cmd Command, nsFilters [][]unix.SockFilter) bool {
	if p.NoSupervisor || p.Interactive || nsFilters == nil || len(p.ExtraDenySyscalls) > 0 {
		return false
	}
	for i, f := range []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if f == nil || f.Fd() != uintptr(i) {
			return false
		}
	}
	return true
}

// namespaceFilters returns the filters for p when the hostname is
// virtualized by namespaces (virtualHostname): without the notification of
// uname and of every open. Nil when p's filter notifies neither.
func namespaceFilters(arch *bpfprog.Arch, p *policy.Policy) ([][]unix.SockFilter, error) {
	o := filterOptions(p)
	if o.Notify&bpfprog.NotifyHostname == 0 {
		return nil, nil
	}
	o.Notify &^= bpfprog.NotifyHostname
	return bpfprog.Filters(arch, o)
}

// spawnError types a start's error: the exec's own errno (spawn returns
// it bare) is an *ExecError.
func spawnError(err error) error {
	if e, ok := err.(syscall.Errno); ok {
		return &ExecError{Err: e}
	}
	return err
}

// nestedSandbox reports whether err is the child's seccomp() refusing a
// second user-notification listener: sandlock runs in a sandbox already.
func nestedSandbox(err error) bool {
	var ce *spawn.ChildError
	return errors.As(err, &ce) && ce.Step == spawn.StepSeccomp && ce.Err == unix.EBUSY
}

// buildRuleset builds p's Landlock ruleset.
func buildRuleset(p *policy.Policy) (*confine.Ruleset, error) {
	return confine.BuildRuleset(confine.LandlockSpec{
		FS:            confine.FSRules{Read: p.FSRead, Write: p.FSWrite},
		Disable:       protections(p.Disable),
		AllowDegraded: protections(p.AllowDegraded),
	})
}

// Start validates p and starts cmd confined by it. On error nothing is left
// running. A *policy.Error means bad input, an *ExecError that the command
// could not be executed.
func Start(p *policy.Policy, cmd Command, opts *Options) (*Sandbox, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	arch, err := bpfprog.Native()
	if err != nil {
		return nil, err
	}
	env := p.Env
	if env == nil {
		env = os.Environ()
	}
	if cmd.Path == "" {
		return nil, &policy.Error{Flag: "command", Err: errors.New("no command given")}
	}
	path, err := lookPath(cmd.Path, env, p.Cwd)
	if err != nil {
		return nil, &ExecError{Path: cmd.Path, Err: err}
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	sb := &Sandbox{policy: p, opts: *opts, pidfd: -1, cleaned: make(chan struct{}), waited: make(chan struct{})}
	sb.name = p.Name
	if sb.name == "" {
		sb.name = "sandbox-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(seq.Add(1), 10)
	}
	// sandlock's own command may have been forked at its start already
	// (spawn.StartEarly): its first steps are taken. Armed now, it installs
	// its filters while the rest is prepared (see armable).
	var early *spawn.Early
	if sb.opts.InProcess {
		if early = spawn.TakeEarly(); early != nil {
			defer func() {
				if early != nil {
					early.Abort() // not handed its command
				}
			}()
		}
	}
	filters, nsFilters, err := sb.filters(arch)
	if err != nil {
		return nil, err
	}
	if early != nil && armable(p, cmd, nsFilters) {
		if err := early.Arm(&spawn.Attr{Filters: nsFilters, HostFallback: filters[0], Hostname: sb.name, SendListener: true}); err != nil {
			return nil, err
		}
	}
	// Built here in both designs: its errors (a path that does not exist,
	// a protection the kernel lacks) are the user's and typed.
	rs, err := buildRuleset(p)
	if err != nil {
		return nil, err
	}
	defer func() { rs.Close() }() // the one in use at the return (a nested start builds another)
	files, closeFiles, err := stdio(cmd)
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	if !p.NoSupervisor {
		// Orphans of sandboxed processes come back to sandlock, so that
		// none escapes the process count or the final kill.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}

	pid, pidfd, err := sb.startConfined(arch, rs, path, argv, env, files, filters, nsFilters, early)
	early = nil // taken, aborted or exec'd by startConfined
	if nestedSandbox(err) && !p.NoSupervisor {
		// sandlock runs inside a sandbox whose filter has a listener: its
		// command can have no supervisor of its own (the kernel allows one
		// listener per filter chain). It runs with Landlock and the
		// kernel-only filter, as with --no-supervisor, under the outer
		// sandbox's supervisor and limits, as the Rust sandlock does — unless
		// the policy asks for what only a supervisor gives.
		if flag := p.SupervisorFlag(); flag != "" {
			return nil, &policy.Error{Flag: flag, Err: errors.New("needs a supervisor, which a sandbox inside a sandbox cannot have")}
		}
		nested := *p
		nested.NoSupervisor = true
		p = &nested
		sb.policy = p
		// A fresh ruleset: the failed child may have added the hostname's
		// rule to the first, for namespaces the retry does not make.
		rs.Close()
		if rs, err = buildRuleset(p); err != nil {
			return nil, err
		}
		if filters, nsFilters, err = sb.filters(arch); err != nil {
			return nil, err
		}
		pid, pidfd, err = sb.startConfined(arch, rs, path, argv, env, files, filters, nsFilters, nil)
	}
	if err != nil {
		var ee *ExecError
		if errors.As(err, &ee) {
			ee.Path = cmd.Path
		}
		return nil, err
	}
	sb.pid, sb.pidfd = pid, pidfd
	if p.Timeout > 0 {
		sb.timer = time.AfterFunc(p.Timeout, func() {
			sb.timedOut.Store(true)
			sb.Kill()
		})
	}
	if p.CPUPercent > 0 && p.CPUPercent < 100 {
		go sb.throttle(p.CPUPercent)
	}
	return sb, nil
}

// startConfined forks the command (from the calling goroutine's thread
// with Options.InProcess, else from the forker thread), or hands it to
// the early child Start took: the child confines itself — the hostname's
// namespaces, capabilities, no_new_privs, Landlock, the filters — and hands
// the filter's listener back over a socket before its exec, or, armed,
// made it in sandlock's descriptor table (see package spawn). The
// supervisor is made while the command starts (its dynamic loader is at
// work on the other CPU), then serves the listener: a notified syscall the
// command makes meanwhile waits for it.
func (sb *Sandbox) startConfined(arch *bpfprog.Arch, rs *confine.Ruleset, path string, argv, env []string, files []uintptr,
	filters, nsFilters [][]unix.SockFilter, early *spawn.Early) (pid, pidfd int, err error) {
	p := sb.policy
	if early != nil {
		defer func() {
			if early != nil {
				early.Abort() // not handed the command
			}
		}()
	}
	// No descriptor but the three reaches the command: those sandlock
	// inherited, and any a host program left inheritable, are marked
	// close-on-exec in the child's own table.
	attr := &spawn.Attr{Dir: p.Cwd, Pdeathsig: syscall.SIGKILL, LandlockFD: -1, CPUs: cpuSet(p), CloseOthers: true,
		DropCaps: sys.HasAnyCap(), NoNewPrivs: true, Filters: filters}
	for _, f := range files {
		attr.Files = append(attr.Files, int(f))
	}
	// The command leads a process group of its own, in sandlock's session
	// (as the Rust sandlock does): signals are forwarded to that group.
	attr.Setpgid = true
	if p.Interactive && isTerminal(files[0]) {
		attr.Foreground = true
		attr.Ctty = 0
	}
	// Set in the child before its exec, soft and hard alike (it cannot be
	// raised again); descendants inherit it.
	if p.MaxOpenFiles > 0 {
		attr.NoFile = &unix.Rlimit{Cur: uint64(p.MaxOpenFiles), Max: uint64(p.MaxOpenFiles)}
	}
	if p.MaxMemory > 0 {
		attr.Rlimits = memoryRlimits(uint64(p.MaxMemory))
	}
	// The child enters the Landlock domain by itself, after the fork:
	// no thread of sandlock is in it (see package spawn).
	if rs != nil && rs.FD >= 0 {
		attr.LandlockFD, attr.LandlockFlags = rs.FD, rs.Flags
	}
	// The hostname through namespaces where the kernel and sandlock's
	// privileges allow (spawn.Attr.Hostname): the filter then leaves
	// uname and open to the kernel. Elsewhere the child falls back to the
	// filter with which the supervisor virtualizes the hostname.
	if nsFilters != nil {
		attr.Hostname, attr.HostFallback, attr.Filters = sb.name, filters[0], nsFilters
	}
	// An early child takes the rest of the steps (Start took it), if it
	// fits; one that does not is ended, armed or not, and the command is
	// forked as usual.
	if early != nil && !early.Fits(attr) {
		early.Abort()
		early = nil
	}
	host := -1
	armed := early != nil && early.Armed()
	sb.armed = armed
	if !p.NoSupervisor && !armed {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, -1, fmt.Errorf("socketpair: %w", err)
		}
		host = pair[0]
		defer unix.Close(host)
		defer unix.Close(pair[1])
		attr.SendListener, attr.ListenerSock = true, pair[1]
	}
	child, err := spawn.Prepare(path, argv, env, attr)
	if err != nil {
		return 0, -1, err
	}
	if sb.opts.InProcess {
		// Defence in depth: were sandlock ever in the command's Landlock
		// domain, the command could ptrace it (open /proc/PID/mem,
		// environ, fd/, cwd). Non-dumpable, sandlock can be inspected only
		// with CAP_SYS_PTRACE, which the command never has. Its exec makes
		// the command dumpable again. (Not done to a host program.)
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return 0, -1, fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
		}
	}
	var handed *spawn.Early
	start := func() (int, error) {
		if early != nil {
			handed, early = early, nil
			return handed.Go(child)
		}
		if sb.opts.InProcess {
			pid, pidfd, err = child.Start()
		} else {
			// The command's parent-death signal follows the thread that
			// forked it: in a host program, one that never exits.
			onForker(func() { pid, pidfd, err = child.Start() })
		}
		return pid, err
	}
	if _, err = supervisor.ClaimRoot(start); err != nil {
		return 0, -1, spawnError(err)
	}
	if handed != nil {
		// Sleeping until the exec leaves the early child the CPU, should
		// the two share one.
		claimed := pid
		if pid, pidfd, err = handed.Wait(); err != nil {
			supervisor.ReleaseClaim(claimed)
			return 0, -1, spawnError(err)
		}
	}
	if p.NoSupervisor {
		return pid, pidfd, nil
	}
	// The supervisor is made while the command's dynamic loader is at
	// work: a notified syscall it makes meanwhile waits for it. Its
	// listener was made by an armed child in sandlock's descriptor table,
	// or sent over the socket before the exec. (Start asks the kernel for
	// SYNC_WAKE_UP on it.)
	var listener int
	if armed {
		listener = handed.Listener()
	} else {
		listener, err = recvListener(host)
	}
	var sup *supervisor.Supervisor
	if err == nil {
		sup, err = sb.newSupervisor(arch)
	}
	if err == nil {
		sb.sup = sup
		// Registered before the listener is served: the command's first
		// notification finds it known.
		sup.RegisterRoot(pid)
		if err = sup.Start(listener); err != nil {
			listener = -1 // Stop closes it
		}
	}
	if err != nil {
		killReap(pidfd)
		supervisor.ReleaseClaim(pid)
		if listener >= 0 {
			unix.Close(listener)
		}
		if sup != nil {
			sup.Stop()
			sb.sup = nil
		}
		return 0, -1, err
	}
	return pid, pidfd, nil
}

// recvListener takes the listener the child sent over sock before its exec
// (the message is there once the fork has returned).
func recvListener(sock int) (int, error) {
	fd, err := sys.RecvFD(sock, unix.MSG_DONTWAIT)
	if err != nil {
		return -1, fmt.Errorf("receive the listener: %w", err)
	}
	return fd, nil
}

// throttlePeriod is the period of --cpu's duty cycle.
const throttlePeriod = 100 * time.Millisecond

// throttle holds the sandbox to pct% of the time without cgroups: every
// period it lets it run pct% of the period and stops it (SIGSTOP to the
// command's process group and every registered process) for the rest.
func (sb *Sandbox) throttle(pct int) {
	run := throttlePeriod * time.Duration(pct) / 100
	for {
		select {
		case <-sb.waited:
			return
		case <-time.After(run):
		}
		sb.sendAll(unix.SIGSTOP)
		select {
		case <-sb.waited:
			sb.sendAll(unix.SIGCONT)
			return
		case <-time.After(throttlePeriod - run):
		}
		sb.sendAll(unix.SIGCONT)
	}
}

// sendAll sends sig to the command's process group and every registered
// process.
func (sb *Sandbox) sendAll(sig unix.Signal) {
	unix.Kill(-sb.pid, sig)
	if sb.sup != nil {
		sb.sup.Signal(sig)
	}
}

// newSupervisor prepares the supervisor; nil when the policy has none.
func (sb *Sandbox) newSupervisor(arch *bpfprog.Arch) (*supervisor.Supervisor, error) {
	p := sb.policy
	if p.NoSupervisor {
		return nil, nil
	}
	return supervisor.New(supervisor.Config{
		Arch:         arch,
		MaxProcesses: int64(p.EffectiveMaxProcesses()),
		MaxMemory:    p.MaxMemory,
		Hostname:     sb.name,
		Workers:      sb.opts.Workers,
		UseRing:      sb.opts.UseRing,
		Stats:        sb.opts.Stats,
		Events: supervisor.Events{
			MemoryKill: sb.memoryKill,
			FirstFork:  sb.startWatchdog,
		},
	})
}

// Pid returns the pid of the command.
func (sb *Sandbox) Pid() int { return sb.pid }

// Name returns the sandbox's name (its hostname inside).
func (sb *Sandbox) Name() string { return sb.name }

// Signal sends sig to the command's process group.
func (sb *Sandbox) Signal(sig syscall.Signal) error {
	return unix.Kill(-sb.pid, sig)
}

// Kill kills every process of the sandbox.
func (sb *Sandbox) Kill() {
	unix.Kill(-sb.pid, unix.SIGKILL)
	if sb.pidfd >= 0 {
		unix.PidfdSendSignal(sb.pidfd, unix.SIGKILL, nil, 0)
	}
	if sb.sup != nil {
		sb.sup.Signal(unix.SIGKILL)
	}
}

// Wait waits for the command to exit and makes sure no process of the
// sandbox is left: every remaining one is killed and reaped before Wait
// returns. The supervisor's threads and descriptors are released in the
// background; Close waits for that.
func (sb *Sandbox) Wait() (*Result, error) {
	sb.waitOnce.Do(func() {
		sb.result, sb.waitErr = sb.wait()
		if !sb.opts.ExitAfterWait {
			go sb.cleanup()
		}
	})
	return sb.result, sb.waitErr
}

// Close waits for the command (see Wait) and for every resource of the
// sandbox — supervisor goroutines and threads, descriptors, the watchdog —
// to be released.
func (sb *Sandbox) Close() error {
	_, err := sb.Wait()
	if sb.opts.ExitAfterWait {
		sb.cleanupOnce.Do(sb.cleanup)
	}
	<-sb.cleaned
	return err
}

func (sb *Sandbox) wait() (*Result, error) {
	var info unix.Siginfo
	var err error
	for {
		err = unix.Waitid(unix.P_PIDFD, sb.pidfd, &info, unix.WEXITED, nil)
		if err != unix.EINTR {
			break
		}
	}
	if sb.timer != nil {
		sb.timer.Stop()
	}
	close(sb.waited)
	res := &Result{TimedOut: sb.timedOut.Load()}
	if err == nil {
		status, code := siginfoStatus(&info)
		if code == cldExited {
			res.ExitCode = status
		} else {
			res.Signal = syscall.Signal(status)
			res.ExitCode = 128 + status
		}
	}
	if sb.sup != nil && !sb.exitsNow() {
		sb.sup.ReleaseRoot()
	}
	sb.reapAll()
	if sb.sup == nil {
		supervisor.ReleaseClaim(sb.pid) // no supervisor replaced ClaimRoot's
	}
	if d := sb.dog.Load(); d != nil {
		d.clean() // nothing is left for it to kill
	}
	if sb.sup != nil && sb.opts.Stats {
		sb.sup.Settle(100 * time.Millisecond)
		r := sb.sup.Report()
		res.Stats = &r
	}
	if res.TimedOut {
		res.ExitCode = 124
	}
	if err != nil {
		return res, fmt.Errorf("wait for the command: %w", err)
	}
	return res, nil
}

// exitsNow reports whether nothing would read the supervisor's records
// after the command's exit: the caller exits once Wait returns
// (ExitAfterWait), wants no statistics, and the command started no other
// process. Settling the first process's record (ReleaseRoot) then only
// delays the exit: 16-25 us of a launch here, between the command's end
// and sandlock's (code run for the first time, a pidfd_send_signal and a
// close). A later Close still releases its descriptor (Stop).
func (sb *Sandbox) exitsNow() bool {
	return sb.opts.ExitAfterWait && !sb.opts.Stats && !sb.sup.Forked()
}

// cleanup releases what the sandbox held once its processes are gone.
func (sb *Sandbox) cleanup() {
	sb.teardown()
	close(sb.cleaned)
}

// teardown kills and reaps whatever remains, stops the supervisor and ends
// the spawn thread.
func (sb *Sandbox) teardown() {
	sb.reapAll()
	sb.stopOnce.Do(func() {
		if sb.sup != nil {
			sb.sup.Stop()
		}
	})
	if d := sb.dog.Swap(nil); d != nil {
		d.release()
	}
	if sb.pidfd >= 0 {
		unix.Close(sb.pidfd)
		sb.pidfd = -1
	}
}

// reapAll kills every remaining process of the sandbox and reaps it. The
// command has exited; its descendants are killed through their process
// groups and pidfds, and as they die their children become sandlock's
// (it is their subreaper), which are killed and reaped in turn.
func (sb *Sandbox) reapAll() {
	if sb.pid > 0 && sb.sup != nil && !sb.sup.Forked() {
		// The first process never created another, and it is reaped:
		// nothing is left (threads die with their process).
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for round := 0; ; round++ {
		if sb.pid > 0 {
			unix.Kill(-sb.pid, unix.SIGKILL)
		}
		if sb.sup != nil {
			sb.sup.Signal(unix.SIGKILL)
		}
		if sb.sup != nil {
			sb.sup.Reap()
		}
		if sb.sup != nil {
			sb.sup.Reap()
		}
		// Orphans that became sandlock's children: only this sandbox's
		// (a program may run several at once). The supervisor knows them
		// by pidfd; without one, the command's process group tells.
		var kids []int
		for _, k := range sb.children() {
			if sb.sup != nil {
				if sb.sup.ReapOrphan(k) {
					kids = append(kids, k)
				}
				continue
			}
			if pgid, _ := unix.Getpgid(k); sb.pid > 0 && pgid == sb.pid {
				unix.Kill(k, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(k, &ws, unix.WALL, nil)
				kids = append(kids, k)
			}
		}
		live := 0
		if sb.sup != nil {
			live, _ = sb.sup.Live()
		}
		if len(kids) == 0 && live == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Duration(min(round+1, 10)) * time.Millisecond)
	}
}

// children lists sandlock's sandboxed children (not the watchdog, not a
// library user's own children).
func (sb *Sandbox) children() []int {
	var out []int
	self := os.Getpid()
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", self))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", self, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var pid int
			fmt.Sscan(f, &pid)
			if d := sb.dog.Load(); pid <= 0 || (d != nil && pid == d.pid) || pid == sb.pid {
				continue
			}
			if sandboxed(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// sandboxed reports whether pid runs with no_new_privs under a seccomp
// filter, as every sandboxed process does.
func sandboxed(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return strings.Contains(s, "\nNoNewPrivs:\t1") && strings.Contains(s, "\nSeccomp:\t2")
}

func (sb *Sandbox) memoryKill(pid int, comm string, limit int64) {
	if sb.opts.Events != nil {
		sb.opts.Events(Event{MemoryKill: &MemoryKill{Pid: pid, Comm: comm, Limit: limit}})
	}
}

// startWatchdog runs before the sandbox's first process creates a second:
// from then on the parent-death signal is not enough. The watchdog gets the
// supervisor's mirror of the live processes.
func (sb *Sandbox) startWatchdog() error {
	fd, err := sb.sup.Mirror()
	if err != nil {
		return err
	}
	d, err := startWatchdog(fd)
	if err != nil {
		return err
	}
	sb.dog.Store(d)
	return nil
}

// Run starts cmd under p and waits for it.
func Run(p *policy.Policy, cmd Command, opts *Options) (*Result, error) {
	sb, err := Start(p, cmd, opts)
	if err != nil {
		return nil, err
	}
	res, err := sb.Wait()
	sb.Close()
	return res, err
}

func protections(names []string) []confine.Protection {
	out := make([]confine.Protection, len(names))
	for i, n := range names {
		out[i] = confine.Protection(n)
	}
	return out
}

// lookPath finds file in the PATH of env, as execvp would.
func lookPath(file string, env []string, cwd string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) && cwd != "" {
			return filepath.Join(cwd, file), nil
		}
		return file, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	denied := false
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		f := filepath.Join(dir, file)
		st, err := os.Stat(f)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 == 0 {
			denied = true
			continue
		}
		return f, nil
	}
	if denied {
		return "", unix.EACCES
	}
	return "", unix.ENOENT
}

// stdio opens the command's descriptors 0-2.
func stdio(cmd Command) ([]uintptr, func(), error) {
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	fds := make([]uintptr, 3)
	for i, f := range []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if f == nil {
			flag := os.O_RDONLY
			if i > 0 {
				flag = os.O_WRONLY
			}
			n, err := os.OpenFile(os.DevNull, flag, 0)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			opened = append(opened, n)
			f = n
		}
		fds[i] = f.Fd()
	}
	return fds, closeAll, nil
}

func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

// cpuSet returns the affinity mask for --cpu-cores/--num-cpus, nil for none.
func cpuSet(p *policy.Policy) *unix.CPUSet {
	if len(p.CPUCores) == 0 && p.NumCPUs == 0 {
		return nil
	}
	var set unix.CPUSet
	if len(p.CPUCores) > 0 {
		for _, c := range p.CPUCores {
			set.Set(c)
		}
	} else {
		var cur unix.CPUSet
		unix.SchedGetaffinity(0, &cur)
		n := 0
		for c := 0; c < 1024 && n < p.NumCPUs; c++ {
			if cur.IsSet(c) {
				set.Set(c)
				n++
			}
		}
	}
	return &set
}

// siginfoStatus extracts si_status and si_code from a waitid result.
func siginfoStatus(info *unix.Siginfo) (status int, code int32) {
	// struct siginfo for SIGCHLD: signo, errno, code, then pid, uid, status.
	b := (*[128]byte)(unsafePointer(info))
	code = int32(le32(b[8:]))
	status = int(int32(le32(b[24:])))
	return status, code
}

// imageMargin is how much more than the memory limit RLIMIT_DATA allows
// a process: the ledger sees a program's image (its data and .bss, mapped
// by execve) only at the next resync, and a program allocating up to the
// limit before then must meet the ledger (killed, with the message), not
// RLIMIT_DATA (a bare ENOMEM). /usr/bin/python3's image holds 1.5 MiB.
const imageMargin = 16 << 20

// memoryRlimits caps, under a memory limit, what a process may hold of the
// memory the supervisor does not see being made. RLIMIT_DATA bounds its
// private writable mappings, among them the data and .bss of a program's
// image, mapped by execve with no syscall the filter sees: a program whose
// image held more than the limit ran to its end before the periodic resync
// caught it, and is now refused at its execve. RLIMIT_STACK bounds its main
// stack, grown by page faults, which a process could raise without bound.
// Neither refuses what the ledger accepts: every other private writable
// mapping is charged before it is made, and the ledger counts the whole
// sandbox. The hard limits are lowered (never raised), the soft ones only
// where they are above them; descendants inherit both and cannot raise
// them (`ulimit -s unlimited` fails).
func memoryRlimits(limit uint64) []spawn.Rlimit {
	data := limit + imageMargin // limit is a positive int64: no overflow
	var out []spawn.Rlimit
	for _, r := range []struct {
		res int
		max uint64
	}{{unix.RLIMIT_DATA, data}, {unix.RLIMIT_STACK, limit}} {
		var cur unix.Rlimit
		if err := unix.Getrlimit(r.res, &cur); err != nil {
			cur = unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
		}
		out = append(out, spawn.Rlimit{Resource: r.res, Limit: unix.Rlimit{Cur: min(cur.Cur, r.max), Max: min(cur.Max, r.max)}})
	}
	return out
}
