package container

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestChildCallsOnlyRawSyscalls disassembles, for every architecture
// berth ships, the code a direct start's child runs between its clone
// and execve, and checks it calls nothing but its own go:nosplit steps,
// the raw system calls and the bounds-check panic: a call into the
// runtime (an allocation, a 64-bit division on arm, a stack check)
// would crash or deadlock the forked child.
func TestChildCallsOnlyRawSyscalls(t *testing.T) {
	allowed := regexp.MustCompile(`^(berth/container\.\(\*childPlan\)\.\w+|syscall\.RawSyscall6?|runtime\.panicBounds)(-tramp\d+)?\(SB\)$`)
	// clone's own prologue runs before the fork; after it, it calls the
	// runtime's fork hooks and run.
	cloneAllowed := regexp.MustCompile(`^(syscall\.runtime_(BeforeFork|AfterFork|AfterForkInChild)|runtime\.morestack_noctxt(\.abi0)?)(-tramp\d+)?\(SB\)$`)
	call := regexp.MustCompile(`\s(CALL|BL|JAL)\s+(?:[A-Z0-9]+,\s*)?(\S+\(SB\))`)
	fn := regexp.MustCompile(`^TEXT (\S+)\(SB\)`)
	for _, arch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		t.Run(arch, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "childcheck")
			build := exec.Command("go", "build", "-o", bin, "./testdata/childcheck")
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+arch, "GOARM=7")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			out, err := exec.Command("go", "tool", "objdump", "-s", `^berth/container\.\(\*childPlan\)\.`, bin).CombinedOutput()
			if err != nil {
				t.Fatalf("objdump: %v\n%s", err, out)
			}
			seen := map[string]bool{}
			cur := ""
			for _, line := range strings.Split(string(out), "\n") {
				if m := fn.FindStringSubmatch(line); m != nil {
					cur = m[1]
					seen[cur] = true
					continue
				}
				m := call.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				target := m[2]
				if allowed.MatchString(target) || (strings.HasSuffix(cur, ".clone") && cloneAllowed.MatchString(target)) {
					continue
				}
				t.Errorf("%s calls %s", cur, target)
			}
			for _, name := range []string{"clone", "run", "enter", "await", "credentials", "seal", "exec", "fail"} {
				if !seen["berth/container.(*childPlan)."+name] {
					t.Errorf("no childPlan.%s in the disassembly", name)
				}
			}
		})
	}
}
