package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/internal/testutil"
)

// landlockRootfs is a busybox rootfs with trees to allow and to deny,
// all writable by anyone, so that only Landlock stands in the way.
func landlockRootfs(t *testing.T) string {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"srv/rw", "srv/rw2", "srv/ro", "srv/open"} {
		p := filepath.Join(rootfs, d)
		if err := os.MkdirAll(p, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "data"), []byte(d+"-data\n"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink in a list resolves inside the container's root.
	if err := os.Symlink("/srv/rw2", filepath.Join(rootfs, "srv/link")); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// landlockScript tries each access and prints what happened.
const landlockScript = `
try() { if sh -c "$2" 2>&1; then echo "$1 allowed"; else echo "$1 denied"; fi; }
try write-rw 'echo x > /srv/rw/new'
try write-link 'echo x > /srv/rw2/new'
try read-ro 'cat /srv/ro/data'
try write-ro 'echo x > /srv/ro/new'
try write-open 'echo x > /srv/open/new'
try read-open 'cat /srv/open/data'
try write-etc 'echo x > /etc/new'
`

// TestLandlock runs a root container that keeps CAP_DAC_OVERRIDE under a
// Landlock ruleset, started directly and through the init of a user
// namespace: it writes only beneath its write paths, reads beneath its
// read paths, and nothing else.
func TestLandlock(t *testing.T) {
	if LandlockABI() == 0 {
		t.Fatal("this kernel has no Landlock")
	}
	want := map[string]string{
		"write-rw": "allowed", "write-link": "allowed", "read-ro": "allowed", "write-ro": "denied",
		"write-open": "denied", "read-open": "denied", "write-etc": "denied",
	}
	for _, tc := range []struct {
		name   string
		userNS *UserNS
	}{{"direct", nil}, {"userns", &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}}} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := landlockRootfs(t)
			spec := Spec{UserNS: tc.userNS, Caps: DefaultCaps, Args: []string{"sh", "-c", landlockScript},
				Landlock: &Landlock{Read: []string{"/bin", "/srv/ro"}, Write: []string{"/srv/rw", "/srv/link"}}}
			exit, out, err := run(t, rootfs, spec)
			if err != nil {
				t.Fatal(err)
			}
			for what, verdict := range want {
				if !containsLine(out, what+" "+verdict) {
					t.Errorf("%s: want %s; output (%s):\n%s", what, verdict, exit, out)
				}
			}
			if _, err := os.Stat(filepath.Join(rootfs, "srv/open/new")); err == nil {
				t.Errorf("the container wrote /srv/open/new")
			}
		})
	}
}

// TestLandlockErrors checks a path that is not in the container fails
// the start and names itself, and that with best_effort the same
// mistake is still an error: best effort is about the kernel only.
func TestLandlockErrors(t *testing.T) {
	for _, best := range []bool{false, true} {
		rootfs := landlockRootfs(t)
		spec := Spec{Args: []string{"true"}, Landlock: &Landlock{Read: []string{"/bin", "/srv/missing"}, BestEffort: best}}
		_, _, err := run(t, rootfs, spec)
		if err == nil || !strings.Contains(err.Error(), "landlock read path /srv/missing") {
			t.Errorf("best_effort %v: start error %v; want one naming landlock read path /srv/missing", best, err)
		}
	}
}

// TestLandlockTTY checks the terminal and the ruleset, handed to the
// child together, each reach their place.
func TestLandlockTTY(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := landlockRootfs(t)
	spec := Spec{Name: "landlock-tty", Rootfs: rootfs, TTY: true, Args: []string{"sh", "-c", "tty; " + landlockScript},
		Landlock: &Landlock{Read: []string{"/bin", "/srv/ro", "/dev/pts"}, Write: []string{"/srv/rw"}}}
	c, err := Start(layout, spec, Options{DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.PTY.Close()
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.PTY.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	exit, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(out.String(), "\r", "")
	for _, line := range []string{"/dev/pts/0", "write-rw allowed", "read-ro allowed", "write-open denied"} {
		if !containsLine(text, line) {
			t.Errorf("want %q; output (%s):\n%s", line, exit, text)
		}
	}
}

// TestLandlockExecDenied checks a command outside the read paths is not
// run, and the error says Landlock may be why.
func TestLandlockExecDenied(t *testing.T) {
	for _, userNS := range []*UserNS{nil, {UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}} {
		rootfs := landlockRootfs(t)
		_, out, err := run(t, rootfs, Spec{UserNS: userNS, Args: []string{"/bin/echo", "ran"}, Landlock: &Landlock{Read: []string{"/srv/ro"}}})
		if err == nil || !strings.Contains(err.Error(), "exec /bin/echo: permission denied (Landlock allows executing only beneath") {
			t.Errorf("user namespace %v: start error %v, output %q; want exec refused, naming Landlock", userNS != nil, err, out)
		}
	}
}

// TestLandlockExecSwapped checks an exec gets no more than the first
// process got when the workload, which may write /srv/rw, swaps its read
// path /srv/rw/pub for a symlink to /srv/open: the exec is confined by
// the start's ruleset, not one made again from the changed tree, so it
// reads /srv/open no more than the workload can; and once the path is
// gone, execs still run.
func TestLandlockExecSwapped(t *testing.T) {
	if LandlockABI() == 0 {
		t.Fatal("this kernel has no Landlock")
	}
	for name, userNS := range map[string]*UserNS{"direct": nil,
		"userns": {UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}} {
		t.Run(name, func(t *testing.T) {
			rootfs := landlockRootfs(t)
			pub := filepath.Join(rootfs, "srv/rw/pub")
			if err := os.Mkdir(pub, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(pub, 0o777); err != nil {
				t.Fatal(err)
			}
			swap := "rm -r /srv/rw/pub && ln -s /srv/open /srv/rw/pub; exec sleep 1000"
			c := startRunning(t, rootfs, Spec{UserNS: userNS, Caps: DefaultCaps, Args: []string{"sh", "-c", swap},
				Landlock: &Landlock{Read: []string{"/bin", "/srv/rw/pub"}, Write: []string{"/srv/rw"}}})
			for i := 0; ; i++ {
				ws, _, err := execOutput(t, c, ExecOptions{Args: []string{"test", "-L", "/srv/rw/pub"}})
				if err == nil && ws.ExitStatus() == 0 {
					break
				}
				if i == 100 {
					t.Fatalf("the workload did not swap /srv/rw/pub: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_, out, err := execOutput(t, c, ExecOptions{Args: []string{"sh", "-c", "cat /srv/open/data; cat /srv/rw/pub/data; echo ran"}})
			if err != nil || !containsLine(out, "ran") {
				t.Fatalf("exec: %v, output %q; want it run", err, out)
			}
			if strings.Contains(out, "srv/open-data") {
				t.Errorf("the exec read /srv/open through the swapped read path:\n%s", out)
			}
			// Gone altogether, the read path fails no exec either.
			if _, _, err := execOutput(t, c, ExecOptions{Args: []string{"rm", "/srv/rw/pub"}}); err != nil {
				t.Fatal(err)
			}
			if ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil || ws.ExitStatus() != 0 {
				t.Errorf("exec with the read path gone: %v, %v, output %q; want it run", err, ws, out)
			}
		})
	}
}
