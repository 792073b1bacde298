package board

import (
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
)

// netnsEnv names the test a child process runs in its own namespaces.
const netnsEnv = "BERTH_TEST_NETNS"

// inNewNetNS runs the calling test again in a child process in new
// network and UTS namespaces — so that the whole process, every thread
// of it, sees only the test's links, routes and hostname — and returns
// false; in that child it returns true, and the test goes on there.
func inNewNetNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		forwardingOff(t)
		return true
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS}
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Errorf("in new namespaces: %v\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		t.Errorf("in new namespaces, the test did not run:\n%s", out)
	case testing.Verbose():
		t.Logf("in new namespaces:\n%s", out)
	}
	return false
}

// forwardingOff turns IPv4 forwarding off in the caller's network
// namespace: a new one inherits the initial namespace's setting
// (net.core.devconf_inherit_init_net = 0), which is on while anything on
// the host forwards — a berth holding berth0, docker — and the tests
// check that berth puts it back as it found it, off.
func forwardingOff(t *testing.T) {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0); err != nil {
		t.Fatalf("ip_forward: %v", err)
	}
}

// newNetNS makes a network namespace and returns its handle.
func newNetNS(t *testing.T) *os.File {
	t.Helper()
	ch := make(chan *os.File)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			ch <- nil
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Errorf("open netns: %v", err)
		}
		ch <- f
	}()
	f := <-ch
	if f == nil {
		t.FailNow()
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// inNS runs f on a thread in network namespace ns (sockets it makes stay
// there); the thread is not reused.
func inNS(t *testing.T, ns *os.File, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns: %v", err)
			return
		}
		f()
	}()
	<-done
}

// Addresses of the test LAN.
var (
	serverAddr = netip.MustParseAddr("10.7.0.1")
	lanPrefix  = netip.MustParsePrefix("10.7.0.1/24")
)

// newTestLAN makes a veth pair: name here, for the code under test, and
// its peer "srv0", 10.7.0.1/24, up, in a namespace of its own, which it
// returns: the test's servers run there.
func newTestLAN(t *testing.T, name string) *os.File {
	t.Helper()
	peer := newNetNS(t)
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.AddVeth(rtnl.Veth{Name: name, PeerName: "srv0", NetNS: int(peer.Fd())})); err != nil {
		t.Fatal(err)
	}
	pc, err := rtnl.DialNS(int(peer.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Do(rtnl.SetUp(1), rtnl.SetUp(2), rtnl.AddAddr(2, lanPrefix, 0)); err != nil {
		t.Fatal(err)
	}
	return peer
}

// waitFor polls cond until it holds. The limit only keeps a broken test
// from hanging; it is no performance check.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
