package sandbox

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/policy"
)

// TestListenerClosedEarly stops the supervisor (closing the seccomp
// listener) while the command still runs. What the supervisor decided must
// then fail closed: the kernel answers every notified syscall with ENOSYS,
// so a fork fails and the virtualized /etc/hostname cannot be opened, but
// nothing blocks, the command ends, and nothing of the sandbox is left.
func TestListenerClosedEarly(t *testing.T) {
	requireKernel(t)
	// Warm up: package-level state and the runtime's own descriptors.
	if _, err := Run(&policy.Policy{FSRead: systemRead()}, Command{Path: "/bin/true", Args: []string{"true"}}, nil); err != nil {
		t.Fatal(err)
	}
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inW.Close()
	defer outR.Close()
	fds := openFDs(t) - 2 // inR and outW are the command's, closed below
	p := &policy.Policy{FSRead: systemRead(), MaxProcesses: 8, Env: []string{"PATH=/usr/bin:/bin"}}
	script := "echo ready; read go; /bin/true 2>/dev/null; echo fork=$?; read h </etc/hostname; echo open=$?"
	sb, err := Start(p, Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdin: inR, Stdout: outW, Stderr: outW}, nil)
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("got %q", sc.Text())
	}
	sb.sup.Stop()
	inW.WriteString("go\n")
	var out []string
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		sb.Kill()
		t.Fatal("the command blocked after the listener closed")
	}
	got := strings.Join(out, "\n")
	if strings.Contains(got, "fork=0") || strings.Contains(got, "open=0") {
		t.Errorf("a notified syscall succeeded without the supervisor:\n%s", got)
	}
	if !strings.Contains(got, "fork=") || !strings.Contains(got, "open=") {
		t.Errorf("the script did not run to its end:\n%s", got)
	}
	if _, err := sb.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("%d descriptors before, %d after: %v", fds, after, testenv.FDs())
	}
	t.Logf("after the listener closed:\n%s", got)
}
