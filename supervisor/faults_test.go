package supervisor_test

import (
	"bufio"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/sandbox"
)

// TestTargetKilledMidNotification SIGKILLs a process while the supervisor
// is handling its notification (the handler is held until the process is
// gone), then checks that the supervisor carries on: the handler's reply
// fails harmlessly, the sandbox's next 30 forks are answered, and every
// counter is back to zero at the end.
func TestTargetKilledMidNotification(t *testing.T) {
	requireKernel(t)
	blocked, release := holdUname(t)

	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inW.Close()
	defer outR.Close()
	p := &policy.Policy{FSRead: systemRead(), FSWrite: []string{"/dev/null"}, MaxProcesses: 8, MaxMemory: 256 << 20, Env: []string{"PATH=/usr/bin:/bin"}}
	script := "uname -n & u=$!; echo $u; read go; for i in $(seq 30); do /bin/true; done; echo done; wait $u; echo end $?"
	sb, err := sandbox.Start(p, sandbox.Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdin: inR, Stdout: outW, Stderr: os.Stderr},
		&sandbox.Options{Stats: true, HostnameBySupervisor: true}) // uname notified
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	pid, err := strconv.Atoi(<-lines)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(stallLimit):
		sb.Kill()
		t.Fatal("uname never reached the supervisor")
	}
	// The target dies with its notification in the handler's hands.
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(stallLimit); ; time.Sleep(time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if len(b) == 0 || statState(b) == 'Z' || time.Now().After(deadline) {
			break
		}
	}
	close(release)
	inW.WriteString("go\n")
	for _, want := range []string{"done", "end 137"} {
		select {
		case l := <-lines:
			if l != want {
				t.Fatalf("got %q, want %q", l, want)
			}
		case <-time.After(stallLimit):
			sb.Kill()
			t.Fatalf("stalled waiting for %q", want)
		}
	}
	res, err := sb.Wait()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	if res.Stats.ProcessesInUse != 0 || res.Stats.MemoryInUse != 0 {
		t.Errorf("counters at exit: %d processes, %d bytes", res.Stats.ProcessesInUse, res.Stats.MemoryInUse)
	}
}

// statState returns the state letter of a /proc/PID/stat line.
func statState(b []byte) byte {
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2]
		}
	}
	return 0
}
