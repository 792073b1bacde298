// Command probe runs inside a test container and tries, one by one, the
// things a confined workload must not be able to do. For each attempt it
// prints "NAME: allowed" or "NAME: denied (REASON)"; the tests assert on
// those lines. It is built static by the tests and copied into the rootfs.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "cloneparent" {
		cloneParent()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "forkbomb" {
		forkBomb()
		return
	}
	if len(os.Args) > 3 && os.Args[1] == "localnet" {
		src := ""
		if len(os.Args) > 4 {
			src = os.Args[4]
		}
		if err := localnet(os.Args[2], os.Args[3], src); err != nil {
			fmt.Printf("localnet %s:%s: %v\n", os.Args[2], os.Args[3], err)
			os.Exit(1)
		}
		fmt.Printf("localnet %s:%s: sent\n", os.Args[2], os.Args[3])
		return
	}
	hostPid := 0
	if len(os.Args) > 2 && os.Args[1] == "all" {
		hostPid, _ = strconv.Atoi(os.Args[2])
	}
	probes := []struct {
		name string
		try  func() error
	}{
		{"mount-tmpfs", func() error { return unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "") }},
		{"mknod", func() error { return unix.Mknod("/tmp/probe-null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) }},
		{"reboot", func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) }},
		{"unshare-user", func() error { return unix.Unshare(unix.CLONE_NEWUSER) }},
		{"keyctl", func() error {
			_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 1, 0, 0)
			return err
		}},
		{"ptrace-other-user", ptraceOtherUser},
		{"write-sysrq-trigger", func() error {
			f, err := os.OpenFile("/proc/sysrq-trigger", os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"read-kcore", func() error {
			f, err := os.Open("/proc/kcore")
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := f.Read(make([]byte, 64))
			if n == 0 {
				return fmt.Errorf("read 0 bytes (masked)")
			}
			return err
		}},
		{"see-host-pid", func() error {
			if hostPid == 0 {
				return fmt.Errorf("no host pid given")
			}
			return seeHostPid(hostPid)
		}},
		{"write-exe", writeAnyExe},
		{"write-proc-sys", func() error { return os.WriteFile("/proc/sys/kernel/domainname", []byte("x"), 0) }},
		{"write-cgroup", func() error { return os.WriteFile("/sys/fs/cgroup/cgroup.procs", []byte("1"), 0) }},
		{"open-host-disk", func() error {
			f, err := os.Open("/dev/vda")
			if err == nil {
				f.Close()
			}
			return err
		}},
	}
	for _, p := range probes {
		if err := p.try(); err != nil {
			fmt.Printf("%s: denied (%v)\n", p.name, err)
		} else {
			fmt.Printf("%s: allowed\n", p.name)
		}
	}
}

// ptraceOtherUser starts a child as another user and tries to attach.
// seeHostPid looks for the host's process pid in the container's /proc.
// A thread of the probe's own may carry that number in the container's
// PID namespace, whose numbers start again at 1: that one is not the
// host's.
func seeHostPid(pid int) error {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok && strings.TrimSpace(v) == strconv.Itoa(os.Getpid()) {
			return fmt.Errorf("pid %d is a thread of the probe's own", pid)
		}
	}
	return nil
}

func ptraceOtherUser() error {
	cmd := exec.Command("/proc/self/exe", "sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start child: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(20 * time.Millisecond)
	err := unix.PtraceAttach(cmd.Process.Pid)
	if err == nil {
		unix.PtraceDetach(cmd.Process.Pid)
	}
	return err
}

// writeAnyExe tries to open every process's executable for writing.
func writeAnyExe() error {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	var opened []string
	for _, e := range exes {
		f, err := os.OpenFile(e, os.O_WRONLY, 0)
		if err == nil {
			opened = append(opened, e)
			f.Close()
		}
	}
	if len(opened) > 0 {
		return nil
	}
	return fmt.Errorf("none of %d writable", len(exes))
}

// forkBomb starts sleepers until fork fails and reports how far it got.
func forkBomb() {
	n := 0
	for ; n < 10000; n++ {
		_, err := os.StartProcess("/bin/sleep", []string{"sleep", "60"}, &os.ProcAttr{})
		if err != nil {
			fmt.Printf("forked %d, then: %v\n", n, err)
			return
		}
	}
	fmt.Printf("forked %d without hitting a limit\n", n)
}
