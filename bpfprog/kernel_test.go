package bpfprog

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/internal/testenv"
	"golang.org/x/sys/unix"
)

const helperEnv = "BPFPROG_KERNEL_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		kernelHelper(mode)
		return
	}
	os.Exit(m.Run())
}

// kernelHelper runs in a child process: it installs the kernel-only filter on
// its thread and reports the errno of each probe as JSON.
func kernelHelper(mode string) {
	runtime.LockOSThread()
	arch, err := Native()
	if err != nil {
		fmt.Println(`{"error":"arch"}`)
		os.Exit(3)
	}
	filters, err := Filters(arch, Options{ExtraDeny: []string{"getpriority"}})
	if err != nil {
		fmt.Printf("{\"error\":%q}\n", err)
		os.Exit(3)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		os.Exit(3)
	}
	for _, f := range filters {
		fprog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
		if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
			fmt.Printf("{\"error\":%q}\n", e.Error())
			os.Exit(3)
		}
	}
	if mode == "x32" {
		// getpid through the x32 ABI: the filter must kill the process.
		unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
		os.Exit(0)
	}
	res := map[string]string{}
	probe := func(name string, nr uintptr, a ...uintptr) {
		var args [6]uintptr
		copy(args[:], a)
		_, _, e := unix.RawSyscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		res[name] = unix.ErrnoName(e)
		if e == 0 {
			res[name] = "OK"
		}
	}
	probe("getpid", unix.SYS_GETPID)
	probe("getpriority(extra deny)", unix.SYS_GETPRIORITY, 0, 0)
	probe("personality", unix.SYS_PERSONALITY, 0xffffffff)
	probe("io_uring_setup", unix.SYS_IO_URING_SETUP, 1, 0)
	probe("clone3", unix.SYS_CLONE3, 0, 0)
	// CLONE_NEWUSER|CLONE_THREAD is invalid (EINVAL) if the filter lets it through.
	probe("clone NEWUSER", unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_THREAD|unix.CLONE_SIGHAND|unix.CLONE_VM)
	probe("unshare", unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	probe("ioctl TIOCSTI high bits", unix.SYS_IOCTL, 0x7fffffff, 1<<32|unix.TIOCSTI)
	probe("socket raw", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	probe("socket udp", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, 0)
	probe("bpf", unix.SYS_BPF, 0, 0, 0)
	probe("keyctl", unix.SYS_KEYCTL, 0)
	probe("ptrace", unix.SYS_PTRACE, unix.PTRACE_TRACEME)
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

func haveSeccomp() bool {
	b, err := os.ReadFile("/proc/self/status")
	return err == nil && containsLine(string(b), "Seccomp:")
}

func containsLine(s, prefix string) bool {
	for len(s) > 0 {
		if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
			return true
		}
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return false
}

// TestKernel installs the generated filter in a real process and checks the
// kernel's verdicts.
func TestKernel(t *testing.T) {
	testenv.Require(t, haveSeccomp(), "kernel without seccomp filters")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=probe")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	want := map[string]string{
		"getpid":                  "OK",
		"getpriority(extra deny)": "EPERM",
		"personality":             "EPERM",
		"io_uring_setup":          "EPERM",
		"clone3":                  "ENOSYS",
		"clone NEWUSER":           "EPERM",
		"unshare":                 "EPERM",
		"ioctl TIOCSTI high bits": "EPERM",
		"socket raw":              "EPERM",
		"socket udp":              "EPERM",
		"bpf":                     "EPERM",
		"keyctl":                  "EPERM",
		"ptrace":                  "EPERM",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kernel verdicts (-want +got):\n%s", diff)
	}
}

func TestKernelKillsX32(t *testing.T) {
	testenv.Require(t, haveSeccomp(), "kernel without seccomp filters")
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 exists only on x86_64")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=x32")
	err := cmd.Run()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("x32 syscall: %v (%v), want death by SIGSYS", err, cmd.ProcessState)
	}
}
