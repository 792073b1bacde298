package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testutil"
)

// TestStatusSigCgt reads the SigCgt mask out of /proc/PID/status texts,
// a Groups line longer than the reader's buffer among them.
func TestStatusSigCgt(t *testing.T) {
	long := "Groups:\t" + strings.Repeat("1234567 ", 2000) + "\n"
	cases := []struct {
		name, status string
		sig          syscall.Signal
		want         bool
		err          string
	}{
		{"TERM caught", "Name:\tsh\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n", syscall.SIGTERM, true, ""},
		{"INT caught", "SigCgt:\t0000000000004002\n", syscall.SIGINT, true, ""},
		{"USR1 not", "SigCgt:\t0000000000004002\n", syscall.SIGUSR1, false, ""},
		{"ignored is not caught", "SigIgn:\t0000000000004000\nSigCgt:\t0000000000000000\n", syscall.SIGTERM, false, ""},
		{"signal 64", "SigCgt:\t8000000000000000", 64, true, ""},
		{"after a long Groups line", "Name:\tx\n" + long + "SigCgt:\t0000000000004000\n", syscall.SIGTERM, true, ""},
		{"a long line starting with the key is not it", "SigCgt:" + strings.Repeat("0", 600) + "\n", syscall.SIGTERM, false, "no SigCgt line"},
		{"missing", "Name:\tx\n", syscall.SIGTERM, false, "no SigCgt line"},
		{"not hex", "SigCgt:\tzz\n", syscall.SIGTERM, false, `SigCgt "zz"`},
		{"signal 0", "SigCgt:\t1\n", 0, false, "want 1 to 64"},
		{"signal 65", "SigCgt:\t1\n", 65, false, "want 1 to 64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := statusLine(bufio.NewReaderSize(strings.NewReader(tc.status), 512), "SigCgt:")
			var got bool
			if err == nil {
				got, err = caught(v, tc.sig)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestHandles asks the kernel, through running containers, whether the
// first process handles SIGTERM: busybox sleep does not; a shell does
// once its trap has run (a SIGTERM sent before is dropped by the kernel,
// one sent after ends it by the trap); once it has ended, ErrNotRunning.
func TestHandles(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, stdin *os.File, args ...string) (*Container, *testutil.SyncBuffer) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &testutil.SyncBuffer{}
		go io.Copy(out, r)
		spec := Spec{Name: fmt.Sprintf("handles-%d-%s", os.Getpid(), name), Rootfs: testutil.BusyboxRootfs(t), Caps: DefaultCaps, Args: args}
		c, err := Start(layout, spec, Options{DieWithParent: true, Stdin: stdin, Stdout: w, Stderr: w})
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c, out
	}
	waitOut := func(out *testutil.SyncBuffer, want string) {
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the output %q", want, out.String())
			}
		}
	}

	sleeper, _ := start("sleep", nil, "sleep", "1000")
	if h, err := sleeper.Handles(syscall.SIGTERM); err != nil || h {
		t.Errorf("sleep: Handles(SIGTERM) = %v, %v; want false", h, err)
	}
	if h, err := sleeper.Handles(syscall.SIGKILL); err != nil || !h {
		t.Errorf("sleep: Handles(SIGKILL) = %v, %v; want true", h, err)
	}
	sleeper.Kill()
	sleeper.Wait()
	if _, err := sleeper.Handles(syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after its exit: %v; want ErrNotRunning", err)
	}

	in, toSh, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer toSh.Close()
	sh, out := start("trap", in, "sh", "-c", "echo reading; read x; trap 'echo got TERM; exit 7' TERM; echo trapped; while :; do sleep 0.05; done")
	in.Close()
	waitOut(out, "reading")
	if h, err := sh.Handles(syscall.SIGTERM); err != nil || h {
		t.Errorf("sh before its trap: Handles(SIGTERM) = %v, %v; want false", h, err)
	}
	sh.Signal(syscall.SIGTERM) // dropped: no handler yet
	toSh.Write([]byte("go\n"))
	waitOut(out, "trapped")
	if h, err := sh.Handles(syscall.SIGTERM); err != nil || !h {
		t.Errorf("sh after its trap: Handles(SIGTERM) = %v, %v; want true", h, err)
	}
	sh.Signal(syscall.SIGTERM)
	exit, err := sh.Wait()
	if err != nil || exit.Code != 7 || !strings.Contains(out.String(), "got TERM") {
		t.Errorf("sh after SIGTERM: %+v %v; output %q", exit, err, out.String())
	}
}
