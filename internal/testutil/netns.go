package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
)

// netnsEnv marks the child process InNetNS runs a test in.
const netnsEnv = "BERTH_TEST_NETNS"

// InNetNS runs the calling top-level test again in a child process of
// its own network and mount namespaces — a host of its own, with only lo
// (up) and a fresh /run/berth — so
// that bridges, links, nftables tables and sysctls a test makes touch
// nothing outside it and can be checked to be gone at the end. It
// returns true in the child, which goes on with the test; the parent
// reports the child's result and returns false.
func InNetNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		setupNetNS(t)
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s in a network namespace of its own: %v\n%s", t.Name(), err, out)
	} else if testing.Verbose() {
		t.Logf("in a network namespace of its own:\n%s", out)
	}
	return false
}

// setupNetNS makes the child's mounts private, mounts a tmpfs on
// /run/berth, brings lo up and turns IPv4 forwarding off: a new network
// namespace inherits the initial one's (net.core.devconf_inherit_init_net
// = 0), on while anything on the host forwards, and the tests check that
// berth puts it back as it found it.
func setupNetNS(t *testing.T) {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0); err != nil {
		t.Fatalf("ip_forward: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	if err := os.MkdirAll("/run/berth", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", "/run/berth", "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on /run/berth: %v", err)
	}
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.SetUp(1)); err != nil {
		t.Fatalf("bring lo up: %v", err)
	}
}

// Sysfs mounts a sysfs, which shows the interfaces of the caller's
// network namespace, on a temporary directory and returns it.
func Sysfs(t *testing.T) string {
	dir := t.TempDir()
	if err := unix.Mount("sysfs", dir, "sysfs", 0, ""); err != nil {
		t.Fatalf("mount sysfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
