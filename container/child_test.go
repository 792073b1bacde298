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
// berth ships, the code a direct start's (and an exec's) child runs
// between its clone and execve, and checks it calls nothing but its own go:nosplit steps,
// the raw system calls and the bounds-check panic: nothing of the
// runtime (an allocation, a division by a variable on arm, a stack
// check, anything that reads the g register), which would run on the
// child's own stack in berth's memory as no goroutine at all.
func TestChildCallsOnlyRawSyscalls(t *testing.T) {
	allowed := regexp.MustCompile(`^(berth/container\.(\(\*childPlan\)\.\w+|childMain(\.abi0)?)|syscall\.RawSyscall6?|runtime\.panicBounds)(-tramp\d+)?\(SB\)$`)
	// clone runs in berth: its prologue may grow the stack before
	// runtime_BeforeFork, and it calls the fork hooks and rawClone3.
	cloneAllowed := regexp.MustCompile(`^(syscall\.runtime_(BeforeFork|AfterFork)|berth/container\.rawClone3(\.abi0)?|runtime\.morestack_noctxt(\.abi0)?)(-tramp\d+)?\(SB\)$`)
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
			out, err := exec.Command("go", "tool", "objdump", "-s", `^berth/container\.(\(\*childPlan\)\.|childMain|rawClone3)`, bin).CombinedOutput()
			if err != nil {
				t.Fatalf("objdump: %v\n%s", err, out)
			}
			seen := map[string]bool{}
			cur := ""
			for _, line := range strings.Split(string(out), "\n") {
				if m := fn.FindStringSubmatch(line); m != nil {
					cur = m[1]
					seen[strings.TrimSuffix(cur, ".abi0")] = true
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
			for _, name := range []string{"(*childPlan).clone", "(*childPlan).run", "(*childPlan).enter", "(*childPlan).await",
				"(*childPlan).credentials", "(*childPlan).seal", "(*childPlan).exec", "(*childPlan).execInit", "(*childPlan).fail", "childMain", "rawClone3",
				"(*childPlan).join", "(*childPlan).attach", "(*childPlan).closeInherited"} {
				if !seen["berth/container."+name] {
					t.Errorf("no %s in the disassembly", name)
				}
			}
		})
	}
}
