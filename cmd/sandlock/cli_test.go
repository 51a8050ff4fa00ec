package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
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

func TestMain(m *testing.M) {
	// main's init holds the collector off for a launch; the tests run
	// nothing confined in this process and want it back.
	debug.SetGCPercent(gcPercent)
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// result is how one sandlock invocation ended.
type result struct {
	code           int
	stdout, stderr string
}

// run invokes the built sandlock with args, feeding stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Sandlock(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("sandlock %q itself died by %v; stderr: %s", args, ws.Signal(), r.stderr)
		}
	} else if err != nil {
		t.Fatalf("sandlock %q: %v", args, err)
	}
	return r
}

// sandboxArgs returns "run" with the read paths a dynamic command needs.
func sandboxArgs(t *testing.T, extra ...string) []string {
	return append(append([]string{"run"}, testbin.ReadArgs(t)...), extra...)
}

func requireSandbox(t *testing.T) {
	t.Helper()
	out, err := exec.Command(testbin.Sandlock(t), "check").CombinedOutput()
	testenv.Require(t, err == nil, "sandlock check fails here:\n"+string(out))
}

func TestReadAllowedPaths(t *testing.T) {
	requireSandbox(t)
	r := run(t, "", "run", "-r", "/usr", "-r", "/lib", "-r", "/lib64", "-r", "/bin", "-r", "/etc", "--name", "acceptance", "--", "cat", "/etc/hostname")
	if r.code != 0 || r.stdout != "acceptance\n" {
		t.Fatalf("cat /etc/hostname: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The default name is sandbox-<pid>-<n>, the hostname seen inside.
	r = run(t, "", sandboxArgs(t, "--", "sh", "-c", "cat /etc/hostname; hostname; uname -n")...)
	lines := strings.Fields(r.stdout)
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "sandbox-") || lines[0] != lines[1] || lines[1] != lines[2] {
		t.Fatalf("hostname views: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestHostnameWithoutEtc(t *testing.T) {
	requireSandbox(t)
	var a []string
	for _, p := range testbin.SystemPaths() {
		if p != "/etc" {
			a = append(a, "-r", p)
		}
	}
	a = append(append([]string{"run"}, a...), "--name", "noetc", "--", "/bin/cat", "/etc/hostname")
	r := run(t, "", a...)
	if r.code != 0 || r.stdout != "noetc\n" {
		t.Fatalf("/etc/hostname with /etc unreadable: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestFilesystemRules(t *testing.T) {
	requireSandbox(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("x"), 0o644)
	ro := t.TempDir()
	rw := t.TempDir()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"read outside", []string{"--", "cat", secret}, 1, "Permission denied"},
		{"write under -r", []string{"-r", ro, "--", "sh", "-c", "echo x > " + ro + "/f"}, 2, "Permission denied"},
		{"write under -w", []string{"-w", rw, "--", "sh", "-c", "echo x > " + rw + "/f && cat " + rw + "/f && mkdir " + rw + "/d && rm " + rw + "/f"}, 0, ""},
		{"list outside", []string{"--", "ls", outside}, 2, "Permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", sandboxArgs(t, tc.args...)...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
				t.Fatalf("code %d (want %d), stderr %q (want %q)", r.code, tc.wantCode, r.stderr, tc.wantErr)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(ro, "f")); b != nil {
		t.Fatal("a file was written under a read-only path")
	}
}

func TestEnvironmentAndControl(t *testing.T) {
	requireSandbox(t)
	dir := t.TempDir()
	t.Setenv("SANDLOCK_TEST_OUTER", "outer")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"cwd", "", []string{"-r", dir, "--cwd", dir, "--", "pwd"}, dir + "\n"},
		{"env", "", []string{"--env", "A=1", "--env", "B=x=y", "--", "sh", "-c", "echo $A $B $SANDLOCK_TEST_OUTER"}, "1 x=y outer\n"},
		{"clean-env", "", []string{"--clean-env", "--env", "A=1", "--", "sh", "-c", "echo $A; echo ${SANDLOCK_TEST_OUTER:-gone}; test -n \"$PATH\" && echo path"}, "1\ngone\npath\n"},
		{"exec-shell", "", []string{"-e", "echo $((6*7))"}, "42\n"},
		{"stdin to stdout", "hello sandbox\n", []string{"--", "cat"}, "hello sandbox\n"},
		{"args after command", "", []string{"echo", "-n", "a", "--", "b"}, "a -- b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, sandboxArgs(t, tc.args...)...)
			if r.code != 0 || r.stdout != tc.want {
				t.Fatalf("code %d, stdout %q (want %q), stderr %q", r.code, r.stdout, tc.want, r.stderr)
			}
		})
	}
}

func TestStatusFD(t *testing.T) {
	requireSandbox(t)
	for _, tc := range []struct {
		script string
		want   string
		code   int
	}{
		{"exit 3", `{"exit_code":3}`, 3},
		{"kill -TERM $$", `{"exit_code":-1,"signal":15}`, 143},
	} {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testbin.Sandlock(t), sandboxArgs(t, "--status-fd", "3", "--", "sh", "-c", tc.script)...)
		cmd.ExtraFiles = []*os.File{pw}
		err = cmd.Run()
		pw.Close()
		got, _ := readAll(pr)
		if cmd.ProcessState.ExitCode() != tc.code || strings.TrimSpace(got) != tc.want {
			t.Errorf("%s: exit %d (want %d), status %q (want %q), err %v", tc.script, cmd.ProcessState.ExitCode(), tc.code, got, tc.want, err)
		}
	}
}

func readAll(f *os.File) (string, error) {
	defer f.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.String(), err
}

func TestExitCodes(t *testing.T) {
	requireSandbox(t)
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"exit 7", []string{"--", "sh", "-c", "exit 7"}, 7},
		{"kill -9", []string{"--", "sh", "-c", "kill -9 $$"}, 137},
		{"not found", []string{"--", "no-such-command-xyz"}, 127},
		{"not executable", []string{"-r", filepath.Dir(notExec), "--", notExec}, 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := run(t, "", sandboxArgs(t, tc.args...)...); r.code != tc.code {
				t.Fatalf("code %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
		})
	}
}

// liveWithArg counts live (not zombie) processes running testprog with the
// given marker among its arguments (sandlock's own command line, which
// names the marker too, is not counted).
func liveWithArg(marker string) int {
	return testenv.Live(func(_ int, b []byte) bool {
		argv0, _, _ := bytes.Cut(b, []byte{0})
		return bytes.HasSuffix(argv0, []byte("/testprog")) && bytes.Contains(b, []byte(marker))
	})
}

func TestTimeout(t *testing.T) {
	requireSandbox(t)
	marker := fmt.Sprintf("%dms", 30000+os.Getpid()%1000)
	start := time.Now()
	r := run(t, "", sandboxArgs(t, "-t", "1", "--", "sh", "-c", testbin.Prog(t)+" sleep "+marker+" & "+testbin.Prog(t)+" sleep "+marker)...)
	took := time.Since(start)
	if r.code != 124 || !strings.Contains(r.stderr, "sandlock: timeout after 1s") {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	if took > 15*time.Second {
		t.Errorf("took %v", took)
	}
	if n := liveWithArg(marker); n != 0 {
		t.Fatalf("%d sandboxed processes survived the timeout", n)
	}
}

func TestConfinementInside(t *testing.T) {
	requireSandbox(t)
	r := run(t, "", sandboxArgs(t, "-r", "/proc", "--", testbin.Prog(t), "probe")...)
	if r.code != 0 {
		t.Fatalf("probe: code %d, stderr %q", r.code, r.stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("probe output %q: %v", r.stdout, err)
	}
	status := got["status"]
	delete(got, "status")
	for name, errno := range got {
		if errno == "OK" {
			t.Errorf("%s succeeded inside the sandbox", name)
		}
	}
	want := map[string]string{"NoNewPrivs": "1", "Seccomp": "2"}
	if os.Geteuid() == 0 {
		for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			want[c] = "0000000000000000"
		}
	}
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		if _, ok := want[k]; ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("/proc/self/status inside (-want +got):\n%s", diff)
	}
}

func TestBadInput(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	touch := []string{"--", "sh", "-c", "touch " + marker}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // the one line of stderr, up to its end
	}{
		{"unknown flag", append([]string{"run", "--bogus"}, touch...), 2, "sandlock: --bogus: unknown flag"},
		{"unknown short flag", append([]string{"run", "-Z"}, touch...), 2, "sandlock: -Z: unknown flag"},
		{"env without =", append([]string{"run", "--env", "FOO"}, touch...), 125, "sandlock: --env: FOO: expected KEY=VALUE"},
		{"name with slash", append([]string{"run", "--name", "a/b"}, touch...), 125, "sandlock: --name: a/b: must not contain '/'"},
		{"timeout not a number", append([]string{"run", "-t", "abc"}, touch...), 125, "sandlock: --timeout: abc: not a number of seconds"},
		{"no command", []string{"run", "-r", "/usr"}, 2, "sandlock: run: no command given"},
		{"missing value", []string{"run", "--timeout"}, 2, "sandlock: --timeout: needs a value"},
		{"bad size", append([]string{"run", "-m", "12Q"}, touch...), 125, "sandlock: --max-memory: 12Q: not a size"},
		{"bad processes", append([]string{"run", "-P", "0"}, touch...), 125, "sandlock: --max-processes: 0: must be at least 1"},
		{"missing path", append([]string{"run", "-r", "/no/such/path"}, touch...), 125, "sandlock: --fs-read: /no/such/path: no such file or directory"},
		{"relative path", append([]string{"run", "-w", "rel"}, touch...), 125, "sandlock: --fs-write: rel: must be an absolute path"},
		{"unknown syscall", append([]string{"run", "--extra-deny-syscall", "opne"}, touch...), 125, "sandlock: --extra-deny-syscall: opne: unknown syscall"},
		{"unknown group", append([]string{"run", "--extra-allow-syscall", "all"}, touch...), 125, "sandlock: --extra-allow-syscall: all: unknown group"},
		{"unknown protection", append([]string{"run", "--disable", "fs"}, touch...), 125, "sandlock: --disable: fs: unknown protection"},
		{"bad status fd", append([]string{"run", "--status-fd", "99"}, touch...), 125, "sandlock: --status-fd: 99: bad file descriptor"},
		{"not supported yet", append([]string{"run", "--net-allow", "example.com"}, touch...), 125, "sandlock: --net-allow: not supported yet"},
		{"no-supervisor conflict", append([]string{"run", "--no-supervisor", "-m", "1G"}, touch...), 125, "sandlock: --no-supervisor is incompatible with: --max-memory"},
		{"cpu out of range", append([]string{"run", "-c", "101"}, touch...), 125, "sandlock: --cpu: 101: must be between 1 and 100"},
		{"unknown subcommand", []string{"frobnicate"}, 2, "sandlock: frobnicate: unknown subcommand"},
		// Every other flag, given a value it must refuse.
		{"empty read path", append([]string{"run", "-r", ""}, touch...), 125, "sandlock: --fs-read: empty path"},
		{"write path missing", append([]string{"run", "-w", "/no/such/dir"}, touch...), 125, "sandlock: --fs-write: /no/such/dir: no such file or directory"},
		{"cwd missing", append([]string{"run", "--cwd", "/no/such/dir"}, touch...), 125, "sandlock: --cwd: /no/such/dir: no such file or directory"},
		{"size zero", append([]string{"run", "-m", "0"}, touch...), 125, "sandlock: --max-memory: 0: size must be positive"},
		{"negative size", append([]string{"run", "-m", "-5M"}, touch...), 125, "sandlock: --max-memory: -5M: not a size"},
		{"processes not a number", append([]string{"run", "-P", "x"}, touch...), 125, "sandlock: --max-processes: x: not a whole number"},
		{"open files zero", append([]string{"run", "--max-open-files", "0"}, touch...), 125, "sandlock: --max-open-files: 0: must be at least 1"},
		{"open files not a number", append([]string{"run", "--max-open-files", "x"}, touch...), 125, "sandlock: --max-open-files: x: not a whole number"},
		{"cpu zero", append([]string{"run", "-c", "0"}, touch...), 125, "sandlock: --cpu: 0: must be at least 1"},
		{"cpu not a number", append([]string{"run", "-c", "x"}, touch...), 125, "sandlock: --cpu: x: not a whole number"},
		{"no such core", append([]string{"run", "--cpu-cores", "1023"}, touch...), 125, "sandlock: --cpu-cores: 1023: no such CPU"},
		{"bad core range", append([]string{"run", "--cpu-cores", "a-b"}, touch...), 125, "sandlock: --cpu-cores: a-b:"},
		{"num-cpus zero", append([]string{"run", "--num-cpus", "0"}, touch...), 125, "sandlock: --num-cpus: 0: must be at least 1"},
		{"num-cpus not a number", append([]string{"run", "--num-cpus", "x"}, touch...), 125, "sandlock: --num-cpus: x: not a whole number"},
		{"negative timeout", append([]string{"run", "-t", "-1"}, touch...), 125, "sandlock: --timeout: -1: must be positive"},
		{"env empty name", append([]string{"run", "--env", "=x"}, touch...), 125, "sandlock: --env: =x: empty variable name"},
		{"empty name", append([]string{"run", "--name", ""}, touch...), 125, `sandlock: --name: "": empty name`},
		{"long name", append([]string{"run", "--name", strings.Repeat("a", 65)}, touch...), 125, "sandlock: --name: " + strings.Repeat("a", 65) + ": longer than 64 bytes"},
		{"empty shell command", []string{"run", "-e", ""}, 125, `sandlock: --exec-shell: "": empty command`},
		{"status fd not a number", append([]string{"run", "--status-fd", "x"}, touch...), 125, "sandlock: --status-fd: x: not a file descriptor number"},
		{"unknown degraded protection", append([]string{"run", "--allow-degraded", "fs"}, touch...), 125, "sandlock: --allow-degraded: fs: unknown protection"},
		{"stats directory missing", append([]string{"run", "--stats", "/no/such/dir/s.json"}, touch...), 125, "sandlock: --stats: /no/such/dir/s.json: no such directory"},
		{"cpuprofile directory missing", append([]string{"run", "--cpuprofile", "/no/such/dir/p"}, touch...), 125, "sandlock: --cpuprofile: /no/such/dir/p: no such directory"},
		{"memprofile directory missing", append([]string{"run", "--memprofile", "/no/such/dir/p"}, touch...), 125, "sandlock: --memprofile: /no/such/dir/p: no such directory"},
		{"trace directory missing", append([]string{"run", "--trace", "/no/such/dir/p"}, touch...), 125, "sandlock: --trace: /no/such/dir/p: no such directory"},
		{"pprof not loopback", append([]string{"run", "--pprof", "0.0.0.0:6060"}, touch...), 125, "sandlock: --pprof: 0.0.0.0:6060: not a loopback address"},
		{"pprof no port", append([]string{"run", "--pprof", "localhost"}, touch...), 125, "sandlock: --pprof: localhost: want HOST:PORT"},
		{"boolean with a value", append([]string{"run", "--clean-env=1"}, touch...), 2, "sandlock: --clean-env: takes no value"},
		{"no-supervisor with a value", append([]string{"run", "--no-supervisor=yes"}, touch...), 2, "sandlock: --no-supervisor: takes no value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.args...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.code != tc.code || len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
				t.Fatalf("code %d (want %d), stderr %q (want one line starting %q)", r.code, tc.code, r.stderr, tc.want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cmd := exec.Command(testbin.Sandlock(t), "check")
	out, err := cmd.CombinedOutput()
	abi, _ := unixLandlockABI()
	testenv.Require(t, abi >= 6, "Landlock ABI below 6")
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	for _, want := range []string{"Landlock:", "ABI", "User notification:", "io_uring:", "pidfd:", "Hostname:", "Platform:", "Status:             OK"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func unixLandlockABI() (int, error) {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// TestUnsupportedFlags gives every flag of CLI.md whose issue has not
// landed: each is refused by name, with exit 125, and nothing starts.
func TestUnsupportedFlags(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	for name, takesValue := range unsupported {
		args := []string{"run", "--" + name}
		if takesValue {
			args = append(args, "x")
		}
		args = append(args, "--", "sh", "-c", "touch "+marker)
		r := run(t, "", args...)
		want := "sandlock: --" + name + ": not supported yet\n"
		if r.code != 125 || r.stderr != want {
			t.Errorf("--%s: code %d, stderr %q; want 125, %q", name, r.code, r.stderr, want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran")
	}
}

// TestRingSupervisor runs notified work with SANDLOCK_SUPERVISOR=ring (the
// listener polled through the io_uring): a regression, the ring's reaper
// once parked in the Go poller there and sandlock hung in the command's
// first notified mmap.
func TestRingSupervisor(t *testing.T) {
	requireSandbox(t)
	// A Go program making notified mmaps in a tight loop hung it; a shell
	// loop did not.
	loop := testbin.Build(t, "github.com/sandlock/sandlock/bench/notifloop", "notifloop")
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		args := sandboxArgs(t, "-m", "256M", "-P", "8", "-r", filepath.Dir(loop), "-w", "/dev/null", "--",
			"sh", "-c", "for i in 1 2 3; do /bin/true; done; "+loop+" mmap 20000 >/dev/null && echo done")
		cmd := exec.CommandContext(ctx, testbin.Sandlock(t), args...)
		cmd.Env = append(os.Environ(), "SANDLOCK_SUPERVISOR=ring")
		out, err := cmd.CombinedOutput()
		hung := ctx.Err() == context.DeadlineExceeded
		cancel()
		if hung {
			// Not a timing assertion: the run takes milliseconds.
			t.Fatalf("run %d hung: %s", i, out)
		}
		if err != nil || string(out) != "done\n" {
			t.Fatalf("run %d: %v: %q", i, err, out)
		}
	}
}

// TestInheritedDescriptorsClosed runs sandlock with descriptors 3 to 7
// inherited (not close-on-exec): none may reach the command. ls lists its
// own: 0, 1, 2 and the directory it reads, 3 when nothing leaked.
func TestInheritedDescriptorsClosed(t *testing.T) {
	requireSandbox(t)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(testbin.Sandlock(t), sandboxArgs(t, "-r", "/proc", "--", "ls", "/proc/self/fd")...)
	cmd.ExtraFiles = []*os.File{f, f, f, f, f}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if d := cmp.Diff([]string{"0", "1", "2", "3"}, strings.Fields(string(out))); d != "" {
		t.Errorf("the command's descriptors (-want +got):\n%s", d)
	}
}

// TestProfilingExecLeavesNoEarlyChild runs --cpuprofile with the lean
// build, which execs sandlock-prof: the early child forked for the command
// (internal/early) must end first. Left behind, it would wait for a command
// that never comes as long as sandlock runs, holding its old memory and
// descriptor table; its name tells it from the command's processes.
func TestProfilingExecLeavesNoEarlyChild(t *testing.T) {
	requireSandbox(t)
	prof := filepath.Join(testbin.Dir(t), "sandlock-prof")
	build := exec.Command("go", "build", "-tags", "pprof", "-o", prof, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building sandlock-prof: %v\n%s", err, out)
	}
	defer os.Remove(prof)
	cpu := filepath.Join(t.TempDir(), "cpu.prof")
	cmd := exec.Command(testbin.Sandlock(t), sandboxArgs(t, "--cpuprofile", cpu, "--", "sleep", "1")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	var kids []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if comm, _ := os.ReadFile("/proc/" + pid + "/comm"); string(comm) != "sandlock-prof\n" {
			continue // not exec'd yet
		}
		list, _ := os.ReadFile("/proc/" + pid + "/task/" + pid + "/children")
		kids = kids[:0]
		for _, k := range strings.Fields(string(list)) {
			comm, _ := os.ReadFile("/proc/" + k + "/comm")
			kids = append(kids, strings.TrimSpace(string(comm)))
		}
		if slices.Contains(kids, "sleep") {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sandlock with --cpuprofile: %v", err)
	}
	if d := cmp.Diff([]string{"sleep"}, kids); d != "" {
		t.Errorf("sandlock-prof's children while the command runs (-want +got):\n%s", d)
	}
	if st, err := os.Stat(cpu); err != nil || st.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
}

// TestNestedSandlock runs sandlock inside sandlock. The kernel allows one
// user-notification listener per filter chain, so the inner sandbox has no
// supervisor of its own: it runs with its Landlock rules and the
// kernel-only filter under the outer one's supervisor (as the Rust sandlock
// does), and refuses, naming the flag, a limit only a supervisor enforces.
// (It used to exit 125: "seccomp(SET_MODE_FILTER): device or resource
// busy".)
func TestNestedSandlock(t *testing.T) {
	requireSandbox(t)
	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "s"), []byte("outer only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hidden := t.TempDir() // not in the outer sandbox's rules
	if err := os.WriteFile(filepath.Join(hidden, "h"), []byte("nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outer := sandboxArgs(t, "-r", secret, "--")
	inner := append([]string{testbin.Sandlock(t)}, sandboxArgs(t)...)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"runs", append(inner, "--", "sh", "-c", "echo inner; exit 7"), 7, "inner\n", ""},
		{"inner Landlock", append(inner, "--", "sh", "-c", "cat "+secret+"/s || echo denied"), 0, "denied\n", ""},
		{"what both allow", append(inner, "-r", secret, "--", "cat", secret+"/s"), 0, "outer only\n", ""},
		{"outer Landlock", append(inner, "-r", hidden, "--", "sh", "-c", "cat "+hidden+"/h || echo denied"), 0, "denied\n", ""},
		{"limit refused", append(inner, "-m", "64M", "--", "true"), 125, "",
			"sandlock: --max-memory: needs a supervisor, which a sandbox inside a sandbox cannot have\n"},
	} {
		r := run(t, "", append(outer, tc.args...)...)
		stderr := r.stderr
		if tc.stderr == "" {
			stderr = "" // cat's own message, when it is denied
		}
		if d := cmp.Diff(result{tc.code, tc.stdout, tc.stderr}, result{r.code, r.stdout, stderr}, cmp.AllowUnexported(result{})); d != "" {
			t.Errorf("%s (-want +got):\n%s\nstderr: %s", tc.name, d, r.stderr)
		}
	}
}
