package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

func TestDeviceRulesV1(t *testing.T) {
	got := []string{}
	for _, r := range deviceRules([]Device{{Path: "/dev/ttyUSB0", Type: 'c', Major: 188, Minor: 0}}) {
		got = append(got, r.v1())
	}
	want := "c 1:3 rwm,c 1:5 rwm,c 1:7 rwm,c 1:8 rwm,c 1:9 rwm,c 5:0 rwm,c 5:2 rwm,c 136:* rw,c 188:0 rwm"
	if strings.Join(got, ",") != want {
		t.Errorf("rules %v\nwant %s", got, want)
	}
}

// TestDeviceProgram attaches the eBPF allow-list to a cgroup2 directory
// (the unified hierarchy, also present on hybrid hosts) and checks from a
// process inside it which device nodes open.
func TestDeviceProgram(t *testing.T) {
	unified := ""
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.FSType == "cgroup2" {
			unified = m.Point
		}
	}
	if unified == "" {
		t.Fatal("no cgroup2 hierarchy mounted")
	}
	dir := filepath.Join(unified, "berth-devtest")
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer removeCgroupDir(dir)
	rules := []deviceRule{{'c', 1, 3, "rw"}, {'c', 1, 5, "r"}}
	if err := attachDeviceProgram(dir, rules); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd  string
		fail bool
	}{
		{"head -c1 /dev/null", false},            // c 1:3 rw
		{"head -c1 /dev/zero >/dev/null", false}, // c 1:5 r
		{"echo x > /dev/zero", true},             // c 1:5 not w
		{"head -c1 /dev/full", true},             // c 1:7 not listed
		{"head -c1 /dev/urandom", true},          // c 1:9 not listed
	}
	for _, tc := range tests {
		script := "echo $$ > " + filepath.Join(dir, "cgroup.procs") + " && " + tc.cmd
		out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput()
		if (err != nil) != tc.fail {
			t.Errorf("%s: err %v, want failure %v; output %s", tc.cmd, err, tc.fail, out)
		}
		if tc.fail && !strings.Contains(string(out), "not permitted") {
			t.Errorf("%s: output %q, want EPERM", tc.cmd, out)
		}
	}
}

// TestDeviceProgramLoadsUnderSignals loads the device program 2000 times
// while another goroutine keeps signalling the loading thread, as Go's
// runtime does to preempt goroutines: the verifier gives up with EAGAIN
// when a signal arrives while it runs, and the load must retry.
func TestDeviceProgramLoadsUnderSignals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	stop, done := make(chan struct{}), make(chan struct{})
	signals := 0
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = unix.Tgkill(pid, tid, unix.SIGURG)
			signals++
			time.Sleep(50 * time.Microsecond)
		}
	}()
	rules := deviceRules([]Device{{Type: 'c', Major: 188, Minor: 0}})
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		var prog *os.File
		if prog, err = loadDeviceProgram(rules); err == nil {
			prog.Close()
		} else {
			err = fmt.Errorf("load %d: %w", i, err)
		}
	}
	close(stop)
	<-done
	t.Logf("%d signals sent to the loading thread", signals)
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeviceProgramRefused loads programs the verifier refuses: the error
// is the refusal's errno with the verifier's own words, which a second
// load with the log asks for.
func TestDeviceProgramRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prog  []insn
		errno unix.Errno
		words string
	}{
		{"no exit", []insn{{opMovK, reg(regR0, 0), 0, 1}}, unix.EINVAL, "last insn is not an exit or jmp"},
		{"r0 never set", []insn{{opExit, 0, 0, 0}}, unix.EACCES, "R0 !read_ok"},
		{"read past the ctx", []insn{{opLdxW, reg(regAcc, regCtx), 64, 0}, {opMovK, reg(regR0, 0), 0, 1}, {opExit, 0, 0, 0}},
			unix.EACCES, "invalid bpf_context access"},
	} {
		prog, err := loadProgram(encode(tc.prog))
		if err == nil {
			prog.Close()
			t.Errorf("%s: loaded", tc.name)
			continue
		}
		if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.errno, tc.words)
		}
	}
}
