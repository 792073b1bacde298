package container

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testutil"
)

// TestInitDiesBeforeHandover: an init killed after it has its config
// but before it hands berth its Landlock ruleset or its terminal fails
// the start, naming that; Start does not wait for it for ever (PID 1's
// supervisor runs starts on its loop).
func TestInitDiesBeforeHandover(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	userNS := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"landlock", Spec{UserNS: userNS, Landlock: &Landlock{Read: []string{"/bin"}}}, "ended before it sent its ruleset"},
		{"tty", Spec{UserNS: userNS, TTY: true}, "ended before it sent the terminal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.spec.Landlock != nil && LandlockABI() == 0 {
				t.Skip("this kernel has no Landlock")
			}
			spec := tc.spec
			spec.Name = fmt.Sprintf("handover-%d-%s", os.Getpid(), tc.name)
			spec.Rootfs = testutil.BusyboxRootfs(t)
			spec.Caps = DefaultCaps
			spec.Args = []string{"sleep", "1000"}
			initConfigSent = func(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
			defer func() { initConfigSent = nil }()
			type result struct {
				c   *Container
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := Start(layout, spec, Options{DieWithParent: true})
				done <- result{c, err}
			}()
			select {
			case r := <-done:
				if r.err == nil {
					r.c.Kill()
					r.c.Wait()
					t.Skip("the init handed over before the test killed it")
				}
				if !strings.Contains(r.err.Error(), tc.want) {
					t.Errorf("start: %v; want %q", r.err, tc.want)
				}
			case <-time.After(time.Minute):
				t.Fatal("Start still waits for an init killed before it handed over")
			}
		})
	}
}
