// Package testbin builds, once per test binary, the programs sandlock's
// tests run: the sandlock CLI itself (static, as a user builds it) and
// internal/testprog, the probe that runs inside sandboxes.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	err  error
)

func build(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, err = os.MkdirTemp("", "sandlock-testbin-")
		if err != nil {
			return
		}
		os.Chmod(dir, 0o755)
		root := moduleRoot()
		for pkg, name := range map[string]string{"./cmd/sandlock": "sandlock", "./internal/testprog": "testprog"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, e := cmd.CombinedOutput(); e != nil {
				err = &buildError{pkg, string(out), e}
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("building test programs: %v", err)
	}
	return dir
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return e.pkg + ": " + e.err.Error() + "\n" + e.out }

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return strings.TrimSuffix(filepath.Dir(file), "/internal/testbin")
}

var extra sync.Map // package path -> *extraBuild

type extraBuild struct {
	once sync.Once
	err  error
}

// Build builds the main package pkg (a path relative to the module root,
// like "./adversarial/attacker") into Dir as name, once per test binary,
// and returns its path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	d := build(t)
	v, _ := extra.LoadOrStore(pkg, &extraBuild{})
	b := v.(*extraBuild)
	b.once.Do(func() {
		cmd := exec.Command("go", "build", "-o", filepath.Join(d, name), pkg)
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, e := cmd.CombinedOutput(); e != nil {
			b.err = &buildError{pkg, string(out), e}
		}
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return filepath.Join(d, name)
}

// Dir returns the directory holding the built programs (sandboxes in tests
// get it as a read path).
func Dir(t testing.TB) string { return build(t) }

// Sandlock returns the path of the built sandlock CLI.
func Sandlock(t testing.TB) string { return filepath.Join(build(t), "sandlock") }

// Prog returns the path of the built testprog.
func Prog(t testing.TB) string { return filepath.Join(build(t), "testprog") }

// SystemPaths are the read paths a dynamically linked command needs.
func SystemPaths() []string {
	var out []string
	for _, p := range []string{"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ReadArgs returns "-r PATH" for each of SystemPaths and the test programs.
func ReadArgs(t testing.TB) []string {
	var a []string
	for _, p := range append(SystemPaths(), Dir(t)) {
		a = append(a, "-r", p)
	}
	return a
}

// Cleanup removes the built programs; TestMain calls it after the tests.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
