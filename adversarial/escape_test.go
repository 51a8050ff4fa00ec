package adversarial_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sandlock/sandlock/internal/confine"
	"github.com/sandlock/sandlock/internal/testbin"
	"github.com/sandlock/sandlock/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func requireKernel(t *testing.T) {
	t.Helper()
	testenv.Require(t, confine.Probe().OK(), "kernel lacks what sandlock needs (see sandlock check)")
}

func attacker(t *testing.T) string { return testbin.Build(t, "./adversarial/attacker", "attacker") }

// fixture is a fresh tree per attempt: W is writable in the sandbox, R
// readable, S (the secret) in no rule at all.
type fixture struct{ root, w, r, s string }

const secret = "TOPSECRET"

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{root, filepath.Join(root, "w"), filepath.Join(root, "r"), filepath.Join(root, "s")}
	for _, d := range []string{f.w, f.r, f.s} {
		must(t, os.Mkdir(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(f.r, "ro.txt"), []byte("readonly\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(f.s, "secret.txt"), []byte(secret+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(f.w, "mine.txt"), []byte("mine\n"), 0o644))
	must(t, os.Symlink(f.s, filepath.Join(f.w, "link")))
	must(t, os.Symlink(filepath.Join(f.r, "ro.txt"), filepath.Join(f.w, "rolink")))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// intact checks that nothing outside W changed.
func (f fixture) intact(t *testing.T) {
	t.Helper()
	got := map[string]string{}
	for _, d := range []string{f.r, f.s} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(d, e.Name()))
			got[strings.TrimPrefix(filepath.Join(d, e.Name()), f.root)] = string(b)
		}
	}
	want := map[string]string{"/r/ro.txt": "readonly\n", "/s/secret.txt": secret + "\n"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("files outside the writable tree changed (-want +got):\n%s", d)
	}
}

// env is what every attempt may use: a process outside the sandbox, an
// abstract socket outside it, a terminal.
type env struct {
	victim   *exec.Cmd
	abstract string
}

// escapeCase is one attempt.
type escapeCase struct {
	name string
	// args are the attacker's arguments.
	args func(f fixture, e *env) []string
	// want is the prefix of the sandboxed attacker's line.
	want string
	// control: a bare run (no sandbox) must print "escaped", proving the
	// attempt works when nothing stops it.
	control bool
	// tty gives the attacker a terminal on stdin.
	tty bool
	// mechanism is what stops it (for the log and SECURITY.md).
	mechanism string
}

func pid(c *exec.Cmd) string { return fmt.Sprint(c.Process.Pid) }

var escapes = []escapeCase{
	{name: "symlink planted beforehand", want: "blocked: EACCES", control: true, mechanism: "Landlock (rules follow the resolved file, not the path)",
		args: func(f fixture, _ *env) []string { return []string{"read", f.w + "/link/secret.txt"} }},
	{name: "symlink made inside", want: "blocked: EACCES", control: true, mechanism: "Landlock",
		args: func(f fixture, _ *env) []string { return []string{"symlink-read", f.s, f.w + "/newlink", "secret.txt"} }},
	{name: "dot-dot out of the writable tree", want: "blocked: EACCES", control: true, mechanism: "Landlock",
		args: func(f fixture, _ *env) []string { return []string{"read", f.w + "/../s/secret.txt"} }},
	{name: "/proc/self/root", want: "blocked: EACCES", control: true, mechanism: "Landlock",
		args: func(f fixture, _ *env) []string { return []string{"read", "/proc/self/root" + f.s + "/secret.txt"} }},
	{name: "supervisor's cwd via /proc/PID/cwd", want: "blocked: EACCES", mechanism: "Landlock ptrace restriction (sandlock is outside the command's domain), and sandlock is not dumpable",
		args: func(f fixture, _ *env) []string { return []string{"read-parent", "cwd/secret.txt"} }},
	{name: "supervisor's root via /proc/PID/root", want: "blocked: EACCES", mechanism: "Landlock ptrace restriction",
		args: func(f fixture, _ *env) []string { return []string{"read-parent", "root" + f.s + "/secret.txt"} }},
	{name: "supervisor's environment", want: "blocked: EACCES", mechanism: "Landlock ptrace restriction",
		args: func(f fixture, _ *env) []string { return []string{"read-parent", "environ"} }},
	{name: "supervisor's descriptors via /proc/PID/fd", want: "blocked: EACCES", mechanism: "Landlock ptrace restriction",
		args: func(fixture, *env) []string { return []string{"read-parent", "fd/0"} }},
	{name: "supervisor's memory via /proc/PID/mem", want: "blocked: EACCES", mechanism: "Landlock ptrace restriction",
		args: func(f fixture, _ *env) []string { return []string{"open-parent-rw", "mem"} }},
	{name: "write through a symlink to a read-only file", want: "blocked: EACCES", control: true, mechanism: "Landlock",
		args: func(f fixture, _ *env) []string { return []string{"write", f.w + "/rolink"} }},
	{name: "write beside the read-only file", want: "blocked: EACCES", control: true, mechanism: "Landlock",
		args: func(f fixture, _ *env) []string { return []string{"write", f.r + "/new.txt"} }},
	{name: "hard link of the secret into the writable tree", want: "blocked: EXDEV", control: true, mechanism: "Landlock REFER (ABI 2)",
		args: func(f fixture, _ *env) []string {
			return []string{"hardlink", f.s + "/secret.txt", f.w + "/hl", "read"}
		}},
	{name: "hard link of a read-only file, then write", want: "blocked: EXDEV", control: true, mechanism: "Landlock REFER",
		args: func(f fixture, _ *env) []string { return []string{"hardlink", f.r + "/ro.txt", f.w + "/hl", "write"} }},
	{name: "rename a read-only file into the writable tree", want: "blocked: EACCES", control: true, mechanism: "Landlock (REMOVE_FILE on the source)",
		args: func(f fixture, _ *env) []string { return []string{"rename", f.r + "/ro.txt", f.w + "/moved"} }},
	{name: "rename a file into the secret tree", want: "blocked: EACCES", control: true, mechanism: "Landlock (MAKE_REG on the target)",
		args: func(f fixture, _ *env) []string { return []string{"rename", f.w + "/mine.txt", f.s + "/planted"} }},
	{name: "open_by_handle_at", want: "blocked: EPERM", control: true, mechanism: "seccomp filter (and no CAP_DAC_READ_SEARCH)",
		args: func(f fixture, _ *env) []string { return []string{"handle", f.s + "/secret.txt"} }},
	{name: "io_uring", want: "blocked: EPERM", control: true, mechanism: "seccomp filter",
		args: func(fixture, *env) []string { return []string{"io_uring"} }},
	{name: "ptrace a process outside", want: "blocked: EPERM", control: true, mechanism: "seccomp filter and Landlock ptrace restriction",
		args: func(_ fixture, e *env) []string { return []string{"ptrace", pid(e.victim)} }},
	{name: "ptrace the supervisor", want: "blocked: EPERM", mechanism: "seccomp filter and Landlock ptrace restriction",
		args: func(fixture, *env) []string { return []string{"ptrace", "parent"} }},
	{name: "process_vm_writev into a process outside", want: "blocked: EPERM", control: true, mechanism: "seccomp filter and Landlock ptrace restriction",
		args: func(_ fixture, e *env) []string { return []string{"vm-write", pid(e.victim)} }},
	{name: "process_vm_readv of the supervisor", want: "blocked: EPERM", mechanism: "seccomp filter and Landlock ptrace restriction",
		args: func(fixture, *env) []string { return []string{"vm-read", "parent"} }},
	{name: "signal a process outside", want: "blocked: EPERM", control: true, mechanism: "Landlock signal scope (ABI 6)",
		args: func(_ fixture, e *env) []string { return []string{"kill", pid(e.victim), "15"} }},
	{name: "signal the supervisor", want: "blocked: EPERM", mechanism: "Landlock signal scope",
		args: func(fixture, *env) []string { return []string{"kill", "parent", "15"} }},
	{name: "abstract unix socket outside", want: "blocked: EPERM", control: true, mechanism: "Landlock abstract unix socket scope (ABI 6)",
		args: func(_ fixture, e *env) []string { return []string{"abstract", e.abstract} }},
	{name: "TIOCSTI into the terminal", want: "blocked: EPERM", control: true, tty: true, mechanism: "seccomp argument filter (and no CAP_SYS_ADMIN)",
		args: func(fixture, *env) []string { return []string{"tiocsti"} }},
	{name: "TIOCLINUX", want: "blocked: EPERM", control: true, tty: true, mechanism: "seccomp argument filter",
		args: func(fixture, *env) []string { return []string{"tioclinux"} }},
	{name: "namespaces: unshare, clone, clone3, setns", want: "blocked: every", control: true, mechanism: "seccomp filter (clone flags checked in BPF; clone3 answers ENOSYS)",
		args: func(fixture, *env) []string { return []string{"namespaces"} }},
	{name: "privileged syscalls", want: "blocked: all", mechanism: "seccomp filter, and every capability dropped",
		args: func(f fixture, _ *env) []string { return []string{"syscalls", f.w} }},
	{name: "x32 ABI", want: "killed: SIGSYS", mechanism: "seccomp filter (foreign ABI kills)",
		args: func(fixture, *env) []string { return []string{"x32"} }},
	{name: "int 0x80 (i386 ABI)", want: "killed: SIGSYS", control: true, mechanism: "seccomp filter (arch check kills)",
		args: func(fixture, *env) []string { return []string{"int80"} }},
}

// TestEscapes runs every attempt in a sandbox, supervised and with
// --no-supervisor, and checks that it is stopped and that nothing outside
// the writable tree changed. Where a bare control run is possible, it runs
// first and must escape: a case that cannot escape proves nothing.
func TestEscapes(t *testing.T) {
	requireKernel(t)
	if runtime.GOARCH != "amd64" {
		t.Log("x32 and int 0x80 cases only probe on x86_64")
	}
	att := attacker(t)
	victim := exec.Command("sleep", "600")
	must(t, victim.Start())
	defer func() { victim.Process.Kill(); victim.Wait() }()
	name := fmt.Sprintf("sandlock-adversarial-%d", os.Getpid())
	ln, err := net.Listen("unix", "@"+name)
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	e := &env{victim: victim, abstract: name}

	for _, c := range escapes {
		t.Run(c.name, func(t *testing.T) {
			if c.control {
				f := newFixture(t)
				out := runAttacker(t, c, f, nil, att, c.args(f, e))
				if !strings.HasPrefix(out, "escaped") && !strings.Contains(out, "the kernel has no") {
					t.Fatalf("bare control run did not escape, so the case proves nothing: %q", out)
				}
				if strings.HasPrefix(out, "escaped") && strings.HasPrefix(c.args(f, e)[0], "kill") && victim.ProcessState != nil {
					t.Fatal("control killed the victim")
				}
			}
			for _, mode := range [][]string{nil, {"--no-supervisor"}} {
				f := newFixture(t)
				args := append(append([]string{"run"}, testbin.ReadArgs(t)...), "-r", filepath.Dir(att), "-r", "/proc", "-r", f.r, "-w", f.w, "--cwd", f.w)
				args = append(append(append(args, mode...), "--", att), c.args(f, e)...)
				out := runAttacker(t, c, f, args, testbin.Sandlock(t), nil)
				if !strings.HasPrefix(out, c.want) {
					t.Errorf("%v: got %q, want %q (stopped by: %s)", mode, out, c.want, c.mechanism)
				}
				f.intact(t)
				if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
					t.Fatalf("the process outside is gone: %v", err)
				}
			}
		})
	}
}

// runAttacker runs prog with args (the sandbox's command line, or the
// attacker's own for a bare run) from S, the secret directory, so that
// the supervisor's cwd is something to steal.
func runAttacker(t *testing.T, c escapeCase, f fixture, sandboxArgs []string, prog string, bareArgs []string) string {
	t.Helper()
	args := sandboxArgs
	if args == nil {
		args = bareArgs
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = f.s
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if c.tty {
		master, slave := openPTY(t)
		defer master.Close()
		defer slave.Close()
		cmd.Stdin = slave
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

// openPTY opens a new pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	must(t, err)
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	must(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	must(t, err)
	return m, s
}
