package supervisor_test

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/confine"
	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/sandbox"
	"github.com/sandlock/sandlock/supervisor"
)

func requireKernel(t *testing.T) {
	t.Helper()
	testenv.Require(t, confine.Probe().OK(), "kernel lacks what sandlock needs (see sandlock check)")
}

func systemRead() []string {
	var out []string
	for _, p := range []string{"/usr", "/lib", "/lib64", "/bin", "/etc"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// holdUname makes the handler of the sandbox's (single) uname wait: blocked
// is closed when it starts, and it returns once release is closed.
func holdUname(t *testing.T) (blocked, release chan struct{}) {
	t.Helper()
	arch, err := bpfprog.Native()
	if err != nil {
		t.Fatal(err)
	}
	unameNr, _ := arch.Nr("uname")
	blocked, release = make(chan struct{}), make(chan struct{})
	supervisor.SetTestHook(func(nr int) {
		if nr == unameNr {
			close(blocked) // once: the scripts call uname once
			<-release
		}
	})
	t.Cleanup(func() { supervisor.SetTestHook(nil) })
	return blocked, release
}

// stallLimit is how long a test waits before calling the supervisor stuck.
// It is no timing assertion: the work takes milliseconds; only a deadlock
// takes this long.
const stallLimit = time.Minute

// TestSlowHandlerDoesNotStall blocks the handler of one process's uname for
// as long as the test likes, and checks that the sandbox's other process
// forks 30 times meanwhile: each fork is a notification that another
// worker must answer.
func TestSlowHandlerDoesNotStall(t *testing.T) {
	requireKernel(t)
	blocked, release := holdUname(t)

	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inW.Close()
	defer outR.Close()
	// /dev/null: a background job's stdin.
	p := &policy.Policy{FSRead: systemRead(), FSWrite: []string{"/dev/null"}, Env: []string{"PATH=/usr/bin:/bin"}}
	// uname prints the sandbox's name once its handler is released.
	script := "uname -n & read go; for i in $(seq 30); do /bin/true; done; echo done; wait; echo end"
	// uname notified: the hostname from the supervisor, not namespaces.
	sb, err := sandbox.Start(p, sandbox.Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdin: inR, Stdout: outW, Stderr: os.Stderr},
		&sandbox.Options{HostnameBySupervisor: true})
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	select {
	case <-blocked:
	case <-time.After(stallLimit):
		sb.Kill()
		t.Fatal("uname never reached the supervisor")
	}
	inW.WriteString("go\n") // the forks start only now, with uname's handler blocked
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "done" {
			t.Fatalf("got %q", l)
		}
	case <-time.After(stallLimit):
		close(release)
		sb.Kill()
		t.Fatal("the forks stalled behind the blocked handler")
	}
	close(release)
	if l := <-lines; l != sb.Name() {
		t.Fatalf("uname printed %q, want %q", l, sb.Name())
	}
	if l := <-lines; l != "end" {
		t.Fatalf("after release: %q", l)
	}
	if res, err := sb.Wait(); err != nil || res.ExitCode != 0 {
		t.Fatalf("%v %+v", err, res)
	}
}
