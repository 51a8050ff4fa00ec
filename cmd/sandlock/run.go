package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/sandbox"
	"golang.org/x/sys/unix"
)

// unsupported are the flags of CLI.md whose issues have not landed: they are
// recognised and refused, never silently ignored. true: the flag takes a
// value. They are not registered with pflag (every flag defined costs time at
// each launch); an unknown-flag error naming one of them is reported as
// "not supported yet" instead.
var unsupported = map[string]bool{
	"fs-deny": true, "chroot": true, "fs-mount": true, "workdir": true, "fs-storage": true,
	"max-disk": true, "dry-run": false, "fs-isolation": true,
	"net-allow": true, "net-deny": true, "net-allow-bind": true, "net-deny-bind": true,
	"net-allow-host": true, "net-connect": true, "net-bind": true, "port-remap": false,
	"http-allow": true, "http-deny": true, "http-port": true, "https-ca": true, "https-key": true,
	"profile": true, "profile-file": true,
	"random-seed": true, "time-start": true, "no-randomize-memory": false, "no-huge-pages": false,
	"deterministic-dirs": false, "no-coredump": false, "uid": true, "user": true, "gpu": true, "image": true,
}

var unsupportedShort = map[string]byte{"profile": 'p'}

const runUsage = `Usage: sandlock run [flags] -- CMD [ARGS...]

Filesystem
  -r, --fs-read PATH          read and execute beneath PATH (repeatable)
  -w, --fs-write PATH         read, write, create, delete, truncate beneath PATH (repeatable)
      --cwd PATH              working directory of the command
Limits
  -m, --max-memory SIZE       writable memory of the whole sandbox (512M, 2G, 100K; 1024-based)
  -P, --max-processes N       concurrent processes, threads excluded (default 64)
      --max-open-files N      RLIMIT_NOFILE of the command
  -c, --cpu PCT               throttle the sandbox to PCT% of the time (1-100)
      --cpu-cores LIST        run on these CPUs (0,2,4-6)
      --num-cpus N            CPUs the sandbox sees and uses
  -t, --timeout SECS          kill the whole sandbox after SECS; exit 124
Environment and identity
      --clean-env             start from an empty environment, keeping PATH HOME USER TERM LANG
      --env KEY=VALUE         set a variable (repeatable)
      --name NAME             sandbox name and hostname inside (max 64 bytes, no '/')
  -e, --exec-shell CMD        run /bin/sh -c CMD
  -i, --interactive           keep the terminal (foreground process group)
      --status-fd FD          write {"exit_code":N} (or the signal) to FD at exit
Kernel
      --no-supervisor         Landlock and a kernel-only deny filter, no limits
      --extra-deny-syscall N  fail syscall N with EPERM (repeatable)
      --extra-allow-syscall G allow a denied group: sysv_ipc (repeatable)
      --allow-degraded P      run without protection P if the kernel lacks it (repeatable)
      --disable P             do not apply protection P (repeatable)
                              P: fs-refer fs-truncate net-tcp fs-ioctl-dev signal-scope
                                 abstract-unix-socket-scope
Supervisor
      --stats FILE            write supervisor statistics (JSON) at exit
      --cpuprofile FILE       write a CPU profile of sandlock (go tool pprof)
      --memprofile FILE       write a heap profile of sandlock at exit
      --trace FILE            write a Go execution trace of sandlock
      --pprof ADDR            serve net/http/pprof on ADDR (loopback only)
                              (these four run bin/sandlock-prof, built beside
                              sandlock, so that sandlock itself stays lean)

Exit status: the command's; 128+N if killed by signal N; 124 timeout;
125 sandlock failed before the command started; 126/127 command not
executable / not found; 2 usage error.
`

type runFlags struct {
	read, write, env, denySys, allowSys, degraded, disable         []string
	cwd, memory, procs, openFiles, cpu, cpuCores, numCPUs, timeout string
	name, execShell, statusFD, stats                               string
	cpuProfile, memProfile, trace, pprofAddr                       string
	cleanEnv, interactive, noSupervisor, help                      bool
}

func cmdRun(args []string, stdin, stdout, stderr *os.File) int {
	r, code := parseRun(args, stdout, stderr)
	if r == nil {
		return code
	}
	if r.flags.profiling() {
		if !profBuild {
			return errorf(stderr, exitSandlock, "%v", execProfBuild(append([]string{"run"}, args...)))
		}
		stop, err := startProfiling(&r.flags)
		if err != nil {
			return errorf(stderr, exitSandlock, "%v", err)
		}
		atExit = stop
	}
	var status *os.File
	if r.statusFD >= 0 {
		status = os.NewFile(uintptr(r.statusFD), "status-fd")
	}
	return runSandbox(r.policy, r.argv, &r.flags, status, stdin, stdout, stderr)
}

// runPlan is a validated `sandlock run` command line.
type runPlan struct {
	flags    runFlags
	policy   *policy.Policy
	argv     []string
	statusFD int // -1 for none
}

// parseRun parses and validates the arguments of `run`, starting nothing.
// A nil plan comes with the exit code: 0 after --help, otherwise an error
// already reported in one line on stderr.
func parseRun(args []string, stdout io.Writer, stderr io.Writer) (*runPlan, int) {
	r := &runPlan{statusFD: -1}
	f := &r.flags
	str := func(dst *string) func(string) { return func(v string) { *dst = v } }
	list := func(dst *[]string) func(string) { return func(v string) { *dst = append(*dst, v) } }
	boolean := func(dst *bool) func(string) { return func(string) { *dst = true } }
	var unsupportedGiven string
	specs := []flagSpec{
		{"fs-read", 'r', listFlag, list(&f.read)},
		{"fs-write", 'w', listFlag, list(&f.write)},
		{"cwd", 0, valueFlag, str(&f.cwd)},
		{"max-memory", 'm', valueFlag, str(&f.memory)},
		{"max-processes", 'P', valueFlag, str(&f.procs)},
		{"max-open-files", 0, valueFlag, str(&f.openFiles)},
		{"cpu", 'c', valueFlag, str(&f.cpu)},
		{"cpu-cores", 0, valueFlag, str(&f.cpuCores)},
		{"num-cpus", 0, valueFlag, str(&f.numCPUs)},
		{"timeout", 't', valueFlag, str(&f.timeout)},
		{"clean-env", 0, boolFlag, boolean(&f.cleanEnv)},
		{"env", 0, listFlag, list(&f.env)},
		{"name", 0, valueFlag, str(&f.name)},
		{"exec-shell", 'e', valueFlag, str(&f.execShell)},
		{"interactive", 'i', boolFlag, boolean(&f.interactive)},
		{"status-fd", 0, valueFlag, str(&f.statusFD)},
		{"no-supervisor", 0, boolFlag, boolean(&f.noSupervisor)},
		{"extra-deny-syscall", 0, listFlag, list(&f.denySys)},
		{"extra-allow-syscall", 0, listFlag, list(&f.allowSys)},
		{"allow-degraded", 0, listFlag, list(&f.degraded)},
		{"disable", 0, listFlag, list(&f.disable)},
		{"stats", 0, valueFlag, str(&f.stats)},
		{"cpuprofile", 0, valueFlag, str(&f.cpuProfile)},
		{"memprofile", 0, valueFlag, str(&f.memProfile)},
		{"trace", 0, valueFlag, str(&f.trace)},
		{"pprof", 0, valueFlag, str(&f.pprofAddr)},
		{"help", 'h', boolFlag, boolean(&f.help)},
	}
	for name, takesValue := range unsupported {
		kind := boolFlag
		if takesValue {
			kind = valueFlag
		}
		n := name
		specs = append(specs, flagSpec{name, unsupportedShort[name], kind, func(string) {
			if unsupportedGiven == "" {
				unsupportedGiven = n
			}
		}})
	}
	cmdArgs, given, err := parseFlags(specs, args)
	if unsupportedGiven != "" {
		return nil, errorf(stderr, exitSandlock, "--%s: not supported yet", unsupportedGiven)
	}
	if err != nil {
		return nil, errorf(stderr, exitUsage, "%v (see sandlock run --help)", err)
	}
	if f.help {
		fmt.Fprint(stdout, runUsage)
		return nil, 0
	}
	p, code := buildPolicy(given, f, stderr)
	if code != 0 {
		return nil, code
	}
	switch {
	case f.execShell != "" && len(cmdArgs) > 0:
		return nil, errorf(stderr, exitUsage, "--exec-shell: cannot be combined with a command")
	case given["exec-shell"] && f.execShell == "":
		return nil, errorf(stderr, exitSandlock, "--exec-shell: \"\": empty command")
	case f.execShell != "":
		cmdArgs = []string{"/bin/sh", "-c", f.execShell}
	case len(cmdArgs) == 0:
		return nil, errorf(stderr, exitUsage, "run: no command given (usage: sandlock run [flags] -- CMD [ARGS...])")
	}
	if code := checkProfiling(f, stderr); code != 0 {
		return nil, code
	}
	if f.statusFD != "" {
		fd, err := strconv.Atoi(f.statusFD)
		if err != nil || fd < 0 {
			return nil, errorf(stderr, exitSandlock, "--status-fd: %s: not a file descriptor number", f.statusFD)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, errorf(stderr, exitSandlock, "--status-fd: %s: %v", f.statusFD, err)
		}
		r.statusFD = fd
	}
	r.policy, r.argv = p, cmdArgs
	return r, 0
}

// buildPolicy validates every flag value into a policy. On error it prints
// the one-line message and returns the exit code.
func buildPolicy(given map[string]bool, f *runFlags, stderr io.Writer) (*policy.Policy, int) {
	p := &policy.Policy{
		FSRead: f.read, FSWrite: f.write, Cwd: f.cwd, Name: f.name,
		ExtraDenySyscalls: f.denySys, ExtraAllowSyscalls: f.allowSys,
		AllowDegraded: f.degraded, Disable: f.disable,
		NoSupervisor: f.noSupervisor, Interactive: f.interactive,
	}
	fail := func(flag, value string, err error) (*policy.Policy, int) {
		return nil, errorf(stderr, exitSandlock, "%s: %s: %v", flag, value, err)
	}
	var err error
	if given["max-memory"] {
		if p.MaxMemory, err = policy.ParseSize(f.memory); err != nil {
			return fail("--max-memory", f.memory, err)
		}
	}
	if given["max-processes"] {
		if p.MaxProcesses, err = policy.ParsePositiveInt(f.procs); err != nil {
			return fail("--max-processes", f.procs, err)
		}
	}
	if given["max-open-files"] {
		if p.MaxOpenFiles, err = policy.ParsePositiveInt(f.openFiles); err != nil {
			return fail("--max-open-files", f.openFiles, err)
		}
	}
	if given["cpu"] {
		v, err := policy.ParsePositiveInt(f.cpu)
		if err == nil && v > 100 {
			err = errors.New("must be between 1 and 100")
		}
		if err != nil {
			return fail("--cpu", f.cpu, err)
		}
		p.CPUPercent = v
	}
	if given["cpu-cores"] {
		if p.CPUCores, err = policy.ParseCPUList(f.cpuCores); err != nil {
			return fail("--cpu-cores", f.cpuCores, err)
		}
	}
	if given["num-cpus"] {
		if p.NumCPUs, err = policy.ParsePositiveInt(f.numCPUs); err != nil {
			return fail("--num-cpus", f.numCPUs, err)
		}
	}
	if given["timeout"] {
		if p.Timeout, err = policy.ParseTimeout(f.timeout); err != nil {
			return fail("--timeout", f.timeout, err)
		}
	}
	if given["name"] && f.name == "" {
		return fail("--name", `""`, errors.New("empty name"))
	}
	env := os.Environ()
	if f.cleanEnv {
		env = keepEnv(env, "PATH", "HOME", "USER", "TERM", "LANG")
	}
	for _, kv := range f.env {
		k, _, err := policy.ParseEnv(kv)
		if err != nil {
			return fail("--env", kv, err)
		}
		env = setEnv(env, k, kv)
	}
	p.Env = env
	if err := p.Validate(); err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) && pe.Flag == "--no-supervisor" {
			return nil, errorf(stderr, exitSandlock, "%v", pe.Err)
		}
		return nil, errorf(stderr, exitSandlock, "%v", err)
	}
	return p, 0
}

func keepEnv(env []string, keys ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		for _, want := range keys {
			if k == want {
				out = append(out, kv)
			}
		}
	}
	return out
}

func setEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func runSandbox(p *policy.Policy, argv []string, f *runFlags, status, stdin, stdout, stderr *os.File) int {
	opts := &sandbox.Options{
		Stats:     f.stats != "",
		InProcess: true,
		// sandlock exits once Wait returns: no need to release the
		// supervisor's threads and descriptors first.
		ExitAfterWait: true,
		Events: func(e sandbox.Event) {
			if e.MemoryKill != nil {
				fmt.Fprintf(stderr, "sandlock: %s\n", e.MemoryKill)
			}
		},
	}
	if v := os.Getenv("SANDLOCK_SUPERVISOR"); v == "ring" {
		opts.UseRing = true
	}
	if p.Interactive {
		signal.Ignore(syscall.SIGTTOU, syscall.SIGTTIN)
	}
	sb, err := sandbox.Start(p, sandbox.Command{Path: argv[0], Args: argv, Stdin: stdin, Stdout: stdout, Stderr: stderr}, opts)
	if err == nil {
		// Signal forwarding starts a moment after the command: os/signal
		// costs two threads and a fraction of a millisecond, which a short
		// command should not pay. A signal that arrives before then kills
		// sandlock by its default action; its parent-death signal and the
		// watchdog then kill the sandbox, and the exit status (128+N) is the
		// one forwarding would give.
		time.AfterFunc(forwardDelay, func() { forwardSignals(sb) })
	}
	if err != nil {
		var ee *sandbox.ExecError
		if errors.As(err, &ee) {
			return errorf(stderr, ee.ExitCode(), "%v", ee)
		}
		return errorf(stderr, exitSandlock, "%v", err)
	}
	// The command runs: the collector may come back (see main's init).
	debug.SetGCPercent(gcPercent)
	c := finish(sb, p, f, status, stdin, stderr)
	if atExit != nil {
		if err := atExit(); err != nil {
			errorf(stderr, 0, "%v", err)
		}
	}
	return c
}

// atExit, when set, finishes the profiles before sandlock exits.
var atExit func() error

// finish waits for the sandbox and reports its end; it returns the exit
// code.
func finish(sb *sandbox.Sandbox, p *policy.Policy, f *runFlags, status, stdin, stderr *os.File) int {
	res, err := sb.Wait()
	if p.Interactive && isTerminal(stdin) {
		unix.IoctlSetPointerInt(int(stdin.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
	}
	if err != nil && res == nil {
		return errorf(stderr, exitSandlock, "%v", err)
	}
	if f.stats != "" && res.Stats != nil {
		if err := writeStats(f.stats, res.Stats); err != nil {
			errorf(stderr, 0, "--stats: %s: %v", f.stats, err)
		}
	}
	if status != nil {
		if res.Signal != 0 {
			fmt.Fprintf(status, "{\"exit_code\":-1,\"signal\":%d}\n", int(res.Signal))
		} else {
			fmt.Fprintf(status, "{\"exit_code\":%d}\n", res.ExitCode)
		}
	}
	if res.TimedOut {
		errorf(stderr, 0, "timeout after %ss", strconv.FormatFloat(p.Timeout.Seconds(), 'f', -1, 64))
		return exitTimeout
	}
	return res.ExitCode
}

// forwardDelay is how long after the start signal forwarding is set up.
const forwardDelay = 5 * time.Millisecond

// forwardSignals forwards INT, TERM, HUP and QUIT to the sandbox.
func forwardSignals(sb *sandbox.Sandbox) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for s := range sigs {
			sb.Signal(s.(syscall.Signal))
		}
	}()
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
