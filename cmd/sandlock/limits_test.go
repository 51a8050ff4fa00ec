package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sandlock/sandlock/internal/testbin"
	"github.com/sandlock/sandlock/internal/testenv"
	"golang.org/x/sys/unix"
)

// liveProcesses counts the machine's processes that are not zombies (this
// VM's init does not reap everything, so zombies are left out).
func liveProcesses() int { return testenv.Live(nil) }

func TestForkBomb(t *testing.T) {
	requireSandbox(t)
	before := liveProcesses()
	r := run(t, "", sandboxArgs(t, "-P", "20", "-t", "10", "-w", "/dev/null", "--", "sh", "-c", "f() { f | f; }; f")...)
	// Contained: the bomb cannot grow past 20 processes; sandlock exits
	// (the bomb dies of its failed forks, or at the timeout) and nothing is
	// left running.
	if r.code == 0 {
		t.Fatalf("fork bomb exited 0; stderr %q", r.stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for liveProcesses() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := liveProcesses(); after > before+2 {
		t.Fatalf("%d processes before, %d after the fork bomb", before, after)
	}
}

func TestProcessLimit(t *testing.T) {
	requireSandbox(t)
	// testprog itself is one of the 5; it tries to start 10 sleepers.
	r := run(t, "", sandboxArgs(t, "-P", "5", "-w", "/dev/null", "--", testbin.Prog(t), "forkn", "10", "2s")...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "started 4 failed 6\n") || !strings.Contains(r.stdout, "resource temporarily unavailable") {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestSequentialForks(t *testing.T) {
	requireSandbox(t)
	r := run(t, "", sandboxArgs(t, "-P", "2", "--", testbin.Prog(t), "forkloop", "1000")...)
	if r.code != 0 || r.stdout != "ran 1000 failed 0\n" {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The same from a shell, whose children are never waited for by
	// anything the supervisor sees.
	r = run(t, "", sandboxArgs(t, "-P", "2", "--", "sh", "-c", "i=0; while [ $i -lt 1000 ]; do /bin/true || exit 9; i=$((i+1)); done; echo $i")...)
	if r.code != 0 || r.stdout != "1000\n" {
		t.Fatalf("shell loop: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestThreadsNotCounted(t *testing.T) {
	requireSandbox(t)
	r := run(t, "", sandboxArgs(t, "-P", "2", "--", testbin.Prog(t), "threads", "50")...)
	if r.code != 0 || r.stdout != "threads 50\n" {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestPipelinesNoEINTR runs thousands of short pipelines in dash, whose
// SIGCHLD handler has no SA_RESTART: a notified fork must never fail with a
// spurious EINTR ("Cannot fork").
func TestPipelinesNoEINTR(t *testing.T) {
	requireSandbox(t)
	testenv.Short(t, "4000 forks")
	r := run(t, "", sandboxArgs(t, "-w", "/dev/null", "--", "sh", "-c",
		"i=0; while [ $i -lt 2000 ]; do echo x | cat >/dev/null || exit 9; i=$((i+1)); done; echo $i")...)
	if r.code != 0 || r.stdout != "2000\n" || r.stderr != "" {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no system python3 to allocate memory with")
	return ""
}

// allocPy allocates and touches MiB of memory, in one mapping or in 64 KiB
// pieces through malloc.
const allocPy = `
import mmap, sys
mb, mode = int(sys.argv[1]), sys.argv[2]
if mode == "mmap":
    m = mmap.mmap(-1, mb << 20)
    for i in range(0, mb << 20, 4096):
        m[i] = 1
else:
    keep = []
    for i in range(mb * 16):
        b = bytearray(64 << 10)
        b[::4096] = b"\x01" * len(b[::4096])
        keep.append(b)
print("allocated", mb)
`

func TestMemoryLimit(t *testing.T) {
	requireSandbox(t)
	py := python(t)
	for _, tc := range []struct {
		mb     string
		mode   string
		killed bool
	}{
		{"32", "mmap", false},
		{"32", "small", false},
		{"200", "mmap", true},
		{"200", "small", true},
	} {
		t.Run(tc.mb+"-"+tc.mode, func(t *testing.T) {
			r := run(t, "", sandboxArgs(t, "-m", "64M", "--", py, "-c", allocPy, tc.mb, tc.mode)...)
			if !tc.killed {
				if r.code != 0 || r.stdout != "allocated "+tc.mb+"\n" {
					t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "sandlock: memory limit 64M exceeded by pid ") || !strings.Contains(r.stderr, "(python3") {
				t.Fatalf("code %d, stderr %q: want death by SIGKILL and the message", r.code, r.stderr)
			}
		})
	}
}

// brkPy grows the program break by each of its arguments in MiB, 64 KiB
// at a time (touching every page), and between two arguments execs a new
// python with the rest: every image grows a break of its own.
const brkPy = `S = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_ssize_t]
mb = int(sys.argv[1])
for _ in range(mb * 16):
    p = libc.sbrk(64 << 10)
    if p is None or p == ctypes.c_void_p(-1).value:
        print("sbrk failed", ctypes.get_errno())
        sys.exit(1)
    ctypes.memset(p, 1, 64 << 10)
print("grew", mb, flush=True)
if len(sys.argv) > 2:
    os.execv(sys.executable, [sys.executable, "-c", "S = " + repr(S) + "\nexec(S)"] + sys.argv[2:])
"""
exec(S)
`

// TestMemoryLimitBrk checks the ledger of the program break: grown in
// small steps (each a notified brk, measured against the break's start in
// /proc/<pid>/stat through a descriptor kept open), and started over by an
// exec, whose new image has a break of its own.
func TestMemoryLimitBrk(t *testing.T) {
	requireSandbox(t)
	py := python(t)
	for _, tc := range []struct {
		name   string
		mb     []string
		out    string
		killed bool
	}{
		{"32", []string{"32"}, "grew 32\n", false},
		{"200", []string{"200"}, "", true},
		// 40 + 40 MiB in two images fit in 64M: the first image's break
		// is given back when the second starts over.
		{"40-exec-40", []string{"40", "40"}, "grew 40\ngrew 40\n", false},
		{"8-exec-200", []string{"8", "200"}, "grew 8\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", sandboxArgs(t, append([]string{"-m", "64M", "--", py, "-c", brkPy}, tc.mb...)...)...)
			if !tc.killed {
				if r.code != 0 || r.stdout != tc.out {
					t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "sandlock: memory limit 64M exceeded by pid ") || !strings.HasPrefix(r.stdout, tc.out) {
				t.Fatalf("code %d, stdout %q, stderr %q: want death by SIGKILL and the message", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// brkRegrowPy grows the break by 40 MiB, shrinks it back, sleeps past a
// resync (which lowers the charge to what /proc shows), grows it by 40 MiB
// again and maps 40 MiB more: 80 MiB of writable memory.
const brkRegrowPy = `
import ctypes, mmap, time
libc = ctypes.CDLL(None, use_errno=True)
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_ssize_t]
def grow(mb):
    for _ in range(mb * 16):
        ctypes.memset(libc.sbrk(64 << 10), 1, 64 << 10)
grow(40)
libc.sbrk(-(40 << 20))
time.sleep(0.25)
grow(40)
m = mmap.mmap(-1, 40 << 20)
print("holding 80M", flush=True)
`

// TestMemoryLimitBrkRegrow is the regression test of a ledger that lost
// count: the break's mark stayed at its old top when the heap shrank, so
// after a resync had lowered the charge, growing the heap back was never
// charged, and the process held 80 MiB under -m 64M (2 runs of 3).
func TestMemoryLimitBrkRegrow(t *testing.T) {
	requireSandbox(t)
	py := python(t)
	for i := 0; i < 3; i++ {
		r := run(t, "", sandboxArgs(t, "-m", "64M", "--", py, "-c", brkRegrowPy)...)
		if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "sandlock: memory limit 64M exceeded by pid ") || strings.Contains(r.stdout, "holding") {
			t.Fatalf("run %d: code %d, stdout %q, stderr %q: want death by SIGKILL and the message", i, r.code, r.stdout, r.stderr)
		}
	}
}

// TestRealRuntimes runs runtimes that reserve far more address space than
// they use under -m 512M.
func TestRealRuntimes(t *testing.T) {
	requireSandbox(t)
	testenv.Short(t, "starts a JVM, node and a Go build")
	tmp := t.TempDir()
	base := sandboxArgs(t, "-m", "512M", "-r", "/proc", "-r", "/sys", "-w", "/dev/null", "-w", tmp, "--env", "HOME="+tmp)
	t.Run("java", func(t *testing.T) {
		if _, err := exec.LookPath("java"); err != nil {
			testenv.Require(t, false, "no java (CI installs default-jre-headless)")
		}
		r := run(t, "", append(base, "--", "java", "-version")...)
		if r.code != 0 || !strings.Contains(r.stderr, "version") {
			t.Fatalf("java -version: code %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("node", func(t *testing.T) {
		if _, err := exec.LookPath("node"); err != nil {
			testenv.Require(t, false, "no node (CI installs nodejs)")
		}
		r := run(t, "", append(base, "--", "node", "-e", "console.log(6*7)")...)
		if r.code != 0 || r.stdout != "42\n" {
			t.Fatalf("node: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("go build", func(t *testing.T) {
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Skip("no go")
		}
		gr := strings.TrimSpace(string(goroot))
		mod := filepath.Join(tmp, "mod")
		os.MkdirAll(mod, 0o755)
		os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/small\n\ngo 1.26\n"), 0o644)
		os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc main() { fmt.Println(strings.ToUpper(\"ok\")) }\n"), 0o644)
		// The standard library is compiled once, outside: a build with a
		// cold cache compiles the runtime and fmt's dependencies, and
		// really writes some 300 MiB in one process (RSS, measured bare),
		// 450-540 MiB in all at its peak; under 512M that is a legitimate
		// kill. What is checked here is the toolchain's own use: Go
		// processes reserve far more than they write.
		warm := exec.Command(filepath.Join(gr, "bin", "go"), "build", "-o", filepath.Join(mod, "small"), ".")
		warm.Dir = mod
		warm.Env = append(os.Environ(), "GOCACHE="+filepath.Join(tmp, "cache"), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
		if out, err := warm.CombinedOutput(); err != nil {
			t.Fatalf("warming the cache: %v: %s", err, out)
		}
		os.Remove(filepath.Join(mod, "small"))
		args := append(base, "-r", gr, "--cwd", mod,
			"--env", "GOCACHE="+filepath.Join(tmp, "cache"), "--env", "GOTMPDIR="+tmp, "--env", "TMPDIR="+tmp,
			"--env", "GOTOOLCHAIN=local", "--env", "GOFLAGS=-mod=mod", "--env", "GOPATH="+filepath.Join(tmp, "gopath"),
			"--", filepath.Join(gr, "bin", "go"), "build", "-o", filepath.Join(mod, "small"), ".")
		if r := run(t, "", args...); r.code != 0 {
			t.Fatalf("go build: code %d, stderr %q", r.code, r.stderr)
		}
		out, err := exec.Command(filepath.Join(mod, "small")).Output()
		if err != nil || string(out) != "OK\n" {
			t.Fatalf("built program: %q %v", out, err)
		}
	})
}

// TestSandlockKilled kills sandlock with SIGKILL while it supervises
// sleepers, one the command itself and some its descendants: none may
// survive.
func TestSandlockKilled(t *testing.T) {
	requireSandbox(t)
	for _, script := range []string{
		"exec %[1]s sleep %[2]s",
		"%[1]s sleep %[2]s & %[1]s sleep %[2]s & setsid %[1]s sleep %[2]s & %[1]s sleep %[2]s",
	} {
		marker := fmt.Sprintf("%dms", 40000+time.Now().Nanosecond()%10000)
		cmd := exec.Command(testbin.Sandlock(t), sandboxArgs(t, "-w", "/dev/null", "--", "sh", "-c", fmt.Sprintf(script, testbin.Prog(t), marker))...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := 1
		if strings.Contains(script, "&") {
			want = 4
		}
		deadline := time.Now().Add(10 * time.Second)
		for liveWithArg(marker) < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := liveWithArg(marker); n != want {
			t.Fatalf("%d sleepers started, want %d", n, want)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		deadline = time.Now().Add(5 * time.Second)
		for liveWithArg(marker) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := liveWithArg(marker); n > 0 {
			t.Fatalf("%q: %d sleepers survived sandlock's SIGKILL", script, n)
		}
	}
}

// TestCPUCores checks the CPU mask the command starts with: the child sets
// it between fork and exec (--cpu-cores, --num-cpus), and without either
// it is sandlock's own.
func TestCPUCores(t *testing.T) {
	requireSandbox(t)
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil {
		t.Fatal(err)
	}
	first := -1
	for c := 0; c < 1024 && first < 0; c++ {
		if own.IsSet(c) {
			first = c
		}
	}
	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{[]string{"--cpu-cores", strconv.Itoa(first)}, 1},
		{[]string{"--num-cpus", "1"}, 1},
		{nil, own.Count()},
	} {
		args := append(append(tc.flags, "-r", "/proc", "--"), "grep", "Cpus_allowed_list", "/proc/self/status")
		r := run(t, "", sandboxArgs(t, args...)...)
		list := strings.TrimSpace(strings.TrimPrefix(r.stdout, "Cpus_allowed_list:"))
		if r.code != 0 || cpuCount(list) != tc.want {
			t.Errorf("%v: code %d, CPUs %q (want %d of them), stderr %q", tc.flags, r.code, list, tc.want, r.stderr)
		}
	}
}

// cpuCount counts the CPUs of a list such as "0-3,5".
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return -1
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return -1
			}
		}
		n += b - a + 1
	}
	return n
}

// TestMemoryLimitImage is the regression test of an escape: a program
// whose image's .bss (160 MiB, mapped by execve with no syscall the filter
// sees) is far above the limit used to run to its end, touching all of it,
// before the periodic resync could catch it. RLIMIT_DATA (the limit plus
// imageMargin) now has the kernel refuse the image. The bare control run
// proves the program does what it says; under a limit above it, it runs.
func TestMemoryLimitImage(t *testing.T) {
	requireSandbox(t)
	big := testbin.Build(t, "./adversarial/bigimage", "bigimage")
	out, err := exec.Command(big).Output()
	if err != nil || string(out) != "touched\n" {
		t.Fatalf("bare control run: %q, %v", out, err)
	}
	for i := 0; i < 3; i++ {
		r := run(t, "", sandboxArgs(t, "-m", "64M", "--", big)...)
		if r.code == 0 || strings.Contains(r.stdout, "touched") {
			t.Fatalf("run %d under -m 64M: code %d, stdout %q, stderr %q: the image escaped the limit", i, r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, "", sandboxArgs(t, "-m", "512M", "--", big)...); r.code != 0 || r.stdout != "touched\n" {
		t.Fatalf("under -m 512M: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestMemoryRlimits checks the limits a memory limit sets (memoryRlimits):
// RLIMIT_DATA at the limit plus 16 MiB, RLIMIT_STACK at the limit, hard
// and soft, which the command cannot raise; without -m they are
// sandlock's own.
func TestMemoryRlimits(t *testing.T) {
	requireSandbox(t)
	script := `ulimit -Hd; ulimit -Hs; ulimit -Ss; ulimit -Hs unlimited && echo raised || echo refused`
	r := run(t, "", sandboxArgs(t, "-m", "64M", "--", "sh", "-c", script)...)
	// Lowered to 80 MiB and 64 MiB, never raised: where this process's
	// own limits are lower (the soft stack limit, usually 8 MiB), they stay.
	data, stack := capped(t, unix.RLIMIT_DATA, 80<<20), capped(t, unix.RLIMIT_STACK, 64<<20)
	want := fmt.Sprintf("%d\n%d\n%d\nrefused\n", data.Max>>10, stack.Max>>10, stack.Cur>>10)
	if d := cmp.Diff(want, r.stdout); r.code != 0 || d != "" {
		t.Fatalf("under -m 64M: code %d, stderr %q, stdout (-want +got):\n%s", r.code, r.stderr, d)
	}
	// Set before the filters: a policy that denies prlimit64 (which the
	// limits are set with) still starts, limited. (After them, the child
	// failed: "in the child, prlimit: operation not permitted".)
	r = run(t, "", sandboxArgs(t, "-r", "/proc", "-m", "64M", "--extra-deny-syscall", "prlimit64", "--", "grep", "Max data size", "/proc/self/limits")...)
	if f := strings.Fields(r.stdout); r.code != 0 || len(f) < 5 || f[3] != fmt.Sprint(data.Cur) || f[4] != fmt.Sprint(data.Max) {
		t.Fatalf("with prlimit64 denied: code %d, stdout %q, stderr %q, want soft %d and hard %d", r.code, r.stdout, r.stderr, data.Cur, data.Max)
	}
	bare, err := exec.Command("sh", "-c", `ulimit -Hd; ulimit -Hs`).Output()
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, "", sandboxArgs(t, "--", "sh", "-c", `ulimit -Hd; ulimit -Hs`)...)
	if d := cmp.Diff(string(bare), r.stdout); r.code != 0 || d != "" {
		t.Fatalf("without -m: code %d, stderr %q, stdout (-want +got):\n%s", r.code, r.stderr, d)
	}
}

// capped returns this process's limit of res, both values lowered to max.
func capped(t *testing.T, res int, max uint64) unix.Rlimit {
	t.Helper()
	var l unix.Rlimit
	if err := unix.Getrlimit(res, &l); err != nil {
		t.Fatal(err)
	}
	return unix.Rlimit{Cur: min(l.Cur, max), Max: min(l.Max, max)}
}

// TestMaxOpenFiles checks --max-open-files inside: the limit the command
// sees, and a descriptor at the limit refused, with and without a policy
// that denies prlimit64 and setrlimit (with prlimit64 denied, the child
// failed to start: "in the child, prlimit(RLIMIT_NOFILE): operation not
// permitted", exit 125).
func TestMaxOpenFiles(t *testing.T) {
	requireSandbox(t)
	script := `grep "Max open files" /proc/self/limits | tr -s ' '; ` +
		`(exec 4</dev/null) && echo 4 opened; (exec 6</dev/null) 2>/dev/null && echo 6 opened || echo 6 refused`
	const want = "Max open files 6 6 files \n4 opened\n6 refused\n"
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"plain", nil},
		{"prlimit64 denied", []string{"--extra-deny-syscall", "prlimit64"}},
		{"setrlimit denied", []string{"--extra-deny-syscall", "setrlimit"}},
		{"prlimit64 denied, -m", []string{"--extra-deny-syscall", "prlimit64", "-m", "64M"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-r", "/proc", "-r", "/dev/null", "--max-open-files", "6"}, tc.extra...)
			r := run(t, "", sandboxArgs(t, append(append(args, "--", "sh", "-c"), script)...)...)
			if d := cmp.Diff(want, r.stdout); r.code != 0 || d != "" {
				t.Fatalf("code %d, stderr %q, stdout (-want +got):\n%s", r.code, r.stderr, d)
			}
		})
	}
}
